"""The scheduler: fires the due slots of Scheduled tasks, in every ``taskqueue server``.

Every server runs one. None is the leader: each looks for due schedules about once a second
(sooner when a slot is due sooner), and the store makes each slot fire once, whichever server
gets there first (see :mod:`taskqueue.store.schedules`). A server that was down fires, when it
starts, what the schedules' ``catchup`` policies say of the slots it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from taskqueue.store import Store

__all__ = ["Scheduler", "file_clock"]

log: logging.Logger = logging.getLogger(__name__)

#: The longest the scheduler sleeps between two looks, in seconds.
TICK_S = 1.0


def _system_clock() -> int:
    return time.time_ns() // 1000


def file_clock(path: Path) -> Callable[[int], int]:
    """A clock for tests: the time in the file (seconds since the epoch) while it exists.

    Returns a function of the system time (µs) to the time the scheduler goes by.
    """

    def now(system_us: int) -> int:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(float(path.read_text().strip()) * 1_000_000)
        return system_us

    return now


class Scheduler:
    """A :class:`~taskqueue.server.services.Service` firing the due slots of schedules."""

    def __init__(self, store: Store, clock: Callable[[int], int] | None = None) -> None:
        self.store: Store = store
        self._clock: Callable[[int], int] = clock or (lambda system_us: system_us)
        self._stopping = asyncio.Event()

    @property
    def name(self) -> str:
        """What the log calls it."""
        return "scheduler"

    async def start(self) -> None:
        """Nothing to prepare: the first look happens as it runs."""

    def stop(self) -> None:
        """Finish after the current look."""
        self._stopping.set()

    def now(self) -> int:
        """The time slots are fired by (µs): the system's, or the test clock's."""
        return self._clock(_system_clock())

    async def run(self) -> None:
        """Fire due slots until stopped."""
        while not self._stopping.is_set():
            try:
                # A read first: an idle scheduler writes nothing.
                due, buffered = await self.store.schedules.next_due()
                if buffered or (due is not None and due <= self.now()):
                    fired = await self.store.schedules.fire_due(self.now())
                    log.debug("fired %d slot(s)", fired)
                    due, _ = await self.store.schedules.next_due()
            except Exception:  # a database hiccup: the next look tries again
                log.exception("firing schedules failed; trying again")
                due = None
            wait = TICK_S
            if due is not None:
                wait = min(TICK_S, max(0.0, (due - self.now()) / 1_000_000))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=max(wait, 0.01))
