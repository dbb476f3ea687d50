"""The seam between the store and its two databases: every question whose answer differs.

The store's functions are written once, in the SQL SQLite and PostgreSQL share. Where the two
differ they ask the :class:`~taskqueue.store.dialect.Dialect` of the connection they run on
(``tx.dialect``): the row locks to take, how the claim picks its rows, what an error means,
how often an idle worker polls. Each backend module (:mod:`.sqlite`, :mod:`.postgres`) answers
for its database and implements :class:`Backend`, and :func:`open_backend` picks one by URL.
Nothing else in the store (or outside it) imports a database driver or asks which database it
is on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy.engine import make_url

from taskqueue.store.dialect import Dialect
from taskqueue.store.urls import database_problem, describe_database, secrets_of

if TYPE_CHECKING:
    from taskqueue.store.pipeline import Effects, WriteFn

__all__ = [
    "Backend",
    "Dialect",
    "check_database",
    "describe_database",
    "is_postgres_url",
    "missing_driver",
    "open_backend",
    "resolve_sqlite_path",
    "secrets_of",
]

T = TypeVar("T")


class Backend(Protocol):
    """One open database: the commit pipeline in front of it and its readers."""

    dialect: Dialect

    @property
    def notifications(self) -> bool:
        """Whether commits of other processes arrive (else waiters poll)."""
        ...

    def migrate(self) -> None:
        """Create the database if needed and apply every migration."""
        ...

    def start(self) -> None:
        """Open the connections and start the writer."""
        ...

    async def close(self) -> None:
        """Let queued writes finish and close every connection."""
        ...

    def write(self, fn: WriteFn[T], *, durable: bool = True) -> asyncio.Future[T]:
        """Queue a write; the returned future resolves once it has committed."""
        ...

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run a read-only function on a reader connection."""
        ...


def is_postgres_url(db: str) -> bool:
    """Whether ``db`` names a PostgreSQL database (``postgresql://...``)."""
    scheme = db.split("://", 1)[0].lower() if "://" in db else ""
    return scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")


def check_database(db: str) -> None:
    """Raise ValueError, saying why, unless ``db`` is a usable file path or database URL.

    The reason never shows a secret of ``db`` (see :mod:`taskqueue.store.urls`).
    """
    problem = database_problem(db)
    if problem is None and "://" in db:
        try:
            make_url(db)
        except Exception:
            problem = f"{describe_database(db)!r} is not a valid database URL"
    if problem is not None:
        raise ValueError(problem)


def resolve_sqlite_path(db: str) -> Path:
    """The SQLite file named by ``db``: a plain path or a ``sqlite:///`` URL.

    Raises ValueError for anything else, a libpq keyword string included (it would make a
    file of that name), before any file is made.
    """
    check_database(db)
    if "://" in db:
        url = make_url(db)
        if url.get_backend_name() != "sqlite":
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: "
                "give a SQLite file or a postgresql:// URL"
            )
        if not url.database or url.database == ":memory:":
            raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
        return Path(url.database)
    return Path(db)


def missing_driver(db: str) -> str | None:
    """The name of a package ``db``'s backend needs that is not installed, or None."""
    if not is_postgres_url(db):
        return None
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        return exc.name or "psycopg"
    return None


def open_backend(
    db: str,
    on_commit: Callable[[Effects], None],
    *,
    listen: bool = True,
    changes: bool = True,
) -> Backend:
    """The backend for ``db`` (a SQLite path or URL, or a PostgreSQL URL), not yet started.

    ``listen`` and ``changes`` matter on PostgreSQL only: whether to LISTEN for other
    processes' commits at all, and whether to hear which tasks changed (the API waits on them).
    """
    if is_postgres_url(db):
        from taskqueue.store.postgres import PostgresBackend

        check_database(db)
        return PostgresBackend(db, on_commit, listen=listen, changes=changes)
    from taskqueue.store.sqlite import SqliteBackend

    return SqliteBackend(resolve_sqlite_path(db), on_commit)
