"""The SQLite backend: a file in WAL mode, the writer thread, a sync thread, a reader.

The writer (:class:`~taskqueue.store.pipeline.CommitPipeline`) begins each group with
``BEGIN IMMEDIATE`` (the write lock up front, so a transaction never fails half-way on upgrading
its lock) and commits with ``synchronous=NORMAL``: in WAL mode the commit is written to the WAL
file but not synced, and the writer moves straight on. The sync thread (:class:`WalSyncer`)
``fdatasync``s the WAL and only then resolves the durable writes committed before that sync
began, so every write that arrives while a sync is under way shares the next one. A kill -9
of the process loses nothing committed: the WAL is in the operating system's hands from the
commit on.

Reads run on the event loop's own connection: a read of a local file takes microseconds, less
than a hop to a thread. They see a commit as soon as it is made, a moment before its sync: a
power cut in that moment can undo a change a reader saw, never one a writer was told about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool

from taskqueue.store.dialect import Dialect
from taskqueue.store.errors import StoreError, Unavailable
from taskqueue.store.migrate import upgrade
from taskqueue.store.pipeline import CommitPipeline, Committed, Effects, WriteFn

__all__ = ["SqliteBackend", "SqliteConnection", "SqliteDialect", "connect", "sqlite_engine"]

log: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a writer waits for another process's write lock before giving up, in ms.
BUSY_TIMEOUT_MS = 30_000
_INSERTS: dict[tuple[str, tuple[str, ...]], str] = {}


class SqliteDialect(Dialect):
    """SQLite's answers: one writer at a time, so no row locks; no notifications."""

    name = "sqlite"
    can_listen = False

    def classify(self, exc: BaseException) -> StoreError | None:
        """A database locked past the busy timeout (another process writing) is "try again"."""
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                return Unavailable("the database is busy; try again")
        return None

    def poll_interval(self, notifications: bool) -> float:
        """20 ms: a read of a local file, and the only way to hear of another process's commit."""
        return 0.02


SQLITE = SqliteDialect()


class SqliteConnection(sqlite3.Connection):
    """A ``sqlite3`` connection that the store's functions run on (see ``store.sql.Tx``)."""

    dialect: Dialect = SQLITE

    def execute_binary(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """Run one statement (SQLite returns a BLOB as it stores it either way)."""
        return self.execute(sql, parameters)

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (values in ``columns`` order) with one ``executemany``."""
        key = (table, tuple(columns))
        sql = _INSERTS.get(key)
        if sql is None:
            marks = ", ".join("?" for _ in columns)
            sql = _INSERTS[key] = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        self.executemany(sql, rows)


def connect(path: str | Path) -> SqliteConnection:
    """A connection to the SQLite file at ``path`` with taskqueue's settings.

    The driver is in autocommit mode: the writer begins its transactions explicitly, and reads
    run outside transactions.
    """
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, factory=SqliteConnection
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    # Commits are not synced by SQLite: the sync thread fsyncs the WAL (see the module doc).
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def sqlite_engine(path: str | Path) -> Engine:
    """A SQLAlchemy engine on the file, used for migrations only."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


#: The files of one SQLite database: the database itself and what SQLite keeps beside it.
_SUFFIXES = ("", "-wal", "-shm", "-journal")


@contextlib.contextmanager
def _owner_only(active: bool) -> Iterator[None]:
    """While a database is created: files and directories made are the owner's alone."""
    if not active:
        yield
        return
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _restrict(path: Path) -> None:
    """Make the database we created, and the files beside it, readable by the owner only."""
    for suffix in _SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _warn_if_shared(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "the database file %s can be read by other users (mode %o): commands running as"
            " them could read every task; chmod 600 it (and its -wal and -shm files)",
            path,
            stat.S_IMODE(mode),
        )


class _Session:
    """The writer's connection: ``BEGIN IMMEDIATE``, savepoints, ``COMMIT``."""

    broken = False

    def __init__(self, path: Path) -> None:
        self.tx: SqliteConnection = connect(path)

    def begin(self, durable: bool, savepoints: bool) -> None:
        self.tx.execute("BEGIN IMMEDIATE")

    def savepoint(self) -> None:
        self.tx.execute("SAVEPOINT op")

    def release(self) -> None:
        self.tx.execute("RELEASE op")

    def rollback_savepoint(self) -> None:
        self.tx.execute("ROLLBACK TO op")
        self.tx.execute("RELEASE op")

    def rollback(self) -> None:
        if self.tx.in_transaction:
            self.tx.execute("ROLLBACK")

    def commit(self, effects: Effects) -> None:
        self.tx.execute("COMMIT")

    def close(self) -> None:
        self.tx.close()


class _WalSync:
    """fdatasync of the WAL file, through one descriptor kept open while it stays the same file.

    SQLite keeps the same WAL file while any connection is open (ours is), but the inode is
    checked on every sync (two cheap calls) so a replaced file cannot be missed. When the file
    is (re)opened, its directory is synced too: a WAL created since the last start is then
    durable as a directory entry, not just as data.
    """

    def __init__(self, path: Path) -> None:
        # SQLite names the WAL after the database's real path (a symlinked file resolves).
        self.path = Path(f"{os.path.realpath(path)}-wal")
        self.fd: int | None = None

    def sync(self) -> None:
        """Make everything committed so far durable; raises OSError if it cannot."""
        if self.fd is not None:
            try:
                same = os.fstat(self.fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                self.close()
        if self.fd is None:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                directory = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
        try:
            os.fdatasync(self.fd)
        except OSError:
            self.close()  # never keep a descriptor we could not use
            raise

    def close(self) -> None:
        """Forget the descriptor."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class WalSyncer:
    """The sync thread: resolves durable groups once the WAL holding them is on disk."""

    def __init__(self, path: Path, deliver: Callable[[Committed], None]) -> None:
        self._wal = _WalSync(path)
        self._deliver = deliver
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="taskqueue-sync", daemon=True)
        self._thread.start()

    def submit(self, committed: Committed) -> None:
        """Deliver ``committed`` after the next sync."""
        self._queue.put(committed)

    def close(self) -> None:
        """Sync what is pending, deliver it and stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _main(self) -> None:
        try:
            while True:
                first = self._queue.get()
                stop = first is None
                pending: list[Committed] = [] if stop else [first]
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                    else:
                        pending.append(item)
                if pending:
                    self._sync(pending)
                if stop:
                    return
        finally:
            self._wal.close()

    def _sync(self, pending: list[Committed]) -> None:
        try:
            self._wal.sync()
        except OSError as exc:
            log.error("could not sync %s: %s", self._wal.path, exc)
            for group, _, _ in pending:
                self._deliver((group, [(False, exc)] * len(group), Effects()))
        else:
            for committed in pending:
                self._deliver(committed)


class SqliteBackend:
    """A SQLite file shared by a single writer thread and a reader on the event loop."""

    dialect: Dialect = SQLITE
    #: Commits of other processes are never announced here: waiters poll.
    notifications = False

    def __init__(self, path: Path, on_commit: Callable[[Effects], None] | None = None) -> None:
        self.path: Path = path
        self.pipeline: CommitPipeline = CommitPipeline(
            lambda: _Session(self.path), SQLITE, on_commit
        )
        self._reader: SqliteConnection | None = None

    def migrate(self) -> None:
        """Create the file (and its directory) if needed and apply every migration.

        A file made here is readable by its owner only, as are its ``-wal`` and ``-shm``
        (SQLite gives them the database's mode); an existing file keeps its mode, with a
        warning when other users may read it.
        """
        created = not self.path.exists()
        with _owner_only(created):
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            engine = sqlite_engine(self.path)
            try:
                upgrade(engine)
            finally:
                engine.dispose()
        if created:
            _restrict(self.path)
        else:
            _warn_if_shared(self.path)

    def start(self) -> None:
        """Open the reader and start the writer and sync threads."""
        self._reader = connect(self.path)
        self.pipeline.syncer = WalSyncer(self.path, self.pipeline.deliver)
        self.pipeline.start(_Session(self.path))

    async def close(self) -> None:
        """Let queued writes finish, stop the threads and close every connection."""
        await self.pipeline.close()
        self.pipeline.syncer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def write(self, fn: WriteFn[T], *, durable: bool = True) -> asyncio.Future[T]:
        """Queue a write (see :meth:`CommitPipeline.write`)."""
        return self.pipeline.write(fn, durable=durable)

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run a read-only function on the event loop's own connection."""
        conn = self._reader
        if conn is None:
            raise RuntimeError("database is not started")
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            refusal = SQLITE.classify(exc)
            if refusal is None:
                raise
            raise refusal from exc
