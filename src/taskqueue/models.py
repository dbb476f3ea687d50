"""Wire models and enums, shared by the SDK and the server.

Everything here describes JSON on the wire: field names are snake_case, and every input model
also accepts the camelCase spelling of each field (``retryAttempts`` for ``retry_attempts``).
Input models forbid unknown fields so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from taskqueue._enums import (
    QUEUE_RE,
    TERMINAL_STATUSES,
    FailureReason,
    TaskPriority,
    TaskStatus,
    TaskType,
    WorkerStatus,
)
from taskqueue._fields import MAX_JSON_FIELD_BYTES, RESERVED_ENVIRONMENT
from taskqueue._limits import TaskLimits
from taskqueue._requests import (
    BatchTaskCreate,
    BatchTaskItem,
    BatchTaskUpdate,
    DependencyRef,
    KeyCreate,
    KeyRotate,
    ProjectCreate,
    ProjectUpdate,
    TaskCreate,
    TaskFilters,
    TaskIdRef,
    TaskUpdate,
    TaskUpdateItem,
)
from taskqueue._responses import OutputModel as _Output
from taskqueue._schedule_models import (
    NextRuns,
    Schedule,
    ScheduleInfo,
    ScheduleRun,
    ScheduleRunList,
)
from taskqueue._workflow_models import (
    DevelopmentWorkflow,
    PendingReview,
    PhaseSpec,
    Review,
    ReviewCreate,
    ReviewLink,
    ReviewLinkCreate,
    ReviewList,
    TaskPhase,
    TaskResult,
    WorkflowCreate,
    WorkflowList,
    WorkflowPhase,
    WorkflowRef,
)

__all__ = [
    "MAX_JSON_FIELD_BYTES",
    "QUEUE_RE",
    "RESERVED_ENVIRONMENT",
    "TERMINAL_STATUSES",
    "ApiKey",
    "ApiKeyList",
    "Attempt",
    "AttemptList",
    "BatchExecuteItem",
    "BatchExecuteRequest",
    "BatchExecuteResponse",
    "BatchExecuteResult",
    "BatchTaskCreate",
    "BatchTaskItem",
    "BatchTaskUpdate",
    "CodeResult",
    "DependencyRef",
    "DevelopmentWorkflow",
    "ErrorBody",
    "ErrorInfo",
    "ExecuteRequest",
    "ExecutionResult",
    "FailureReason",
    "Health",
    "KeyCreate",
    "KeyRotate",
    "LanguageInfo",
    "LanguageList",
    "LogChunk",
    "LogEvent",
    "LogPage",
    "NewApiKey",
    "NewWebhook",
    "NextRuns",
    "PendingReview",
    "PhaseSpec",
    "Project",
    "ProjectCreate",
    "ProjectList",
    "ProjectUpdate",
    "Review",
    "ReviewCreate",
    "ReviewLink",
    "ReviewLinkCreate",
    "ReviewList",
    "Schedule",
    "ScheduleInfo",
    "ScheduleRun",
    "ScheduleRunList",
    "Task",
    "TaskBatch",
    "TaskCreate",
    "TaskFilters",
    "TaskIdRef",
    "TaskLimits",
    "TaskList",
    "TaskPhase",
    "TaskPriority",
    "TaskResult",
    "TaskStatus",
    "TaskType",
    "TaskUpdate",
    "TaskUpdateItem",
    "TaskVersion",
    "TaskVersionList",
    "Webhook",
    "WebhookCreate",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookList",
    "WebhookRedeliver",
    "WebhookRotate",
    "WebhookUpdate",
    "Worker",
    "WorkerList",
    "WorkerStatus",
    "WorkflowCreate",
    "WorkflowList",
    "WorkflowPhase",
    "WorkflowRef",
]


# --------------------------------------------------------------------------------------------
# Projects


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
# API keys


class ApiKey(_Output):
    """An API key as the API shows it: never its secret (shown once, at creation)."""

    id: UUID
    name: str
    prefix: str
    kind: Literal["bearer", "pair"]
    scopes: list[str]
    projects: list[UUID] | None = None
    rate_limit: float | None = None
    burst: int | None = None
    status: Literal["active", "revoked", "expired"]
    expires_at: datetime | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class NewApiKey(ApiKey):
    """A key just made, with its secret: ``key`` (bearer), or ``public_key`` and ``secret_key``."""

    key: str | None = None
    public_key: str | None = None
    secret_key: str | None = None
    #: The key this one replaces (made by a rotation).
    replaces: UUID | None = None


class ApiKeyList(_Output):
    """Every API key."""

    keys: list[ApiKey]
    total: int


# --------------------------------------------------------------------------------------------
# Tasks


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
    #: A Workflow task's phases and where each is (empty for other tasks).
    phases: list[TaskPhase] = Field(default_factory=list)
    #: The phase a Workflow task is in (its last one once it ended); None for other tasks.
    current_phase: str | None = None
    ai_reviews_required: int = 3
    #: Approvals the open review gate has (it resets each round).
    ai_reviews_completed: int = 0
    #: The project workflow a Workflow task walks (None: phases given inline, or the default).
    development_workflow: WorkflowRef | None = None
    #: How many times a review sent the workflow back, and how many times it may.
    review_rounds: int = 0
    max_review_rounds: int | None = None
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
    #: The limits the task asked for (those left out are not listed); None: none asked.
    limits: dict[str, int | bool] | None = None
    idempotency_key: str | None = None
    #: A Scheduled task's schedule and when it fires next (None for other tasks).
    schedule: ScheduleInfo | None = None

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


class TaskBatch(_Output):
    """Answer of ``POST /api/tasks/batch``: the tasks created, in the order given."""

    tasks: list[Task]


class Attempt(_Output):
    """One try of a task."""

    number: int
    worker_id: str | None = None
    status: TaskStatus
    #: The workflow phase the attempt ran (None for other tasks).
    phase: str | None = None
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


class LogEvent(_Output):
    """The last line of a followed log (``follow=true``): the task ended, or the wait timed out."""

    event: Literal["end", "timeout"]
    status: TaskStatus
    next_offset: int


class AttemptList(_Output):
    """Answer of ``GET /api/tasks/{id}/attempts``."""

    task_id: UUID
    attempts: list[Attempt]


class Health(_Output):
    """Answer of ``GET /api/health``."""

    status: str
    version: str
    database: str
    #: Live workers on the server's database, in any process or host (the ``active`` ones of
    #: ``GET /api/workers``), not only one the server itself runs.
    workers: int
    tasks: dict[str, int] = Field(default_factory=dict)


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


class LanguageInfo(_Output):
    """A language code tasks may be written in, and who offers it (``GET /api/languages``)."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    extensions: list[str] = Field(default_factory=list)
    #: The toolchain versions live workers reported (empty: no live worker offers it).
    versions: list[str] = Field(default_factory=list)
    #: How many live workers offer it.
    workers: int = 0


class LanguageList(_Output):
    """Answer of ``GET /api/languages``: every language of the table, offered or not."""

    languages: list[LanguageInfo]
    total: int


class CodeResult(_Output):
    """How a code task ended (the result of ``execute_code``): its output and exit code.

    ``stdout`` and ``stderr`` are the output stored of the last attempt (up to the worker's
    output limit, truncated in the middle beyond it).
    """

    job_id: UUID
    language: str
    status: TaskStatus
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    failure_reason: FailureReason | None = None

    @property
    def duration(self) -> float | None:
        """How long the code ran, in seconds."""
        return None if self.duration_ms is None else self.duration_ms / 1000

    @property
    def success(self) -> bool:
        """Whether it exited 0."""
        return self.status is TaskStatus.COMPLETED


class ErrorInfo(_Output):
    """The ``error`` object of every error response."""

    type: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)
    request_id: str | None = None


class ErrorBody(_Output):
    """Every 4xx and 5xx response body: ``{"error": {...}}``."""

    error: ErrorInfo


# Webhook subscriptions (defined beside their validation, re-exported here with the rest).
# Function definitions: executions, batches and versions.
from taskqueue._function_models import (  # noqa: E402
    BatchExecuteItem,
    BatchExecuteRequest,
    BatchExecuteResponse,
    BatchExecuteResult,
    ExecuteRequest,
    ExecutionResult,
    TaskVersion,
    TaskVersionList,
)
from taskqueue._webhook_models import (  # noqa: E402
    NewWebhook,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
    WebhookRedeliver,
    WebhookRotate,
    WebhookUpdate,
)
