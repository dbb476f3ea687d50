"""Function definitions on the API: executing them, in batches, and their versions.

``POST /api/tasks/{id}/execute`` validates the input against the definition's schema (422
with the JSON path of each error), starts a child task and waits for it up to ``timeout_ms``:
200 with the :class:`~taskqueue.models.ExecutionResult` once it ended, else 202 with the
execution to poll at ``GET /api/executions/{id}``. ``/batch-execute`` does the same for many
inputs, at most ``max_concurrency`` running at once (``GET /api/batches/{id}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response

from taskqueue._function_models import (
    DEFAULT_EXECUTE_WAIT_MS,
    MAX_EXECUTE_WAIT_MS,
    BatchExecuteRequest,
    ExecuteRequest,
)
from taskqueue.engine.schemas import instance_errors, schema_errors
from taskqueue.models import TERMINAL_STATUSES, TaskCreate, TaskUpdate
from taskqueue.server.auth import Scope, projects_of
from taskqueue.server.errors import ApiError
from taskqueue.server.params import Query, idempotency, no_query, parse_query, path_id
from taskqueue.server.responses import json_response, parse_body, store_of
from taskqueue.store.functions import Definition, Run

__all__ = [
    "FUNCTION_ENDPOINTS",
    "FUNCTION_SCOPES",
    "WaitMsQuery",
    "check_schemas",
    "check_update_schemas",
]

_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


class WaitMsQuery(Query):
    """``GET /api/executions/{id}`` and ``/api/batches/{id}``: how long to wait for the end."""

    timeout_ms: int = pydantic.Field(0, ge=0, le=MAX_EXECUTE_WAIT_MS)


def _refuse(details: list[dict[str, Any]], what: str) -> None:
    if details:
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise ApiError(422, f"{what}: {first['msg']}{more}", details)


def check_schemas(items: Sequence[TaskCreate], batch: bool) -> None:
    """Refuse (422) definitions whose ``input_schema`` or ``output_schema`` is not usable."""
    _refuse(
        schema_errors(
            [
                ((["tasks", i] if batch else []) + [name], getattr(item, name))
                for i, item in enumerate(items)
                for name in ("input_schema", "output_schema")
            ]
        ),
        "a schema cannot be used",
    )


def check_update_schemas(changes: Sequence[TaskUpdate], batch: bool) -> None:
    """Refuse (422) updates setting a schema that is not usable."""
    _refuse(
        schema_errors(
            [
                ((["updates", i, "changes"] if batch else []) + [name], getattr(change, name))
                for i, change in enumerate(changes)
                for name in ("input_schema", "output_schema")
            ]
        ),
        "a schema cannot be used",
    )


def _check_input(definition: Definition, value: Any, loc: list[Any]) -> list[dict[str, Any]]:
    if definition.input_schema is None:
        return []
    return instance_errors(definition.input_schema, value, loc)


def _validates(definition: Definition, force: bool) -> bool:
    return definition.output_schema is not None and (definition.validate_output or force)


def _wait_s(request: Request, timeout_ms: int | None) -> float:
    """How long to wait: ``timeout_ms`` (or the default), at most the operator's limit."""
    asked = (DEFAULT_EXECUTE_WAIT_MS if timeout_ms is None else timeout_ms) / 1000
    ceiling: float = request.app.state.settings.max_request_wait
    return min(asked, ceiling)


async def execute(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/execute``: run the definition once with an input."""
    no_query(request)
    task_id = path_id(request, "task_id")
    body = await parse_body(request, ExecuteRequest)
    key = idempotency(request, body)
    projects = projects_of(request)
    functions = store_of(request).functions
    definition = await functions.definition(task_id, body.version, projects=projects)
    _refuse(_check_input(definition, body.input, ["input"]), "the input does not match")
    run = Run(body.input, _validates(definition, body.force_validation))
    execution_id = await functions.execute(definition, run, key)
    result = await functions.wait_execution(
        execution_id, _wait_s(request, body.timeout_ms), projects=projects
    )
    return json_response(result, 200 if result["status"] in _TERMINAL else 202)


async def get_execution(request: Request) -> Response:
    """``GET /api/executions/{execution_id}?timeout_ms=N``: an execution, once ended or after N."""
    execution_id = path_id(request, "execution_id")
    query = parse_query(request, WaitMsQuery)
    result = await store_of(request).functions.wait_execution(
        execution_id, _wait_s(request, query.timeout_ms), projects=projects_of(request)
    )
    return json_response(result)


def _batch_items(definition: Definition, body: BatchExecuteRequest) -> list[tuple[str, Any, bool]]:
    """The batch's items (caller's id, input, output checked), or 422 naming every bad one."""
    items = body.item_list()
    details: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        loc: list[Any] = ["items", index, "input"] if body.items is not None else ["inputs", index]
        details.extend(_check_input(definition, item.input, loc))
        assert item.id is not None
        if body.items is not None and item.id in seen:
            msg = f"id {item.id!r} is also the id of item {seen[item.id]}; give each its own"
            details.append({"loc": ["items", index, "id"], "msg": msg, "type": "duplicate"})
        seen.setdefault(item.id, index)
    _refuse(details, "some items cannot be run")
    return [
        (str(item.id), item.input, _validates(definition, item.force_validation)) for item in items
    ]


async def batch_execute(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/batch-execute``: run the definition with many inputs."""
    no_query(request)
    task_id = path_id(request, "task_id")
    body = await parse_body(request, BatchExecuteRequest)
    if body.task_id is not None and str(body.task_id) != task_id:
        msg = f"is {body.task_id}, but the path names task {task_id}; give the same or neither"
        # Well formed, but naming another definition than the path: a conflict of the two.
        raise ApiError(409, f"task_id {msg}", [{"loc": ["task_id"], "msg": msg, "type": "value"}])
    key = idempotency(request, body)
    projects = projects_of(request)
    functions = store_of(request).functions
    definition = await functions.definition(task_id, body.version, projects=projects)
    items = _batch_items(definition, body)
    batch_id = await functions.start_batch(
        definition, items, body.max_concurrency, body.stop_on_first_error, key
    )
    batch = await functions.wait_batch(
        batch_id, _wait_s(request, body.timeout_ms), projects=projects
    )
    return json_response(batch, 200 if batch["status"] == "Completed" else 202)


async def get_batch(request: Request) -> Response:
    """``GET /api/batches/{batch_id}?timeout_ms=N``: a batch, once ended or after N ms."""
    batch_id = path_id(request, "batch_id")
    query = parse_query(request, WaitMsQuery)
    batch = await store_of(request).functions.wait_batch(
        batch_id, _wait_s(request, query.timeout_ms), projects=projects_of(request)
    )
    return json_response(batch)


async def task_versions(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/versions``: every version of a definition, oldest first."""
    no_query(request)
    task_id = path_id(request, "task_id")
    versions = await store_of(request).functions.versions(task_id, projects=projects_of(request))
    return json_response({"task_id": task_id, "versions": versions, "total": len(versions)})


#: The routes of Function definitions, added to the route table.
FUNCTION_ENDPOINTS: dict[str, dict[str, Any]] = {
    "/api/tasks/{task_id}/execute": {"POST": execute},
    "/api/tasks/{task_id}/batch-execute": {"POST": batch_execute},
    "/api/tasks/{task_id}/versions": {"GET": task_versions},
    "/api/executions/{execution_id}": {"GET": get_execution},
    "/api/batches/{batch_id}": {"GET": get_batch},
}
#: Their scopes: executing needs a write key, reading a read key.
FUNCTION_SCOPES: dict[str, dict[str, Scope]] = {
    "/api/tasks/{task_id}/execute": {"POST": Scope.WRITE},
    "/api/tasks/{task_id}/batch-execute": {"POST": Scope.WRITE},
    "/api/tasks/{task_id}/versions": {"GET": Scope.READ},
    "/api/executions/{execution_id}": {"GET": Scope.READ},
    "/api/batches/{batch_id}": {"GET": Scope.READ},
}
