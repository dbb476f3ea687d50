"""The sync client, GENERATED from ``_async_client.py`` by ``scripts/unasync.py``."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from taskqueue.client._base import (
    NOT_GIVEN,
    NotGiven,
    RequestSpec,
    drop_unset,
    error_from_response,
    error_from_transport,
    filter_params,
    parse_model,
    validate_input,
)
from taskqueue.client._sync_code import SyncCodeMixin
from taskqueue.client._sync_core import every_page, id_of
from taskqueue.client._sync_events import SyncEventsMixin
from taskqueue.client._sync_functions import SyncFunctionsMixin
from taskqueue.client._sync_schedules import SyncSchedulesMixin
from taskqueue.client._sync_webhooks import SyncWebhooksMixin
from taskqueue.client._sync_workflows import SyncWorkflowsMixin
from taskqueue.client._wire import TransportError, encode_url
from taskqueue.errors import ProjectNotFoundError, TaskNotFoundError, TaskQueueTimeoutError
from taskqueue.models import (
    TERMINAL_STATUSES,
    ApiKey,
    ApiKeyList,
    Attempt,
    BatchTaskCreate,
    BatchTaskUpdate,
    KeyCreate,
    KeyRotate,
    LogChunk,
    LogPage,
    NewApiKey,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Task,
    TaskCreate,
    TaskFilters,
    TaskList,
    TaskPriority,
    TaskStatus,
    TaskType,
    TaskUpdate,
)

__all__ = ["TaskQueueClient"]

#: Longest single long-poll asked of the server; a longer wait is several of them.
_WAIT_SLICE_S = 60.0


class TaskQueueClient(
    SyncEventsMixin,
    SyncWebhooksMixin,
    SyncFunctionsMixin,
    SyncSchedulesMixin,
    SyncWorkflowsMixin,
    SyncCodeMixin,
):
    """Sync client for the taskqueue API: the async client's methods, blocking.

    Settings come from the arguments, then ``TASKQUEUE_URL`` / ``TASKQUEUE_API_KEY`` (or
    ``TASKQUEUE_PUBLIC_KEY`` and ``TASKQUEUE_SECRET_KEY``) / ``TASKQUEUE_CA_BUNDLE`` /
    ``TASKQUEUE_PROFILE`` / ``TASKQUEUE_RETRY_BACKOFF``, then a profile in the nearest
    ``taskqueue.toml``, else in ``~/.config/taskqueue/config.toml``, then (credentials only)
    ``~/.taskqueue/accounts.csv`` or ``./accounts.csv``. Use it as
    ``with TaskQueueClient() as client: ...`` or call :meth:`close` when done; it
    keeps one connection pool for its whole life.
    """

    # ------------------------------------------------------------------ projects

    def create_project(
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
        return self._model(Project, RequestSpec.create("/api/projects", body, "project"))

    def get_project(self, project_id: str | UUID) -> Project:
        """One project."""
        return self._model(
            Project, RequestSpec("GET", f"/api/projects/{id_of(project_id)}", resource="project")
        )

    def list_projects(self, *, limit: int = 100, offset: int = 0) -> list[Project]:
        """A page of projects, oldest first."""
        data = self._json(
            RequestSpec("GET", "/api/projects", params={"limit": limit, "offset": offset})
        )
        return [parse_model(Project, p) for p in data["projects"]]

    def iter_projects(self, *, page_size: int = 100) -> Iterator[Project]:
        """Every project, a page at a time."""
        for project in every_page(self.list_projects, page_size):
            yield project

    def update_project(self, project_id: str | UUID, **updates: Any) -> Project:
        """Change the fields given (name, description, status, due_date, tags, metadata)."""
        body = validate_input(ProjectUpdate, updates)
        return self._model(
            Project,
            RequestSpec("PUT", f"/api/projects/{id_of(project_id)}", json=body, resource="project"),
        )

    def delete_project(self, project_id: str | UUID, *, cascade: bool = False) -> bool:
        """Delete a project; with ``cascade=True`` its tasks too.

        True when deleted; False when the server has no such project (it never existed, or is
        already deleted). A refusal raises (:class:`ConflictError`: it still has tasks and
        ``cascade`` is False, or some of them are Running), as does a failure to get an answer.
        """
        params = {"cascade": "true"} if cascade else None
        spec = RequestSpec(
            "DELETE", f"/api/projects/{id_of(project_id)}", params=params, resource="project"
        )
        try:
            self._json(spec)
        except ProjectNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ tasks

    def create_task(
        self,
        name: str,
        command: str | None = None,
        project_id: str | UUID | None = None,
        *,
        task_type: TaskType | str | NotGiven = NOT_GIVEN,
        input_schema: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        output_schema: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        validate_output: bool | NotGiven = NOT_GIVEN,
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

        A task runs ``command`` (or, by name, ``language`` and ``code``). Given
        ``input_schema`` or ``output_schema`` (JSON Schemas), it is a Function definition
        (``task_type`` ``"Function"`` unless said otherwise): it never runs by itself, but
        is executed with inputs (:meth:`execute`, :meth:`batch_execute`); ``validate_output``
        False trusts its outputs unless an execution asks for ``force_validation``.
        The request carries an ``Idempotency-Key``, so a retried call never makes two tasks.
        """
        if isinstance(task_type, NotGiven) and not (
            isinstance(input_schema, NotGiven) and isinstance(output_schema, NotGiven)
        ):
            task_type = TaskType.FUNCTION
        given = drop_unset(
            {
                "name": name,
                "command": command,
                "task_type": task_type,
                "input_schema": dict(input_schema)
                if not isinstance(input_schema, NotGiven)
                else input_schema,
                "output_schema": dict(output_schema)
                if not isinstance(output_schema, NotGiven)
                else output_schema,
                "validate_output": validate_output,
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
        for optional in ("project_id", "command"):
            if given.get(optional) is None:
                given.pop(optional, None)
        body = validate_input(TaskCreate, given)
        return self._model(Task, RequestSpec.create("/api/tasks", body, "task"))

    def create_tasks(self, tasks_data: Sequence[Mapping[str, Any]]) -> list[Task]:
        """Create many tasks in one request, all or none.

        Items may carry a ``ref``; later items may list earlier refs in ``dependencies``.
        """
        body = validate_input(BatchTaskCreate, {"tasks": [dict(t) for t in tasks_data]})
        data = self._json(RequestSpec.create("/api/tasks/batch", body, "task"))
        return [parse_model(Task, t) for t in data["tasks"]]

    def get_task(self, task_id: str | UUID, version: int | None = None) -> Task:
        """One task; for a Function definition, ``version`` shows it as of that version."""
        params = None if version is None else {"version": version}
        return self._model(
            Task,
            RequestSpec("GET", f"/api/tasks/{id_of(task_id)}", params=params, resource="task"),
        )

    def list_tasks(
        self,
        filters: TaskFilters | None = None,
        *,
        status: TaskStatus | str | None = None,
        project_id: str | UUID | None = None,
        priority: TaskPriority | str | None = None,
        task_type: TaskType | str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort: str | None = None,
        id_part: str | None = None,
    ) -> list[Task]:
        """A page of tasks matching the filters, oldest first (100 from offset 0 by default).

        Give the filters as keywords, or as a :class:`TaskFilters` (as in
        ``list_tasks(TaskFilters(status=..., limit=...))``); keywords given beside one replace
        its fields. ``sort="-created_at"`` lists newest first; ``id_part`` keeps the tasks
        whose id starts or ends with it.
        """
        params = filter_params(
            filters,
            {
                "status": status,
                "project_id": project_id,
                "priority": priority,
                "task_type": task_type,
                "queue": queue,
                "created_after": created_after,
                "created_before": created_before,
                "limit": limit,
                "offset": offset,
                "sort": sort,
                "id_part": id_part,
            },
        )
        data = self._json(RequestSpec("GET", "/api/tasks", params=params))
        return [parse_model(Task, t) for t in data["tasks"]]

    def list_tasks_page(self, filters: TaskFilters) -> TaskList:
        """A page of tasks with how many match in all (``total``), for paging displays."""
        params = filter_params(filters, {})
        return self._model(TaskList, RequestSpec("GET", "/api/tasks", params=params))

    def iter_tasks(
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
    ) -> Iterator[Task]:
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
        for task in every_page(list_page, page_size):
            yield task

    def update_task(self, task_id: str | UUID, **updates: Any) -> Task:
        """Change a task's fields (run fields only while it is Pending)."""
        body = validate_input(TaskUpdate, updates)
        return self._model(
            Task, RequestSpec("PUT", f"/api/tasks/{id_of(task_id)}", json=body, resource="task")
        )

    def update_tasks(self, updates: Sequence[tuple[str | UUID, Mapping[str, Any]]]) -> list[Task]:
        """Change many tasks in one request, all or none: ``[(task_id, {field: value}), ...]``.

        The server applies every update or none. When any is refused, nothing changes and a
        :class:`ConflictError` is raised whose ``details`` has one entry per refused item
        (``loc`` ``["updates", i, ...]``, ``msg``, ``type`` ``not_found`` / ``conflict`` /
        ``value_error``, ``task_id``). Answers the tasks as they are after it, in order.
        """
        items = [
            {"task_id": id_of(task_id), "changes": dict(changes)} for task_id, changes in updates
        ]
        body = validate_input(BatchTaskUpdate, {"updates": items})
        data = self._json(RequestSpec("PUT", "/api/tasks/batch", json=body, resource="task"))
        return [parse_model(Task, t) for t in data["tasks"]]

    def cancel_task(self, task_id: str | UUID) -> Task:
        """Cancel a Pending or Running task and its dependents."""
        return self._model(
            Task, RequestSpec("POST", f"/api/tasks/{id_of(task_id)}/cancel", resource="task")
        )

    def retry_task(self, task_id: str | UUID) -> Task:
        """Re-queue a Failed or Cancelled task."""
        return self._model(
            Task,
            RequestSpec(
                "POST", f"/api/tasks/{id_of(task_id)}/retry", resource="task", idempotent=False
            ),
        )

    def delete_task(self, task_id: str | UUID) -> bool:
        """Delete a task.

        True when deleted; False when the server has no such task (it never existed, or is
        already deleted: also when an earlier try of this same call deleted it and its answer
        was lost). A refusal raises (:class:`ConflictError`: the task is Running, or unfinished
        tasks depend on it), as does a failure to get an answer.
        """
        try:
            self._json(RequestSpec("DELETE", f"/api/tasks/{id_of(task_id)}", resource="task"))
        except TaskNotFoundError:
            return False
        return True

    def get_attempts(self, task_id: str | UUID) -> list[Attempt]:
        """Every attempt of a task, first to last."""
        data = self._json(
            RequestSpec("GET", f"/api/tasks/{id_of(task_id)}/attempts", resource="task")
        )
        return [parse_model(Attempt, a) for a in data["attempts"]]

    def get_logs(
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
        return self._model(
            LogPage,
            RequestSpec("GET", f"/api/tasks/{id_of(task_id)}/logs", params=params, resource="task"),
        )

    def follow_logs(
        self,
        task_id: str | UUID,
        *,
        offset: int = 0,
        stream: str | None = None,
        on_status: Callable[[TaskStatus], None] | None = None,
    ) -> Iterator[LogChunk]:
        """Output as the command writes it, until the task ends (reconnects where it left).

        ``on_status`` is called with the task's new status whenever it changes while the task
        is not finished (``Pending`` after a failed attempt that will be retried, ``Running``
        when the next attempt starts), between the chunks of the attempts.
        """
        path = f"/api/tasks/{id_of(task_id)}/logs"
        reconnects = 0
        while True:
            params: dict[str, Any] = {"follow": "true", "offset": offset}
            if stream is not None:
                params["stream"] = stream
            url = encode_url(self.base_url, path, params)
            try:
                with self._http.stream("GET", url, self.timeout) as reply:
                    if reply.status_code >= 400:
                        raise error_from_response(reply.read(), "task")
                    for line in reply.iter_lines():
                        if not line.strip():
                            continue
                        item = json.loads(line)
                        if "event" in item:
                            if item["event"] == "end":
                                return
                            elif item["event"] == "status":
                                offset = item.get("next_offset", offset)
                                if on_status is not None:
                                    on_status(TaskStatus(item["status"]))
                                continue
                            break  # server-side follow timeout: reconnect
                        chunk = parse_model(LogChunk, item)
                        offset = chunk.seq + 1
                        yield chunk
            except TransportError as exc:
                if not self.retry.should_retry(reconnects, True, error=exc):
                    raise error_from_transport(exc, self.base_url) from exc
                time.sleep(self.retry.delay(reconnects))
                reconnects += 1

    def wait_for_completion(self, task_id: str | UUID, timeout: float = 300) -> Task:
        """The task once it is Completed, Failed or Cancelled.

        Uses the server's long-poll (no busy loop). Raises :class:`TaskQueueTimeoutError` after
        ``timeout`` seconds; the error's ``response_data`` holds the task as it was.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            hold = min(remaining, _WAIT_SLICE_S)
            task = self._model(
                Task,
                RequestSpec(
                    "GET",
                    f"/api/tasks/{id_of(task_id)}/wait",
                    params={"timeout": round(hold, 3)},
                    resource="task",
                    hold=hold,
                ),
            )
            if task.status in TERMINAL_STATUSES:
                return task
            if time.monotonic() >= deadline:
                raise TaskQueueTimeoutError(
                    f"task {task.id} is still {task.status.value} after {timeout:g}s",
                    response_data=task.model_dump(mode="json"),
                )

    # ------------------------------------------------------------------ API keys

    def create_key(
        self,
        name: str,
        *,
        scopes: Sequence[str] = ("read",),
        projects: Sequence[str | UUID] | None = None,
        pair: bool = False,
        expires_at: datetime | None = None,
        rate_limit: float | None = None,
        burst: int | None = None,
    ) -> NewApiKey:
        """Make an API key (an admin key for every project is needed).

        The answer holds the secret, which the server never shows again: ``key`` for a bearer
        key, ``public_key`` and ``secret_key`` for a key pair (``pair=True``).
        """
        body = validate_input(
            KeyCreate,
            drop_unset(
                {
                    "name": name,
                    "scopes": list(scopes),
                    "projects": [str(p) for p in projects] if projects is not None else None,
                    "kind": "pair" if pair else "bearer",
                    "expires_at": expires_at,
                    "rate_limit": rate_limit,
                    "burst": burst,
                }
            ),
        )
        return self._model(NewApiKey, RequestSpec("POST", "/api/keys", json=body, resource="key"))

    def list_keys(self) -> list[ApiKey]:
        """Every API key, revoked ones too (never a secret)."""
        found = self._model(ApiKeyList, RequestSpec("GET", "/api/keys", resource="key"))
        return found.keys

    def get_key(self, key_id: str | UUID) -> ApiKey:
        """One API key."""
        return self._model(ApiKey, RequestSpec("GET", f"/api/keys/{id_of(key_id)}", resource="key"))

    def revoke_key(self, key_id: str | UUID) -> ApiKey:
        """Revoke an API key: every server refuses it within a second."""
        return self._model(
            ApiKey, RequestSpec("POST", f"/api/keys/{id_of(key_id)}/revoke", resource="key")
        )

    def rotate_key(self, key_id: str | UUID, *, grace_seconds: float = 3600.0) -> NewApiKey:
        """A new key like this one; this one keeps working for ``grace_seconds``, then expires."""
        body = validate_input(KeyRotate, {"grace_seconds": grace_seconds})
        return self._model(
            NewApiKey,
            RequestSpec("POST", f"/api/keys/{id_of(key_id)}/rotate", json=body, resource="key"),
        )
