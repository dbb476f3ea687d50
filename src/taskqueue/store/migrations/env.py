"""Alembic environment: runs migrations on the connection the caller hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from taskqueue.store.schema import metadata


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    """Migrate the connection given in the config's attributes, or ``-x url=...``."""
    given: Connection | None = context.config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    url: str = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///taskqueue.db")
    with create_engine(url).connect() as conn:
        _migrate(conn)


run()
