"""The PostgreSQL backend: the writer's session, pooled readers, and a LISTEN/NOTIFY listener.

Writes go through the same :class:`~taskqueue.store.pipeline.CommitPipeline` as on SQLite. A
group made only of writes that at-least-once execution redoes anyway (claims, heartbeats,
output) commits with ``synchronous_commit = off``; a group with a durable write (a create, a
finish, a cancel) commits synchronously, so an acknowledged write is on disk. The session's own
statements travel together, several to a round trip: ``BEGIN`` with the first ``SAVEPOINT``,
each ``RELEASE`` with the next ``SAVEPOINT``, the NOTIFYs with ``COMMIT``.

Many processes write at once here, so the store's functions lock the rows they decide on (the
dialect's :meth:`~PostgresDialect.lock`), and a write that lost a race is run again by the
pipeline. A lost connection fails the writes of its group with :class:`Unavailable` (the API
answers 503; workers retry); a group whose COMMIT got no answer may or may not have committed,
and every write is safe to repeat (creates carry idempotency keys; worker writes are fenced by
lease tokens).

Each commit that changed something another process may wait for sends NOTIFYs: on the
``taskqueue`` channel when work became runnable or a lease was revoked (every process LISTENs:
workers wake and stop revoked commands), on ``taskqueue_changes`` with the tasks that changed
and whether events were written (only processes that serve the API LISTEN, for their
long-polls, log followers and readers of the outbox). Each turns
what it hears into the same in-process wake-ups a local commit gives. When notifications do
not arrive (behind a transaction-pooling PgBouncer, say), :attr:`PostgresBackend.notifications`
is False and waiters fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.sql
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from taskqueue.store.dialect import Dialect
from taskqueue.store.errors import StoreError, Unavailable
from taskqueue.store.migrate import upgrade
from taskqueue.store.pipeline import CommitPipeline, Effects, WriteFn
from taskqueue.store.sql import Tx

__all__ = ["PgRow", "PgTx", "PostgresBackend", "PostgresDialect", "pg_conninfo", "pg_engine"]

log: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The channel every taskqueue process listens on.
CHANNEL = "taskqueue"
#: The channel of changed tasks, for processes that serve the API.
CHANGES = "taskqueue_changes"
#: SQLSTATEs of a write that lost a race and is worth running again: serialization failure,
#: deadlock, unique violation (the re-run sees the row the other transaction committed).
RETRYABLE = frozenset({"40001", "40P01", "23505"})
#: PostgreSQL: up to this many rows go in one multi-row INSERT, more through COPY.
VALUES_MAX_ROWS = 32
#: The advisory lock that serialises migrations.
MIGRATION_LOCK = 0x7461_736B  # "task"
#: The advisory lock held by the one transaction at a time that numbers events.
SEQUENCE_LOCK = 0x7471_6576  # "tqev"
#: Numbers events without a position (``seq``) in id order, after the last number given.
_SEQUENCE = (
    "WITH pending AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM"
    " (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT ?) AS p)"
    " UPDATE events SET seq = ? + pending.n FROM pending WHERE events.id = pending.id"
    " RETURNING events.seq"
)
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


class PostgresDialect(Dialect):
    """PostgreSQL's answers: many writers at once under READ COMMITTED, and LISTEN/NOTIFY."""

    name = "postgresql"
    can_listen = True
    event_position = "seq"

    def sequence_events(self, tx: Tx, limit: int) -> int:
        """Number committed events after the last number given, one transaction at a time."""
        if not tx.execute("SELECT pg_try_advisory_xact_lock(?)", (SEQUENCE_LOCK,)).fetchone()[0]:
            return 0  # another process is numbering them
        row = tx.execute("SELECT position FROM event_cursors WHERE name = 'sequence'").fetchone()
        top = int(row[0]) if row is not None else 0
        numbered = tx.execute(_SEQUENCE, (limit, top)).fetchall()
        if not numbered:
            return 0
        last = max(int(r[0]) for r in numbered)
        tx.execute(
            "INSERT INTO event_cursors (name, position, updated_at) VALUES ('sequence', ?, 0)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (last,),
        )
        return len(numbered)

    def lock(self, clause: str = "FOR UPDATE") -> str:
        """Rows read to decide a write must be locked first: another process may change them."""
        return f" {clause}"

    def claim_pick(self, pick: str) -> str:
        """The picked rows are locked and skipped by other claimers.

        ``= ANY(ARRAY(...))`` keeps the planner on the index for any plan (an IN join may
        turn into a hash join over the whole table under a generic plan).
        """
        return f"seq = ANY(ARRAY({pick} FOR UPDATE SKIP LOCKED))"

    def is_retryable(self, exc: BaseException) -> bool:
        """A serialization failure, a deadlock or a unique key taken by a concurrent write."""
        return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in RETRYABLE

    def classify(self, exc: BaseException) -> StoreError | None:
        """A lost or refused connection is "unavailable": the same request may succeed later."""
        if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
            return _unavailable(exc)
        return None

    def poll_interval(self, notifications: bool) -> float:
        """0.5 s while NOTIFYs arrive (they wake a worker at once), else 0.1 s."""
        return 0.5 if notifications else 0.1


POSTGRES = PostgresDialect()


class PgTx:
    """A psycopg connection that runs the store's ``?``-style statements."""

    dialect: Dialect = POSTGRES

    def __init__(self, conn: psycopg.Connection[PgRow]) -> None:
        self.conn = conn

    def execute(self, statement: str, parameters: Any = (), /) -> psycopg.Cursor[PgRow]:
        """Run one statement."""
        return self.conn.execute(_pg_sql(statement), parameters)

    def execute_binary(self, statement: str, parameters: Any = (), /) -> psycopg.Cursor[PgRow]:
        """Run one statement with its rows in binary form: BYTEA as its bytes, not hex text."""
        return self.conn.execute(_pg_sql(statement), parameters, binary=True)

    def executemany(self, statement: str, parameters: Iterable[Any], /) -> psycopg.Cursor[PgRow]:
        """Run one statement for each set of parameters (pipelined by psycopg)."""
        rows = parameters if isinstance(parameters, list) else list(parameters)
        if len(rows) == 1:  # a pipeline costs more than it saves for one statement
            return self.execute(statement, rows[0])
        cursor = self.conn.cursor()
        cursor.executemany(_pg_sql(statement), rows)
        return cursor

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows``: one multi-row INSERT for a few (one round trip), COPY for many.

        COPY has the driver format the rows in C and the server load them in one go; a few
        rows cost it two round trips where a multi-row INSERT, short enough for the driver to
        parse once and keep, takes one.
        """
        if len(rows) > VALUES_MAX_ROWS:
            statement = psycopg.sql.SQL("COPY {} ({}) FROM STDIN").format(
                psycopg.sql.Identifier(table),
                psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(c) for c in columns),
            )
            with self.conn.cursor().copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        key = (table, len(rows), tuple(columns))
        sql = _INSERTS.get(key)
        if sql is None:
            row_marks = "(" + ", ".join("%s" for _ in columns) + ")"
            sql = _INSERTS[key] = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join(
                [row_marks] * len(rows)
            )
        self.conn.execute(sql, [value for row in rows for value in row])


_INSERTS: dict[tuple[str, int, tuple[str, ...]], str] = {}


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
    # The first payload says events were written: readers of the outbox wake on it.
    changes: dict[str, Any] = {"e": 1} if fx.events else {}
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
            events=bool(body.get("e")),
        )
    except (ValueError, TypeError, AttributeError):
        log.warning("ignoring a malformed notification")
        return None


# ---------------------------------------------------------------------------- the database


class _Session:
    """The writer's connection, its statements batched into as few round trips as they allow."""

    def __init__(self, conn: psycopg.Connection[PgRow]) -> None:
        self.conn = conn
        self.tx: PgTx = PgTx(conn)
        self._head = ""  # statements still to send before the next write's own

    @property
    def broken(self) -> bool:
        return self.conn.broken or self.conn.closed

    def begin(self, durable: bool, savepoints: bool) -> None:
        self._head = "BEGIN" if durable else "BEGIN; SET LOCAL synchronous_commit = off"
        if not savepoints:  # the write's statements come next, on their own
            self.flush()

    def _send(self, statement: str) -> None:
        head, self._head = self._head, ""
        self.conn.execute(f"{head}; {statement}" if head else statement)

    def savepoint(self) -> None:
        self._send("SAVEPOINT op")

    def release(self) -> None:
        self._head = "RELEASE op"  # sent with the next savepoint; COMMIT releases it anyway

    def rollback_savepoint(self) -> None:
        self._send("ROLLBACK TO op; RELEASE op")

    def flush(self) -> None:
        """Send what is held back (a group of one runs its write right after ``BEGIN``)."""
        if self._head:
            self.conn.execute(self._head)
            self._head = ""

    def rollback(self) -> None:
        self._head = ""
        if not self.broken:
            self.conn.execute("ROLLBACK")

    def commit(self, effects: Effects) -> None:
        self._head = ""  # a RELEASE held back: COMMIT releases the savepoint itself
        tail: list[psycopg.sql.Composable] = [
            psycopg.sql.SQL("NOTIFY {}, {}").format(
                psycopg.sql.Identifier(channel), psycopg.sql.Literal(payload)
            )
            for channel, payload in _payloads(effects)
        ]
        tail.append(psycopg.sql.SQL("COMMIT"))
        self.conn.execute(psycopg.sql.SQL("; ").join(tail))

    def close(self) -> None:
        self.conn.close()


class PostgresBackend:
    """A PostgreSQL database: the commit pipeline, pooled readers, and a listener thread."""

    dialect: Dialect = POSTGRES

    def __init__(
        self,
        url: str,
        on_commit: Callable[[Effects], None] | None = None,
        *,
        listen: bool = True,
        changes: bool = True,
    ) -> None:
        self.url: str = url
        self.conninfo: str = pg_conninfo(url)
        self.listen: bool = listen
        #: Whether to hear which tasks changed (a process serving the API waits on them).
        self.changes: bool = changes
        #: Whether NOTIFYs from other processes arrive (False: waiters must poll).
        self.notifications: bool = False
        self.on_commit = on_commit
        self.pipeline: CommitPipeline = CommitPipeline(self._open_session, POSTGRES, on_commit)
        self._pool: ConnectionPool[psycopg.Connection[PgRow]] | None = None
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_pid = 0
        self._probe = ""
        self._probed = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def migrate(self) -> None:
        """Apply every migration; processes starting together take turns (an advisory lock)."""

        def take_turns(conn: Any) -> None:
            # Held until the migration's transaction commits (PostgreSQL's DDL is transactional).
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")

        engine = pg_engine(self.url)
        try:
            upgrade(engine, prelude=take_turns)
        finally:
            engine.dispose()

    def start(self) -> None:
        """Open the pool and start the writer (and the listener, when ``listen``)."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        first = self._open_session()  # fail now, clearly, if the database is unreachable
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
        self.pipeline.start(first)
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
        await self.pipeline.close()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join)
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.close)

    # ------------------------------------------------------------------ reads and writes

    def write(self, fn: WriteFn[T], *, durable: bool = True) -> asyncio.Future[T]:
        """Queue a write (see :meth:`CommitPipeline.write`)."""
        return self.pipeline.write(fn, durable=durable)

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run a read-only function on a pooled connection, off the event loop."""
        return await asyncio.to_thread(self._read, fn)

    def _read(self, fn: Callable[[Any], T]) -> T:
        pool = self._pool
        if pool is None:
            raise RuntimeError("database is not started")
        for attempt in (1, 2):
            try:
                timeout = READ_TIMEOUT_S if self.pipeline.reachable else READ_TIMEOUT_DOWN_S
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

    def _connect(self) -> psycopg.Connection[PgRow]:
        return _connect(self.conninfo, prepare=self.listen)

    def _open_session(self) -> _Session:
        session = _Session(self._connect())
        self._writer_pid = session.conn.info.backend_pid
        return session

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
