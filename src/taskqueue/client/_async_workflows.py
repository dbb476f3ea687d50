"""The async client's workflow methods: the source of the sync ones (unasync)."""

# A Workflow task walks its phases; a review gate waits for approvals (``submit_review``, or a
# single-use link for someone outside the API). A project keeps named, versioned workflows
# that tasks name. See ``docs/workflows.md``.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from taskqueue.client._async_core import AsyncClientCore, id_of
from taskqueue.client._base import RequestSpec, validate_input
from taskqueue.errors import NotFoundError
from taskqueue.models import (
    DevelopmentWorkflow,
    PhaseSpec,
    Review,
    ReviewCreate,
    ReviewLink,
    ReviewLinkCreate,
    ReviewList,
    WorkflowCreate,
    WorkflowList,
)

__all__ = ["AsyncWorkflowsMixin"]


def _phases(phases: Sequence[PhaseSpec | Mapping[str, Any]]) -> list[Any]:
    return [
        p.model_dump(exclude_none=True) if isinstance(p, PhaseSpec) else dict(p) for p in phases
    ]


class AsyncWorkflowsMixin(AsyncClientCore):
    """Workflow tasks: reviews of their gates, approval links, and a project's workflows."""

    async def submit_review(
        self,
        task_id: str | UUID,
        verdict: str,
        comment: str = "",
        *,
        reviewer: str | None = None,
    ) -> Review:
        """Approve (``verdict="approve"``) or reject the gate the workflow ``task_id`` waits at.

        With API keys the reviewer is the key's name; without, give ``reviewer``. A
        :class:`~taskqueue.errors.ConflictError` if the task waits at no gate, or this
        reviewer reviewed this round already (each counts once per round).
        """
        given: dict[str, Any] = {"verdict": verdict, "comment": comment}
        if reviewer is not None:
            given["reviewer"] = reviewer
        body = validate_input(ReviewCreate, given)
        return await self._model(
            Review,
            RequestSpec(
                "POST",
                f"/api/tasks/{id_of(task_id)}/reviews",
                json=body,
                idempotent=False,
                resource="task",
            ),
        )

    async def list_reviews(self, task_id: str | UUID) -> ReviewList:
        """Every review of the task, oldest first, and the gate it waits at (``pending``)."""
        return await self._model(
            ReviewList,
            RequestSpec("GET", f"/api/tasks/{id_of(task_id)}/reviews", resource="task"),
        )

    async def create_review_link(
        self, task_id: str | UUID, reviewer: str, *, expires_in: int | None = None
    ) -> ReviewLink:
        """A single-use approval link for ``reviewer`` (``expires_in`` seconds; default 7 days).

        Whoever opens ``url`` sees what is to be approved and decides once, with no API key.
        """
        given: dict[str, Any] = {"reviewer": reviewer}
        if expires_in is not None:
            given["expires_in"] = expires_in
        body = validate_input(ReviewLinkCreate, given)
        return await self._model(
            ReviewLink,
            RequestSpec.create(f"/api/tasks/{id_of(task_id)}/review-links", body, "task"),
        )

    async def create_workflow(
        self,
        project_id: str | UUID,
        name: str,
        phases: Sequence[PhaseSpec | Mapping[str, Any]],
        *,
        description: str | None = None,
        max_review_rounds: int | None = None,
    ) -> DevelopmentWorkflow:
        """Store a workflow of the project (its next version, if the name exists already)."""
        given: dict[str, Any] = {"name": name, "phases": _phases(phases)}
        if description is not None:
            given["description"] = description
        if max_review_rounds is not None:
            given["max_review_rounds"] = max_review_rounds
        body = validate_input(WorkflowCreate, given)
        return await self._model(
            DevelopmentWorkflow,
            RequestSpec.create(f"/api/projects/{id_of(project_id)}/workflows", body, "project"),
        )

    async def list_workflows(self, project_id: str | UUID) -> list[DevelopmentWorkflow]:
        """The latest version of each of the project's workflows, by name."""
        found = await self._model(
            WorkflowList,
            RequestSpec("GET", f"/api/projects/{id_of(project_id)}/workflows", resource="project"),
        )
        return list(found.workflows)

    async def get_workflow(
        self, project_id: str | UUID, name: str, version: int | None = None
    ) -> DevelopmentWorkflow:
        """One version of a project's workflow (the latest by default)."""
        params = None if version is None else {"version": version}
        return await self._model(
            DevelopmentWorkflow,
            RequestSpec(
                "GET", f"/api/projects/{id_of(project_id)}/workflows/{name}", params=params
            ),
        )

    async def delete_workflow(self, project_id: str | UUID, name: str) -> bool:
        """Delete every version of a workflow; False if the project has no such workflow.

        Tasks that walk it keep the phases they copied.
        """
        try:
            await self._json(
                RequestSpec("DELETE", f"/api/projects/{id_of(project_id)}/workflows/{name}")
            )
        except NotFoundError:
            return False
        return True
