"""taskqueue: a durable task queue with an HTTP API, workers, an async-first SDK and a CLI.

Every exception of the SDK's hierarchy is importable from here (and from
:mod:`taskqueue.exceptions`), ``ConnectionError`` and ``TimeoutError`` too: they are aliases of
:class:`TaskQueueConnectionError` and :class:`TaskQueueTimeoutError` that shadow Python's
builtins in a module that imports them bare, and are left out of ``__all__`` so that
``from taskqueue import *`` never does.

The clients are imported on first use (:pep:`562`): ``taskqueue server`` and the models do not
pay for building them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskqueue._version import __version__
from taskqueue.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    ExecutionError,
    InvalidSignatureError,
    MalformedWebhookError,
    NotFoundError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    RateLimitError,
    ServerError,
    StaleTimestampError,
    TaskNotFoundError,
    TaskQueueConfigError,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
    ValidationError,
    WebhookVerificationError,
)
from taskqueue.errors import ConnectionError as ConnectionError
from taskqueue.errors import TimeoutError as TimeoutError
from taskqueue.languages import detect_language
from taskqueue.models import (
    Attempt,
    BatchExecuteItem,
    BatchExecuteRequest,
    BatchExecuteResponse,
    BatchExecuteResult,
    BatchTaskUpdate,
    CodeResult,
    DevelopmentWorkflow,
    ExecuteRequest,
    ExecutionResult,
    FailureReason,
    Health,
    LanguageInfo,
    LogChunk,
    LogPage,
    NewWebhook,
    NextRuns,
    PendingReview,
    PhaseSpec,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Review,
    ReviewLink,
    ReviewList,
    Schedule,
    ScheduleInfo,
    ScheduleRun,
    ScheduleRunList,
    Task,
    TaskCreate,
    TaskFilters,
    TaskLimits,
    TaskPhase,
    TaskPriority,
    TaskResult,
    TaskStatus,
    TaskType,
    TaskUpdate,
    TaskUpdateItem,
    TaskVersion,
    TaskVersionList,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
    Worker,
    WorkerList,
    WorkerStatus,
    WorkflowPhase,
    WorkflowRef,
)

if TYPE_CHECKING:
    from taskqueue.client import NOT_GIVEN, AsyncTaskQueueClient, NotGiven, TaskQueueClient

__all__ = [
    "NOT_GIVEN",
    "APIError",
    "AsyncTaskQueueClient",
    "Attempt",
    "AuthenticationError",
    "AuthorizationError",
    "BatchExecuteItem",
    "BatchExecuteRequest",
    "BatchExecuteResponse",
    "BatchExecuteResult",
    "BatchTaskUpdate",
    "CodeResult",
    "ConflictError",
    "DevelopmentWorkflow",
    "ExecuteRequest",
    "ExecutionError",
    "ExecutionResult",
    "FailureReason",
    "Health",
    "InvalidSignatureError",
    "LanguageInfo",
    "LogChunk",
    "LogPage",
    "MalformedWebhookError",
    "NewWebhook",
    "NextRuns",
    "NotFoundError",
    "NotGiven",
    "PayloadTooLargeError",
    "PendingReview",
    "PhaseSpec",
    "Project",
    "ProjectCreate",
    "ProjectNotFoundError",
    "ProjectUpdate",
    "RateLimitError",
    "Review",
    "ReviewLink",
    "ReviewList",
    "Schedule",
    "ScheduleInfo",
    "ScheduleRun",
    "ScheduleRunList",
    "ServerError",
    "StaleTimestampError",
    "Task",
    "TaskCreate",
    "TaskFilters",
    "TaskLimits",
    "TaskNotFoundError",
    "TaskPhase",
    "TaskPriority",
    "TaskQueueClient",
    "TaskQueueConfigError",
    "TaskQueueConnectionError",
    "TaskQueueError",
    "TaskQueueTimeoutError",
    "TaskResult",
    "TaskStatus",
    "TaskType",
    "TaskUpdate",
    "TaskUpdateItem",
    "TaskVersion",
    "TaskVersionList",
    "ValidationError",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookList",
    "WebhookVerificationError",
    "Worker",
    "WorkerList",
    "WorkerStatus",
    "WorkflowPhase",
    "WorkflowRef",
    "__version__",
    "detect_language",
]


_CLIENT_NAMES = frozenset({"NOT_GIVEN", "AsyncTaskQueueClient", "NotGiven", "TaskQueueClient"})


def __getattr__(name: str) -> Any:
    """Import a client (or ``NOT_GIVEN``) the first time it is asked for."""
    if name not in _CLIENT_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("taskqueue.client"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, those imported on first use among them."""
    return sorted({*globals(), *__all__})
