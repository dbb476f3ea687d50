"""Wire models and enums, shared by the SDK and the server.

Everything here describes JSON on the wire: field names are snake_case, and every input model
also accepts the camelCase spelling of each field (``retryAttempts`` for ``retry_attempts``).
Input models forbid unknown fields so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, ClassVar, Union
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "TERMINAL_STATUSES",
    "Attempt",
    "BatchTaskCreate",
    "DependencyRef",
    "ErrorBody",
    "ErrorInfo",
    "FailureReason",
    "Health",
    "LogChunk",
    "LogPage",
    "Project",
    "ProjectCreate",
    "ProjectList",
    "ProjectUpdate",
    "Task",
    "TaskCreate",
    "TaskFilters",
    "TaskList",
    "TaskPriority",
    "TaskResult",
    "TaskStatus",
    "TaskType",
    "TaskUpdate",
    "Worker",
    "WorkerList",
    "WorkerStatus",
]


class TaskStatus(str, Enum):
    """Where a task is in its life. The first five are the queue's; the rest are workflow phases."""

    PENDING = "Pending"  # waiting to be claimed (or for its dependencies)
    RUNNING = "Running"  # a worker holds its lease and runs it
    COMPLETED = "Completed"  # ended with exit code 0 (terminal)
    FAILED = "Failed"  # ended in failure with no retries left (terminal)
    CANCELLED = "Cancelled"  # cancelled by a user or by a failed dependency (terminal)
    PLANNING = "Planning"  # workflow phase
    IMPLEMENTATION = "Implementation"  # workflow phase
    TEST_CREATION = "TestCreation"  # workflow phase
    TESTING = "Testing"  # workflow phase
    AI_REVIEW = "AIReview"  # workflow phase: waits for review approvals
    FINALIZED = "Finalized"  # workflow phase


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class FailureReason(str, Enum):
    """Why an attempt failed or a task ended without completing, beside the human message."""

    EXIT_CODE = "exit_code"  # the command exited with a non-zero code
    SIGNAL = "signal"  # the command was killed by a signal it did not get from taskqueue
    TIMEOUT = "timeout"  # the command ran past the task's timeout and was killed
    SPAWN_ERROR = "spawn_error"  # the command could not start (working directory, exec...)
    OUTPUT_INVALID = "output_invalid"  # the result file ($TASKQUEUE_OUTPUT) was not usable
    LEASE_EXPIRED = "lease_expired"  # the worker running it stopped responding
    HANDED_BACK = "handed_back"  # the worker shut down and gave the attempt back
    CANCELLED = "cancelled"  # cancelled by request
    DEPENDENCY_FAILED = "dependency_failed"  # a dependency ended Failed or Cancelled


class TaskPriority(str, Enum):
    """How urgent a task is: Critical runs before High, before Normal, before Low."""

    LOW = "Low"
    NORMAL = "Normal"
    HIGH = "High"
    CRITICAL = "Critical"


class TaskType(str, Enum):
    """What kind of task this is. Only Simple tasks run in this version."""

    SIMPLE = "Simple"  # one command, run once (with retries)
    WORKFLOW = "Workflow"  # walks its phases
    SCHEDULED = "Scheduled"  # spawns children on a schedule
    FUNCTION = "Function"  # a reusable definition executed with inputs


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: What a queue name may be (and at most 100 characters).
QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")

#: Largest size, in bytes of JSON, of a ``metadata`` or ``input`` value.
MAX_JSON_FIELD_BYTES = 256 * 1024


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_INT64 = range(-(2**63), 2**63)
_LONG_DIGITS = re.compile(r"\d{19}")


def _out_of_range_int(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if item not in _INT64:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_size(value: Any) -> Any:
    if value is None or value == {} or value == []:
        return value
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError("must be plain JSON: NaN and Infinity are not JSON numbers") from exc
    except (TypeError, RecursionError) as exc:  # pragma: no cover - jiter guards depth
        raise ValueError(f"is not serialisable JSON: {exc}") from exc
    if len(text) > MAX_JSON_FIELD_BYTES:
        raise ValueError(f"is {len(text)} bytes of JSON; the limit is {MAX_JSON_FIELD_BYTES}")
    # Only a run of 19+ digits can be an integer past 64 bits; walk the value only then.
    if _LONG_DIGITS.search(text) and _out_of_range_int(value):
        raise ValueError("has an integer that does not fit in 64 bits")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def _dependency(value: Any) -> Any:
    """One dependency: a non-empty string (task id or ref) or an object with task_id or ref."""
    if isinstance(value, str):
        if not 1 <= len(value) <= 200:
            raise ValueError("a dependency string must be 1 to 200 characters")
        return _no_nul(value)
    if isinstance(value, dict):
        unknown = set(value) - {"task_id", "taskId", "ref"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}; give task_id or ref")
        try:
            return DependencyRef.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg']}") from None
    if isinstance(value, DependencyRef):
        return value
    raise ValueError('a dependency is a task id, a ref, or {"task_id": ...} / {"ref": ...}')


Text = Annotated[str, AfterValidator(_no_nul)]
JSONValue = Annotated[Any, AfterValidator(_json_size)]
JSONObject = Annotated[dict[str, Any], AfterValidator(_json_size)]
UTCDateTime = Annotated[datetime, AfterValidator(_aware)]


class _Input(BaseModel):
    """Base of request bodies: camelCase accepted, unknown fields refused."""

    model_config: ClassVar[ConfigDict] = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_max_length=1_000_000,
        allow_inf_nan=False,
    )


class _Output(BaseModel):
    """Base of response bodies: lenient on input so newer servers do not break older SDKs."""

    model_config: ClassVar[ConfigDict] = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )


# --------------------------------------------------------------------------------------------
# Projects


class ProjectCreate(_Input):
    """Body of ``POST /api/projects``."""

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    description: Annotated[Text, Field(max_length=10_000)] | None = None
    status: Annotated[Text, Field(min_length=1, max_length=50)] = "Planning"
    due_date: UTCDateTime | None = None
    tags: Annotated[list[Annotated[Text, Field(max_length=100)]], Field(max_length=100)] = Field(
        default_factory=list
    )
    metadata: JSONObject = Field(default_factory=dict)


class ProjectUpdate(_Input):
    """Body of ``PUT /api/projects/{id}``: only the fields given change."""

    name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[Text, Field(max_length=10_000)] | None = None
    status: Annotated[Text, Field(min_length=1, max_length=50)] | None = None
    due_date: UTCDateTime | None = None
    tags: Annotated[list[Annotated[Text, Field(max_length=100)]], Field(max_length=100)] | None = (
        None
    )
    metadata: JSONObject | None = None


class Project(_Output):
    """A project: a named group of tasks."""

    id: UUID
    name: str
    description: str | None = None
    status: str = "Planning"
    due_date: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class ProjectList(_Output):
    """A page of projects."""

    projects: list[Project]
    total: int
    limit: int
    offset: int


# --------------------------------------------------------------------------------------------
# Tasks


class DependencyRef(_Input):
    """A dependency given as an object: an existing task's id, or a batch item's ``ref``."""

    task_id: UUID | None = None
    ref: Annotated[Text, Field(min_length=1, max_length=200)] | None = None


#: A dependency: a task id, a batch item's ``ref``, or ``{"task_id": ...}`` / ``{"ref": ...}``.
Dependency = Annotated[Union[str, DependencyRef], BeforeValidator(_dependency)]  # noqa: UP007


class TaskCreate(_Input):
    """Body of ``POST /api/tasks`` and each item of ``POST /api/tasks/batch``."""

    name: Annotated[Text, Field(min_length=1, max_length=255)]
    command: Annotated[Text, Field(min_length=1, max_length=65_536)]
    project_id: UUID | None = None
    description: Annotated[Text, Field(max_length=10_000)] = ""
    technical_specs: Annotated[Text, Field(max_length=100_000)] | None = None
    acceptance_criteria: Annotated[
        list[Annotated[Text, Field(max_length=10_000)]], Field(max_length=100)
    ] = Field(default_factory=list)
    task_type: TaskType = TaskType.SIMPLE
    priority: TaskPriority = TaskPriority.NORMAL
    dependencies: Annotated[list[Dependency], Field(max_length=1000)] = Field(default_factory=list)
    timeout: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] | None = None
    retry_attempts: Annotated[int, Field(ge=0, le=100)] = 3
    retry_delay: Annotated[float, Field(ge=0, le=24 * 3600)] = 30.0
    environment: Annotated[
        dict[str, Annotated[Text, Field(max_length=32_768)]], Field(max_length=256)
    ] = Field(default_factory=dict)
    working_directory: Annotated[Text, Field(min_length=1, max_length=4096)] | None = None
    metadata: JSONObject = Field(default_factory=dict)
    queue: Annotated[str, Field(min_length=1, max_length=100, pattern=QUEUE_RE.pattern)] = "default"
    run_at: UTCDateTime | None = None
    input: JSONValue = None
    ai_reviews_required: Annotated[int, Field(ge=0, le=100)] = 3
    ref: Annotated[Text, Field(min_length=1, max_length=200)] | None = None

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if len(key) > 256 or not _NAME_RE.match(key):
                raise ValueError(f"{key[:50]!r} is not a valid environment variable name")
        return value

    @field_validator("task_type")
    @classmethod
    def _runnable_type(cls, value: TaskType) -> TaskType:
        if value is not TaskType.SIMPLE:
            raise ValueError(f"task_type {value.value!r} is not supported yet; use 'Simple'")
        return value


class BatchTaskCreate(_Input):
    """Body of ``POST /api/tasks/batch``: later items may depend on earlier ones by ``ref``."""

    tasks: Annotated[list[TaskCreate], Field(min_length=1, max_length=5000)]


class TaskUpdate(_Input):
    """Body of ``PUT /api/tasks/{id}``.

    Descriptive fields may change at any time; fields that say how the task runs may change only
    while it is Pending.
    """

    name: Annotated[Text, Field(min_length=1, max_length=255)] | None = None
    description: Annotated[Text, Field(max_length=10_000)] | None = None
    technical_specs: Annotated[Text, Field(max_length=100_000)] | None = None
    acceptance_criteria: (
        Annotated[list[Annotated[Text, Field(max_length=10_000)]], Field(max_length=100)] | None
    ) = None
    metadata: JSONObject | None = None
    command: Annotated[Text, Field(min_length=1, max_length=65_536)] | None = None
    priority: TaskPriority | None = None
    timeout: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] | None = None
    retry_attempts: Annotated[int, Field(ge=0, le=100)] | None = None
    retry_delay: Annotated[float, Field(ge=0, le=24 * 3600)] | None = None
    environment: (
        Annotated[dict[str, Annotated[Text, Field(max_length=32_768)]], Field(max_length=256)]
        | None
    ) = None
    working_directory: Annotated[Text, Field(min_length=1, max_length=4096)] | None = None
    queue: Annotated[str, Field(min_length=1, max_length=100, pattern=QUEUE_RE.pattern)] | None = (
        None
    )
    run_at: UTCDateTime | None = None

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            TaskCreate._env_names(value)
        return value


class TaskResult(_Output):
    """What the last attempt of a task produced."""

    exit_code: int | None = None
    output: Any = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    duration_ms: int | None = None
    error: str | None = None
    failure_reason: FailureReason | None = None


class Task(_Output):
    """A unit of work and everything known about it."""

    id: UUID
    name: str
    command: str
    description: str = ""
    technical_specs: str | None = None
    acceptance_criteria: list[str] = Field(default_factory=list)
    project_id: UUID | None = None
    task_type: TaskType = TaskType.SIMPLE
    priority: TaskPriority = TaskPriority.NORMAL
    dependencies: list[UUID] = Field(default_factory=list)
    timeout: int | None = None
    retry_attempts: int = 3
    retry_delay: float = 30
    environment: dict[str, str] = Field(default_factory=dict)
    working_directory: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    status_reason: str | None = None
    failure_reason: FailureReason | None = None
    result: TaskResult | None = None
    phases: list[dict[str, Any]] = Field(default_factory=list)
    current_phase: TaskStatus | None = None
    ai_reviews_required: int = 3
    ai_reviews_completed: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    queue: str = "default"
    run_at: datetime | None = None
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent_id: UUID | None = None
    input: Any = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    version: int | None = None
    language: str | None = None
    code: str | None = None
    idempotency_key: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the task has reached Completed, Failed or Cancelled."""
        return self.status in TERMINAL_STATUSES


class TaskList(_Output):
    """A page of tasks."""

    tasks: list[Task]
    total: int
    limit: int
    offset: int


class TaskFilters(_Input):
    """Query parameters of ``GET /api/tasks``."""

    status: TaskStatus | None = None
    project_id: UUID | None = None
    priority: TaskPriority | None = None
    task_type: TaskType | None = None
    queue: Annotated[str, Field(max_length=100)] | None = None
    created_after: UTCDateTime | None = None
    created_before: UTCDateTime | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class Attempt(_Output):
    """One try of a task."""

    number: int
    worker_id: str | None = None
    status: TaskStatus
    started_at: datetime
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str | None = None
    failure_reason: FailureReason | None = None
    duration_ms: int | None = None


class LogChunk(_Output):
    """A piece of a task's output, in the order it was written."""

    seq: int
    attempt: int
    stream: str
    data: str


class LogPage(_Output):
    """Output of a task from an offset (``seq``), and where to continue from."""

    task_id: UUID
    chunks: list[LogChunk]
    next_offset: int
    complete: bool


class Health(_Output):
    """Answer of ``GET /api/health``."""

    status: str
    version: str
    database: str
    #: Live workers on the server's database, in any process or host (the ``active`` ones of
    #: ``GET /api/workers``), not only one the server itself runs.
    workers: int
    tasks: dict[str, int] = Field(default_factory=dict)


class WorkerStatus(str, Enum):
    """Whether a worker has been heard from lately (``stale``: silent for 30 s or more)."""

    ACTIVE = "active"
    STALE = "stale"


class Worker(_Output):
    """A worker process, as it registered and last reported."""

    id: str
    host: str
    pid: int
    concurrency: int
    queues: list[str]
    version: str
    running: int
    started_at: datetime
    last_seen: datetime
    status: WorkerStatus


class WorkerList(_Output):
    """Answer of ``GET /api/workers``."""

    workers: list[Worker]
    total: int


class ErrorInfo(_Output):
    """The ``error`` object of every error response."""

    type: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)
    request_id: str | None = None


class ErrorBody(_Output):
    """Every 4xx and 5xx response body: ``{"error": {...}}``."""

    error: ErrorInfo


# --------------------------------------------------------------------------------------------
# Many tasks changed at once


class TaskUpdateItem(_Input):
    """One item of ``PUT /api/tasks/batch``: a task, and its fields to change."""

    task_id: UUID
    changes: TaskUpdate


class BatchTaskUpdate(_Input):
    """Body of ``PUT /api/tasks/batch``: every update applies, or none does."""

    updates: Annotated[list[TaskUpdateItem], Field(min_length=1, max_length=5000)]


__all__ += ["BatchTaskUpdate", "TaskUpdateItem"]
