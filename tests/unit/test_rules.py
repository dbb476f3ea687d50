"""The queue's rules, alone: transitions, backoff, retry decisions, priorities."""

from __future__ import annotations

import random

import pytest

from taskqueue.engine import (
    PRIORITY_RANK,
    Fail,
    InvalidTransition,
    Retry,
    after_failure,
    backoff_delay,
    can_transition,
    check_transition,
    dependency_block_reason,
    is_terminal,
)
from taskqueue.engine.rules import MAX_RETRY_DELAY_S
from taskqueue.models import TaskPriority, TaskStatus

P, R, C, F, X = (
    TaskStatus.PENDING,
    TaskStatus.RUNNING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (P, R),
        (P, X),
        (R, C),
        (R, F),
        (R, X),
        (R, P),
        (F, P),
        (X, P),
        # A workflow waits at a review gate as Pending: approved at its last phase it is
        # Completed, rejected past its rounds Failed.
        (P, C),
        (P, F),
    ],
)
def test_allowed_transitions(current: TaskStatus, target: TaskStatus) -> None:
    assert can_transition(current, target)
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (C, P),
        (C, R),
        (C, X),
        (C, F),
        (F, R),
        (X, R),
        (X, C),
        (F, X),
        (P, P),
    ],
)
def test_forbidden_transitions(current: TaskStatus, target: TaskStatus) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition, match=f"a {current.value} task cannot become"):
        check_transition(current, target)


def test_terminal_statuses() -> None:
    assert {s for s in TaskStatus if is_terminal(s)} == {C, F, X}


def test_priority_ranks_order_critical_first() -> None:
    ordered = sorted(TaskPriority, key=lambda p: -PRIORITY_RANK[p])
    assert ordered == [
        TaskPriority.CRITICAL,
        TaskPriority.HIGH,
        TaskPriority.NORMAL,
        TaskPriority.LOW,
    ]


@pytest.mark.parametrize("retry", range(1, 30))
def test_backoff_stays_within_half_and_full_ideal_delay(retry: int) -> None:
    rng = random.Random(retry)
    ideal = min(MAX_RETRY_DELAY_S, 30 * 2 ** (retry - 1))
    delays = [backoff_delay(retry, 30, rng=rng) for _ in range(200)]
    assert all(ideal / 2 <= d <= ideal for d in delays)
    assert max(delays) - min(delays) > 0  # jittered, not constant


def test_backoff_grows_then_caps() -> None:
    low = random.Random(0)
    firsts = [backoff_delay(n, 1, rng=low) for n in range(1, 20)]
    assert firsts[0] <= 1
    assert firsts[3] >= 4
    assert max(firsts) <= MAX_RETRY_DELAY_S
    assert backoff_delay(10_000, 30) <= MAX_RETRY_DELAY_S  # no overflow on huge counts


def test_zero_delay_retries_at_once() -> None:
    assert backoff_delay(5, 0) == 0.0


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        backoff_delay(0, 30)


def test_after_failure_retries_until_the_budget_is_spent() -> None:
    rng = random.Random(1)
    decision = after_failure(0, 2, 10, rng=rng)
    assert isinstance(decision, Retry)
    assert decision.retries_used == 1
    assert 5 <= decision.delay <= 10
    second = after_failure(1, 2, 10, rng=rng)
    assert isinstance(second, Retry)
    assert 10 <= second.delay <= 20
    assert isinstance(after_failure(2, 2, 10, rng=rng), Fail)
    assert isinstance(after_failure(0, 0, 10), Fail)


def test_dependency_block_reason() -> None:
    assert dependency_block_reason("abc", C) is None
    assert dependency_block_reason("abc", P) is None
    assert dependency_block_reason("abc", R) is None
    assert dependency_block_reason("abc", F) == "dependency abc ended Failed"
    assert dependency_block_reason("abc", X) == "dependency abc ended Cancelled"
