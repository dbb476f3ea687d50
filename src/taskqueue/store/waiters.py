"""In-process wake-ups: what each commit (local, or another process's by NOTIFY) wakes.

Idle workers wait on :attr:`Waiters.work_available`; long-polls wait for a task to change;
log followers wait for new output; workers listen for leases revoked under them; readers of
the outbox hear of commits that wrote events. Every waiter
also polls, so a missed notification costs latency, never progress.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

from taskqueue.store.pipeline import Effects

__all__ = ["Waiters"]


class Waiters:
    """The registries of everyone waiting on a change, and the fan-out of each commit."""

    def __init__(self) -> None:
        self.work_available: asyncio.Event = asyncio.Event()
        self._changes: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._logs: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._stop_listeners: list[Callable[[set[tuple[str, str]]], None]] = []
        self._event_listeners: list[Callable[[], None]] = []

    def on_commit(self, fx: Effects) -> None:
        """Wake whoever waits on what ``fx`` changed."""
        if fx.wake:
            self.work_available.set()
        for task_id in fx.changed:
            for waiter in self._changes.get(task_id, ()):
                waiter.set()
        for task_id in fx.logs | fx.changed:
            for waiter in self._logs.get(task_id, ()):
                waiter.set()
        if fx.stop_running:
            for listener in self._stop_listeners:
                listener(fx.stop_running)
        if fx.events:
            for wake in self._event_listeners:
                wake()

    def on_events(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each commit that wrote events; returns its removal."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    def on_stop_running(self, listener: Callable[[set[tuple[str, str]]], None]) -> None:
        """Call ``listener`` with (task id, lease token) of every attempt revoked."""
        self._stop_listeners.append(listener)

    async def change(self, task_id: str, timeout: float) -> None:
        """Return when the task changes, or after ``timeout`` seconds."""
        await self._wait(self._changes, task_id, timeout)

    async def output(self, task_id: str, timeout: float) -> None:
        """Return when the task has new output or changes, or after ``timeout`` seconds."""
        await self._wait(self._logs, task_id, timeout)

    @staticmethod
    async def _wait(registry: dict[str, set[asyncio.Event]], task_id: str, timeout: float) -> None:
        event = asyncio.Event()
        registry[task_id].add(event)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            waiters = registry[task_id]
            waiters.discard(event)
            if not waiters:
                del registry[task_id]
