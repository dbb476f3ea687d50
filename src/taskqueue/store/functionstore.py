"""The store's Function definitions, for the API: versions, executions and batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from taskqueue.models import TERMINAL_STATUSES
from taskqueue.store import batches, functions
from taskqueue.store.backend import Backend
from taskqueue.store.eventlog import Write
from taskqueue.store.functions import Definition, Run
from taskqueue.store.idempotency import IdempotencyRequest
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.visibility import Projects
from taskqueue.store.waiters import Waiters

__all__ = ["FunctionStore"]

T = TypeVar("T")

#: How often a wait re-reads the database in case the change came from another process.
_POLL_S = 0.5
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


class FunctionStore:
    """Reads and writes of Function definitions, their executions and batches."""

    def __init__(
        self, db: Backend, waiters: Waiters, write: Write, clock: Callable[[], int]
    ) -> None:
        self.db: Backend = db
        self._waiters: Waiters = waiters
        self._write: Write = write
        self._clock: Callable[[], int] = clock

    async def _change(self, fn: Callable[[Tx, Effects], T]) -> T:
        result: T = await self._write(fn)
        return result

    async def versions(self, task_id: str, *, projects: Projects = None) -> list[dict[str, Any]]:
        """Every version of a definition, oldest first."""
        return await self.db.read(lambda tx: functions.list_versions(tx, task_id, projects))

    async def task_at(
        self, task_id: str, version: int, *, projects: Projects = None
    ) -> dict[str, Any]:
        """A definition as it was at ``version``."""
        return await self.db.read(
            lambda tx: functions.task_at_version(tx, task_id, version, projects)
        )

    async def definition(
        self, task_id: str, version: int | None, *, projects: Projects = None
    ) -> Definition:
        """The version of a definition an execution would run (None: the current one)."""
        return await self.db.read(lambda tx: functions.definition(tx, task_id, version, projects))

    async def execute(
        self, definition: Definition, run: Run, idem: IdempotencyRequest | None = None
    ) -> str:
        """Start one execution of ``definition``; its id."""
        now = self._clock()
        ids = await self._change(
            lambda tx, fx: functions.start(
                tx, fx, definition.task_id, definition.version, [run], now, idem
            )
        )
        return ids[0]

    async def execution(self, execution_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """One execution as an ``ExecutionResult``."""
        return await self.db.read(lambda tx: functions.execution(tx, execution_id, projects))

    async def wait_execution(
        self, execution_id: str, timeout_s: float, *, projects: Projects = None
    ) -> dict[str, Any]:
        """The execution once it has ended, or as it is when ``timeout_s`` have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            result = await self.execution(execution_id, projects=projects)
            remaining = deadline - loop.time()
            if result["status"] in _TERMINAL or remaining <= 0:
                return result
            await self._waiters.change(execution_id, min(remaining, _POLL_S))

    async def start_batch(
        self,
        definition: Definition,
        items: Sequence[tuple[str, Any, bool]],
        max_concurrency: int,
        stop_on_first_error: bool,
        idem: IdempotencyRequest | None = None,
    ) -> str:
        """Start a batch of executions (the caller's id, input, output check of each); its id."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: batches.create(
                tx, fx, definition, items, max_concurrency, stop_on_first_error, now, idem
            )
        )

    async def batch(self, batch_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """A batch as a ``BatchExecuteResponse``."""
        return await self.db.read(lambda tx: batches.read(tx, batch_id, projects))

    async def wait_batch(
        self, batch_id: str, timeout_s: float, *, projects: Projects = None
    ) -> dict[str, Any]:
        """The batch once every item has ended, or as it is when ``timeout_s`` have passed.

        It wakes when the first item still running changes, and reads the batch again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiting = await self.db.read(
                lambda tx: batches.first_unfinished(tx, batch_id, projects)
            )
            remaining = deadline - loop.time()
            if waiting is None or remaining <= 0:
                return await self.batch(batch_id, projects=projects)
            await self._waiters.change(waiting, min(remaining, _POLL_S))
