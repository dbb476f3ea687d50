"""The HTTP endpoints under ``/api``: tasks, projects, workers and health.

Keys, events and webhooks have modules of their own, whose routes are added here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, request_response
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from taskqueue._version import __version__
from taskqueue.models import (
    TERMINAL_STATUSES,
    BatchTaskCreate,
    BatchTaskUpdate,
    ProjectCreate,
    ProjectUpdate,
    TaskCreate,
    TaskFilters,
    TaskUpdate,
)
from taskqueue.server.auth import Scope, authorize, principal_of, projects_of
from taskqueue.server.errors import ApiError
from taskqueue.server.events import EVENT_ENDPOINTS, EVENT_SCOPES
from taskqueue.server.functions import (
    FUNCTION_ENDPOINTS,
    FUNCTION_SCOPES,
    check_schemas,
    check_update_schemas,
)
from taskqueue.server.keys import KEY_ENDPOINTS, KEY_SCOPES
from taskqueue.server.languages import LANGUAGE_ENDPOINTS, LANGUAGE_SCOPES, check_languages
from taskqueue.server.limits import check_limits
from taskqueue.server.params import (
    CascadeQuery,
    LogsQuery,
    Paging,
    TaskQuery,
    WaitQuery,
    idempotency,
    no_query,
    parse_query,
    path_id,
)
from taskqueue.server.responses import json_response, page_response, parse_body, store_of
from taskqueue.server.schedules import SCHEDULE_ENDPOINTS, SCHEDULE_SCOPES, check_schedules
from taskqueue.server.webhooks import WEBHOOK_ENDPOINTS, WEBHOOK_SCOPES
from taskqueue.server.workflows import WORKFLOW_ENDPOINTS, WORKFLOW_SCOPES
from taskqueue.store import NotFound, Store

__all__ = ["routes"]

M = TypeVar("M", bound=pydantic.BaseModel)

_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
#: A worker not heard from for this long is listed as ``stale`` and not counted by health
#: (workers beat every 5 s by default).
WORKER_STALE_AFTER_S = 30.0


# ---------------------------------------------------------------------------------- health


async def health(request: Request) -> Response:
    """``GET /api/health``: the server is up and its database answers.

    ``workers`` counts the live workers of the whole deployment (the registry's ``active``
    ones, on whatever host they run), not only one this process may embed.
    """
    no_query(request)
    store = store_of(request)
    principal = getattr(request.state, "principal", None)
    # Without a key: that it is up, not what it holds.
    counts = {} if principal is None else await store.task_counts(projects=principal.projects)
    registered = await store.list_workers(WORKER_STALE_AFTER_S)
    workers = sum(1 for worker in registered if worker["status"] == "active")
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "database": store.backend,
            "workers": workers,
            "tasks": counts,
        }
    )


async def root(request: Request) -> Response:
    """``GET /``: what this server is."""
    no_query(request)
    return json_response(
        {"name": "taskqueue", "version": __version__, "api": "/api", "openapi": "/openapi.json"}
    )


# ---------------------------------------------------------------------------------- tasks


async def still_there(
    read: Callable[[str], Awaitable[Any]], kind: str, created: list[dict[str, Any]]
) -> None:
    """A repeat of a keyed create answers the first answer: 409 if what it created is gone.

    (A 201 naming a task that no longer exists would tell the client something untrue.)
    """
    found = await asyncio.gather(*(read(item["id"]) for item in created), return_exceptions=True)
    for item, result in zip(created, found, strict=True):
        if isinstance(result, NotFound):
            raise ApiError(
                409,
                f"the {kind} {item['id']} created with this Idempotency-Key has since been "
                "deleted; send the request with a new key to create it again",
                [{"loc": ["header", "Idempotency-Key"], "msg": "used", "type": "deleted"}],
            )
        if isinstance(result, BaseException):
            raise result


async def create_task(request: Request) -> Response:
    """``POST /api/tasks``."""
    no_query(request)
    item = await parse_body(request, TaskCreate)
    key = idempotency(request, item)
    check_limits(request, [item], batch=False)
    check_schemas([item], batch=False)
    check_schedules([item], batch=False)
    await check_languages(request, [item], batch=False)
    store = store_of(request)
    projects = projects_of(request)
    tasks = await store.create_tasks([item], key, projects=projects)
    if key is not None:
        await still_there(store.get_task, "task", tasks)
    return json_response(tasks[0], 201)


async def create_batch(request: Request) -> Response:
    """``POST /api/tasks/batch``: all the tasks or none."""
    no_query(request)
    batch = await parse_body(request, BatchTaskCreate)
    key = idempotency(request, batch)
    check_limits(request, batch.tasks, batch=True)
    check_schemas(batch.tasks, batch=True)
    check_schedules(batch.tasks, batch=True)
    await check_languages(request, batch.tasks, batch=True)
    store = store_of(request)
    tasks = await store.create_tasks(batch.tasks, key, batch=True, projects=projects_of(request))
    if key is not None:
        await still_there(store.get_task, "task", tasks)
    return json_response({"tasks": tasks}, 201)


async def list_tasks(request: Request) -> Response:
    """``GET /api/tasks`` with its filters."""
    filters = parse_query(request, TaskFilters)
    page, total = await store_of(request).list_tasks(filters, projects=projects_of(request))
    return page_response("tasks", page, total, filters.limit, filters.offset)


async def get_task(request: Request) -> Response:
    """``GET /api/tasks/{task_id}[?version=N]`` (a version of a Function definition)."""
    task_id = path_id(request, "task_id")
    query = parse_query(request, TaskQuery)
    store, projects = store_of(request), projects_of(request)
    if query.version is not None:
        return json_response(
            await store.functions.task_at(task_id, query.version, projects=projects)
        )
    return json_response(await store.get_task(task_id, projects=projects))


async def update_task(request: Request) -> Response:
    """``PUT /api/tasks/{task_id}``."""
    no_query(request)
    task_id = path_id(request, "task_id")
    changes = await parse_body(request, TaskUpdate)
    check_update_schemas([changes], batch=False)
    return json_response(
        await store_of(request).update_task(task_id, changes, projects=projects_of(request))
    )


async def delete_task(request: Request) -> Response:
    """``DELETE /api/tasks/{task_id}``."""
    no_query(request)
    task_id = path_id(request, "task_id")
    await store_of(request).delete_task(task_id, projects=projects_of(request))
    return Response(status_code=204)


async def cancel_task(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/cancel``."""
    no_query(request)
    task_id = path_id(request, "task_id")
    return json_response(
        await store_of(request).cancel_task(task_id, projects=projects_of(request))
    )


async def retry_task(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/retry``: re-queue a Failed or Cancelled task."""
    no_query(request)
    task_id = path_id(request, "task_id")
    return json_response(await store_of(request).retry_task(task_id, projects=projects_of(request)))


async def wait_task(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/wait?timeout=S``: long-poll until the task is terminal."""
    task_id = path_id(request, "task_id")
    query = parse_query(request, WaitQuery)
    task = await store_of(request).wait_terminal(
        task_id, query.timeout, projects=projects_of(request)
    )
    return json_response(task)


async def task_attempts(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/attempts``."""
    no_query(request)
    task_id = path_id(request, "task_id")
    return json_response(
        {
            "task_id": task_id,
            "attempts": await store_of(request).list_attempts(
                task_id, projects=projects_of(request)
            ),
        }
    )


async def task_logs(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/logs``: output from an offset, or followed live as NDJSON."""
    task_id = path_id(request, "task_id")
    query = parse_query(request, LogsQuery)
    store = store_of(request)
    projects = projects_of(request)
    chunks, next_offset, status = await store.read_logs(
        task_id, query.offset, query.limit, query.stream, query.attempt, projects=projects
    )
    if not query.follow:
        more = len(chunks) == query.limit and bool(
            (
                await store.read_logs(
                    task_id, next_offset, 1, query.stream, query.attempt, projects=projects
                )
            )[0]
        )
        return json_response(
            {
                "task_id": task_id,
                "chunks": chunks,
                "next_offset": next_offset,
                "complete": status in _TERMINAL and not more,
            }
        )
    return StreamingResponse(
        _follow(store, task_id, query, chunks, next_offset, status),
        media_type="application/x-ndjson",
    )


async def _follow(
    store: Store,
    task_id: str,
    query: LogsQuery,
    chunks: list[dict[str, Any]],
    offset: int,
    status: str,
) -> AsyncIterator[bytes]:
    """Chunks as they are written, one JSON object a line, then a final ``end`` line.

    A change of the task's status while it runs (a failed attempt waiting for its retry, the
    next attempt starting) is a ``status`` line between the chunks.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + query.timeout
    seen = status
    while True:
        if chunks:
            yield b"".join(orjson.dumps(c) + b"\n" for c in chunks)
        if status != seen and status not in _TERMINAL:
            seen = status
            yield orjson.dumps({"event": "status", "status": status, "next_offset": offset}) + b"\n"
        if not chunks and status in _TERMINAL:
            yield orjson.dumps({"event": "end", "status": status, "next_offset": offset}) + b"\n"
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            yield (
                orjson.dumps({"event": "timeout", "status": status, "next_offset": offset}) + b"\n"
            )
            return
        if not chunks:
            await store.wait_logs(task_id, min(remaining, 0.5))
        chunks, offset, status = await store.read_logs(
            task_id, offset, query.limit, query.stream, query.attempt
        )


# ---------------------------------------------------------------------------------- projects


async def create_project(request: Request) -> Response:
    """``POST /api/projects``."""
    no_query(request)
    if projects_of(request) is not None:
        raise ApiError(
            403,
            f"the API key {principal_of(request).name!r} is limited to some projects; "
            "a project can be created with a key for every project",
        )
    data = await parse_body(request, ProjectCreate)
    key = idempotency(request, data)
    store = store_of(request)
    project = await store.create_project(data, key)
    if key is not None:
        await still_there(store.get_project, "project", [project])
    return json_response(project, 201)


async def list_projects(request: Request) -> Response:
    """``GET /api/projects``."""
    paging = parse_query(request, Paging)
    page, total = await store_of(request).list_projects(
        paging.limit, paging.offset, within=projects_of(request)
    )
    return page_response("projects", page, total, paging.limit, paging.offset)


async def get_project(request: Request) -> Response:
    """``GET /api/projects/{project_id}``."""
    no_query(request)
    project_id = path_id(request, "project_id")
    return json_response(
        await store_of(request).get_project(project_id, within=projects_of(request))
    )


async def update_project(request: Request) -> Response:
    """``PUT /api/projects/{project_id}``."""
    no_query(request)
    project_id = path_id(request, "project_id")
    changes = await parse_body(request, ProjectUpdate)
    return json_response(
        await store_of(request).update_project(project_id, changes, within=projects_of(request))
    )


async def delete_project(request: Request) -> Response:
    """``DELETE /api/projects/{project_id}[?cascade=true]``."""
    project_id = path_id(request, "project_id")
    query = parse_query(request, CascadeQuery)
    await store_of(request).delete_project(project_id, query.cascade, within=projects_of(request))
    return Response(status_code=204)


# ----------------------------------------------------------------------------------- workers


async def list_workers(request: Request) -> Response:
    """``GET /api/workers``: every worker process registered on this database."""
    no_query(request)
    workers = await store_of(request).list_workers(WORKER_STALE_AFTER_S)
    return json_response({"workers": workers, "total": len(workers)})


async def update_batch(request: Request) -> Response:
    """``PUT /api/tasks/batch``: change many tasks, all or none.

    A refusal (409) lists every refused item in ``error.details``, and nothing is applied.
    """
    no_query(request)
    batch = await parse_body(request, BatchTaskUpdate)
    check_update_schemas([item.changes for item in batch.updates], batch=True)
    updates = [(str(item.task_id), item.changes) for item in batch.updates]
    store = store_of(request)
    return json_response(
        {"tasks": await store.update_tasks(updates, projects=projects_of(request))}
    )


class Endpoint(Protocol):
    """A handler of one method of one path."""

    def __call__(self, request: Request, /) -> Awaitable[Response]:
        """The answer to ``request``."""
        ...


class Resource:
    """One path and the handler of each method it takes: an ASGI app that answers every method.

    A method the path does not take is a 405 whose ``Allow`` names every method it does take,
    and ``OPTIONS`` answers 204 with the same ``Allow``. ``HEAD`` is answered as ``GET`` is
    (without the body), where the path takes ``GET``.
    """

    def __init__(
        self, path: str, handlers: Mapping[str, Endpoint], scopes: Mapping[str, Scope]
    ) -> None:
        missing = sorted(set(handlers) - set(scopes))
        if missing:
            raise ValueError(f"{path}: no scope declared for {', '.join(missing)}")
        self.path: str = path
        self.handlers: dict[str, Endpoint] = dict(handlers)
        #: The scope each method needs of the caller's key.
        self.scopes: dict[str, Scope] = {m: scopes[m] for m in handlers}
        methods = [*handlers, *(["HEAD"] if "GET" in handlers else []), "OPTIONS"]
        #: The methods the path takes, as ``Allow`` lists them.
        self.allow: str = ", ".join(methods)
        self._app = request_response(self._dispatch)

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        """Handle one request to this path."""
        await self._app(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        method = request.method
        name = "GET" if method == "HEAD" else method
        handler = self.handlers.get(name)
        if handler is not None:
            await authorize(request, self.scopes[name])
            response = await handler(request)
            limits = getattr(request.state, "rate_headers", None)
            if limits:
                response.headers.update(limits)
            return response
        if method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": self.allow})
        raise ApiError(
            405,
            f"{method} is not allowed on {self.path}; it takes {self.allow}",
            headers={"Allow": self.allow},
        )


#: Every path of the API and the handler of each of its methods.
ENDPOINTS: dict[str, dict[str, Endpoint]] = {
    "/": {"GET": root},
    "/api/health": {"GET": health},
    "/api/tasks": {"GET": list_tasks, "POST": create_task},
    "/api/tasks/batch": {"POST": create_batch, "PUT": update_batch},
    "/api/tasks/{task_id}": {"GET": get_task, "PUT": update_task, "DELETE": delete_task},
    "/api/tasks/{task_id}/cancel": {"POST": cancel_task},
    "/api/tasks/{task_id}/retry": {"POST": retry_task},
    "/api/tasks/{task_id}/wait": {"GET": wait_task},
    "/api/tasks/{task_id}/logs": {"GET": task_logs},
    "/api/tasks/{task_id}/attempts": {"GET": task_attempts},
    "/api/workers": {"GET": list_workers},
    "/api/projects": {"GET": list_projects, "POST": create_project},
    "/api/projects/{project_id}": {
        "GET": get_project,
        "PUT": update_project,
        "DELETE": delete_project,
    },
}

ENDPOINTS.update(KEY_ENDPOINTS)
ENDPOINTS.update(EVENT_ENDPOINTS)
ENDPOINTS.update(WEBHOOK_ENDPOINTS)
ENDPOINTS.update(LANGUAGE_ENDPOINTS)
ENDPOINTS.update(FUNCTION_ENDPOINTS)
ENDPOINTS.update(SCHEDULE_ENDPOINTS)
ENDPOINTS.update(WORKFLOW_ENDPOINTS)

_R, _W, _A = Scope.READ, Scope.WRITE, Scope.ADMIN
#: The scope each method of each path needs (every one of :data:`ENDPOINTS` must have one).
SCOPES: dict[str, dict[str, Scope]] = {
    "/": {"GET": Scope.PUBLIC},
    "/api/health": {"GET": Scope.PUBLIC},  # with a key, the counts that key may see
    "/api/tasks": {"GET": _R, "POST": _W},
    "/api/tasks/batch": {"POST": _W, "PUT": _W},
    "/api/tasks/{task_id}": {"GET": _R, "PUT": _W, "DELETE": _W},
    "/api/tasks/{task_id}/cancel": {"POST": _W},
    "/api/tasks/{task_id}/retry": {"POST": _W},
    "/api/tasks/{task_id}/wait": {"GET": _R},
    "/api/tasks/{task_id}/logs": {"GET": _R},
    "/api/tasks/{task_id}/attempts": {"GET": _R},
    "/api/workers": {"GET": _A},
    "/api/projects": {"GET": _R, "POST": _W},
    "/api/projects/{project_id}": {"GET": _R, "PUT": _W, "DELETE": _A},
    **KEY_SCOPES,
    **EVENT_SCOPES,
    **WEBHOOK_SCOPES,
    **LANGUAGE_SCOPES,
    **FUNCTION_SCOPES,
    **SCHEDULE_SCOPES,
    **WORKFLOW_SCOPES,
}

routes: list[Route] = [
    Route(path, Resource(path, handlers, SCOPES.get(path, {})), name=path)
    for path, handlers in ENDPOINTS.items()
]
