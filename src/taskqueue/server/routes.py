"""The HTTP endpoints under ``/api``: tasks, projects and health."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

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
from taskqueue.server.errors import ApiError, validation_details
from taskqueue.store import IdempotencyRequest, Store

__all__ = ["routes"]

M = TypeVar("M", bound=pydantic.BaseModel)

_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Longest a ``/wait`` or a log follow may hold a request, in seconds.
MAX_WAIT_S = 300.0
#: Longest a client may take to send a request body, in seconds.
BODY_TIMEOUT_S = 30.0
#: A worker not heard from for this long is listed as ``stale`` and not counted by health
#: (workers beat every 5 s by default).
WORKER_STALE_AFTER_S = 30.0


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response, serialised with orjson."""
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def page_response(key: str, page: Any, total: int, limit: int, offset: int) -> Response:
    """One page of a listing: its items under ``key``, how many there are, the paging asked."""
    return json_response({key: page, "total": total, "limit": limit, "offset": offset})


def store_of(request: Request) -> Store:
    """The store the app serves."""
    store: Store = request.app.state.store
    return store


async def read_body(request: Request) -> bytes:
    """The request body, refusing non-JSON content types and bodies over the limit."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415, "send the body as JSON with the header 'Content-Type: application/json'"
        )
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []

    async def receive_all() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive_all(), BODY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None
    return b"".join(chunks)


def no_query(request: Request) -> None:
    """Refuse query parameters on an endpoint that takes none: a typo must not pass silently."""
    if request.scope.get("query_string"):
        names = sorted({key for key, _ in request.query_params.multi_items()}) or ["?"]
        raise ApiError(
            422,
            f"unknown query parameter {names[0]!r}: this endpoint takes none",
            [
                {"loc": ["query", name], "msg": "unknown parameter", "type": "extra_forbidden"}
                for name in names
            ],
        )


async def parse_body(request: Request, model: type[M]) -> M:
    """The body validated as ``model`` (422 names each bad field)."""
    body = await read_body(request)
    if not body:
        raise ApiError(400, "the request has no body; send a JSON object")
    return model.model_validate_json(body)


def parse_query(request: Request, model: type[M], allowed: frozenset[str] | None = None) -> M:
    """Query parameters validated as ``model``; unknown parameters are an error."""
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            raise ApiError(
                422,
                f"query parameter {key!r} is given more than once",
                [{"loc": ["query", key], "msg": "given more than once", "type": "duplicate"}],
            )
        if "\x00" in value:  # no database stores it, and no stored value contains it
            raise ApiError(
                422,
                f"query parameter {key!r} must not contain NUL characters",
                [{"loc": ["query", key], "msg": "contains a NUL character", "type": "value_error"}],
            )
        params[key] = value
    try:
        return model.model_validate(params)
    except pydantic.ValidationError as exc:
        details = validation_details(exc, ("query",))
        loc = ".".join(str(p) for p in details[0]["loc"][1:])
        raise ApiError(422, f"query parameter {loc}: {details[0]['msg']}", details) from exc


def path_id(request: Request, name: str) -> str:
    """A UUID path parameter in canonical form, or 422 saying it is not one."""
    raw = request.path_params[name]
    if raw == "batch" and name == "task_id":
        raise ApiError(
            405,
            f"{request.method} is not allowed on /api/tasks/batch; "
            "use POST to create tasks or PUT to change them",
        )
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        shown = raw if len(raw) <= 60 else raw[:60] + "..."
        raise ApiError(
            422,
            f"{name} {shown!r} is not a valid UUID",
            [{"loc": ["path", name], "msg": "not a valid UUID", "type": "uuid_parsing"}],
        ) from None


def idempotency(request: Request, data: pydantic.BaseModel) -> IdempotencyRequest | None:
    """The request's ``Idempotency-Key``, scoped to its endpoint and bound to its content.

    The content is hashed as parsed, so spacing, key order or camelCase spelling do not make
    a repeat look like a different request.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(
            422,
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            [{"loc": ["header", "Idempotency-Key"], "msg": "invalid", "type": "value_error"}],
        )
    digest = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    return IdempotencyRequest(key=f"{request.url.path}:{key}", request_hash=digest)


class _Query(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class _Paging(_Query):
    limit: int = pydantic.Field(100, ge=1, le=1000)
    offset: int = pydantic.Field(0, ge=0, le=10_000_000)


class _Wait(_Query):
    timeout: float = pydantic.Field(30.0, ge=0, le=MAX_WAIT_S)


class _Cascade(_Query):
    cascade: bool = False


class _Logs(_Query):
    offset: int = pydantic.Field(0, ge=0, le=2**31)
    limit: int = pydantic.Field(1000, ge=1, le=10_000)
    stream: str | None = pydantic.Field(None, pattern="^(stdout|stderr)$")
    attempt: int | None = pydantic.Field(None, ge=1, le=2**31)
    follow: bool = False
    timeout: float = pydantic.Field(MAX_WAIT_S, gt=0, le=3600)


# ---------------------------------------------------------------------------------- health


async def health(request: Request) -> Response:
    """``GET /api/health``: the server is up and its database answers.

    ``workers`` counts the live workers of the whole deployment (the registry's ``active``
    ones, on whatever host they run), not only one this process may embed.
    """
    no_query(request)
    store = store_of(request)
    counts = await store.task_counts()
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


async def create_task(request: Request) -> Response:
    """``POST /api/tasks``."""
    no_query(request)
    item = await parse_body(request, TaskCreate)
    if item.ref is not None:
        raise ApiError(
            422,
            "ref: only items of POST /api/tasks/batch have refs",
            [{"loc": ["ref"], "msg": "only for batch items", "type": "value_error"}],
        )
    tasks = await store_of(request).create_tasks([item], idempotency(request, item))
    return json_response(tasks[0], 201)


async def create_batch(request: Request) -> Response:
    """``POST /api/tasks/batch``: all the tasks or none."""
    no_query(request)
    batch = await parse_body(request, BatchTaskCreate)
    tasks = await store_of(request).create_tasks(
        batch.tasks, idempotency(request, batch), batch=True
    )
    return json_response({"tasks": tasks}, 201)


async def list_tasks(request: Request) -> Response:
    """``GET /api/tasks`` with seed 001's TaskFilters."""
    filters = parse_query(request, TaskFilters)
    page, total = await store_of(request).list_tasks(filters)
    return page_response("tasks", page, total, filters.limit, filters.offset)


async def get_task(request: Request) -> Response:
    """``GET /api/tasks/{task_id}``."""
    no_query(request)
    return json_response(await store_of(request).get_task(path_id(request, "task_id")))


async def update_task(request: Request) -> Response:
    """``PUT /api/tasks/{task_id}``."""
    no_query(request)
    task_id = path_id(request, "task_id")
    changes = await parse_body(request, TaskUpdate)
    return json_response(await store_of(request).update_task(task_id, changes))


async def delete_task(request: Request) -> Response:
    """``DELETE /api/tasks/{task_id}``."""
    no_query(request)
    await store_of(request).delete_task(path_id(request, "task_id"))
    return Response(status_code=204)


async def cancel_task(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/cancel``."""
    no_query(request)
    return json_response(await store_of(request).cancel_task(path_id(request, "task_id")))


async def retry_task(request: Request) -> Response:
    """``POST /api/tasks/{task_id}/retry``: re-queue a Failed or Cancelled task."""
    no_query(request)
    return json_response(await store_of(request).retry_task(path_id(request, "task_id")))


async def wait_task(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/wait?timeout=S``: long-poll until the task is terminal."""
    task_id = path_id(request, "task_id")
    query = parse_query(request, _Wait)
    task = await store_of(request).wait_terminal(task_id, query.timeout)
    return json_response(task)


async def task_attempts(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/attempts``."""
    no_query(request)
    task_id = path_id(request, "task_id")
    return json_response(
        {"task_id": task_id, "attempts": await store_of(request).list_attempts(task_id)}
    )


async def task_logs(request: Request) -> Response:
    """``GET /api/tasks/{task_id}/logs``: output from an offset, or followed live as NDJSON."""
    task_id = path_id(request, "task_id")
    query = parse_query(request, _Logs)
    store = store_of(request)
    chunks, next_offset, status = await store.read_logs(
        task_id, query.offset, query.limit, query.stream, query.attempt
    )
    if not query.follow:
        more = len(chunks) == query.limit and bool(
            (await store.read_logs(task_id, next_offset, 1, query.stream, query.attempt))[0]
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
    store: Store, task_id: str, query: _Logs, chunks: list[dict[str, Any]], offset: int, status: str
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
    data = await parse_body(request, ProjectCreate)
    project = await store_of(request).create_project(data, idempotency(request, data))
    return json_response(project, 201)


async def list_projects(request: Request) -> Response:
    """``GET /api/projects``."""
    paging = parse_query(request, _Paging)
    page, total = await store_of(request).list_projects(paging.limit, paging.offset)
    return page_response("projects", page, total, paging.limit, paging.offset)


async def get_project(request: Request) -> Response:
    """``GET /api/projects/{project_id}``."""
    no_query(request)
    return json_response(await store_of(request).get_project(path_id(request, "project_id")))


async def update_project(request: Request) -> Response:
    """``PUT /api/projects/{project_id}``."""
    no_query(request)
    project_id = path_id(request, "project_id")
    changes = await parse_body(request, ProjectUpdate)
    return json_response(await store_of(request).update_project(project_id, changes))


async def delete_project(request: Request) -> Response:
    """``DELETE /api/projects/{project_id}[?cascade=true]``."""
    project_id = path_id(request, "project_id")
    query = parse_query(request, _Cascade)
    await store_of(request).delete_project(project_id, query.cascade)
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
    updates = [(str(item.task_id), item.changes) for item in batch.updates]
    return json_response({"tasks": await store_of(request).update_tasks(updates)})


routes: list[Route] = [
    Route("/", root, methods=["GET"]),
    Route("/api/health", health, methods=["GET"]),
    Route("/api/tasks", create_task, methods=["POST"]),
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/tasks/batch", create_batch, methods=["POST"]),
    Route("/api/tasks/batch", update_batch, methods=["PUT"]),
    Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/tasks/{task_id}", update_task, methods=["PUT"]),
    Route("/api/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/api/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/api/tasks/{task_id}/retry", retry_task, methods=["POST"]),
    Route("/api/tasks/{task_id}/wait", wait_task, methods=["GET"]),
    Route("/api/tasks/{task_id}/logs", task_logs, methods=["GET"]),
    Route("/api/tasks/{task_id}/attempts", task_attempts, methods=["GET"]),
    Route("/api/workers", list_workers, methods=["GET"]),
    Route("/api/projects", create_project, methods=["POST"]),
    Route("/api/projects", list_projects, methods=["GET"]),
    Route("/api/projects/{project_id}", get_project, methods=["GET"]),
    Route("/api/projects/{project_id}", update_project, methods=["PUT"]),
    Route("/api/projects/{project_id}", delete_project, methods=["DELETE"]),
]
