"""Function tasks on the wire: executing a definition with an input, one at a time or in batches.

A Function task (``task_type: "Function"``) is a definition: a body (a command, or code in a
language), an ``input_schema`` and an ``output_schema`` (JSON Schema, draft 2020-12) and a
``version``. It never runs by itself: ``POST /api/tasks/{id}/execute`` validates an input
against the schema and runs a child Simple task of the definition's version, whose output is
validated against ``output_schema``. See ``docs/functions.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskqueue._enums import FailureReason, TaskStatus
from taskqueue._fields import JSONValue, Omittable, StrictInteger, Text, WireUUID
from taskqueue._input import _Input
from taskqueue._responses import OutputModel as _Output

__all__ = [
    "MAX_BATCH_ITEMS",
    "MAX_EXECUTE_WAIT_MS",
    "BatchExecuteItem",
    "BatchExecuteRequest",
    "BatchExecuteResponse",
    "BatchExecuteResult",
    "BatchQuery",
    "ExecuteRequest",
    "ExecutionQuery",
    "ExecutionResult",
    "TaskVersion",
    "TaskVersionList",
]

#: The longest a request may wait for an execution or a batch to end, in milliseconds.
MAX_EXECUTE_WAIT_MS = 300_000
#: The most items one batch may hold.
MAX_BATCH_ITEMS = 10_000
#: How long ``execute`` and ``batch-execute`` wait when no ``timeout_ms`` is given.
DEFAULT_EXECUTE_WAIT_MS = 30_000

Version = Annotated[int, Field(ge=1, le=2**31 - 1), StrictInteger]
WaitMs = Annotated[int, Field(ge=0, le=MAX_EXECUTE_WAIT_MS), StrictInteger]
Concurrency = Annotated[int, Field(ge=1, le=1000), StrictInteger]
ItemId = Annotated[Text, Field(min_length=1, max_length=200)]


# --------------------------------------------------------------------------------------------
# Requests


class ExecuteRequest(_Input):
    """Body of ``POST /api/tasks/{id}/execute``.

    ``input`` is validated against the definition's ``input_schema``; ``version`` picks an older
    version (default: the current one); the request waits up to ``timeout_ms`` for the
    execution to end (then answers 202 with the execution to poll); ``force_validation``
    validates the output even when the definition trusts it (``validate_output: false``).
    """

    input: JSONValue = None
    version: Version | None = None
    timeout_ms: WaitMs | None = None
    force_validation: bool = False


class BatchExecuteItem(_Input):
    """One item of an advanced batch: the caller's ``id`` for it, its input, its validation."""

    id: ItemId | None = None
    input: JSONValue = None
    force_validation: bool = False


def _inputs_or_items(model: str, data: Any) -> None:
    if isinstance(data, dict) and ("inputs" in data) == ("items" in data):
        error = PydanticCustomError(
            "batch_form", "give either inputs (the simple form) or items (the advanced form)"
        )
        raise ValidationError.from_exception_data(
            model, [InitErrorDetails(type=error, loc=(), input=data)]
        )


#: The body is one of two forms: ``inputs`` (simple) or ``items`` (advanced).
_BATCH_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"required": ["inputs"], "not": {"required": ["items"]}},
        {"required": ["items"], "not": {"required": ["inputs"]}},
    ]
}


class BatchExecuteRequest(_Input):
    """Body of ``POST /api/tasks/{id}/batch-execute``, in either of its two forms.

    The simple form gives ``inputs`` (item ids are their positions, ``"0"``, ``"1"``...); the
    advanced form gives ``items`` with the caller's ids and per-item ``force_validation``.
    At most ``max_concurrency`` items run at once, across every worker; with
    ``stop_on_first_error`` the first failed item cancels the items not started. ``task_id``,
    when given, must be the definition the path names. The request waits up to ``timeout_ms``
    for the batch to end (then answers 202 with the batch to poll).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(json_schema_extra=_BATCH_SCHEMA)

    task_id: WireUUID | None = None
    inputs: Omittable[
        Annotated[list[JSONValue], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    ] = None
    items: Omittable[
        Annotated[list[BatchExecuteItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    ] = None
    max_concurrency: Concurrency = 10
    stop_on_first_error: bool = False
    timeout_ms: WaitMs | None = None
    version: Version | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_form(cls, data: Any) -> Any:
        _inputs_or_items(cls.__name__, data)
        return data

    def item_list(self) -> list[BatchExecuteItem]:
        """The items of either form, each with its id (its position, for the simple form)."""
        if self.items is not None:
            return [
                item if item.id is not None else item.model_copy(update={"id": str(i)})
                for i, item in enumerate(self.items)
            ]
        return [
            BatchExecuteItem(id=str(i), input=value) for i, value in enumerate(self.inputs or [])
        ]


class ExecutionQuery(_Input):
    """Query of ``GET /api/executions/{id}``: how long to wait for the execution to end."""

    timeout_ms: WaitMs = 0


class BatchQuery(_Input):
    """Query of ``GET /api/batches/{id}``: how long to wait for the batch to end."""

    timeout_ms: WaitMs = 0


# --------------------------------------------------------------------------------------------
# Responses


class ExecutionResult(_Output):
    """One execution of a Function definition: its status, output and error.

    ``execution_id`` is the id of the child task that ran it (``GET /api/tasks/{id}`` shows
    it whole); ``status`` is that task's: Pending or Running until it ends.
    """

    execution_id: UUID
    task_id: UUID
    version: int
    status: TaskStatus
    input: Any = None
    output: Any = None
    error: str | None = None
    failure_reason: FailureReason | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    attempts: int = 0
    #: Whether the output was checked against ``output_schema``.
    validated: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def success(self) -> bool:
        """Whether the execution Completed (its output matched the schema, where checked)."""
        return self.status is TaskStatus.COMPLETED


class BatchExecuteResult(_Output):
    """One item of a batch, in input order, with the caller's ``id``."""

    id: str
    index: int
    execution_id: UUID
    status: TaskStatus
    success: bool
    #: Cancelled before it started, because an earlier item failed (``stop_on_first_error``).
    skipped: bool = False
    output: Any = None
    error: str | None = None
    failure_reason: FailureReason | None = None
    duration_ms: int | None = None
    attempts: int = 0


class BatchExecuteResponse(_Output):
    """A batch: its counts and every item's result, in input order."""

    batch_id: UUID
    task_id: UUID
    version: int
    #: ``Running`` until every item has ended, then ``Completed`` (whatever the items' ends).
    status: Literal["Running", "Completed"]
    total_items: int
    success_count: int
    failure_count: int
    skipped_count: int
    max_concurrency: int
    stop_on_first_error: bool
    created_at: datetime
    results: list[BatchExecuteResult]


class TaskVersion(_Output):
    """One version of a Function definition: its body and schemas as they were."""

    task_id: UUID
    version: int
    command: str
    language: str | None = None
    code: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    created_at: datetime


class TaskVersionList(_Output):
    """Every version of a Function definition, oldest first."""

    task_id: UUID
    versions: list[TaskVersion]
    total: int
