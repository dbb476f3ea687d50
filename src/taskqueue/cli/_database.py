"""The database options of the commands that open one: ``--db``, ``--database-url-file``.

Kept apart from :mod:`taskqueue.cli.main` so that every command module (``keys`` among them)
can use them without importing the command tree.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from taskqueue.service import UnusableDatabase

__all__ = ["DEFAULT_DB", "check_db", "database", "db_option", "explain", "need_server"]

DEFAULT_DB = "taskqueue.db"


def db_option(function: Any) -> Any:
    """``--db`` and ``--database-url-file``; the command gets ``db``, read, checked, ready.

    Before anything is read, the process is made non-dumpable, so no other process of its
    user (a command it runs) can read the database URL from its environment or memory.
    """

    @functools.wraps(function)
    def with_database(*args: Any, db: str, database_url_file: str | None, **kw: Any) -> Any:
        source = click.get_current_context().get_parameter_source("db")
        given = None if source is click.core.ParameterSource.DEFAULT else db
        return function(*args, db=database(given, database_url_file), **kw)

    with_database = click.option(
        "--database-url-file",
        envvar="TASKQUEUE_DATABASE_URL_FILE",
        default=None,
        metavar="PATH",
        help="Read the database URL from this file, so it is in no environment or command "
        "line (env TASKQUEUE_DATABASE_URL_FILE).",
    )(with_database)
    return click.option(
        "--db",
        envvar="TASKQUEUE_DATABASE_URL",
        default=DEFAULT_DB,
        show_default=True,
        help="SQLite file path, sqlite:/// URL or postgresql:// URL (env TASKQUEUE_DATABASE_URL).",
    )(with_database)


def database(db: str | None, url_file: str | None) -> str:
    """The database a command uses: from ``--db``, from ``--database-url-file``, or the default."""
    from taskqueue.security import make_undumpable, read_secret_file, redact_logs

    make_undumpable()
    if db is not None and url_file is not None:
        raise click.UsageError(
            "give the database once: --db (or TASKQUEUE_DATABASE_URL) or --database-url-file "
            "(or TASKQUEUE_DATABASE_URL_FILE), not both"
        )
    hint = "--db"
    if url_file is not None:
        hint = "--database-url-file"
        try:
            db, warning = read_secret_file(url_file, "file")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
        if warning is not None:
            click.echo(f"warning: {warning}", err=True)
    db = db or DEFAULT_DB
    need_server()
    from taskqueue.store import secrets_of

    redact_logs(
        [*secrets_of(db), *(os.environ.get(f"TASKQUEUE_{k}_KEY", "") for k in ("API", "SECRET"))]
    )
    check_db(db, hint)
    return db


def need_server() -> None:
    try:
        import sqlalchemy  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise click.ClickException(
            f"the server needs extra packages ({exc.name} is missing): "
            "pip install 'taskqueue-sdk[server]'"
        ) from exc


def check_db(db: str, hint: str = "--db") -> None:
    from taskqueue.store.backend import (
        check_database,
        is_postgres_url,
        missing_driver,
        resolve_sqlite_path,
    )

    try:
        check_database(db)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
    if is_postgres_url(db):
        missing = missing_driver(db)
        if missing is not None:  # pragma: no cover - depends on the install
            raise click.ClickException(
                f"PostgreSQL needs extra packages ({missing} is missing): "
                "pip install 'taskqueue-sdk[server]'"
            )
        return
    try:
        path = resolve_sqlite_path(db)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc
    parent = path.resolve().parent
    if not parent.is_dir():
        raise click.BadParameter(f"directory {str(parent)!r} does not exist", param_hint=hint)


def explain(exc: UnusableDatabase) -> click.ClickException:
    """One line saying why the database cannot be used (any secret a driver echoed hidden)."""
    from taskqueue.security import redact
    from taskqueue.store import secrets_of

    cause = exc.__cause__ or exc
    cause = getattr(cause, "orig", None) or cause
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return click.ClickException(redact(f"{exc}: {reason}", secrets_of(exc.db)))
