"""The PostgreSQL database: a writer thread, a pool of readers, and a LISTEN/NOTIFY listener.

Writes go through the same queue as on SQLite (:class:`WriteQueue`): one writer thread per
process applies every write queued in one transaction, each in its own SAVEPOINT, and commits
once, so concurrent requests share one commit (one WAL flush). A group made only of writes that
at-least-once execution redoes anyway (claims, heartbeats, output) commits with
``synchronous_commit = off``; a group with a durable write (a create, a finish, a cancel)
commits synchronously, so an acknowledged write is on disk.

Many processes write at once here, so the store functions lock the rows they decide on (see
:func:`taskqueue.store.sql.locking`). A write that loses a race (a deadlock, a serialization
failure, a unique key taken by a concurrent transaction) is run again in the next transaction,
where it sees the winner's commit and decides again.

A lost connection fails the writes of the group it was running with :class:`Unavailable` (the
API answers 503; workers retry) and the writer reconnects with backoff. A group whose COMMIT
got no answer may or may not have committed: its callers get :class:`Unavailable` too, and
every write is safe to repeat (creates carry idempotency keys; worker writes are fenced by
lease tokens).

Each commit that changed something another process may wait for sends NOTIFYs: on the
``taskqueue`` channel when work became runnable or a lease was revoked (every process LISTENs:
workers wake and stop revoked commands), on ``taskqueue_changes`` with the tasks that changed
(only processes that serve the API LISTEN, for their long-polls and log followers). Each turns
what it hears into the same in-process wake-ups a local commit gives. When notifications do
not arrive (behind a transaction-pooling PgBouncer, say), :attr:`PostgresDatabase.notifications`
is False and waiters fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.sql
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from taskqueue.store.database import STOP, Effects, Op, WriteQueue
from taskqueue.store.errors import Unavailable

__all__ = ["PgRow", "PgTx", "PostgresDatabase", "pg_conninfo", "pg_engine"]

log: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The channel every taskqueue process listens on.
CHANNEL = "taskqueue"
#: The channel of changed tasks, for processes that serve the API.
CHANGES = "taskqueue_changes"
#: SQLSTATEs of a write that lost a race and is worth running again: serialization failure,
#: deadlock, unique violation (the re-run sees the row the other transaction committed).
RETRYABLE = frozenset({"40001", "40P01", "23505"})
#: How often one write is tried before its error is the answer.
MAX_TRIES = 5
#: Longest payload of one NOTIFY (PostgreSQL's limit is 8000 bytes).
MAX_PAYLOAD = 7000
#: How long a read waits for a pooled connection before answering "unavailable"...
READ_TIMEOUT_S = 5.0
#: ...or, while the writer cannot reach the database either, this long.
READ_TIMEOUT_DOWN_S = 0.5
#: Connection attempts give up after this long (then the caller retries).
CONNECT_TIMEOUT_S = 5
#: libpq settings of every connection: a peer that vanished without closing the connection
#: (a partition, a dead host) is noticed in seconds, not after TCP's retransmissions give up.
_LIVENESS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}


def pg_conninfo(url: str) -> str:
    """The libpq form of a ``postgresql://`` or ``postgresql+psycopg://`` URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def pg_engine(url: str) -> Engine:
    """A SQLAlchemy engine on the database, used for migrations only."""
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    return create_engine(parsed, poolclass=NullPool)


# ---------------------------------------------------------------------------- rows and SQL


class PgRow:
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> Iterable[str]:
        """The column names."""
        return self._index.keys()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


_INDEXES: dict[tuple[bytes, ...], dict[str, int]] = {}


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    # The column names straight from the result (``cursor.description`` builds an object per
    # column on every statement), and one shared index per distinct set of names.
    result = cursor.pgresult
    names = tuple([result.fname(i) or b"" for i in range(result.nfields)]) if result else ()
    index = _INDEXES.get(names)
    if index is None:
        index = {name.decode(): i for i, name in enumerate(names)}
        if len(_INDEXES) < 1024:
            _INDEXES[names] = index

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, index)

    return make


_SQL_CACHE: dict[str, str] = {}


def _pg_sql(statement: str) -> str:
    """The statement with ``?`` placeholders turned into psycopg's ``%s``."""
    cached = _SQL_CACHE.get(statement)
    if cached is None:
        cached = statement.replace("%", "%%").replace("?", "%s")
        if len(_SQL_CACHE) < 4096:
            _SQL_CACHE[statement] = cached
    return cached


class PgTx:
    """A psycopg connection that runs the store's ``?``-style statements."""

    def __init__(self, conn: psycopg.Connection[PgRow]) -> None:
        self.conn = conn

    def execute(self, statement: str, parameters: Any = (), /) -> psycopg.Cursor[PgRow]:
        """Run one statement."""
        return self.conn.execute(_pg_sql(statement), parameters)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert ``rows`` with COPY (formatted in C; one stream, whatever the number)."""
        statement = psycopg.sql.SQL("COPY {} ({}) FROM STDIN").format(
            psycopg.sql.Identifier(table),
            psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(c) for c in columns),
        )
        with self.conn.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def executemany(self, statement: str, parameters: Iterable[Any], /) -> psycopg.Cursor[PgRow]:
        """Run one statement for each set of parameters (pipelined by psycopg)."""
        rows = parameters if isinstance(parameters, list) else list(parameters)
        if len(rows) == 1:  # a pipeline costs more than it saves for one statement
            return self.execute(statement, rows[0])
        cursor = self.conn.cursor()
        cursor.executemany(_pg_sql(statement), rows)
        return cursor


def _connection_kwargs(prepare: bool) -> dict[str, Any]:
    return {
        "autocommit": True,
        "row_factory": _row_factory,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "taskqueue",
        # Server-side prepared statements do not survive a transaction-pooling proxy.
        "prepare_threshold": 5 if prepare else None,
        **_LIVENESS,
    }


def _connect(conninfo: str, prepare: bool = True) -> psycopg.Connection[PgRow]:
    return psycopg.connect(conninfo, **_connection_kwargs(prepare))


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"the database is unavailable: {str(exc).strip() or type(exc).__name__}")


# ---------------------------------------------------------------------------- notifications


def _payloads(fx: Effects) -> list[tuple[str, str]]:
    """(channel, payload) NOTIFYs telling other processes what a commit changed."""
    notes: list[tuple[str, str]] = []
    if fx.wake or fx.stop_running:
        stops = [list(pair) for pair in sorted(fx.stop_running)]
        # ~100 bytes a revoked lease: 70 to a payload; the first one carries the wake-up.
        for n, start in enumerate(range(0, max(len(stops), 1), 70)):
            body: dict[str, Any] = {"w": 1} if fx.wake and n == 0 else {}
            if stops:
                body["s"] = stops[start : start + 70]
            notes.append((CHANNEL, json.dumps(body, separators=(",", ":"))))
    items: list[tuple[str, str]] = [("c", i) for i in sorted(fx.changed)]
    items += [("l", i) for i in sorted(fx.logs - fx.changed)]
    changes: dict[str, list[str]] = {}
    size = 16
    sent = 0
    for key, value in items:
        changes.setdefault(key, []).append(value)
        size += 50
        if size >= MAX_PAYLOAD:
            notes.append((CHANGES, json.dumps(changes, separators=(",", ":"))))
            changes, size = {}, 16
            sent += 1
            if sent >= 20:  # beyond this, waiters poll: a wake-up costs latency only
                return notes
    if changes:
        notes.append((CHANGES, json.dumps(changes, separators=(",", ":"))))
    return notes


def _effects_of(payload: str) -> Effects | None:
    try:
        body = json.loads(payload)
        return Effects(
            wake=bool(body.get("w")),
            changed=set(body.get("c", ())),
            logs=set(body.get("l", ())),
            stop_running={(str(a), str(b)) for a, b in body.get("s", ())},
        )
    except (ValueError, TypeError, AttributeError):
        log.warning("ignoring a malformed notification")
        return None


# ---------------------------------------------------------------------------- the database


class PostgresDatabase(WriteQueue):
    """A PostgreSQL database: one writer thread, pooled readers, and a listener thread."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        on_commit: Callable[[Effects], None] | None = None,
        *,
        listen: bool = True,
        changes: bool = True,
    ) -> None:
        super().__init__(on_commit)
        self.url: str = url
        self.conninfo: str = pg_conninfo(url)
        self.listen: bool = listen
        #: Whether to hear which tasks changed (a process serving the API waits on them).
        self.changes: bool = changes
        #: Whether NOTIFYs from other processes arrive (False: waiters must poll).
        self.notifications: bool = False
        self._pool: ConnectionPool[psycopg.Connection[PgRow]] | None = None
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_pid = 0
        #: False while the writer cannot reach the database: reads then give up sooner.
        self._reachable = True
        self._probe = ""
        self._probed = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the pool and start the writer (and the listener, when ``listen``)."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        first = self._connect()  # fail now, clearly, if the database is unreachable
        self._pool = ConnectionPool(
            self.conninfo,
            kwargs=_connection_kwargs(self.listen),
            min_size=1,
            max_size=8,
            timeout=READ_TIMEOUT_S,
            reconnect_timeout=0,
            name="taskqueue-read",
            open=True,
        )
        self._thread = threading.Thread(
            target=self._writer_main, args=(first,), name="taskqueue-writer", daemon=True
        )
        self._thread.start()
        if self.listen and self._loop is not None:
            self._listener = threading.Thread(
                target=self._listener_main, name="taskqueue-listen", daemon=True
            )
            self._listener.start()
            self._probed.wait(3.0)
            if not self.notifications:
                log.warning(
                    "notifications from PostgreSQL do not arrive (a transaction-pooling proxy?);"
                    " workers poll for work instead"
                )

    async def close(self) -> None:
        """Let queued writes finish, then stop every thread and close every connection."""
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join)
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.close)

    # ------------------------------------------------------------------ reads

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run a read-only function on a pooled connection, off the event loop."""
        return await asyncio.to_thread(self._read, fn)

    def _read(self, fn: Callable[[Any], T]) -> T:
        pool = self._pool
        if pool is None:
            raise RuntimeError("database is not started")
        for attempt in (1, 2):
            try:
                timeout = READ_TIMEOUT_S if self._reachable else READ_TIMEOUT_DOWN_S
                with pool.connection(timeout=timeout) as conn:
                    return fn(PgTx(conn))
            except PoolTimeout as exc:
                raise _unavailable(exc) from exc
            except psycopg.OperationalError as exc:
                # A pooled connection the server dropped (a restart): the pool discards it;
                # one more try gets a fresh one.
                if attempt == 2:
                    raise _unavailable(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ the writer thread

    def _connect(self) -> psycopg.Connection[PgRow]:
        return _connect(self.conninfo, prepare=self.listen)

    def _writer_main(self, conn: psycopg.Connection[PgRow] | None) -> None:
        backoff = 0.05
        try:
            while True:
                group, stop = self.take_group()
                while group:
                    if conn is None or conn.closed:
                        try:
                            conn = self._connect()
                            log.info("reconnected to the database")
                            backoff = 0.05
                            self._reachable = True
                        except psycopg.Error as exc:
                            self._reachable = False
                            log.warning("database unavailable (retrying): %s", exc)
                            self.deliver(
                                group, [(False, _unavailable(exc))] * len(group), Effects()
                            )
                            group = []
                            if not stop:
                                self._stopping.wait(backoff)
                                backoff = min(backoff * 2, 2.0)
                            break
                    self._writer_pid = conn.info.backend_pid
                    group = self._apply(conn, group)
                    if conn.broken:
                        conn = None
                        self._reachable = False
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _apply(self, conn: psycopg.Connection[PgRow], group: list[Op[Any]]) -> list[Op[Any]]:
        """Run ``group`` in one transaction and deliver the outcomes; return writes to re-run.

        The transaction's own statements travel together, several to a round trip (the
        simple query protocol runs a string of statements at once): ``BEGIN`` with the first
        ``SAVEPOINT``, each ``RELEASE`` with the next ``SAVEPOINT``, the NOTIFYs with ``COMMIT``
        (which releases the last savepoint itself). A group of one write needs no savepoint.
        """
        tx = PgTx(conn)
        outcomes: list[tuple[bool, Any]] = []
        done: list[Op[Any]] = []
        again: list[Op[Any]] = []
        effects = Effects()
        savepoints = len(group) > 1
        head = "BEGIN"
        if not any(op.durable for op in group):
            head += "; SET LOCAL synchronous_commit = off"
        try:
            for op in group:
                fx = Effects()
                conn.execute((head + "; SAVEPOINT op") if savepoints else head)
                head = "RELEASE op"  # what comes before the next savepoint, if this one holds
                try:
                    value = op.fn(tx, fx)
                except Exception as exc:
                    if conn.broken:
                        raise
                    op.tries += 1
                    if _retryable(exc) and op.tries < MAX_TRIES:
                        again.append(op)
                    else:
                        done.append(op)
                        outcomes.append((False, exc))
                    if not savepoints:
                        conn.execute("ROLLBACK")
                        self.deliver(done, outcomes, Effects())
                        return again
                    conn.execute("ROLLBACK TO op; RELEASE op")
                    head = "SELECT 1"  # nothing left to release
                else:
                    done.append(op)
                    outcomes.append((True, value))
                    effects.merge(fx)
            tail: list[psycopg.sql.Composable] = [
                psycopg.sql.SQL("NOTIFY {}, {}").format(
                    psycopg.sql.Identifier(channel), psycopg.sql.Literal(payload)
                )
                for channel, payload in _payloads(effects)
            ]
            tail.append(psycopg.sql.SQL("COMMIT"))
            conn.execute(psycopg.sql.SQL("; ").join(tail))
        except Exception as exc:
            failure: BaseException = exc
            if conn.broken or isinstance(exc, psycopg.OperationalError):
                failure = _unavailable(exc)
                log.warning("lost the database during a write: %s", exc)
            else:
                log.warning("a group of %d write(s) failed: %s", len(group), exc)
            if not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            if conn.broken:
                conn.close()
            self.deliver(group, [(False, failure)] * len(group), Effects())
            return []
        self.deliver(done, outcomes, effects)
        if again:
            time.sleep(0.001 * len(again))  # let the other transaction finish first
        return again

    # ------------------------------------------------------------------ the listener thread

    def _listener_main(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self.changes:
                        conn.execute(f"LISTEN {CHANGES}")
                    self._send_probe()
                    backoff = 0.1
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._heard(note)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    return
                log.warning("listening for notifications failed (retrying): %s", exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _send_probe(self) -> None:
        self._probe = os.urandom(8).hex()
        try:
            with self._connect() as conn:
                conn.execute(
                    "SELECT pg_notify(%s, %s)",
                    (CHANNEL, json.dumps({"probe": self._probe})),
                )
        except psycopg.Error as exc:  # pragma: no cover - the listener retries
            log.warning("could not probe notifications: %s", exc)

    def _heard(self, note: psycopg.Notify) -> None:
        if '"probe"' in note.payload:
            if self._probe and self._probe in note.payload:
                self.notifications = True
                self._probed.set()
            return
        if note.pid == self._writer_pid:
            return  # our own commit: its effects were delivered in-process already
        fx = _effects_of(note.payload)
        loop = self._loop
        if fx is None or loop is None or self.on_commit is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self.on_commit, fx)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in RETRYABLE
