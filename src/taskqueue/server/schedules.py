"""Scheduled tasks on the API: their runs, the next slots, pause, resume and trigger.

A Scheduled task is created with ``POST /api/tasks`` (``task_type: "Scheduled"`` and a
``schedule``); its cron expression and timezone are checked there (:func:`check_schedules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from taskqueue.engine.schedules import check_cron, check_timezone
from taskqueue.models import TaskCreate
from taskqueue.server.auth import Scope, projects_of
from taskqueue.server.errors import ApiError
from taskqueue.server.params import Paging, Query, no_query, parse_query, path_id
from taskqueue.server.responses import json_response, store_of

__all__ = ["SCHEDULE_ENDPOINTS", "SCHEDULE_SCOPES", "NextQuery", "check_schedules"]


class NextQuery(Query):
    """``GET /api/tasks/{id}/next``: how many of the next slots to show."""

    count: int = pydantic.Field(5, ge=1, le=100)


def check_schedules(items: Sequence[TaskCreate], batch: bool) -> None:
    """Refuse (422) schedules whose cron expression or timezone cannot be used, by field."""
    details: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        spec = item.schedule
        if spec is None:
            continue
        where = (["tasks", i] if batch else []) + ["schedule"]
        problem = check_cron(spec.cron) if spec.cron is not None else None
        if problem is not None:
            details.append({"loc": [*where, "cron"], "msg": f"{spec.cron!r} {problem}",
                            "type": "cron"})  # fmt: skip
        problem = check_timezone(spec.timezone)
        if problem is not None:
            details.append({"loc": [*where, "timezone"], "msg": problem, "type": "timezone"})
    if details:
        first = details[0]
        raise ApiError(422, f"schedule: {first['msg']}", details)


async def list_runs(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/runs``: the slots the schedule fired, newest first."""
    task_id = path_id(request, "task_id")
    paging = parse_query(request, Paging)
    runs, total = await store_of(request).schedules.runs(
        task_id, paging.limit, paging.offset, projects=projects_of(request)
    )
    return json_response(
        {
            "task_id": task_id,
            "runs": runs,
            "total": total,
            "limit": paging.limit,
            "offset": paging.offset,
        }
    )


async def next_runs(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/next?count=N``: the next slots (a preview)."""
    task_id = path_id(request, "task_id")
    query = parse_query(request, NextQuery)
    found = await store_of(request).schedules.next_runs(
        task_id, query.count, projects=projects_of(request)
    )
    return json_response(found)


async def _paused(request: Request, paused: bool) -> Response:
    no_query(request)
    task_id = path_id(request, "task_id")
    store, projects = store_of(request), projects_of(request)
    await store.schedules.set_paused(task_id, paused, projects=projects)
    return json_response(await store.get_task(task_id, projects=projects))


async def pause(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/pause``: fire nothing until resumed."""
    return await _paused(request, True)


async def resume(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/resume``: fire again, from the next slot after now."""
    return await _paused(request, False)


async def trigger(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/trigger``: run the template now, as a manual slot."""
    no_query(request)
    task_id = path_id(request, "task_id")
    run = await store_of(request).schedules.trigger(task_id, projects=projects_of(request))
    return json_response(run, 201)


#: The routes of Scheduled tasks, added to the route table.
SCHEDULE_ENDPOINTS: dict[str, dict[str, Any]] = {
    "/api/tasks/{task_id}/runs": {"GET": list_runs},
    "/api/tasks/{task_id}/next": {"GET": next_runs},
    "/api/tasks/{task_id}/pause": {"POST": pause},
    "/api/tasks/{task_id}/resume": {"POST": resume},
    "/api/tasks/{task_id}/trigger": {"POST": trigger},
}
#: Their scopes: changing a schedule needs a write key, reading it a read key.
SCHEDULE_SCOPES: dict[str, dict[str, Scope]] = {
    "/api/tasks/{task_id}/runs": {"GET": Scope.READ},
    "/api/tasks/{task_id}/next": {"GET": Scope.READ},
    "/api/tasks/{task_id}/pause": {"POST": Scope.WRITE},
    "/api/tasks/{task_id}/resume": {"POST": Scope.WRITE},
    "/api/tasks/{task_id}/trigger": {"POST": Scope.WRITE},
}
