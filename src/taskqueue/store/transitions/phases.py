"""Workflow phases as attempts: what a claimed phase runs and reads, and where a phase is.

A Workflow task is the same row as any task, walked through its ``phases``: while a run
phase's attempt runs the row is Running under a lease (claimed like any task, with the phase's
body); between phases, and while a review gate waits (:mod:`.gates`), it is Pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.engine.workflows import envelope, index_of
from taskqueue.models import TaskStatus, TaskType
from taskqueue.store import outbox
from taskqueue.store.codec import dumps, loads
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx

__all__ = [
    "AT_GATE",
    "COMPLETED",
    "PENDING",
    "PHASES",
    "RUNNING",
    "WORKFLOW",
    "claimed_phase",
    "emit",
    "ended",
    "phase_of",
    "reopen",
    "retry_settings",
    "round_of",
]

WORKFLOW = TaskType.WORKFLOW.value
PENDING, RUNNING = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
COMPLETED = TaskStatus.COMPLETED.value
#: ``waiting_on`` of a workflow at a review gate: never runnable, whatever its dependencies.
AT_GATE = 1

PHASES = "UPDATE tasks SET phases = ? WHERE id = ?"


def round_of(row: Any) -> int:
    """The review round the workflow is in: 1 until a review sends it back."""
    return int(row["review_rounds"] or 0) + 1


def emit(tx: Tx, fx: Effects, kind: str, row: Any, now: int, **data: Any) -> None:
    """Write a workflow event of the task ``row`` is."""
    outbox.emit(tx, fx, kind, now, row["id"], row["project_id"], data)


# ---------------------------------------------------------------------------- a phase's attempts


def claimed_phase(tx: Tx, fx: Effects, row: Any, now: int) -> tuple[dict[str, Any], Any]:
    """A workflow's attempt was claimed: its phase runs; the phase and what it reads as input.

    The phase's first attempt starts it (``task.phase_started``).
    """
    phases = loads(row["phases"])
    i = index_of(phases, row["current_phase"])
    phase = phases[i]
    if phase["status"] != RUNNING:
        phase.update(status=RUNNING, started_at=now, finished_at=None)
        emit(tx, fx, "task.phase_started", row, now, phase=phase["name"], round=round_of(row))
    phase["attempts"] += 1
    tx.execute(PHASES, (dumps(phases), row["id"]))
    reviews: list[dict[str, Any]] = []
    if row["review_rounds"]:
        reviews = [
            {k: r[k] for k in ("phase", "round", "reviewer", "verdict", "comment")}
            for r in tx.execute(
                "SELECT * FROM reviews WHERE task_id = ? AND round = ? ORDER BY created_at, id",
                (row["id"], row["review_rounds"]),
            )
        ]
    return phase, envelope(loads(row["input"]), phases, i, round_of(row), reviews)


def retry_settings(row: Any) -> tuple[int, float]:
    """The retries and retry delay of the phase a workflow's attempt ran."""
    phases = loads(row["phases"])
    phase = phases[index_of(phases, row["current_phase"])]
    return int(phase["retry_attempts"]), float(phase["retry_delay"])


def ended(tx: Tx, row: Any, status: TaskStatus, now: int, result: str | None) -> None:
    """The workflow ended (Failed or Cancelled) in its current phase: so did that phase."""
    phases = loads(row["phases"])
    phase = phases[index_of(phases, row["current_phase"])]
    phase.update(status=status.value, finished_at=now)
    if result is not None:
        phase["result"] = loads(result)
    tx.execute(PHASES, (dumps(phases), row["id"]))


def reopen(tx: Tx, fx: Effects, row: Any, now: int) -> int | None:
    """A manual retry of a workflow: its phase again. ``waiting_on`` for a gate, else None.

    A run phase queues again; a gate waits again for the approvals it still needs.
    """
    phases = loads(row["phases"])
    i = index_of(phases, row["current_phase"])
    phase = phases[i]
    if not phase["review"]:
        phase.update(status=PENDING, finished_at=None)
        tx.execute(PHASES, (dumps(phases), row["id"]))
        return None
    phase.update(status=RUNNING, started_at=now, finished_at=None)
    tx.execute(PHASES, (dumps(phases), row["id"]))
    data = {"phase": phase["name"], "round": round_of(row)}
    emit(tx, fx, "task.phase_started", row, now, **data)
    emit(tx, fx, "task.review_requested", row, now, **data,
           reviews_required=phase["reviews_required"])  # fmt: skip
    return AT_GATE


def phase_of(rows: Sequence[Any]) -> dict[str, str]:
    """The current phase of each workflow among claimed rows, by task id."""
    return {r["id"]: r["current_phase"] for r in rows if r["task_type"] == WORKFLOW}
