"""A task's life: every transition by name, and the rules on what may change when.

The store applies each transition in one fenced statement (``store/transitions/``); the
status each statement writes, and the statuses it may start from, are read from
:data:`RULES`, so the table here is the one place that says what may follow what.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from taskqueue.models import TaskStatus

__all__ = [
    "RULES",
    "RUN_FIELDS",
    "Rule",
    "Transition",
    "allowed_targets",
    "delete_refusal",
    "edit_refusal",
    "project_delete_refusal",
    "transition_refusal",
]

_P, _R = TaskStatus.PENDING, TaskStatus.RUNNING
_C, _F, _X = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED


class Transition(str, Enum):
    """Every change of a task's status, each applied by one function of the store."""

    CREATE = "create"  # a new task enters the queue
    CLAIM = "claim"  # a worker takes a runnable task under a fresh lease
    COMPLETE = "complete"  # the attempt succeeded
    RETRY = "retry"  # the attempt failed (or its lease expired) and retries remain
    FAIL = "fail"  # the attempt failed and no retry remains
    HAND_BACK = "hand_back"  # the worker shut down: the task queues again, no retry spent
    CANCEL = "cancel"  # cancelled by request (a running command is stopped)
    CASCADE_CANCEL = "cascade_cancel"  # a dependency ended Failed or Cancelled
    REQUEUE = "requeue"  # a manual retry of a Failed or Cancelled task
    ADVANCE = "advance"  # a workflow phase succeeded: the workflow queues for its next phase
    APPROVE = "approve"  # the last phase of a workflow, a review gate, got its approvals
    REJECT = "reject"  # a review rejected a workflow that has no review round left


@dataclass(frozen=True)
class Rule:
    """The statuses a transition may start from, and the status it leads to."""

    sources: frozenset[TaskStatus]
    target: TaskStatus


#: What may follow what. Completed is final; a manual retry re-queues Failed and Cancelled.
RULES: Final[dict[Transition, Rule]] = {
    Transition.CREATE: Rule(frozenset(), _P),  # from nothing: the task did not exist
    Transition.CLAIM: Rule(frozenset({_P}), _R),
    Transition.COMPLETE: Rule(frozenset({_R}), _C),
    Transition.RETRY: Rule(frozenset({_R}), _P),
    Transition.FAIL: Rule(frozenset({_R}), _F),
    Transition.HAND_BACK: Rule(frozenset({_R}), _P),
    Transition.CANCEL: Rule(frozenset({_P, _R}), _X),
    Transition.CASCADE_CANCEL: Rule(frozenset({_P}), _X),
    Transition.REQUEUE: Rule(frozenset({_F, _X}), _P),
    # A workflow between its phases is Pending (waiting at a review gate, or to be claimed).
    Transition.ADVANCE: Rule(frozenset({_R}), _P),
    Transition.APPROVE: Rule(frozenset({_P}), _C),
    Transition.REJECT: Rule(frozenset({_P}), _F),
}

#: Fields that change how a task runs: they may change only while it is Pending.
RUN_FIELDS: Final = frozenset(
    {
        "command",
        "code",
        "input_schema",
        "output_schema",
        "validate_output",
        "priority",
        "timeout",
        "retry_attempts",
        "retry_delay",
        "environment",
        "working_directory",
        "queue",
        "run_at",
    }
)


def transition_refusal(transition: Transition, current: TaskStatus) -> str | None:
    """Why a task in ``current`` cannot take ``transition``, or None if it may."""
    rule = RULES[transition]
    if current in rule.sources:
        return None
    if transition is Transition.REQUEUE and current is _R:
        return "a Running task cannot be retried; cancel it first"
    return f"a {current.value} task cannot become {rule.target.value}"


def edit_refusal(current: TaskStatus, fields: Iterable[str]) -> str | None:
    """Why these fields of a task in ``current`` cannot change, or None if they may."""
    locked = sorted(set(fields) & RUN_FIELDS)
    if locked and current is not _P:
        return (
            f"{', '.join(locked)} can change only while the task is Pending; it is {current.value}"
        )
    return None


def delete_refusal(current: TaskStatus, unfinished_dependents: int) -> str | None:
    """Why a task cannot be deleted, or None if it may be."""
    if current is _R:
        return "the task is Running; cancel it before deleting it"
    if unfinished_dependents:
        return f"{unfinished_dependents} unfinished task(s) depend on this task"
    return None


def project_delete_refusal(
    tasks: int, cascade: bool, running: int, outside_dependent: tuple[str, str] | None
) -> str | None:
    """Why a project cannot be deleted, or None if it may be.

    ``outside_dependent`` is (an unfinished task outside the project, the task of the project
    it depends on), if there is one: deleting would leave it waiting for nothing.
    """
    if tasks and not cascade:
        return f"the project has {tasks} task(s); delete them first or pass cascade=true"
    if running:
        return f"{running} task(s) of the project are Running; cancel them first"
    if outside_dependent is not None:
        outside, inside = outside_dependent
        return (
            f"unfinished task {outside}, outside this project, depends on task "
            f"{inside} of it; cancel or delete that task first"
        )
    return None


def allowed_targets() -> dict[TaskStatus, frozenset[TaskStatus]]:
    """Every status and the statuses that may follow it, as :data:`RULES` says."""
    allowed: dict[TaskStatus, set[TaskStatus]] = {status: set() for status in (_P, _R, _C, _F, _X)}
    for rule in RULES.values():
        for source in rule.sources:
            allowed[source].add(rule.target)
    return {status: frozenset(targets) for status, targets in allowed.items()}
