"""Every change of a task's status: one named, fenced operation per transition.

Each function applies one :class:`~taskqueue.engine.Transition` of the engine's table, inside
the writer's transaction, with its event written in the same transaction (the outbox). The
status a statement sets and the statuses it may start from come from the table
(:data:`~taskqueue.engine.RULES`), so no statement here can move a task in a way the rules do
not allow, and no ``SET status`` exists anywhere else in the code.

Worker writes are fenced by lease: each claim gives the task a fresh random ``lease_token`` and
bumps ``attempt``, and every later write of that attempt matches on ``(id, lease_token)`` and
the Running status. A worker whose lease was revoked (cancelled, expired and reaped, handed
back) matches nothing and learns it has lost the task, so a stale worker can never overwrite a
newer attempt.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from taskqueue.engine import (
    RULES,
    Fail,
    Retry,
    Transition,
    after_failure,
    dependency_block_reason,
    transition_refusal,
)
from taskqueue.models import FailureReason, TaskStatus, TaskType
from taskqueue.store import dependencies, holds, outbox
from taskqueue.store.codec import dumps, loads, task_to_dict
from taskqueue.store.errors import Conflict, NotFound
from taskqueue.store.ids import new_token
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import RUNNABLE_SQL
from taskqueue.store.sql import Tx, chunks, insert_rows, marks

__all__ = [
    "Claimed",
    "Outcome",
    "cancel",
    "claim",
    "create",
    "expire_leases",
    "finish_many",
    "hand_back",
    "has_runnable",
    "locked_task_row",
    "requeue",
]

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
    " batch_id, waiting_on"
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
        " output_schema, dependencies",
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
        if outcome.success:
            completed.append((row, outcome))
            results.append(RULES[Transition.COMPLETE].target.value)
        else:
            results.append(_fail_or_retry(tx, fx, row, outcome, now, rng))
    if completed:
        _complete(tx, fx, completed, now)
    return results


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
    decision = after_failure(
        row["retries_used"], row["retry_attempts"], row["retry_delay"], rng=rng
    )
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
    tx.execute(_REQUEUE, (now, now, waiting, task_id))
    outbox.emit(
        tx, fx, "task.retrying", now, task_id, row["project_id"], {"reason": "manual retry"}
    )
    fx.changed.add(task_id)
    fx.wake = fx.wake or waiting == 0
    return task_to_dict(locked_task_row(tx, task_id))
