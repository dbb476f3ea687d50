"""The async client: the source the sync client is generated from (``scripts/unasync.py``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

import httpx

from taskqueue.client._base import (
    NOT_GIVEN,
    USER_AGENT,
    NdjsonLines,
    NotGiven,
    RequestSpec,
    RetryPolicy,
    drop_unset,
    error_from_response,
    parse_model,
    parse_retry_after,
    transport_message,
    validate_input,
)
from taskqueue.client._config import resolve_config
from taskqueue.errors import (
    TaskQueueConfigError,
    TaskQueueConnectionError,
    TaskQueueTimeoutError,
)
from taskqueue.models import (
    TERMINAL_STATUSES,
    Attempt,
    BatchTaskCreate,
    Health,
    LogChunk,
    LogPage,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Task,
    TaskCreate,
    TaskFilters,
    TaskPriority,
    TaskStatus,
    TaskType,
    TaskUpdate,
    WorkerList,
)

__all__ = ["AsyncTaskQueueClient"]

log: logging.Logger = logging.getLogger("taskqueue.client")

#: Longest single long-poll asked of the server; a longer wait is several of them.
_WAIT_SLICE_S = 60.0


T = TypeVar("T")


def _id(value: str | UUID) -> str:
    return str(value)


async def _every_page(
    list_page: Callable[..., Awaitable[list[T]]], page_size: int
) -> AsyncIterator[T]:
    """Every item of a listing, asking ``list_page(limit=, offset=)`` for one page at a time."""
    offset = 0
    while True:
        page = await list_page(limit=page_size, offset=offset)
        for item in page:
            yield item
        if len(page) < page_size:
            return
        offset += len(page)


class AsyncTaskQueueClient:
    """Async client for the taskqueue API.

    Settings come from the arguments, then ``TASKQUEUE_URL`` / ``TASKQUEUE_API_KEY`` /
    ``TASKQUEUE_PROFILE`` / ``TASKQUEUE_RETRY_BACKOFF``, then a profile in
    ``~/.config/taskqueue/config.toml``, then ``./taskqueue.toml``. Use it as
    ``async with AsyncTaskQueueClient() as client: ...`` or call :meth:`close` when done; it
    keeps one connection pool for its whole life.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        profile: str | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        retry_attempts: int = 3,
        retry_backoff: float | None = None,
        http2: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Connect to ``base_url`` (or the configured server).

        ``timeout`` is per request in seconds (``None``: none); ``retry_attempts`` retries
        connection errors, timeouts and 429/5xx answers with exponential backoff from
        ``retry_backoff`` seconds (``None``: ``TASKQUEUE_RETRY_BACKOFF``, else 1), honouring
        ``Retry-After``; ``transport`` replaces httpx's.
        """
        config = resolve_config(base_url, api_key, profile, retry_backoff=retry_backoff)
        self.base_url: str = config.base_url
        self.api_key: str | None = config.api_key
        if isinstance(timeout, NotGiven):
            timeout = config.timeout if config.timeout is not None else 30.0
        self.timeout: float | None = timeout
        self.retry: RetryPolicy = RetryPolicy(
            max_retries=retry_attempts, backoff=config.retry_backoff
        )
        sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if self.api_key:
            sent["Authorization"] = f"Bearer {self.api_key}"
        if http2 and not _has_h2():
            raise TaskQueueConfigError(
                "http2=True needs the h2 package: pip install 'httpx[http2]'"
            )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=sent,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
            ),
            http2=http2,
            transport=transport,
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AsyncTaskQueueClient:
        """Use the client as a context manager; it closes on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def with_options(
        self,
        *,
        timeout: float | NotGiven | None = NOT_GIVEN,
        retry_attempts: int | None = None,
        retry_backoff: float | None = None,
    ) -> AsyncTaskQueueClient:
        """A copy with other settings that shares this client's connection pool."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        if not isinstance(timeout, NotGiven):
            copy.timeout = timeout
        copy.retry = RetryPolicy(
            max_retries=self.retry.max_retries if retry_attempts is None else retry_attempts,
            backoff=self.retry.backoff if retry_backoff is None else retry_backoff,
        )
        return copy

    # ------------------------------------------------------------------ transport

    def _timeout(self, hold: float) -> float | None:
        return None if self.timeout is None else self.timeout + hold

    async def _send(self, spec: RequestSpec) -> httpx.Response:
        retries = 0
        while True:
            try:
                response = await self._http.request(
                    spec.method,
                    spec.path,
                    params=spec.params,
                    json=spec.json,
                    headers=spec.headers,
                    timeout=self._timeout(spec.hold),
                )
            except httpx.TransportError as exc:
                if not self.retry.should_retry(retries, spec.idempotent, error=exc):
                    raise _transport_error(exc, self.base_url) from exc
                wait = self.retry.delay(retries)
                log.debug(
                    "%s %s: %r; retry %d in %.2fs", spec.method, spec.path, exc, retries + 1, wait
                )
            else:
                if response.status_code < 400:
                    return response
                if not self.retry.should_retry(
                    retries, spec.idempotent, status=response.status_code
                ):
                    raise error_from_response(response, spec.resource)
                wait = self.retry.delay(
                    retries, parse_retry_after(response.headers.get("retry-after"))
                )
                log.debug(
                    "%s %s: %d; retry %d in %.2fs",
                    spec.method,
                    spec.path,
                    response.status_code,
                    retries + 1,
                    wait,
                )
            retries += 1
            await asyncio.sleep(wait)

    async def _json(self, spec: RequestSpec) -> Any:
        response = await self._send(spec)
        if response.status_code == 204:
            return None
        return response.json()

    # ------------------------------------------------------------------ health

    async def get_health(self) -> Health:
        """The server's health: version, database, workers, tasks per status."""
        return parse_model(Health, await self._json(RequestSpec("GET", "/api/health")))

    async def list_workers(self) -> WorkerList:
        """Worker processes registered on the server's database, ``active`` or ``stale``."""
        return parse_model(WorkerList, await self._json(RequestSpec("GET", "/api/workers")))

    # ------------------------------------------------------------------ projects

    async def create_project(
        self,
        name: str,
        *,
        description: str | NotGiven | None = NOT_GIVEN,
        status: str | NotGiven = NOT_GIVEN,
        due_date: datetime | NotGiven | None = NOT_GIVEN,
        tags: Sequence[str] | NotGiven = NOT_GIVEN,
        metadata: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    ) -> Project:
        """Create a project (names are unique)."""
        body = validate_input(
            ProjectCreate,
            drop_unset(
                {
                    "name": name,
                    "description": description,
                    "status": status,
                    "due_date": due_date,
                    "tags": tags,
                    "metadata": metadata,
                }
            ),
        )
        data = await self._json(RequestSpec.create("/api/projects", body, "project"))
        return parse_model(Project, data)

    async def get_project(self, project_id: str | UUID) -> Project:
        """One project."""
        data = await self._json(
            RequestSpec("GET", f"/api/projects/{_id(project_id)}", resource="project")
        )
        return parse_model(Project, data)

    async def list_projects(self, *, limit: int = 100, offset: int = 0) -> list[Project]:
        """A page of projects, oldest first."""
        data = await self._json(
            RequestSpec("GET", "/api/projects", params={"limit": limit, "offset": offset})
        )
        return [parse_model(Project, p) for p in data["projects"]]

    async def iter_projects(self, *, page_size: int = 100) -> AsyncIterator[Project]:
        """Every project, a page at a time."""
        async for project in _every_page(self.list_projects, page_size):
            yield project

    async def update_project(self, project_id: str | UUID, **updates: Any) -> Project:
        """Change the fields given (name, description, status, due_date, tags, metadata)."""
        body = validate_input(ProjectUpdate, updates)
        data = await self._json(
            RequestSpec("PUT", f"/api/projects/{_id(project_id)}", json=body, resource="project")
        )
        return parse_model(Project, data)

    async def delete_project(self, project_id: str | UUID, *, cascade: bool = False) -> bool:
        """Delete a project; with ``cascade=True`` its tasks too. True when deleted."""
        params = {"cascade": "true"} if cascade else None
        await self._json(
            RequestSpec(
                "DELETE", f"/api/projects/{_id(project_id)}", params=params, resource="project"
            )
        )
        return True

    # ------------------------------------------------------------------ tasks

    async def create_task(
        self,
        name: str,
        command: str,
        project_id: str | UUID | None = None,
        *,
        priority: TaskPriority | str | NotGiven = NOT_GIVEN,
        timeout: int | NotGiven | None = NOT_GIVEN,
        retry_attempts: int | NotGiven = NOT_GIVEN,
        retry_delay: float | NotGiven = NOT_GIVEN,
        environment: Mapping[str, str] | NotGiven = NOT_GIVEN,
        working_directory: str | NotGiven | None = NOT_GIVEN,
        dependencies: Sequence[str | UUID] | NotGiven = NOT_GIVEN,
        description: str | NotGiven = NOT_GIVEN,
        metadata: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        input: Any | NotGiven = NOT_GIVEN,
        queue: str | NotGiven = NOT_GIVEN,
        run_at: datetime | NotGiven | None = NOT_GIVEN,
        **fields: Any,
    ) -> Task:
        """Create a task. ``timeout`` is the task's own, in seconds; other fields by name.

        The request carries an ``Idempotency-Key``, so a retried call never makes two tasks.
        """
        given = drop_unset(
            {
                "name": name,
                "command": command,
                "project_id": str(project_id) if project_id is not None else None,
                "priority": priority,
                "timeout": timeout,
                "retry_attempts": retry_attempts,
                "retry_delay": retry_delay,
                "environment": environment,
                "working_directory": working_directory,
                "dependencies": [str(d) for d in dependencies]
                if not isinstance(dependencies, NotGiven)
                else dependencies,
                "description": description,
                "metadata": metadata,
                "input": input,
                "queue": queue,
                "run_at": run_at,
                **fields,
            }
        )
        if given.get("project_id") is None:
            given.pop("project_id", None)
        body = validate_input(TaskCreate, given)
        data = await self._json(RequestSpec.create("/api/tasks", body, "task"))
        return parse_model(Task, data)

    async def create_tasks(self, tasks_data: Sequence[Mapping[str, Any]]) -> list[Task]:
        """Create many tasks in one request, all or none.

        Items may carry a ``ref``; later items may list earlier refs in ``dependencies``.
        """
        body = validate_input(BatchTaskCreate, {"tasks": [dict(t) for t in tasks_data]})
        data = await self._json(RequestSpec.create("/api/tasks/batch", body, "task"))
        return [parse_model(Task, t) for t in data["tasks"]]

    async def get_task(self, task_id: str | UUID) -> Task:
        """One task."""
        data = await self._json(RequestSpec("GET", f"/api/tasks/{_id(task_id)}", resource="task"))
        return parse_model(Task, data)

    async def list_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        project_id: str | UUID | None = None,
        priority: TaskPriority | str | None = None,
        task_type: TaskType | str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        """A page of tasks matching the filters, oldest first."""
        filters = validate_input(
            TaskFilters,
            {
                k: v
                for k, v in {
                    "status": status,
                    "project_id": project_id,
                    "priority": priority,
                    "task_type": task_type,
                    "queue": queue,
                    "created_after": created_after,
                    "created_before": created_before,
                    "limit": limit,
                    "offset": offset,
                }.items()
                if v is not None
            },
        )
        data = await self._json(RequestSpec("GET", "/api/tasks", params=filters))
        return [parse_model(Task, t) for t in data["tasks"]]

    async def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        project_id: str | UUID | None = None,
        priority: TaskPriority | str | None = None,
        task_type: TaskType | str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Task]:
        """Every task matching the filters, a page at a time."""
        list_page = functools.partial(
            self.list_tasks,
            status=status,
            project_id=project_id,
            priority=priority,
            task_type=task_type,
            queue=queue,
            created_after=created_after,
            created_before=created_before,
        )
        async for task in _every_page(list_page, page_size):
            yield task

    async def update_task(self, task_id: str | UUID, **updates: Any) -> Task:
        """Change a task's fields (run fields only while it is Pending)."""
        body = validate_input(TaskUpdate, updates)
        data = await self._json(
            RequestSpec("PUT", f"/api/tasks/{_id(task_id)}", json=body, resource="task")
        )
        return parse_model(Task, data)

    async def cancel_task(self, task_id: str | UUID) -> Task:
        """Cancel a Pending or Running task and its dependents."""
        data = await self._json(
            RequestSpec("POST", f"/api/tasks/{_id(task_id)}/cancel", resource="task")
        )
        return parse_model(Task, data)

    async def retry_task(self, task_id: str | UUID) -> Task:
        """Re-queue a Failed or Cancelled task."""
        data = await self._json(
            RequestSpec(
                "POST", f"/api/tasks/{_id(task_id)}/retry", resource="task", idempotent=False
            )
        )
        return parse_model(Task, data)

    async def delete_task(self, task_id: str | UUID) -> bool:
        """Delete a task. True when deleted."""
        await self._json(RequestSpec("DELETE", f"/api/tasks/{_id(task_id)}", resource="task"))
        return True

    async def get_attempts(self, task_id: str | UUID) -> list[Attempt]:
        """Every attempt of a task, first to last."""
        data = await self._json(
            RequestSpec("GET", f"/api/tasks/{_id(task_id)}/attempts", resource="task")
        )
        return [parse_model(Attempt, a) for a in data["attempts"]]

    async def get_logs(
        self,
        task_id: str | UUID,
        *,
        offset: int = 0,
        limit: int = 1000,
        stream: str | None = None,
        attempt: int | None = None,
    ) -> LogPage:
        """Output chunks from ``offset``; continue from ``next_offset``."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if stream is not None:
            params["stream"] = stream
        if attempt is not None:
            params["attempt"] = attempt
        data = await self._json(
            RequestSpec("GET", f"/api/tasks/{_id(task_id)}/logs", params=params, resource="task")
        )
        return parse_model(LogPage, data)

    async def follow_logs(
        self,
        task_id: str | UUID,
        *,
        offset: int = 0,
        stream: str | None = None,
        on_status: Callable[[TaskStatus], None] | None = None,
    ) -> AsyncIterator[LogChunk]:
        """Output as the command writes it, until the task ends (reconnects where it left).

        ``on_status`` is called with the task's new status whenever it changes while the task
        is not finished (``Pending`` after a failed attempt that will be retried, ``Running``
        when the next attempt starts), between the chunks of the attempts.
        """
        path = f"/api/tasks/{_id(task_id)}/logs"
        reconnects = 0
        while True:
            params: dict[str, Any] = {"follow": "true", "offset": offset}
            if stream is not None:
                params["stream"] = stream
            try:
                async with self._http.stream("GET", path, params=params, timeout=None) as reply:
                    if reply.status_code >= 400:
                        await reply.aread()
                        raise error_from_response(reply, "task")
                    lines = NdjsonLines()
                    async for data in reply.aiter_bytes():
                        for item in lines.feed(data):
                            if "event" not in item:
                                chunk = parse_model(LogChunk, item)
                                offset = chunk.seq + 1
                                yield chunk
                            elif item["event"] == "end":
                                return
                            elif item["event"] == "status":
                                offset = item.get("next_offset", offset)
                                if on_status is not None:
                                    on_status(TaskStatus(item["status"]))
                            else:  # the server's follow timed out, and ends: reconnect
                                offset = item.get("next_offset", offset)
            except httpx.TransportError as exc:
                if not self.retry.should_retry(reconnects, True, error=exc):
                    raise _transport_error(exc, self.base_url) from exc
                await asyncio.sleep(self.retry.delay(reconnects))
                reconnects += 1

    async def wait_for_completion(self, task_id: str | UUID, timeout: float = 300) -> Task:
        """The task once it is Completed, Failed or Cancelled.

        Uses the server's long-poll (no busy loop). Raises :class:`TaskQueueTimeoutError` after
        ``timeout`` seconds; the error's ``response_data`` holds the task as it was.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            hold = min(remaining, _WAIT_SLICE_S)
            data = await self._json(
                RequestSpec(
                    "GET",
                    f"/api/tasks/{_id(task_id)}/wait",
                    params={"timeout": round(hold, 3)},
                    resource="task",
                    hold=hold,
                )
            )
            task = parse_model(Task, data)
            if task.status in TERMINAL_STATUSES:
                return task
            if time.monotonic() >= deadline:
                raise TaskQueueTimeoutError(
                    f"task {task.id} is still {task.status.value} after {timeout:g}s",
                    response_data=task.model_dump(mode="json"),
                )


def _has_h2() -> bool:
    import importlib.util

    return importlib.util.find_spec("h2") is not None


def _transport_error(exc: httpx.TransportError, base_url: str) -> Exception:
    message = transport_message(exc, base_url)
    if isinstance(exc, httpx.TimeoutException):
        return TaskQueueTimeoutError(message)
    return TaskQueueConnectionError(message)
