"""The store's Scheduled tasks, for the API and the scheduler: firing, runs, pause, trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from taskqueue.store import schedules
from taskqueue.store.backend import Backend
from taskqueue.store.eventlog import Write
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.visibility import Projects

__all__ = ["ScheduleStore"]

T = TypeVar("T")


class ScheduleStore:
    """Reads and writes of schedules and their runs."""

    def __init__(self, db: Backend, write: Write, clock: Callable[[], int]) -> None:
        self.db: Backend = db
        self._write: Write = write
        self._clock: Callable[[], int] = clock

    async def _change(self, fn: Callable[[Tx, Effects], T]) -> T:
        result: T = await self._write(fn)
        return result

    async def fire_due(self, now: int) -> int:
        """Fire every slot due by ``now`` (µs), a batch of schedules per transaction."""
        total = 0
        while True:
            seen, fired = await self._change(
                # each pass's rows at the time it is made
                lambda tx, fx: schedules.fire_due(tx, fx, now, self._clock())
            )
            total += fired
            if seen < schedules.FIRE_BATCH:
                return total

    async def next_due(self) -> tuple[int | None, bool]:
        """When the earliest slot is due (µs, or None), and whether a slot waits for its run."""
        return await self.db.read(schedules.next_due)

    async def runs(
        self, task_id: str, limit: int, offset: int, *, projects: Projects = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a schedule's runs, newest first, and their number."""
        return await self.db.read(
            lambda tx: schedules.list_runs(tx, task_id, limit, offset, projects)
        )

    async def next_runs(
        self, task_id: str, count: int, *, projects: Projects = None
    ) -> dict[str, Any]:
        """The next ``count`` slots a schedule will fire."""
        now = self._clock()
        return await self.db.read(lambda tx: schedules.next_runs(tx, task_id, count, now, projects))

    async def set_paused(self, task_id: str, paused: bool, *, projects: Projects = None) -> None:
        """Pause a schedule, or resume it from its next slot after now."""
        now = self._clock()
        await self._change(
            lambda tx, fx: schedules.set_paused(tx, fx, task_id, paused, now, projects)
        )

    async def trigger(self, task_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """Run a schedule's template now, as a manual slot; the run."""
        now = self._clock()
        return await self._change(lambda tx, fx: schedules.trigger(tx, fx, task_id, now, projects))
