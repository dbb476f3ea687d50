"""The enumerations of the wire format, shared by the SDK and the server."""

from __future__ import annotations

import re
from enum import Enum

__all__ = [
    "QUEUE_RE",
    "TERMINAL_STATUSES",
    "FailureReason",
    "TaskPriority",
    "TaskStatus",
    "TaskType",
    "WorkerStatus",
]


class _Value(str, Enum):
    """An enumeration whose members print as their wire value.

    ``Completed``, not ``TaskStatus.COMPLETED``, in ``print``, ``str()`` and f-strings alike.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class TaskStatus(_Value):
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


class FailureReason(_Value):
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
    REVIEW_REJECTED = "review_rejected"  # a review rejected a workflow past its rounds
    CPU_LIMIT = "cpu_limit"  # the command used up its CPU seconds (SIGXCPU, or past them)
    MEMORY_LIMIT = "memory_limit"  # an allocation failed against its address-space limit
    FILE_SIZE_LIMIT = "file_size_limit"  # it wrote past its file-size limit (SIGXFSZ)
    PROCESS_LIMIT = "process_limit"  # it could not start a process past its process limit
    OPEN_FILES_LIMIT = "open_files_limit"  # it could not open a file past its open-files limit
    ISOLATION_UNAVAILABLE = "isolation_unavailable"  # the worker cannot isolate as asked


class TaskPriority(_Value):
    """How urgent a task is: Critical runs before High, before Normal, before Low."""

    LOW = "Low"
    NORMAL = "Normal"
    HIGH = "High"
    CRITICAL = "Critical"


class TaskType(_Value):
    """What kind of task this is."""

    SIMPLE = "Simple"  # one command, run once (with retries)
    WORKFLOW = "Workflow"  # walks its phases
    SCHEDULED = "Scheduled"  # spawns children on a schedule
    FUNCTION = "Function"  # a reusable definition executed with inputs


#: What a queue name may be (and at most 100 characters).
QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class WorkerStatus(_Value):
    """Whether a worker has been heard from lately (``stale``: silent for 30 s or more)."""

    ACTIVE = "active"
    STALE = "stale"
