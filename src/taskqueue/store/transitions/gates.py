"""Workflow transitions that move a workflow on: a phase's success, review gates, verdicts.

A gate waits with ``waiting_on`` 1 (:data:`.phases.AT_GATE`), so no worker claims it; only a
review moves it on (:func:`review`): enough approvals pass it, one rejection sends the
workflow back to the gate's ``on_reject`` phase, or fails it when no review round is left.
"""

from __future__ import annotations

from typing import Any

from taskqueue.engine import Transition
from taskqueue.engine.workflows import index_of, wire_status
from taskqueue.models import FailureReason, TaskStatus
from taskqueue.store import dependencies
from taskqueue.store.codec import dumps, from_us, loads
from taskqueue.store.errors import Conflict
from taskqueue.store.ids import new_id
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.transitions.phases import (
    AT_GATE,
    COMPLETED,
    PENDING,
    PHASES,
    RUNNING,
    WORKFLOW,
    emit,
    round_of,
)
from taskqueue.store.transitions.requested import cascade_cancel, settle_batches
from taskqueue.store.transitions.statements import _CLEAR_LEASE, _HELD, _update, locked_task_row

__all__ = ["not_waiting", "open_gate", "review", "review_to_dict", "succeeded"]

_ADVANCE = _update(
    Transition.ADVANCE,
    f"{_CLEAR_LEASE}, current_phase = ?, language = ?, phases = ?, retries_used = 0, run_at = ?,"
    " updated_at = ?, result = ?, waiting_on = ?, ai_reviews_completed = ?,"
    " status_reason = NULL, failure_reason = NULL",
    _HELD,
)
_APPROVE = _update(
    Transition.APPROVE,
    "phases = ?, ai_reviews_completed = ?, waiting_on = 0, updated_at = ?, finished_at = ?,"
    " status_reason = NULL, failure_reason = NULL",
    "id = ?",
)
_REJECT = _update(
    Transition.REJECT,
    "phases = ?, waiting_on = 0, updated_at = ?, finished_at = ?, status_reason = ?,"
    " failure_reason = ?",
    "id = ?",
)
#: A Pending workflow moves to another phase (a gate passed, or a rejection sent it back).
_MOVE = (
    "UPDATE tasks SET current_phase = ?, language = ?, phases = ?, waiting_on = ?, run_at = ?,"
    " updated_at = ?,"
    " ai_reviews_completed = ?, review_rounds = ?, retries_used = 0 WHERE id = ?"
    f" AND status = '{PENDING}'"
)
_APPROVALS = "UPDATE tasks SET ai_reviews_completed = ?, updated_at = ? WHERE id = ?"


def succeeded(tx: Tx, fx: Effects, row: Any, result: str, now: int) -> bool:
    """A run phase's attempt succeeded: on to the next phase. True if it was the last.

    The attempt itself is ended by the caller. At the last phase the caller completes the
    task (Running → Completed) as any task's success.
    """
    phases = loads(row["phases"])
    i = index_of(phases, row["current_phase"])
    phases[i].update(status=COMPLETED, finished_at=now, result=loads(result))
    emit(tx, fx, "task.phase_completed", row, now, phase=phases[i]["name"], round=round_of(row))
    return _enter(tx, fx, row, phases, i + 1, now, running=True, result=result)


def _enter(
    tx: Tx,
    fx: Effects,
    row: Any,
    phases: list[dict[str, Any]],
    i: int,
    now: int,
    *,
    running: bool,
    result: str | None = None,
    approvals: int | None = None,
    rounds: int | None = None,
) -> bool:
    """Go on to phase ``i`` (through gates that need no approval). True if none is left.

    ``running``: the workflow's attempt just ended (it holds the lease); else it is Pending.
    When no phase is left, a running workflow is completed by the caller; a Pending one
    (its last phase a gate) is completed here.
    """
    review_rounds = int(row["review_rounds"] or 0) if rounds is None else rounds
    if approvals is None:
        approvals = int(row["ai_reviews_completed"])
    waiting = 0
    while i < len(phases) and phases[i]["review"]:
        gate = phases[i]
        gate.update(status=RUNNING, started_at=now, finished_at=None)
        data = {"phase": gate["name"], "round": review_rounds + 1}
        emit(tx, fx, "task.phase_started", row, now, **data)
        emit(tx, fx, "task.review_requested", row, now, **data,
               reviews_required=gate["reviews_required"])  # fmt: skip
        if gate["reviews_required"] > 0:
            waiting = AT_GATE
            approvals = 0
            break
        gate.update(status=COMPLETED, finished_at=now)
        emit(tx, fx, "task.phase_completed", row, now, **data)
        i += 1
    fx.changed.add(row["id"])
    if i >= len(phases):
        if running:
            tx.execute(PHASES, (dumps(phases), row["id"]))
            return True
        _complete_pending(tx, fx, row, phases, approvals, now)
        return True
    if not phases[i]["review"]:
        phases[i].update(status=PENDING, started_at=None, finished_at=None)
        fx.wake = True
    # The task's language is its next run phase's: workers are picked by it (a gate keeps
    # the one before, it is never claimed).
    name, language = phases[i]["name"], phases[i]["language"]
    if phases[i]["review"]:
        language = row["language"]
    if running:
        tx.execute(
            _ADVANCE,
            (name, language, dumps(phases), now, now, result, waiting, approvals, row["id"],
             row["lease_token"]),
        )  # fmt: skip
    else:
        tx.execute(
            _MOVE,
            (name, language, dumps(phases), waiting, now, now, approvals, review_rounds,
             row["id"]),
        )  # fmt: skip
    return False


def _complete_pending(
    tx: Tx, fx: Effects, row: Any, phases: list[dict[str, Any]], approvals: int, now: int
) -> None:
    """Pending → Completed: the workflow's last phase, a review gate, passed."""
    tx.execute(_APPROVE, (dumps(phases), approvals, now, now, row["id"]))
    emit(tx, fx, "task.completed", row, now, attempt=row["attempt"], exit_code=None,
           duration_ms=None)  # fmt: skip
    dependencies.release_dependents(tx, fx, [row["id"]])
    settle_batches(tx, fx, [(row, COMPLETED)], now)


# ---------------------------------------------------------------------------- review gates


def open_gate(row: Any) -> tuple[int, dict[str, Any]] | None:
    """The review gate the workflow waits at (its index and phase), or None."""
    if row["task_type"] != WORKFLOW or row["status"] != PENDING:
        return None
    phases = loads(row["phases"])
    i = index_of(phases, row["current_phase"])
    phase = phases[i]
    if phase["review"] and phase["status"] == RUNNING:
        return i, phase
    return None


def not_waiting(row: Any) -> Conflict:
    """The refusal of a review, or a link, for a task that waits at no gate."""
    task_id = row["id"]
    if row["task_type"] != WORKFLOW:
        kind = row["task_type"]
        return Conflict(f"task {task_id} is a {kind} task: only Workflow tasks are reviewed")
    status = wire_status(row["task_type"], row["status"], row["current_phase"])
    return Conflict(f"task {task_id} is not waiting for a review: it is {status}")


def review_to_dict(row: Any) -> dict[str, Any]:
    """A review row as its wire dict."""
    return {
        "id": row["id"],
        "task_id": row["task_id"],
        "phase": row["phase"],
        "round": row["round"],
        "verdict": row["verdict"],
        "reviewer": row["reviewer"],
        "comment": row["comment"],
        "via": row["via"],
        "created_at": from_us(row["created_at"]),
    }


def review(
    tx: Tx,
    fx: Effects,
    task_id: str,
    verdict: str,
    reviewer: str,
    comment: str,
    now: int,
    via: str = "api",
    expect: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Record a verdict on the gate the workflow waits at, and act on it.

    Enough approvals pass the gate; one rejection sends the workflow back to the gate's
    ``on_reject`` phase, or fails it when no round is left. ``expect``: the (phase, round)
    the verdict is for (a link's); another gate, or a later round, refuses it.
    """
    row = locked_task_row(tx, task_id)
    gate = open_gate(row)
    if gate is None:
        raise not_waiting(row)
    i, phase = gate
    round_number = round_of(row)
    if expect is not None and expect != (phase["name"], round_number):
        raise Conflict(f"the review of {expect[0]} in round {expect[1]} is over")
    seen = tx.execute(
        "SELECT 1 FROM reviews WHERE task_id = ? AND phase = ? AND round = ? AND reviewer = ?",
        (task_id, phase["name"], round_number, reviewer),
    ).fetchone()
    if seen is not None:
        raise Conflict(
            f"{reviewer} already reviewed {phase['name']} in round {round_number}: a reviewer"
            " counts once per round"
        )
    stored = {
        "id": new_id(),
        "task_id": task_id,
        "phase": phase["name"],
        "round": round_number,
        "verdict": verdict,
        "reviewer": reviewer,
        "comment": comment,
        "via": via,
        "created_at": now,
    }
    tx.execute(
        "INSERT INTO reviews (id, task_id, phase, round, verdict, reviewer, comment, via,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tuple(stored.values()),
    )
    approvals = int(row["ai_reviews_completed"]) + (verdict == "approve")
    required = int(phase["reviews_required"])
    emit(tx, fx, "task.reviewed", row, now, phase=phase["name"], round=round_number,
           verdict=verdict, reviewer=reviewer, approvals=approvals,
           reviews_required=required)  # fmt: skip
    fx.changed.add(task_id)
    phases = loads(row["phases"])
    if verdict == "approve":
        if approvals < required:
            tx.execute(_APPROVALS, (approvals, now, task_id))
        else:
            phases[i].update(status=COMPLETED, finished_at=now)
            emit(tx, fx, "task.phase_completed", row, now, phase=phase["name"],
                   round=round_number)  # fmt: skip
            _enter(tx, fx, row, phases, i + 1, now, running=False, approvals=approvals)
    else:
        _reject(tx, fx, row, phases, i, reviewer, comment, now)
    return review_to_dict(stored)


def _reject(
    tx: Tx,
    fx: Effects,
    row: Any,
    phases: list[dict[str, Any]],
    i: int,
    reviewer: str,
    comment: str,
    now: int,
) -> None:
    """A rejection: back to the gate's ``on_reject`` phase, or Failed with no round left."""
    rounds = int(row["review_rounds"] or 0)
    limit = int(row["max_review_rounds"] if row["max_review_rounds"] is not None else 3)
    gate = phases[i]
    if rounds >= limit:
        said = f": {comment}" if comment else ""
        reason = (
            f"{reviewer} rejected {gate['name']} in round {rounds + 1}, and no review round is"
            f" left (max_review_rounds {limit}){said}"
        )
        gate.update(status=TaskStatus.FAILED.value, finished_at=now)
        code = FailureReason.REVIEW_REJECTED.value
        tx.execute(_REJECT, (dumps(phases), now, now, reason, code, row["id"]))
        emit(tx, fx, "task.failed", row, now, attempt=row["attempt"], error=reason,
               failure_reason=code, exit_code=None, phase=gate["name"])  # fmt: skip
        cascade_cancel(tx, fx, [row["id"]], now)
        settle_batches(tx, fx, [(row, TaskStatus.FAILED.value)], now)
        return
    target = index_of(phases, gate["on_reject"])
    for phase in phases[target : i + 1]:
        phase.update(status=PENDING, started_at=None, finished_at=None)
    _enter(tx, fx, row, phases, target, now, running=False, approvals=0, rounds=rounds + 1)
