"""The transitions asked for: cancel (and its cascade), a batch's stop, a manual retry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from taskqueue.engine import (
    RULES,
    Transition,
    dependency_block_reason,
)
from taskqueue.models import FailureReason, TaskStatus, TaskType
from taskqueue.store import dependencies, holds, outbox
from taskqueue.store.codec import loads, task_to_dict
from taskqueue.store.errors import Conflict
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.transitions import phases
from taskqueue.store.transitions.statements import (
    _CANCEL,
    _CASCADE_CANCEL,
    _END_ATTEMPT,
    _R,
    _REQUEUE,
    _SKIP,
    Outcome,
    _check,
    _end_attempt,
    locked_task_row,
)

# ---------------------------------------------------------------------------- by request


def cancel(
    tx: Tx, fx: Effects, task_id: str, now: int, reason: str = "cancelled by request"
) -> dict[str, Any]:
    """Pending or Running → Cancelled, and its dependents with it. Cancelling again is a no-op."""
    row = locked_task_row(tx, task_id)
    status = row["status"]
    if row["task_type"] == TaskType.FUNCTION.value:
        raise Conflict(
            f"task {task_id} is a Function definition, which never runs: there is nothing to "
            "cancel (cancel its executions, or delete it to retire it)"
        )
    if row["task_type"] == TaskType.SCHEDULED.value:
        raise Conflict(
            f"task {task_id} is a Scheduled task, which never runs itself: pause it, cancel "
            "its runs, or delete it to retire it"
        )
    if status == RULES[Transition.CANCEL].target.value:
        return task_to_dict(row)
    _check(Transition.CANCEL, status)
    code = FailureReason.CANCELLED
    if status == _R:
        outcome = Outcome(False, error=reason, reason=code)
        tx.execute(_END_ATTEMPT, _end_attempt(row, TaskStatus.CANCELLED, outcome, now))
        fx.stop_running.add((task_id, row["lease_token"]))
    if row["task_type"] == phases.WORKFLOW:
        phases.ended(tx, row, TaskStatus.CANCELLED, now, None)
    tx.execute(_CANCEL, (reason, code.value, now, now, task_id))
    outbox.emit(tx, fx, "task.cancelled", now, task_id, row["project_id"], {"reason": reason})
    fx.changed.add(task_id)
    cascade_cancel(tx, fx, [task_id], now)
    settle_batches(tx, fx, [(row, TaskStatus.CANCELLED.value)], now)
    return task_to_dict(locked_task_row(tx, task_id))


def settle_batches(tx: Tx, fx: Effects, ended: Sequence[tuple[Any, str]], now: int) -> None:
    """After items of batches ended (their rows, their new status): go on with each batch.

    Each item that was let go and ended lets the next held one go; an item that did not
    complete, in a batch that stops on its first error, cancels the items not started.
    """
    by_batch: dict[str, list[tuple[Any, str]]] = {}
    for row, status in ended:
        if row["batch_id"] is not None:
            by_batch.setdefault(row["batch_id"], []).append((row, status))
    for batch_id, items in by_batch.items():
        failed = [row["id"] for row, status in items if status != TaskStatus.COMPLETED.value]
        reason = holds.stop(tx, batch_id, failed) if failed else None
        if reason is None:
            freed = sum(1 for row, _ in items if row["waiting_on"] == 0)
            holds.release(tx, fx, batch_id, freed, now)
            continue
        code = FailureReason.CANCELLED.value
        skipped = tx.execute(
            f"{_SKIP} RETURNING id, project_id", (reason, code, now, now, batch_id)
        ).fetchall()
        outbox.emit_many(
            tx,
            fx,
            [
                outbox.event_row(
                    "task.cancelled", now, r["id"], r["project_id"], {"reason": reason}
                )
                for r in skipped
            ],
        )
        fx.changed.update(r["id"] for r in skipped)


def cascade_cancel(tx: Tx, fx: Effects, task_ids: Iterable[str], now: int) -> None:
    """Pending → Cancelled, transitively, for every task depending on one of ``task_ids``."""
    code = FailureReason.DEPENDENCY_FAILED.value
    frontier = list(task_ids)
    while frontier:
        dependents = dependencies.pending_dependents(tx, frontier)
        frontier = []
        done: set[str] = set()
        for dep in dependents:
            if dep["id"] in done:
                continue
            done.add(dep["id"])
            reason = dependency_block_reason(dep["depends_on"], TaskStatus(dep["parent_status"]))
            reason = reason or f"dependency {dep['depends_on']} cannot complete"
            cancelled = tx.execute(_CASCADE_CANCEL, (reason, code, now, now, dep["id"]))
            if cancelled.rowcount == 0:  # pragma: no cover - cancelled meanwhile by another writer
                continue
            data = {"reason": reason}
            outbox.emit(tx, fx, "task.cancelled", now, dep["id"], dep["project_id"], data)
            fx.changed.add(dep["id"])
            frontier.append(dep["id"])


def requeue(tx: Tx, fx: Effects, task_id: str, now: int) -> dict[str, Any]:
    """Failed or Cancelled → Pending (a manual retry), with a fresh retry budget."""
    row = locked_task_row(tx, task_id)
    _check(Transition.REQUEUE, row["status"])
    waiting = dependencies.count_waiting(tx, loads(row["dependencies"]))
    if row["task_type"] == phases.WORKFLOW:
        waiting = phases.reopen(tx, fx, row, now) or waiting
    tx.execute(_REQUEUE, (now, now, waiting, task_id))
    outbox.emit(
        tx, fx, "task.retrying", now, task_id, row["project_id"], {"reason": "manual retry"}
    )
    fx.changed.add(task_id)
    fx.wake = fx.wake or waiting == 0
    return task_to_dict(locked_task_row(tx, task_id))
