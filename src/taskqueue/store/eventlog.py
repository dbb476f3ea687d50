"""The outbox as its readers see it: events after a position, and the readers' cursors.

Every reader (the API's stream, webhook subscriptions, the NATS publisher) reads the same way:
wait for news (:meth:`EventLog.wait`, woken by commits that wrote events, here or in another
process), read the events after its position, hand them on, move its cursor. Positions only
grow and none is skipped, on both backends (see :func:`outbox.sequence_events`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from taskqueue.store import outbox
from taskqueue.store.backend import Backend
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.waiters import Waiters

#: The store's way to queue a write: the function, and whether it must be durable.
Write = Callable[[Callable[[Tx, Effects], Any]], "asyncio.Future[Any]"]

__all__ = ["EventLog", "EventSignal"]

#: How often a reader looks for events that nothing announced, in seconds.
POLL_INTERVAL_S = 1.0


class EventSignal:
    """One reader's wake-up: set by every commit that wrote events, cleared when it reads."""

    def __init__(self, log: EventLog) -> None:
        self._event = asyncio.Event()
        self._remove = log.waiters.on_events(self._event.set)

    def set(self) -> None:
        """Wake the reader (as a commit would)."""
        self._event.set()

    async def wait(self, timeout: float = POLL_INTERVAL_S) -> bool:
        """Wait for news or ``timeout`` seconds; True if a commit announced events."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        woke = self._event.is_set()
        self._event.clear()
        return woke

    def close(self) -> None:
        """Stop hearing of commits."""
        with contextlib.suppress(ValueError):
            self._remove()


class EventLog:
    """Reads of the ``events`` table and the cursors of its readers, on one store."""

    def __init__(
        self, db: Backend, waiters: Waiters, write: Write, clock: Callable[[], int]
    ) -> None:
        self.db: Backend = db
        self.waiters: Waiters = waiters
        self._write: Write = write
        self._clock: Callable[[], int] = clock

    def signal(self) -> EventSignal:
        """A new reader's wake-up (close it when the reader stops)."""
        return EventSignal(self)

    async def sequence(self) -> int:
        """Give committed events their positions where the database needs it (PostgreSQL)."""
        if self.db.dialect.event_position == "id":
            return 0
        numbered: int = await self._write(outbox.sequence_events)
        return numbered

    async def read(
        self, after: int, limit: int, *, sequence: bool = True, **filters: Any
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` events after position ``after`` that pass the filters, oldest first.

        ``filters`` are :func:`outbox.read_events`'s (``projects``, ``project_id``,
        ``task_id``, ``types``, ``queue``, ``with_queue``). Numbers the events committed since
        the last read first, so what it returns is final (``sequence=False``: the caller just
        did, with :meth:`bounds`).
        """
        if sequence:
            await self.sequence()
        return await self.db.read(lambda c: outbox.read_events(c, after, limit, **filters))

    async def bounds(self) -> tuple[int | None, int | None]:
        """The oldest and newest positions stored (None, None: no event).

        Numbers what was committed first, so "newest" includes every event committed before.
        """
        await self.sequence()
        return await self.db.read(outbox.event_bounds)

    async def cursor(self, name: str) -> int | None:
        """Where the reader ``name`` is (None: it never ran)."""
        return await self.db.read(lambda c: outbox.cursor_position(c, name))

    async def set_cursor(self, name: str, position: int) -> None:
        """Record durably that the reader ``name`` handed on every event up to ``position``."""
        now = self._clock()
        await self._write(lambda c, fx: outbox.set_cursor(c, name, position, now))

    def on_events(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each commit that wrote events; returns its removal."""
        return self.waiters.on_events(listener)
