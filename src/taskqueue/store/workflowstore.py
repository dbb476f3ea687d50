"""The store's Workflow tasks, for the API: project workflows, reviews and approval links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from taskqueue._workflow_models import WorkflowCreate
from taskqueue.store import workflows
from taskqueue.store.backend import Backend
from taskqueue.store.eventlog import Write
from taskqueue.store.idempotency import IdempotencyRequest
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.visibility import Projects

__all__ = ["WorkflowStore"]

T = TypeVar("T")


class WorkflowStore:
    """Reads and writes of workflows, reviews and approval links."""

    def __init__(self, db: Backend, write: Write, clock: Callable[[], int]) -> None:
        self.db: Backend = db
        self._write: Write = write
        self._clock: Callable[[], int] = clock

    async def _change(self, fn: Callable[[Tx, Effects], T]) -> T:
        result: T = await self._write(fn)
        return result

    async def create(
        self,
        project_id: str,
        body: WorkflowCreate,
        idem: IdempotencyRequest | None = None,
        *,
        projects: Projects = None,
    ) -> dict[str, Any]:
        """Store the next version of a project's workflow (a repeated key: the first one)."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: workflows.create_workflow(tx, project_id, body, now, idem, projects)
        )

    async def list(self, project_id: str, *, projects: Projects = None) -> list[dict[str, Any]]:
        """The latest version of each of a project's workflows."""
        return await self.db.read(lambda tx: workflows.list_workflows(tx, project_id, projects))

    async def get(
        self, project_id: str, name: str, version: int | None, *, projects: Projects = None
    ) -> dict[str, Any]:
        """One version of a project's workflow (the latest if ``version`` is None)."""
        return await self.db.read(
            lambda tx: workflows.get_workflow(tx, project_id, name, version, projects)
        )

    async def delete(self, project_id: str, name: str, *, projects: Projects = None) -> None:
        """Delete every version of a project's workflow."""
        await self._change(lambda tx, fx: workflows.delete_workflow(tx, project_id, name, projects))

    async def review(
        self,
        task_id: str,
        verdict: str,
        reviewer: str,
        comment: str,
        *,
        projects: Projects = None,
    ) -> dict[str, Any]:
        """A verdict on the gate the task waits at; the review stored."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: workflows.review(
                tx, fx, task_id, verdict, reviewer, comment, now, projects
            )
        )

    async def reviews(self, task_id: str, *, projects: Projects = None) -> dict[str, Any]:
        """Every review of a task, and the gate it waits at."""
        return await self.db.read(lambda tx: workflows.list_reviews(tx, task_id, projects))

    async def create_link(
        self,
        task_id: str,
        reviewer: str,
        token: str,
        expires_in_s: int,
        *,
        projects: Projects = None,
    ) -> dict[str, Any]:
        """Store a single-use approval link for ``reviewer`` to the task's open gate."""
        now = self._clock()
        expires_at = now + expires_in_s * 1_000_000
        return await self._change(
            lambda tx, fx: workflows.create_link(
                tx, task_id, reviewer, token, expires_at, now, projects
            )
        )

    async def read_link(self, token: str) -> dict[str, Any]:
        """What an approval link shows, and why it is closed (None: it is open)."""
        now = self._clock()
        return await self.db.read(lambda tx: workflows.read_link(tx, token, now))

    async def use_link(self, token: str, verdict: str, comment: str) -> dict[str, Any]:
        """Give an approval link's verdict, once; the review stored."""
        now = self._clock()
        return await self._change(
            lambda tx, fx: workflows.use_link(tx, fx, token, verdict, comment, now)
        )
