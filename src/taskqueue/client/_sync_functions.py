"""The sync client's function methods, GENERATED from ``_async_functions.py``."""

# A Function task is a definition (a body, an input and an output JSON Schema, a version);
# executing it runs a child task with an input. Waiting is the server's long-poll
# (``timeout_ms`` on the execute, the execution and the batch routes), never a polling
# schedule: each request is held until the execution ends or its slice of the wait runs out.

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from taskqueue._function_models import BatchQuery, ExecutionQuery
from taskqueue.client._base import RequestSpec, validate_input
from taskqueue.client._sync_core import SyncClientCore, id_of
from taskqueue.errors import ExecutionError
from taskqueue.models import (
    TERMINAL_STATUSES,
    BatchExecuteRequest,
    BatchExecuteResponse,
    ExecuteRequest,
    ExecutionResult,
    TaskStatus,
    TaskVersion,
    TaskVersionList,
)

__all__ = ["MIN_POLL_S", "WAIT_SLICE_MS", "SyncFunctionsMixin"]

#: Longest single long-poll asked of the server when waiting until an execution or a batch
#: ends; a longer wait is several of them.
WAIT_SLICE_MS = 60_000
#: A long-poll answered sooner than this without the end (a server whose operator caps how
#: long a request may wait near 0, ``--max-request-wait``) is followed by a pause for the
#: rest of it, so that waiting never turns into a busy loop. A server that holds the request
#: answers later than this, and the next poll goes at once.
MIN_POLL_S = 0.25
#: The ends of an execution that :meth:`SyncFunctionsMixin.execute` raises for.
_FAILED = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})


def _hold(timeout_ms: int | None) -> float:
    """Seconds the server may hold a request asked to wait ``timeout_ms``."""
    return 0.0 if timeout_ms is None else timeout_ms / 1000


def _query(model: type[ExecutionQuery] | type[BatchQuery], timeout_ms: int | None) -> Any:
    """The query of a long-poll (checked before sending), or None for an answer at once."""
    return None if timeout_ms is None else validate_input(model, {"timeout_ms": timeout_ms})


def _pace(asked: float) -> None:
    """Before the next long-poll: wait out the rest of :data:`MIN_POLL_S` since ``asked``."""
    rest = MIN_POLL_S - (time.monotonic() - asked)
    if rest > 0:
        time.sleep(rest)


def _ended(result: ExecutionResult) -> ExecutionResult:
    """``result``, unless it ended Failed or Cancelled: then :class:`ExecutionError`."""
    if result.status in _FAILED:
        raise ExecutionError(result)
    return result


class SyncFunctionsMixin(SyncClientCore):
    """Function tasks: executing a definition with an input, one at a time or in batches.

    Create a definition with ``create_task(name, task_type="Function", input_schema=...,
    output_schema=..., command=...)``; see ``docs/functions.md``.
    """

    def execute(
        self,
        task_id: str | UUID,
        input_data: Any,
        version: int | None = None,
        timeout_ms: int | None = None,
        force_validation: bool = False,
    ) -> ExecutionResult:
        """Execute the Function definition ``task_id`` with ``input_data``; its result.

        ``input_data`` is checked against the definition's ``input_schema`` (a mismatch is a
        :class:`~taskqueue.errors.ValidationError` whose ``details`` name each path, as
        ``["input", ...]``). ``version`` runs an older version (default: the current
        one); ``force_validation`` checks the output against ``output_schema`` even when the
        definition trusts it.

        With ``timeout_ms`` None, waits until the execution ends, however long it takes
        (through the server's long-poll). With ``timeout_ms`` given, makes one request that
        waits up to that long and returns what the server answered: the result of an
        execution still Pending or Running if it did not end in time (wait for it with
        :meth:`get_execution`). An execution that ended Failed or Cancelled raises
        :class:`~taskqueue.errors.ExecutionError` (its ``execution_id`` and ``result``).
        The request carries an ``Idempotency-Key``: a retried call never executes twice.
        """
        wait_ms = WAIT_SLICE_MS if timeout_ms is None else timeout_ms
        fields: dict[str, Any] = {
            "input": input_data,
            "timeout_ms": wait_ms,
            "force_validation": force_validation,
        }
        if version is not None:
            fields["version"] = version
        body = validate_input(ExecuteRequest, fields)
        spec = dataclasses.replace(
            RequestSpec.create(f"/api/tasks/{id_of(task_id)}/execute", body, "task"),
            hold=_hold(wait_ms),
        )
        asked = time.monotonic()
        result = self._model(ExecutionResult, spec)
        while timeout_ms is None and result.status not in TERMINAL_STATUSES:
            _pace(asked)
            asked = time.monotonic()
            result = self.get_execution(result.execution_id, timeout_ms=WAIT_SLICE_MS)
        if result.status in TERMINAL_STATUSES:
            return _ended(result)
        return result

    def get_execution(
        self, execution_id: str | UUID, timeout_ms: int | None = None
    ) -> ExecutionResult:
        """One execution as it is now, or once it ends when that is within ``timeout_ms``.

        The server holds the request up to ``timeout_ms`` (at most 300000) for the execution
        to end (None: answers at once). Never raises for a Failed or Cancelled execution: its
        ``status``, ``error`` and ``failure_reason`` say so.
        """
        spec = RequestSpec(
            "GET",
            f"/api/executions/{id_of(execution_id)}",
            params=_query(ExecutionQuery, timeout_ms),
            hold=_hold(timeout_ms),
        )
        return self._model(ExecutionResult, spec)

    def batch_execute(
        self,
        task_id: str | UUID,
        inputs: Sequence[Any],
        max_concurrency: int = 10,
    ) -> BatchExecuteResponse:
        """Execute the definition once per input; the batch once every item has ended.

        At most ``max_concurrency`` items run at once. Item ids are their positions
        (``"0"``, ``"1"``...) and ``results`` are in input order. Waits until the batch is
        ``Completed`` whatever its items' ends: a failed item is a result with
        ``success=False`` (and ``error``, ``failure_reason``), never an exception; the
        counts are ``success_count``, ``failure_count`` and ``skipped_count``.
        """
        fields = {
            "task_id": id_of(task_id),
            "inputs": list(inputs),
            "max_concurrency": max_concurrency,
        }
        body = validate_input(BatchExecuteRequest, fields)
        return self._batch(id_of(task_id), body, None)

    def batch_execute_advanced(self, request: BatchExecuteRequest) -> BatchExecuteResponse:
        """Execute a batch in either form of :class:`~taskqueue.models.BatchExecuteRequest`.

        ``request.task_id`` names the definition (a ``ValueError`` without it); ``items``
        carry the caller's ids and per-item ``force_validation``; ``stop_on_first_error``
        skips the items not started once one fails; ``version`` picks an older version.
        With ``request.timeout_ms`` None, waits until the batch is ``Completed``; given, makes
        one request that waits up to that long and returns what the server answered (status
        ``Running`` if not done: wait for it with :meth:`get_batch`). Never raises for failed
        items. The request carries an ``Idempotency-Key``: a retry never runs it twice.
        """
        if request.task_id is None:
            raise ValueError(
                "batch_execute_advanced needs request.task_id: the Function definition to run"
            )
        body: dict[str, Any] = request.model_dump(mode="json", exclude_unset=True)
        body["task_id"] = str(request.task_id)
        return self._batch(str(request.task_id), body, request.timeout_ms)

    def get_batch(
        self, batch_id: str | UUID, timeout_ms: int | None = None
    ) -> BatchExecuteResponse:
        """One batch as it is now, or once it is ``Completed`` when that is within ``timeout_ms``.

        The server holds the request up to ``timeout_ms`` (at most 300000; None: answers at
        once). ``results`` lists every item in input order, those not ended yet too.
        """
        spec = RequestSpec(
            "GET",
            f"/api/batches/{id_of(batch_id)}",
            params=_query(BatchQuery, timeout_ms),
            hold=_hold(timeout_ms),
        )
        return self._model(BatchExecuteResponse, spec)

    def _batch(
        self, task_id: str, body: dict[str, Any], timeout_ms: int | None
    ) -> BatchExecuteResponse:
        """POST a batch; with ``timeout_ms`` None, the batch once Completed (long-polls)."""
        wait_ms = WAIT_SLICE_MS if timeout_ms is None else timeout_ms
        spec = dataclasses.replace(
            RequestSpec.create(
                f"/api/tasks/{task_id}/batch-execute", {**body, "timeout_ms": wait_ms}, "task"
            ),
            hold=_hold(wait_ms),
        )
        asked = time.monotonic()
        batch = self._model(BatchExecuteResponse, spec)
        while timeout_ms is None and batch.status != "Completed":
            _pace(asked)
            asked = time.monotonic()
            batch = self.get_batch(batch.batch_id, timeout_ms=WAIT_SLICE_MS)
        return batch

    def get_task_versions(self, task_id: str | UUID) -> list[TaskVersion]:
        """Every version of a Function definition, oldest first (its body and schemas).

        Version 1 is the definition as created; each change of its command, code or schemas
        made the next. ``get_task(task_id, version=N)`` shows the whole task as of version N.
        """
        found = self._model(
            TaskVersionList,
            RequestSpec("GET", f"/api/tasks/{id_of(task_id)}/versions", resource="task"),
        )
        return list(found.versions)
