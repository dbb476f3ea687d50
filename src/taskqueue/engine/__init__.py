"""The queue engine: the rules every state change follows, with no I/O."""

from taskqueue.engine.lifecycle import (
    RULES,
    RUN_FIELDS,
    Rule,
    Transition,
    delete_refusal,
    edit_refusal,
    project_delete_refusal,
    transition_refusal,
)
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
    "RULES",
    "RUN_FIELDS",
    "Fail",
    "InvalidTransition",
    "Retry",
    "Rule",
    "Transition",
    "after_failure",
    "backoff_delay",
    "can_transition",
    "check_transition",
    "delete_refusal",
    "dependency_block_reason",
    "edit_refusal",
    "is_terminal",
    "project_delete_refusal",
    "transition_refusal",
]
