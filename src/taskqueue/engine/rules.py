"""The queue's rules, as plain functions with no I/O.

The store calls these inside its transactions to decide what a state change leads to; nothing
here touches a database, a clock or a process, so every rule is tested alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from taskqueue._backoff import equal_jitter_delay
from taskqueue.engine.lifecycle import allowed_targets
from taskqueue.models import TERMINAL_STATUSES, TaskPriority, TaskStatus

__all__ = [
    "MAX_RETRY_DELAY_S",
    "PRIORITY_RANK",
    "Fail",
    "InvalidTransition",
    "Retry",
    "after_failure",
    "backoff_delay",
    "can_transition",
    "check_transition",
    "dependency_block_reason",
    "is_terminal",
]

#: Integer rank stored beside each task so the claim orders by one indexed column.
PRIORITY_RANK: Final[dict[TaskPriority, int]] = {
    TaskPriority.LOW: 0,
    TaskPriority.NORMAL: 1,
    TaskPriority.HIGH: 2,
    TaskPriority.CRITICAL: 3,
}

#: No retry waits longer than this, however many attempts came before.
MAX_RETRY_DELAY_S: Final = 3600.0

#: What may follow what: derived from the named transitions of :mod:`.lifecycle`.
_ALLOWED: Final[dict[TaskStatus, frozenset[TaskStatus]]] = allowed_targets()


class InvalidTransition(Exception):
    """A state change the rules forbid."""

    def __init__(self, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"a {current.value} task cannot become {target.value}")
        self.current = current
        self.target = target


def is_terminal(status: TaskStatus) -> bool:
    """Whether no worker will ever run a task in this status again (unless retried by hand)."""
    return status in TERMINAL_STATUSES


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    """Whether a task may go from ``current`` to ``target``."""
    return target in _ALLOWED.get(current, frozenset())


def check_transition(current: TaskStatus, target: TaskStatus) -> None:
    """Raise :class:`InvalidTransition` unless ``current`` may become ``target``."""
    if not can_transition(current, target):
        raise InvalidTransition(current, target)


def backoff_delay(
    retry_number: int,
    base_delay: float,
    *,
    cap: float = MAX_RETRY_DELAY_S,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``retry_number`` (1 for the first retry).

    Exponential backoff with "equal jitter": the ideal delay ``base * 2**(n-1)`` (capped) is
    halved, and a random amount up to the other half is added. The result is always within
    ``[ideal / 2, ideal]``, so retries spread out but never come sooner than half the ideal.
    """
    return equal_jitter_delay(retry_number, base_delay, cap=cap, rng=rng)


@dataclass(frozen=True)
class Retry:
    """Decision: run the task again after ``delay`` seconds."""

    delay: float
    retries_used: int


@dataclass(frozen=True)
class Fail:
    """Decision: the task has failed for good."""


def after_failure(
    retries_used: int,
    retry_attempts: int,
    retry_delay: float,
    *,
    rng: random.Random | None = None,
) -> Retry | Fail:
    """What a failed attempt leads to: another try after a backoff, or Failed."""
    if retries_used >= retry_attempts:
        return Fail()
    used = retries_used + 1
    return Retry(delay=backoff_delay(used, retry_delay, rng=rng), retries_used=used)


def dependency_block_reason(dependency_id: str, dependency_status: TaskStatus) -> str | None:
    """Why a dependent can never run given its dependency's status, or None if it still may."""
    if dependency_status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        return f"dependency {dependency_id} ended {dependency_status.value}"
    return None
