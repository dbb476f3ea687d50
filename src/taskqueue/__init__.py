"""taskqueue: a durable task queue with an HTTP API, workers, an async-first SDK and a CLI.

Every exception of the SDK's hierarchy is importable from here (and from
:mod:`taskqueue.exceptions`), ``ConnectionError`` and ``TimeoutError`` too: they are aliases of
:class:`TaskQueueConnectionError` and :class:`TaskQueueTimeoutError` that shadow Python's
builtins in a module that imports them bare, and are left out of ``__all__`` so that
``from taskqueue import *`` never does.
"""

from taskqueue._version import __version__
from taskqueue.client import NOT_GIVEN, AsyncTaskQueueClient, NotGiven, TaskQueueClient
from taskqueue.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    RateLimitError,
    ServerError,
    TaskNotFoundError,
    TaskQueueConfigError,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
    ValidationError,
)
from taskqueue.errors import ConnectionError as ConnectionError
from taskqueue.errors import TimeoutError as TimeoutError
from taskqueue.models import (
    Attempt,
    BatchTaskUpdate,
    FailureReason,
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
    TaskResult,
    TaskStatus,
    TaskType,
    TaskUpdate,
    TaskUpdateItem,
    Worker,
    WorkerList,
    WorkerStatus,
)

__all__ = [
    "NOT_GIVEN",
    "APIError",
    "AsyncTaskQueueClient",
    "Attempt",
    "AuthenticationError",
    "AuthorizationError",
    "BatchTaskUpdate",
    "ConflictError",
    "FailureReason",
    "Health",
    "LogChunk",
    "LogPage",
    "NotFoundError",
    "NotGiven",
    "PayloadTooLargeError",
    "Project",
    "ProjectCreate",
    "ProjectNotFoundError",
    "ProjectUpdate",
    "RateLimitError",
    "ServerError",
    "Task",
    "TaskCreate",
    "TaskFilters",
    "TaskNotFoundError",
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
    "ValidationError",
    "Worker",
    "WorkerList",
    "WorkerStatus",
    "__version__",
]
