"""Small helpers for running SQL on a raw driver connection, SQLite's or PostgreSQL's.

The runtime statements go straight to the driver: on SQLite the driver executes a statement in
about 4 µs, while a SQLAlchemy ``Connection.execute`` adds 50 µs or more of Python around it,
which would dominate the claim and finish paths. SQLAlchemy still defines the schema and runs
the Alembic migrations.

Statements are written once, with ``?`` placeholders, in the SQL both engines share. A
``sqlite3.Connection`` runs them as they are; on PostgreSQL they run through
:class:`taskqueue.store.postgres.PgTx`, which rewrites the placeholders. Where the engines
differ (row locks), :func:`locking` gives the clause to append.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

__all__ = ["IN_CHUNK", "Cursor", "Tx", "chunks", "insert_rows", "is_postgres", "locking", "marks"]

#: Most values bound in one ``IN (...)`` list (SQLite's default limit is 32,766 variables).
IN_CHUNK = 500
#: PostgreSQL: up to this many rows go in one multi-row INSERT, more through COPY.
PG_VALUES_MAX_ROWS = 32


class Cursor(Protocol):
    """What a statement returns: rows (indexable by position and by column name) and a count."""

    @property
    def rowcount(self) -> int:
        """Rows the statement changed."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """The connection every store function runs on, inside the writer's transaction or a read."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor:
        """Run one statement."""
        ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        """Run one statement for each set of parameters."""
        ...


def is_postgres(tx: Tx) -> bool:
    """Whether ``tx`` is a PostgreSQL connection (else SQLite's)."""
    return not isinstance(tx, sqlite3.Connection)


def locking(tx: Tx, clause: str = "FOR UPDATE") -> str:
    """`` FOR UPDATE`` (or the clause given) on PostgreSQL; nothing on SQLite.

    SQLite's single writer holds the whole database for the transaction, so a row read there
    cannot change before the transaction ends. PostgreSQL writers from many processes run at
    once under READ COMMITTED: a row read to decide a write must be locked first.
    """
    return "" if isinstance(tx, sqlite3.Connection) else f" {clause}"


_INSERT_CACHE: dict[tuple[str, tuple[str, ...]], str] = {}


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    """``values`` in slices small enough for one ``IN (...)`` list."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def marks(values: Sequence[Any] | Iterable[Any]) -> str:
    """``?, ?, ?`` for an IN list of ``values``."""
    return ", ".join("?" for _ in values)


def insert_rows(tx: Tx, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` with one ``executemany``.

    Columns that are NULL in every row are left out of the statement (they default to NULL):
    binding ``None`` costs the sqlite3 driver ten times what binding an integer does.
    """
    if not rows:
        return
    first = rows[0]
    if len(rows) == 1:
        columns = tuple([k for k, v in first.items() if v is not None])
    else:
        # Only a column that is NULL in the first row can be NULL in all of them.
        empty = {k for k, v in first.items() if v is None}
        empty = {k for k in empty if all(r[k] is None for r in rows)}
        columns = tuple([k for k in first if k not in empty])
    if is_postgres(tx) and len(rows) > 1:
        if len(rows) > PG_VALUES_MAX_ROWS:
            # COPY: the driver formats the rows in C and the server loads them in one go.
            tx.copy_rows(table, columns, [tuple([r[k] for k in columns]) for r in rows])  # type: ignore[attr-defined]
            return
        # A few rows: one multi-row INSERT, one round trip where COPY takes two; its text is
        # short enough for the driver to parse it once and keep it.
        key = (f"{table}*{len(rows)}", columns)
        sql = _INSERT_CACHE.get(key)
        if sql is None:
            row_marks = f"({marks(columns)})"
            sql = _INSERT_CACHE[key] = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join([row_marks] * len(rows))
            )
        tx.execute(sql, [r[k] for r in rows for k in columns])
        return
    key = (table, columns)
    sql = _INSERT_CACHE.get(key)
    if sql is None:
        sql = _INSERT_CACHE[key] = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(columns)})"
        )
    tx.executemany(sql, [tuple([r[k] for k in columns]) for r in rows])
