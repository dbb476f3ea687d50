"""The async client's code methods: the source of the sync ones (unasync)."""

# Each is a thin layer over tasks: a job is a code task (``language`` + ``code``), its id the
# task's id; waiting is the server's long-poll, never a polling schedule.

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar
from uuid import UUID

from taskqueue.client._async_core import AsyncClientCore, id_of
from taskqueue.client._base import RequestSpec, parse_model, validate_input
from taskqueue.errors import TaskQueueTimeoutError
from taskqueue.models import (
    TERMINAL_STATUSES,
    CodeResult,
    LanguageInfo,
    LanguageList,
    LogPage,
    Task,
    TaskCreate,
)

__all__ = ["LANGUAGES_CACHE_S", "AsyncCodeMixin"]

#: How long ``get_languages()`` answers from its cache before asking the server again.
LANGUAGES_CACHE_S = 3600.0
#: Longest single long-poll asked of the server; a longer wait is several of them.
_WAIT_SLICE_S = 60.0
#: Output chunks asked for per page when collecting a job's output.
_LOG_PAGE = 1000


class AsyncCodeMixin(AsyncClientCore):
    """Running code in a language: at once and waiting, or as a job to wait for later."""

    #: (when fetched, the languages) of the last ``get_languages()``; None: not cached.
    _languages_cache: ClassVar[tuple[float, list[LanguageInfo]] | None] = None

    async def get_languages(self, *, refresh: bool = False) -> list[LanguageInfo]:
        """Every language of the server's table, with the versions and workers offering it.

        Cached for an hour (:data:`LANGUAGES_CACHE_S`); ``refresh`` asks again, and an error
        (here or when running code) drops the cache.
        """
        cached = self._languages_cache
        if not refresh and cached is not None and time.monotonic() - cached[0] < LANGUAGES_CACHE_S:
            return list(cached[1])
        try:
            answer = await self._model(LanguageList, RequestSpec("GET", "/api/languages"))
        except Exception:
            self._drop_languages()
            raise
        self._languages_cache = (time.monotonic(), list(answer.languages))  # type: ignore[misc]
        return list(answer.languages)

    def _drop_languages(self) -> None:
        self._languages_cache = None  # type: ignore[misc]

    async def execute_async(
        self,
        language: str,
        code: str,
        *,
        input: Any = None,
        timeout: int | None = None,
        environment: Mapping[str, str] | None = None,
        queue: str = "default",
        name: str | None = None,
        retry_attempts: int = 0,
        **fields: Any,
    ) -> str:
        """Start ``code`` in ``language`` (a name or alias) as a job; its id, at once.

        ``timeout`` is the code's own, in seconds; ``input`` reaches it on stdin and in
        ``$TASKQUEUE_INPUT``. A job runs once unless ``retry_attempts`` says otherwise (a
        failing program is an answer, not an accident). A language no live worker offers is a
        :class:`~taskqueue.errors.ValidationError` naming those available.
        """
        given: dict[str, Any] = {
            "name": name or f"{language} code",
            "language": language,
            "code": code,
            "input": input,
            "timeout": timeout,
            "environment": dict(environment or {}),
            "queue": queue,
            "retry_attempts": retry_attempts,
            **fields,
        }
        body = validate_input(TaskCreate, {k: v for k, v in given.items() if v is not None})
        try:
            task = await self._model(Task, RequestSpec.create("/api/tasks", body, "task"))
        except Exception:
            self._drop_languages()  # what workers offer may have changed
            raise
        return str(task.id)

    async def execute_code(
        self, language: str, code: str, *, wait_timeout: float = 300, **options: Any
    ) -> CodeResult:
        """Run ``code`` in ``language`` and wait (up to ``wait_timeout`` s) for its result.

        Takes the options of :meth:`execute_async`. Raises
        :class:`~taskqueue.errors.TaskQueueTimeoutError` when the wait runs out (the job goes
        on; ``wait_for_job`` its id, in the error's ``response_data``).
        """
        job_id = await self.execute_async(language, code, **options)
        return await self.wait_for_job(job_id, timeout=wait_timeout)

    async def get_job(self, job_id: str | UUID) -> Task:
        """A job as it is now: the code task, with its status and (once ended) result."""
        return await self._model(
            Task, RequestSpec("GET", f"/api/tasks/{id_of(job_id)}", resource="task")
        )

    async def wait_for_job(self, job_id: str | UUID, timeout: float = 300) -> CodeResult:
        """The job's result once it ends, through the server's long-poll.

        Raises :class:`~taskqueue.errors.TaskQueueTimeoutError` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            hold = min(max(deadline - time.monotonic(), 0.0), _WAIT_SLICE_S)
            task = await self._model(
                Task,
                RequestSpec(
                    "GET",
                    f"/api/tasks/{id_of(job_id)}/wait",
                    params={"timeout": round(hold, 3)},
                    resource="task",
                    hold=hold,
                ),
            )
            if task.status in TERMINAL_STATUSES:
                return await self._code_result(task)
            if time.monotonic() >= deadline:
                raise TaskQueueTimeoutError(
                    f"job {task.id} is still {task.status.value} after {timeout:g}s",
                    response_data=task.model_dump(mode="json"),
                )

    async def cancel_job(self, job_id: str | UUID) -> Task:
        """Stop a job (pending or running); the task as cancelled."""
        return await self._model(
            Task, RequestSpec("POST", f"/api/tasks/{id_of(job_id)}/cancel", resource="task")
        )

    async def list_jobs(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> list[Task]:
        """Code tasks among a page of tasks, newest first (``filters`` as ``list_tasks``)."""
        params = {"limit": limit, "offset": offset, "sort": "-created_at", **filters}
        data = await self._json(RequestSpec("GET", "/api/tasks", params=params))
        tasks = [parse_model(Task, t) for t in data["tasks"]]
        return [task for task in tasks if task.language is not None]

    async def _code_result(self, task: Task) -> CodeResult:
        """A finished code task as a :class:`CodeResult`, with its last attempt's output."""
        streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        offset = 0
        while task.attempt > 0:
            page = await self._model(
                LogPage,
                RequestSpec(
                    "GET",
                    f"/api/tasks/{task.id}/logs",
                    params={"offset": offset, "limit": _LOG_PAGE, "attempt": task.attempt},
                    resource="task",
                ),
            )
            for chunk in page.chunks:
                streams.setdefault(chunk.stream, []).append(chunk.data)
            if not page.chunks or page.next_offset == offset:
                break
            offset = page.next_offset
        result = task.result
        return CodeResult(
            job_id=task.id,
            language=task.language or "",
            status=task.status,
            stdout="".join(streams["stdout"]),
            stderr="".join(streams["stderr"]),
            exit_code=None if result is None else result.exit_code,
            duration_ms=None if result is None else result.duration_ms,
            error=task.status_reason if result is None else result.error,
            failure_reason=task.failure_reason,
        )
