"""Apply the Alembic migrations: on server start, and by ``taskqueue db upgrade``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

_HERE = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return config


def upgrade(
    engine: Engine, revision: str = "head", prelude: Callable[[Connection], None] | None = None
) -> None:
    """Bring the database behind ``engine`` up to ``revision`` (default: the newest).

    ``prelude`` runs first in the migration's transaction: the backend's way of making
    processes that start together migrate one at a time.
    """
    config = alembic_config()
    with engine.begin() as conn:
        if prelude is not None:
            prelude(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of taskqueue ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
