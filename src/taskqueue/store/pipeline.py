"""The commit pipeline: one writer thread applies every queued write in groups, on both backends.

Writes are functions ``fn(tx, effects) -> result`` queued from the event loop with
:meth:`CommitPipeline.write`. The writer takes everything queued, runs each function in its own
SAVEPOINT of one transaction and commits once, so concurrent requests share one commit (one
disk flush). A function that raises has only its own savepoint rolled back; the rest of the
group commits. A group of one needs no savepoint.

What differs by database is asked of a :class:`Session` (how to begin, savepoint and commit on
that connection) and of the :class:`~taskqueue.store.backend.Dialect` (whether an error lost a
race and is worth running again, what an error means). A write that lost a race (PostgreSQL:
a deadlock, a serialization failure, a unique key taken meanwhile) runs again in the next
transaction, where it sees the winner's commit and decides again. A lost connection fails its
group with :class:`~taskqueue.store.errors.Unavailable` and the writer reconnects with backoff.

Durability: a group holding a write queued ``durable=True`` (a create, a finish, a cancel)
resolves only once it is on disk. PostgreSQL commits such a group synchronously; SQLite
commits without syncing and hands the group to a :class:`Syncer`, which resolves it after the
next ``fdatasync`` of the WAL, so the writer never waits for the disk. Writes that
at-least-once execution redoes anyway (claims, heartbeats, output) resolve at commit.

The ``effects`` the functions fill (tasks made runnable, tasks that changed...) are handed to
``on_commit`` on the event loop just before the callers' futures resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from taskqueue.store.errors import StoreError, Unavailable

if TYPE_CHECKING:
    from taskqueue.store.dialect import Dialect
    from taskqueue.store.sql import Tx

__all__ = ["CommitPipeline", "Committed", "Effects", "Op", "Session", "Syncer", "WriteFn"]

log: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Most write functions applied in one transaction.
MAX_GROUP = 1000
#: How often one write is tried before its error is the answer.
MAX_TRIES = 5

#: A write: runs inside the writer's transaction and says what it changed in the effects.
WriteFn = Callable[["Tx", "Effects"], T]


@dataclass
class Effects:
    """What a committed write changed, for the in-process (and, by NOTIFY, other) listeners."""

    wake: bool = False  # some task may have become runnable
    changed: set[str] = field(default_factory=set)  # tasks whose status or fields changed
    logs: set[str] = field(default_factory=set)  # tasks that got new output
    #: (task id, lease token) of running attempts whose lease was revoked.
    stop_running: set[tuple[str, str]] = field(default_factory=set)
    events: bool = False  # events were written (readers of the outbox have news)

    def merge(self, other: Effects) -> None:
        """Add ``other``'s changes to these."""
        self.wake = self.wake or other.wake
        self.changed |= other.changed
        self.logs |= other.logs
        self.stop_running |= other.stop_running
        self.events = self.events or other.events


@dataclass
class Op(Generic[T]):
    """One queued write: the function, whether it must be durable, and who waits for it."""

    fn: WriteFn[T]
    durable: bool
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    tries: int = 0


#: A group, each op's outcome (ok, value or exception), and what the group changed.
Committed = tuple[list[Op[Any]], list[tuple[bool, Any]], Effects]


class Session(Protocol):
    """One writer connection of a backend, and how transactions are driven on it."""

    @property
    def tx(self) -> Tx:
        """The connection store functions run their statements on."""
        ...

    @property
    def broken(self) -> bool:
        """Whether the connection was lost (the writer then opens another)."""
        ...

    def begin(self, durable: bool, savepoints: bool) -> None:
        """Start a transaction, committed durably when ``durable``.

        ``savepoints``: several writes follow, each in its own savepoint.
        """
        ...

    def savepoint(self) -> None:
        """Mark where the next write starts."""
        ...

    def release(self) -> None:
        """Keep the write since the savepoint."""
        ...

    def rollback_savepoint(self) -> None:
        """Undo the write since the savepoint, keeping the rest of the transaction."""
        ...

    def rollback(self) -> None:
        """Undo the whole transaction."""
        ...

    def commit(self, effects: Effects) -> None:
        """Commit, telling other processes what changed when the backend can."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class Syncer(Protocol):
    """Makes committed groups durable after the commit, off the writer thread."""

    def submit(self, committed: Committed) -> None:
        """Deliver ``committed`` once everything committed so far is on disk."""
        ...

    def close(self) -> None:
        """Sync and deliver what is pending, then stop."""
        ...


_STOP = object()


class CommitPipeline:
    """The queue of writes, the writer thread that applies them, and the delivery of results."""

    def __init__(
        self,
        connect: Callable[[], Session],
        dialect: Dialect,
        on_commit: Callable[[Effects], None] | None = None,
        *,
        name: str = "taskqueue-writer",
    ) -> None:
        self.connect: Callable[[], Session] = connect
        self.dialect: Dialect = dialect
        self.on_commit: Callable[[Effects], None] | None = on_commit
        #: Resolves durable groups after their sync; None: the commit itself is durable.
        self.syncer: Syncer | None = None
        #: False while the writer cannot reach the database (reads then give up sooner).
        self.reachable: bool = True
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self, first: Session | None = None) -> None:
        """Start the writer thread (on ``first``, a session opened already, if given)."""
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._writer_main, args=(first,), name=self._name, daemon=True
        )
        self._thread.start()

    async def close(self) -> None:
        """Apply what is queued, then stop the writer (and the syncer)."""
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self.syncer is not None:
            await asyncio.to_thread(self.syncer.close)

    # ------------------------------------------------------------------ the queue

    def write(self, fn: WriteFn[T], *, durable: bool = True) -> asyncio.Future[T]:
        """Queue a write; the future resolves once its transaction has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Op(fn, durable, future, loop))
        return future

    def _take_group(self) -> tuple[list[Op[Any]], bool]:
        """Block for the next write, then take every write queued behind it (up to a limit).

        Returns the group and whether a stop was queued behind it (or came alone).
        """
        first = self._queue.get()
        if first is _STOP:
            return [], True
        group: list[Op[Any]] = [first]
        while len(group) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return group, True
            group.append(item)
        return group, False

    def deliver(self, committed: Committed) -> None:
        """Resolve each op's future with its outcome, on the loop it was queued from."""
        group, outcomes, effects = committed
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Op[Any], bool, Any]]] = {}
        for op, (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append((op, ok, value))
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._resolve, items, effects)

    def _fail(self, group: list[Op[Any]], error: BaseException) -> None:
        self.deliver((group, [(False, error)] * len(group), Effects()))

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

    # ------------------------------------------------------------------ the writer thread

    def _writer_main(self, session: Session | None) -> None:
        backoff = 0.05
        try:
            while True:
                group, stop = self._take_group()
                while group:
                    if session is None or session.broken:
                        try:
                            session = self.connect()
                        except Exception as exc:
                            self.reachable = False
                            log.warning("database unavailable (retrying): %s", exc)
                            self._fail(group, self._refusal(exc))
                            if not stop:
                                self._stopping.wait(backoff)
                                backoff = min(backoff * 2, 2.0)
                            break
                        if not self.reachable:
                            log.info("reconnected to the database")
                        self.reachable = True
                        backoff = 0.05
                    group = self._apply(session, group)
                    if session.broken:
                        session.close()
                        session = None
                        self.reachable = False
                if stop:
                    return
        finally:
            if session is not None:
                session.close()

    def _refusal(self, exc: BaseException) -> BaseException:
        """What a caller is told of ``exc``: the store's own error when it is a known condition."""
        if isinstance(exc, StoreError):
            return exc
        return self.dialect.classify(exc) or exc

    def _apply(self, session: Session, group: list[Op[Any]]) -> list[Op[Any]]:
        """Run ``group`` in one transaction and deliver the outcomes; return writes to re-run."""
        outcomes: list[tuple[bool, Any]] = []
        done: list[Op[Any]] = []
        again: list[Op[Any]] = []
        effects = Effects()
        savepoints = len(group) > 1
        durable = any(op.durable for op in group)
        try:
            session.begin(durable, savepoints)
            for op in group:
                fx = Effects()
                if savepoints:
                    session.savepoint()
                try:
                    value = op.fn(session.tx, fx)
                except Exception as exc:
                    if session.broken:
                        raise
                    op.tries += 1
                    if self.dialect.is_retryable(exc) and op.tries < MAX_TRIES:
                        again.append(op)
                    else:
                        done.append(op)
                        outcomes.append((False, self._refusal(exc)))
                    if not savepoints:
                        session.rollback()
                        self.deliver((done, outcomes, Effects()))  # nothing was written
                        return again
                    session.rollback_savepoint()
                else:
                    if savepoints:
                        session.release()
                    done.append(op)
                    outcomes.append((True, value))
                    effects.merge(fx)
            session.commit(effects)
        except Exception as exc:
            failure = self._refusal(exc)
            if isinstance(failure, Unavailable):
                log.warning("lost the database during a write: %s", exc)
            else:
                log.warning("a group of %d write(s) failed: %s", len(group), exc)
            if not session.broken:
                with contextlib.suppress(Exception):
                    session.rollback()
            self._fail(group, failure)
            return []
        if durable and self.syncer is not None:
            self.syncer.submit((done, outcomes, effects))
        else:
            self.deliver((done, outcomes, effects))
        if again:
            time.sleep(0.001 * len(again))  # let the other transaction finish first
        return again
