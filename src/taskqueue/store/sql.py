"""What every store function runs on, and small helpers for writing its SQL.

The runtime statements go straight to the driver: on SQLite the driver executes a statement in
about 4 µs, while a SQLAlchemy ``Connection.execute`` adds 50 µs or more of Python around it,
which would dominate the claim and finish paths. SQLAlchemy still defines the schema and runs
the Alembic migrations.

Statements are written once, with ``?`` placeholders, in the SQL both engines share, against
the :class:`Tx` protocol that both backends' connections implement. Where the engines differ
(row locks, the claim's pick, bulk inserts) a function asks ``tx.dialect`` or calls
``tx.insert_many``; it never asks which database it is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from taskqueue.store.dialect import Dialect

__all__ = ["IN_CHUNK", "Cursor", "Tx", "chunks", "insert_rows", "marks"]

#: Most values bound in one ``IN (...)`` list (SQLite's default limit is 32,766 variables).
IN_CHUNK = 500


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

    @property
    def dialect(self) -> Dialect:
        """The answers to every question whose answer depends on the database."""
        ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor:
        """Run one statement."""
        ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        """Run one statement for each set of parameters."""
        ...

    def execute_binary(self, sql: str, parameters: Any = ..., /) -> Cursor:
        """Run one statement that reads stored bytes, its rows in the database's binary form.

        PostgreSQL otherwise sends a BYTEA value as hex text: twice its size to send and parse.
        """
        ...

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (values in ``columns`` order) the fastest way the database has."""
        ...


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    """``values`` in slices small enough for one ``IN (...)`` list."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def marks(values: Sequence[Any] | Iterable[Any]) -> str:
    """``?, ?, ?`` for an IN list of ``values``."""
    return ", ".join("?" for _ in values)


def insert_rows(tx: Tx, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in one go.

    Columns that are NULL in every row are left out of the statement (they default to NULL):
    binding ``None`` costs the sqlite3 driver ten times what binding an integer does.
    """
    if not rows:
        return
    first = rows[0]
    if len(rows) == 1:
        columns = [k for k, v in first.items() if v is not None]
    else:
        # Only a column that is NULL in the first row can be NULL in all of them.
        empty = {k for k, v in first.items() if v is None}
        empty = {k for k in empty if all(r[k] is None for r in rows)}
        columns = [k for k in first if k not in empty]
    tx.insert_many(table, columns, [tuple([r[k] for k in columns]) for r in rows])
