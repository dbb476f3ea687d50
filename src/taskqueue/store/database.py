"""The SQLite database: a writer thread, a sync thread, and a reader on the event loop.

Writes are functions ``fn(conn, effects) -> result`` queued to a single writer thread. The writer
takes everything queued, runs each function inside its own SAVEPOINT of one ``BEGIN IMMEDIATE``
transaction and commits once. A function that raises has only its own savepoint rolled back; the
rest of the group commits.

Durability is pipelined. The writer commits with ``synchronous=NORMAL`` (in WAL mode: the
commit is written to the WAL file but not synced) and moves straight on to the next group. A
second thread fsyncs the WAL file and only then resolves the futures of the durable writes
committed before that fsync began. So an API handler that awaited its write answers only once
the write is on disk; every write that arrives while a sync is under way shares the next one;
and the writer never waits for the disk. Writes that may be lost in a power cut without breaking
a promise (claims, heartbeats, output: at-least-once execution redoes them) are queued with
``durable=False`` and resolve as soon as they commit. A kill -9 of the process loses nothing
committed: the WAL is in the operating system's hands from the commit on.

The ``effects`` a function fills (tasks made runnable, tasks that ended...) are handed to
``on_commit`` on the event loop when its futures resolve, so notified waiters wake for changes
that are durable. Reads on other connections see a commit as soon as it is made, a moment
before its sync: a power cut in that moment can undo a change a reader saw, never one a writer
was told about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool

__all__ = ["Effects", "SqliteDatabase", "WriteQueue", "connect", "sqlite_engine"]

log: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Most write functions applied in one transaction.
MAX_GROUP = 1000
#: How long a writer waits for another process's write lock before giving up, in ms.
BUSY_TIMEOUT_MS = 30_000


@dataclass
class Effects:
    """What a committed write changed, for the in-process listeners."""

    wake: bool = False  # some task may have become runnable
    terminal: set[str] = field(default_factory=set)  # tasks that reached a terminal status
    changed: set[str] = field(default_factory=set)  # tasks whose status changed
    logs: set[str] = field(default_factory=set)  # tasks that got new output
    #: (task id, lease token) of running attempts whose lease was revoked.
    stop_running: set[tuple[str, str]] = field(default_factory=set)

    def merge(self, other: Effects) -> None:
        """Add ``other``'s changes to these."""
        self.wake = self.wake or other.wake
        self.terminal |= other.terminal
        self.changed |= other.changed
        self.logs |= other.logs
        self.stop_running |= other.stop_running


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` with taskqueue's settings.

    The driver is in autocommit mode: the writer begins its transactions explicitly with
    ``BEGIN IMMEDIATE`` (the write lock up front, so a transaction never fails half-way on
    upgrading its lock), and reads run outside transactions.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    # Commits are not synced by SQLite: the sync thread fsyncs the WAL (see the module doc).
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


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


def sqlite_engine(path: str | Path) -> Engine:
    """A SQLAlchemy engine on the file, used for migrations only."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


@dataclass
class Op(Generic[T]):
    """One queued write: the function, whether it must be durable, and who waits for it."""

    fn: Callable[[Any, Effects], T]
    durable: bool
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    tries: int = 0


STOP = object()


class WriteQueue:
    """The queue of writes one writer thread applies in groups, and the delivery of results.

    Both databases share it: callers queue functions from the event loop with :meth:`write`;
    the writer thread takes them with :meth:`take_group`; :meth:`deliver` hands each outcome
    back to the caller's loop, after calling ``on_commit`` with what the group changed.
    """

    def __init__(self, on_commit: Callable[[Effects], None] | None = None) -> None:
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def write(self, fn: Callable[[Any, Effects], T], *, durable: bool = True) -> asyncio.Future[T]:
        """Queue a write; the future resolves once its transaction has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Op(fn, durable, future, loop))
        return future

    def take_group(self) -> tuple[list[Op[Any]], bool]:
        """Block for the next write, then take every write queued behind it (up to a limit).

        Returns the group and whether a stop was queued behind it (or came alone).
        """
        first = self._queue.get()
        if first is STOP:
            return [], True
        group: list[Op[Any]] = [first]
        while len(group) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is STOP:
                return group, True
            group.append(item)
        return group, False

    def deliver(
        self, group: list[Op[Any]], outcomes: list[tuple[bool, Any]], effects: Effects
    ) -> None:
        """Resolve each op's future with its outcome, on the loop it was queued from."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Op[Any], bool, Any]]] = {}
        for op, (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append((op, ok, value))
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._resolve, items, effects)

    def _resolve(self, items: list[tuple[Op[Any], bool, Any]], effects: Effects) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(effects)
            except Exception:  # a listener must never lose a caller's answer
                log.exception("commit listener failed")
        for op, ok, value in items:
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)


class SqliteDatabase(WriteQueue):
    """A SQLite file shared by a single writer thread and a reader on the event loop."""

    backend = "sqlite"
    #: Commits of other processes are never announced here: waiters poll.
    notifications = False

    def __init__(self, path: str | Path, on_commit: Callable[[Effects], None] | None = None):
        super().__init__(on_commit)
        self.path: Path = Path(path)
        self._sync_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the reader and start the writer thread."""
        self._reader = connect(self.path)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="taskqueue-writer", daemon=True
        )
        self._syncer = threading.Thread(
            target=self._syncer_main, name="taskqueue-sync", daemon=True
        )
        self._thread.start()
        self._syncer.start()
        ready.wait()

    async def close(self) -> None:
        """Let queued writes finish, stop the writer and close every connection."""
        if self._thread is not None:
            self._queue.put(STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._syncer is not None:
            self._sync_queue.put(STOP)
            await asyncio.to_thread(self._syncer.join)
            self._syncer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------ reads and writes

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run a read-only function on the event loop's own connection.

        A read of a local file takes microseconds: it runs right here, without a thread hop.
        """
        conn = self._reader
        if conn is None:
            raise RuntimeError("database is not started")
        return fn(conn)

    # ------------------------------------------------------------------ the writer thread

    def _writer_main(self, ready: threading.Event) -> None:
        conn = connect(self.path)
        ready.set()
        try:
            while True:
                group, stop = self.take_group()
                if group:
                    outcomes, effects, committed = self._apply(conn, group)
                    if committed and any(op.durable for op in group):
                        self._sync_queue.put((group, outcomes, effects))
                    else:
                        self.deliver(group, outcomes, effects)
                if stop:
                    return
        finally:
            conn.close()

    def _apply(
        self, conn: sqlite3.Connection, group: list[Op[Any]]
    ) -> tuple[list[tuple[bool, Any]], Effects, bool]:
        """Run a group in one transaction; each outcome, the merged effects, and if it committed."""
        outcomes: list[tuple[bool, Any]] = []
        effects = Effects()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in group:
                    fx = Effects()
                    # Each function in its own savepoint: one that raises undoes only itself.
                    conn.execute("SAVEPOINT op")
                    try:
                        value = op.fn(conn, fx)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        outcomes.append((False, exc))
                    else:
                        conn.execute("RELEASE op")
                        outcomes.append((True, value))
                        effects.merge(fx)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            log.warning("a group of %d write(s) failed: %s", len(group), exc)
            return [(False, exc)] * len(group), Effects(), False
        return outcomes, effects, True

    def _syncer_main(self) -> None:
        wal = _WalSync(self.path)
        try:
            while True:
                first = self._sync_queue.get()
                stop = first is STOP
                pending = [] if stop else [first]
                while True:
                    try:
                        item = self._sync_queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is STOP:
                        stop = True
                    else:
                        pending.append(item)
                if pending:
                    try:
                        wal.sync()
                    except OSError as exc:
                        log.error("could not sync %s: %s", wal.path, exc)
                        for group, _, _ in pending:
                            self.deliver(group, [(False, exc)] * len(group), Effects())
                    else:
                        for group, outcomes, effects in pending:
                            self.deliver(group, outcomes, effects)
                if stop:
                    return
        finally:
            wal.close()
