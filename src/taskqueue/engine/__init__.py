"""The queue engine: the rules every state change follows."""

from taskqueue.engine.rules import (
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

__all__ = [
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
