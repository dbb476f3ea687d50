"""The transitions of a task's run: created, claimed, and the end of each attempt."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from taskqueue.engine import (
    RULES,
    Fail,
    Retry,
    Transition,
    after_failure,
)
from taskqueue.models import FailureReason, TaskStatus
from taskqueue.store import dependencies, outbox
from taskqueue.store.codec import loads
from taskqueue.store.ids import new_token
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import RUNNABLE_SQL
from taskqueue.store.sql import Tx, chunks, insert_rows, marks
from taskqueue.store.transitions import gates, phases
from taskqueue.store.transitions.requested import cascade_cancel, settle_batches
from taskqueue.store.transitions.statements import (
    _COMPLETE,
    _END_ATTEMPT,
    _FAIL,
    _HAND_BACK,
    _HELD,
    _LEASE_COLUMNS,
    _R,
    _RETRY,
    Claimed,
    Outcome,
    _end_attempt,
    _result_json,
    _update,
)

# ---------------------------------------------------------------------------- create


def create(tx: Tx, fx: Effects, rows: list[dict[str, Any]], now: int) -> None:
    """(nothing) → Pending: insert new task rows (built by ``tasks.new_task_row``) with events."""
    status = RULES[Transition.CREATE].target.value
    for row in rows:
        row["status"] = status
        if row["waiting_on"] == 0:
            fx.wake = True
    insert_rows(tx, "tasks", rows)
    outbox.emit_many(
        tx,
        fx,
        [
            outbox.event_row(
                "task.created",
                now,
                row["id"],
                row["project_id"],
                {
                    "status": status,
                    "name": row["name"],
                    "queue": row["queue"],
                    "priority": row["priority"],
                },
            )
            for row in rows
        ],
    )


# ---------------------------------------------------------------------------- claim


_PICK = (
    f"SELECT seq FROM tasks WHERE {RUNNABLE_SQL} AND queue IN ({{queues}}) AND run_at <= ?"
    " AND {languages} ORDER BY priority_rank DESC, run_at, seq LIMIT ?"
)


def _language_condition(languages: Sequence[str]) -> str:
    """Code tasks only of the languages a worker offers; commands always."""
    if not languages:
        return "language IS NULL"
    return f"(language IS NULL OR language IN ({marks(languages)}))"


# The pick's runnable rows are exactly the claim's sources (a test checks it), so the claim
# needs no second status guard.


def claim(
    tx: Tx,
    fx: Effects,
    worker_id: str,
    queues: Sequence[str],
    limit: int,
    lease_us: int,
    now: int,
    languages: Sequence[str] = (),
) -> list[Claimed]:
    """Pending → Running: take up to ``limit`` runnable tasks under a fresh lease.

    Highest priority first, then first in first out. One statement: the sub-select walks the
    partial index of runnable tasks in claim order. A code task is taken only by a worker
    offering its ``languages``.
    """
    token = new_token()
    pick = _PICK.format(queues=marks(queues), languages=_language_condition(languages))
    chosen = tx.dialect.claim_pick(pick)
    statement = _update(
        Transition.CLAIM,
        "lease_token = ?, lease_expires_at = ?, worker_id = ?, attempt = attempt + 1,"
        " started_at = ?, updated_at = ?",
        chosen,
        guard=False,
    )
    rows = tx.execute(
        f"{statement} RETURNING id, name, command, environment, working_directory, timeout,"
        " attempt, input, project_id, priority_rank, run_at, seq, language, code, limits,"
        " output_schema, dependencies, task_type, phases, current_phase, review_rounds",
        (token, now + lease_us, worker_id, now, now, *queues, now, *languages, limit),
    ).fetchall()
    if not rows:
        return []
    rows.sort(key=lambda r: (-r["priority_rank"], r["run_at"], r["seq"]))
    insert_rows(
        tx,
        "attempts",
        [
            {
                "task_id": r["id"],
                "number": r["attempt"],
                "worker_id": worker_id,
                "status": _R,
                "started_at": now,
                "phase": r["current_phase"] if r["task_type"] == phases.WORKFLOW else None,
            }
            for r in rows
        ],
    )
    outbox.emit_many(
        tx,
        fx,
        [
            outbox.event_row(
                "task.started",
                now,
                r["id"],
                r["project_id"],
                {"attempt": r["attempt"], "worker_id": worker_id, "name": r["name"]},
            )
            for r in rows
        ],
    )
    fx.changed.update(r["id"] for r in rows)
    produced = dependencies.outputs(tx, [r["id"] for r in rows if r["dependencies"] != "[]"])
    return [
        _workflow_claim(tx, fx, r, claimed, now) if r["task_type"] == phases.WORKFLOW else claimed
        for r, claimed in zip(rows, _claimed(rows, token, produced), strict=True)
    ]


def _claimed(rows: list[Any], token: str, produced: dict[str, Any]) -> list[Claimed]:
    return [
        Claimed(
            id=r["id"],
            name=r["name"],
            command=r["command"],
            environment=loads(r["environment"]),
            working_directory=r["working_directory"],
            timeout=r["timeout"],
            attempt=r["attempt"],
            input=loads(r["input"]),
            lease_token=token,
            project_id=r["project_id"],
            language=r["language"],
            code=r["code"],
            limits=loads(r["limits"]),
            output_schema=loads(r["output_schema"]),
            dependencies=produced.get(r["id"]),
        )
        for r in rows
    ]


def _workflow_claim(tx: Tx, fx: Effects, row: Any, claimed: Claimed, now: int) -> Claimed:
    """A workflow's claim runs its current phase: that phase's body, timeout and input."""
    phase, given = phases.claimed_phase(tx, fx, row, now)
    environment = {
        **claimed.environment,
        "TASKQUEUE_PHASE": phase["name"],
        "TASKQUEUE_ROUND": str(phases.round_of(row)),
    }
    return replace(
        claimed,
        command=phase["command"] or "",
        language=phase["language"],
        code=phase["code"],
        timeout=phase["timeout"],
        environment=environment,
        input=given,
    )


def has_runnable(tx: Tx, queues: list[str], now: int, languages: Sequence[str] = ()) -> bool:
    """Whether any task of ``queues`` could be claimed now (a read over the claim's index)."""
    return (
        tx.execute(
            f"SELECT 1 FROM tasks WHERE {RUNNABLE_SQL}"
            f" AND queue IN ({marks(queues)}) AND run_at <= ?"
            f" AND {_language_condition(languages)} LIMIT 1",
            (*queues, now, *languages),
        ).fetchone()
        is not None
    )


# ---------------------------------------------------------------------------- the end of an attempt


def finish_many(
    tx: Tx,
    fx: Effects,
    items: Sequence[tuple[str, str, Outcome]],
    now: int,
    rng: random.Random | None = None,
) -> list[str | None]:
    """End many attempts: for each (task id, token, outcome), the task's new status or None.

    None means the lease is no longer held: the result is dropped. Set-based for the common
    case, a success (Running → Completed): one read of every lease, then one statement each
    for the attempts, the tasks, the events and the dependency counters, whatever the number
    of tasks. A failure takes the per-task path (:func:`_fail_or_retry`).
    """
    held: dict[str, Any] = {}
    for part in chunks(sorted({task_id for task_id, _, _ in items})):
        for row in tx.execute(
            f"SELECT {_LEASE_COLUMNS} FROM tasks WHERE id IN ({marks(part)})"
            f" AND status = '{_R}'{tx.dialect.lock()}",
            list(part),
        ):
            held[row["id"]] = row
    results: list[str | None] = []
    completed: list[tuple[Any, Outcome]] = []
    for task_id, token, outcome in items:
        row = held.get(task_id)
        if row is None or row["lease_token"] != token:
            results.append(None)
            continue
        del held[task_id]  # the same lease never ends twice
        if outcome.success and row["task_type"] == phases.WORKFLOW:
            results.append(_phase_succeeded(tx, fx, row, outcome, now, completed))
        elif outcome.success:
            completed.append((row, outcome))
            results.append(RULES[Transition.COMPLETE].target.value)
        else:
            results.append(_fail_or_retry(tx, fx, row, outcome, now, rng))
    if completed:
        _complete(tx, fx, completed, now)
    return results


def _phase_succeeded(
    tx: Tx,
    fx: Effects,
    lease: Any,
    outcome: Outcome,
    now: int,
    completed: list[tuple[Any, Outcome]],
) -> str:
    """A workflow phase's attempt succeeded: its next phase, or (the last) the task completes."""
    row = tx.execute("SELECT * FROM tasks WHERE id = ?", (lease["id"],)).fetchone()
    if gates.succeeded(tx, fx, row, _result_json(outcome), now):
        completed.append((lease, outcome))
        return RULES[Transition.COMPLETE].target.value
    tx.execute(_END_ATTEMPT, _end_attempt(lease, TaskStatus.COMPLETED, outcome, now))
    return RULES[Transition.ADVANCE].target.value


def _complete(tx: Tx, fx: Effects, completed: list[tuple[Any, Outcome]], now: int) -> None:
    """Running → Completed, and release the dependents: a statement per kind of row."""
    done = TaskStatus.COMPLETED
    tx.executemany(_END_ATTEMPT, [_end_attempt(row, done, o, now) for row, o in completed])
    tx.executemany(
        _COMPLETE,
        [(now, now, _result_json(o), row["id"], row["lease_token"]) for row, o in completed],
    )
    outbox.emit_many(
        tx,
        fx,
        [
            outbox.event_row(
                "task.completed",
                now,
                row["id"],
                row["project_id"],
                {"attempt": row["attempt"], "exit_code": o.exit_code, "duration_ms": o.duration_ms},
            )
            for row, o in completed
        ],
    )
    ids = [row["id"] for row, _ in completed]
    fx.changed.update(ids)
    dependencies.release_dependents(tx, fx, ids)
    settle_batches(tx, fx, [(row, done.value) for row, _ in completed], now)


def _fail_or_retry(
    tx: Tx, fx: Effects, row: Any, outcome: Outcome, now: int, rng: random.Random | None
) -> str:
    """Running → Pending after a backoff if retries remain, else Running → Failed (cascading)."""
    tx.execute(_END_ATTEMPT, _end_attempt(row, TaskStatus.FAILED, outcome, now))
    retry_attempts, retry_delay = row["retry_attempts"], row["retry_delay"]
    workflow = None
    if row["task_type"] == phases.WORKFLOW:
        workflow = tx.execute("SELECT * FROM tasks WHERE id = ?", (row["id"],)).fetchone()
        retry_attempts, retry_delay = phases.retry_settings(workflow)
    decision = after_failure(row["retries_used"], retry_attempts, retry_delay, rng=rng)
    task_id, project_id, attempt = row["id"], row["project_id"], row["attempt"]
    result = _result_json(outcome)
    reason = outcome.reason.value if outcome.reason is not None else None
    if isinstance(decision, Retry):
        delay_us = int(decision.delay * 1_000_000)
        tx.execute(
            _RETRY,
            (decision.retries_used, now + delay_us, now, result, outcome.error, reason, task_id),
        )
        data = {
            "attempt": attempt,
            "delay_ms": delay_us // 1000,
            "error": outcome.error,
            "failure_reason": reason,
            "exit_code": outcome.exit_code,
        }
        outbox.emit(tx, fx, "task.retrying", now, task_id, project_id, data)
        fx.wake = fx.wake or delay_us == 0
        fx.changed.add(task_id)
        return RULES[Transition.RETRY].target.value
    assert isinstance(decision, Fail)
    if workflow is not None:
        phases.ended(tx, workflow, TaskStatus.FAILED, now, result)
    tx.execute(_FAIL, (now, now, result, outcome.error, reason, task_id))
    data = {
        "attempt": attempt,
        "error": outcome.error,
        "failure_reason": reason,
        "exit_code": outcome.exit_code,
    }
    outbox.emit(tx, fx, "task.failed", now, task_id, project_id, data)
    fx.changed.add(task_id)
    cascade_cancel(tx, fx, [task_id], now)
    settle_batches(tx, fx, [(row, TaskStatus.FAILED.value)], now)
    return RULES[Transition.FAIL].target.value


def hand_back(tx: Tx, fx: Effects, task_id: str, token: str, now: int) -> bool:
    """Running → Pending at shutdown, without spending a retry; False if the lease is lost."""
    row = tx.execute(
        f"SELECT {_LEASE_COLUMNS} FROM tasks WHERE {_HELD} AND status = '{_R}'{tx.dialect.lock()}",
        (task_id, token),
    ).fetchone()
    if row is None:
        return False
    outcome = Outcome(
        False, error="handed back: the worker shut down", reason=FailureReason.HANDED_BACK
    )
    tx.execute(_END_ATTEMPT, _end_attempt(row, TaskStatus.FAILED, outcome, now))
    tx.execute(_HAND_BACK, (now, now, task_id, token))
    data = {"attempt": row["attempt"], "reason": "handed back at worker shutdown"}
    outbox.emit(tx, fx, "task.retrying", now, task_id, row["project_id"], data)
    fx.wake = True
    fx.changed.add(task_id)
    return True


def expire_leases(
    tx: Tx, fx: Effects, now: int, limit: int = 500, rng: random.Random | None = None
) -> list[str]:
    """Settle every expired lease (a dead worker) as a failed attempt; the tasks settled."""
    rows = tx.execute(
        f"SELECT {_LEASE_COLUMNS} FROM tasks WHERE status = '{_R}' AND lease_expires_at < ?"
        f" LIMIT ?{tx.dialect.lock('FOR UPDATE SKIP LOCKED')}",
        (now, limit),
    ).fetchall()
    outcome = Outcome(
        False,
        error="lease expired: the worker running it stopped responding",
        reason=FailureReason.LEASE_EXPIRED,
    )
    for row in rows:
        _fail_or_retry(tx, fx, row, outcome, now, rng)
        fx.stop_running.add((row["id"], row["lease_token"]))
    return [row["id"] for row in rows]
