"""Alembic environment: runs migrations on the connection the caller hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from taskqueue.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # command-line use: `alembic -x url=... upgrade head`
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///taskqueue.db")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
