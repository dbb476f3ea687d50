"""The sync client's schedule methods, GENERATED from ``_async_schedules.py``."""

# A Scheduled task is a template plus a schedule (a cron expression in a timezone, or an
# interval); it never runs by itself: each slot makes one child Simple task. See
# ``docs/schedules.md``.

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from taskqueue.client._base import RequestSpec, filter_params, parse_model, validate_input
from taskqueue.client._sync_core import SyncClientCore, id_of
from taskqueue.models import (
    NextRuns,
    Schedule,
    ScheduleRun,
    ScheduleRunList,
    Task,
    TaskCreate,
)

__all__ = ["SyncSchedulesMixin"]


class SyncSchedulesMixin(SyncClientCore):
    """Scheduled tasks: creating them, their runs and next slots, pausing and triggering."""

    def create_schedule(
        self,
        name: str,
        command: str | None = None,
        *,
        cron: str | None = None,
        interval_seconds: int | None = None,
        timezone: str = "UTC",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        overlap_policy: str = "skip",
        catchup: str = "none",
        catchup_limit: int = 100,
        paused: bool = False,
        **fields: Any,
    ) -> Task:
        """Create a Scheduled task: ``command`` (or ``language``, ``code``) on a schedule.

        Give ``cron`` (in ``timezone``) or ``interval_seconds``, not both. Each slot makes
        one child Simple task with the template's fields (``queue``, ``priority``... by
        name). The schedule is checked before sending (a
        :class:`~taskqueue.errors.ValidationError` naming ``["schedule", ...]``); the
        request carries an ``Idempotency-Key``.
        """
        schedule: dict[str, Any] = {
            "timezone": timezone,
            "overlap_policy": overlap_policy,
            "catchup": catchup,
            "catchup_limit": catchup_limit,
            "paused": paused,
        }
        for key, value in (
            ("cron", cron),
            ("interval_seconds", interval_seconds),
            ("start_at", start_at),
            ("end_at", end_at),
        ):
            if value is not None:
                schedule[key] = value
        given: dict[str, Any] = {
            "name": name,
            "task_type": "Scheduled",
            "schedule": schedule,
            **fields,
        }
        if command is not None:
            given["command"] = command
        if given.get("project_id") is not None:
            given["project_id"] = str(given["project_id"])
        validate_input(Schedule, schedule)
        body = validate_input(TaskCreate, given)
        return self._model(Task, RequestSpec.create("/api/tasks", body, "task"))

    def list_schedules(
        self, *, limit: int | None = None, offset: int | None = None, **filters: Any
    ) -> list[Task]:
        """Scheduled tasks: ``list_tasks(task_type="Scheduled")``, other filters by name."""
        given = {**filters, "task_type": "Scheduled", "limit": limit, "offset": offset}
        data = self._json(RequestSpec("GET", "/api/tasks", params=filter_params(None, given)))
        return [parse_model(Task, t) for t in data["tasks"]]

    def list_schedule_runs(
        self, task_id: str | UUID, limit: int | None = None, offset: int | None = None
    ) -> ScheduleRunList:
        """A page of the slots the Scheduled task ``task_id`` fired, newest first."""
        params = {k: v for k, v in (("limit", limit), ("offset", offset)) if v is not None}
        return self._model(
            ScheduleRunList,
            RequestSpec(
                "GET", f"/api/tasks/{id_of(task_id)}/runs", params=params or None, resource="task"
            ),
        )

    def next_runs(self, task_id: str | UUID, count: int = 5) -> list[datetime]:
        """The next ``count`` (1 to 100) slots the schedule fires: a preview, nothing made."""
        found = self._model(
            NextRuns,
            RequestSpec(
                "GET",
                f"/api/tasks/{id_of(task_id)}/next",
                params={"count": count},
                resource="task",
            ),
        )
        return list(found.slots)

    def pause_schedule(self, task_id: str | UUID) -> Task:
        """Pause the schedule: it fires nothing until :meth:`resume_schedule`."""
        return self._model(
            Task, RequestSpec("POST", f"/api/tasks/{id_of(task_id)}/pause", resource="task")
        )

    def resume_schedule(self, task_id: str | UUID) -> Task:
        """Resume a paused schedule from its next slot."""
        return self._model(
            Task, RequestSpec("POST", f"/api/tasks/{id_of(task_id)}/resume", resource="task")
        )

    def trigger_schedule(self, task_id: str | UUID) -> ScheduleRun:
        """Run the template now, as a ``manual`` slot; the run names its child task.

        The request carries an ``Idempotency-Key``: a retried call never runs it twice.
        """
        return self._model(
            ScheduleRun,
            RequestSpec.create(f"/api/tasks/{id_of(task_id)}/trigger", None, "task"),
        )
