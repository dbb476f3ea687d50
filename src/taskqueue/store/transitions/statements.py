"""The statements of the transitions, built from the engine's rules, and what they share.

Each ``UPDATE ... SET status`` here is made by :func:`_update` from a transition of
:data:`~taskqueue.engine.RULES`: the status it sets and the statuses it may start from come
from the table. The functions of :mod:`.running` and :mod:`.requested` execute them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskqueue.engine import (
    RULES,
    Transition,
    transition_refusal,
)
from taskqueue.models import FailureReason, TaskStatus
from taskqueue.store.codec import dumps
from taskqueue.store.errors import Conflict, NotFound
from taskqueue.store.sql import Tx

_R = TaskStatus.RUNNING.value


def _update(transition: Transition, assignments: str, where: str, *, guard: bool = True) -> str:
    """``UPDATE tasks SET status = <target>, ... WHERE ... AND status IN (<sources>)``.

    ``guard=False`` leaves the status condition out, for a ``where`` that already picks only
    rows in the transition's sources (the claim's pick walks the index of Pending tasks).
    """
    rule = RULES[transition]
    sources = ", ".join(f"'{s.value}'" for s in sorted(rule.sources, key=lambda s: s.value))
    condition = f"{where} AND status IN ({sources})" if guard else where
    return f"UPDATE tasks SET status = '{rule.target.value}', {assignments} WHERE {condition}"


def _check(transition: Transition, current: str) -> None:
    refusal = transition_refusal(transition, TaskStatus(current))
    if refusal is not None:
        raise Conflict(refusal)


_HELD = "id = ? AND lease_token = ?"
_CLEAR_LEASE = "lease_token = NULL, lease_expires_at = NULL"
_COMPLETE = _update(
    Transition.COMPLETE,
    f"{_CLEAR_LEASE}, updated_at = ?, finished_at = ?, result = ?, status_reason = NULL,"
    " failure_reason = NULL",
    _HELD,
)
_RETRY = _update(
    Transition.RETRY,
    f"{_CLEAR_LEASE}, retries_used = ?, run_at = ?, updated_at = ?, result = ?,"
    " status_reason = ?, failure_reason = ?",
    "id = ?",
)
_FAIL = _update(
    Transition.FAIL,
    f"{_CLEAR_LEASE}, updated_at = ?, finished_at = ?, result = ?, status_reason = ?,"
    " failure_reason = ?",
    "id = ?",
)
_HAND_BACK = _update(Transition.HAND_BACK, f"{_CLEAR_LEASE}, run_at = ?, updated_at = ?", _HELD)
_CANCEL = _update(
    Transition.CANCEL,
    f"{_CLEAR_LEASE}, status_reason = ?, failure_reason = ?, finished_at = ?, updated_at = ?",
    "id = ?",
)
_CASCADE_CANCEL = _update(
    Transition.CASCADE_CANCEL,
    "status_reason = ?, failure_reason = ?, finished_at = ?, updated_at = ?",
    "id = ?",
)
_REQUEUE = _update(
    Transition.REQUEUE,
    f"{_CLEAR_LEASE}, status_reason = NULL, failure_reason = NULL, retries_used = 0,"
    " run_at = ?, finished_at = NULL, updated_at = ?, waiting_on = ?",
    "id = ?",
)
_END_ATTEMPT = (
    "UPDATE attempts SET status = ?, finished_at = ?, exit_code = ?, error = ?,"
    " failure_reason = ?, duration_ms = ? WHERE task_id = ? AND number = ? AND finished_at IS NULL"
)
#: What the settling of a running attempt reads of its task.
_LEASE_COLUMNS = (
    "id, attempt, retries_used, retry_attempts, retry_delay, project_id, started_at, lease_token,"
    " batch_id, waiting_on, task_type"
)
#: Cancel a batch's items that have not started (its stop on the first error).
_SKIP = _update(
    Transition.CANCEL,
    "status_reason = ?, failure_reason = ?, finished_at = ?, updated_at = ?",
    f"batch_id = ? AND status = '{TaskStatus.PENDING.value}'",
)


@dataclass(frozen=True)
class Claimed:
    """A task a worker now holds the lease of, with what it needs to run it."""

    id: str
    name: str
    command: str
    environment: dict[str, str]
    working_directory: str | None
    timeout: int | None
    attempt: int
    input: Any
    lease_token: str
    project_id: str | None
    #: A code task's language and code (its ``command`` is then empty).
    language: str | None = None
    code: str | None = None
    #: The limits the task asked for (:meth:`taskqueue._limits.TaskLimits.stored`), or None.
    limits: dict[str, Any] | None = None
    #: The JSON Schema its output must match (a Function execution's), or None.
    output_schema: Any = None
    #: What its dependencies produced, by id and by ref (:func:`.dependencies.outputs`).
    dependencies: dict[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: success, or the typed reason and the message of its failure."""

    success: bool
    exit_code: int | None = None
    output: Any = None
    error: str | None = None
    reason: FailureReason | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    duration_ms: int | None = None


def locked_task_row(tx: Tx, task_id: str) -> Any:
    """The task's row (locked until the transaction ends), or raise :class:`NotFound`."""
    row = tx.execute(f"SELECT * FROM tasks WHERE id = ?{tx.dialect.lock()}", (task_id,)).fetchone()
    if row is None:
        raise NotFound("task", task_id)
    return row


# ---------------------------------------------------------------------------- attempts


def _end_attempt(row: Any, status: TaskStatus, outcome: Outcome, now: int) -> tuple[Any, ...]:
    """The parameters of :data:`_END_ATTEMPT` for the attempt ``row`` holds."""
    duration_ms = outcome.duration_ms
    if duration_ms is None and row["started_at"] is not None:
        duration_ms = (now - row["started_at"]) // 1000
    reason = outcome.reason.value if outcome.reason is not None else None
    return (
        status.value,
        now,
        outcome.exit_code,
        outcome.error,
        reason,
        duration_ms,
        row["id"],
        row["attempt"],
    )


def _result_json(outcome: Outcome) -> str:
    return dumps(
        {
            "exit_code": outcome.exit_code,
            "output": outcome.output,
            "stdout_tail": outcome.stdout_tail,
            "stderr_tail": outcome.stderr_tail,
            "duration_ms": outcome.duration_ms,
            "error": outcome.error,
            "failure_reason": outcome.reason.value if outcome.reason is not None else None,
        }
    )
