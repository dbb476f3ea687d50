"""Worker writes: claim, heartbeat, output, finish, hand back and reap, all fenced by lease.

Each claim gives the task a fresh random ``lease_token`` and bumps ``attempt``. Every later write
of that attempt matches on ``(id, lease_token, status='Running')``; a worker whose lease was
revoked (cancelled, expired and reaped, re-claimed) matches nothing and learns it has lost the
task. So a stale worker can never overwrite a newer attempt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskqueue.engine import Fail, Retry, after_failure
from taskqueue.models import TaskStatus
from taskqueue.store.database import Effects
from taskqueue.store.rows import dumps, loads
from taskqueue.store.sql import Tx, chunks, insert_rows, is_postgres, locking, marks
from taskqueue.store.task_ops import (
    cancel_dependents,
    emit,
    emit_many,
    end_attempt,
    new_lease_token,
)

__all__ = [
    "Claimed",
    "Outcome",
    "append_output",
    "claim",
    "finish",
    "finish_many",
    "heartbeat",
    "lost_leases",
    "reap_expired",
    "release",
]

_P, _R = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
_C, _F, _X = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value, TaskStatus.CANCELLED.value


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


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    success: bool
    exit_code: int | None = None
    output: Any = None
    error: str | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    duration_ms: int | None = None


def claim(
    conn: Tx,
    fx: Effects,
    worker_id: str,
    queues: Sequence[str],
    limit: int,
    lease_us: int,
    now: int,
) -> list[Claimed]:
    """Take up to ``limit`` runnable tasks, highest priority first, then first in first out.

    One statement: the sub-select walks the partial index of runnable tasks in claim order.
    """
    token = new_lease_token()
    pick = (
        "SELECT seq FROM tasks"
        f" WHERE status = 'Pending' AND waiting_on = 0 AND queue IN ({marks(queues)})"
        " AND run_at <= ? ORDER BY priority_rank DESC, run_at, seq LIMIT ?"
    )
    # On PostgreSQL the picked rows are locked and skipped by other claimers, and "= ANY
    # (ARRAY(...))" keeps the planner on the index for any plan (an IN join may turn into a
    # hash join over the whole table under a generic plan).
    chosen = (
        f"seq = ANY(ARRAY({pick} FOR UPDATE SKIP LOCKED))"
        if is_postgres(conn)
        else f"seq IN ({pick})"
    )
    rows = conn.execute(
        "UPDATE tasks SET status = 'Running', lease_token = ?, lease_expires_at = ?,"
        f" worker_id = ?, attempt = attempt + 1, started_at = ?, updated_at = ? WHERE {chosen}"
        " RETURNING id, name, command, environment, working_directory, timeout, attempt,"
        " input, project_id, priority_rank, run_at, seq",
        (token, now + lease_us, worker_id, now, now, *queues, now, limit),
    ).fetchall()
    if not rows:
        return []
    rows.sort(key=lambda r: (-r["priority_rank"], r["run_at"], r["seq"]))
    insert_rows(
        conn,
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
    emit_many(
        conn,
        [
            {
                "type": "task.started",
                "task_id": r["id"],
                "project_id": r["project_id"],
                "time": now,
                "data": dumps({"attempt": r["attempt"], "worker_id": worker_id}),
            }
            for r in rows
        ],
    )
    fx.changed.update(r["id"] for r in rows)
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
        )
        for r in rows
    ]


_HOLDS = "id = ? AND lease_token = ? AND status = 'Running'"


def heartbeat(
    conn: Tx, fx: Effects, leases: Sequence[tuple[str, str]], lease_us: int, now: int
) -> list[tuple[str, str]]:
    """Extend the leases held; return those that are no longer ours."""
    lost: list[tuple[str, str]] = []
    # In id order, so two writers never lock the same rows in opposite orders.
    for task_id, token in sorted(leases):
        cursor = conn.execute(
            f"UPDATE tasks SET lease_expires_at = ? WHERE {_HOLDS}",
            (now + lease_us, task_id, token),
        )
        if cursor.rowcount == 0:
            lost.append((task_id, token))
    return lost


def lost_leases(conn: Tx, leases: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Read-only: which of these leases are no longer held (cancelled, reaped, re-claimed)."""
    if not leases:
        return []
    ids = [task_id for task_id, _ in leases]
    current = {
        r["id"]: (r["lease_token"], r["status"])
        for r in conn.execute(
            f"SELECT id, lease_token, status FROM tasks WHERE id IN ({marks(ids)})", ids
        )
    }
    return [(task_id, token) for task_id, token in leases if current.get(task_id) != (token, _R)]


def append_output(
    conn: Tx,
    fx: Effects,
    task_id: str,
    token: str,
    attempt: int,
    chunks: Sequence[tuple[str, str]],
) -> bool:
    """Store output chunks of a running attempt; False if the lease is lost."""
    held = conn.execute(
        f"SELECT 1 FROM tasks WHERE {_HOLDS}{locking(conn, 'FOR SHARE')}", (task_id, token)
    ).fetchone()
    if held is None:
        return False
    last = conn.execute(
        "SELECT max(seq) FROM output_chunks WHERE task_id = ?", (task_id,)
    ).fetchone()[0]
    start = 0 if last is None else last + 1
    conn.executemany(
        "INSERT INTO output_chunks (task_id, seq, attempt, stream, data) VALUES (?, ?, ?, ?, ?)",
        [(task_id, start + i, attempt, stream, data) for i, (stream, data) in enumerate(chunks)],
    )
    fx.logs.add(task_id)
    return True


def _fail_attempt(
    conn: Tx,
    fx: Effects,
    row: Any,
    outcome: Outcome,
    now: int,
    rng: random.Random | None,
) -> str:
    """Record a failed attempt and retry the task or fail it (cancelling its dependents)."""
    decision = after_failure(
        row["retries_used"], row["retry_attempts"], row["retry_delay"], rng=rng
    )
    task_id, project_id, attempt = row["id"], row["project_id"], row["attempt"]
    result = _result_json(outcome)
    if isinstance(decision, Retry):
        delay_us = int(decision.delay * 1_000_000)
        conn.execute(
            "UPDATE tasks SET status = 'Pending', retries_used = ?, run_at = ?,"
            " lease_token = NULL, lease_expires_at = NULL, updated_at = ?, result = ?,"
            " status_reason = ? WHERE id = ?",
            (decision.retries_used, now + delay_us, now, result, outcome.error, task_id),
        )
        emit(
            conn,
            "task.retrying",
            now,
            task_id,
            project_id,
            {
                "attempt": attempt,
                "delay_ms": delay_us // 1000,
                "error": outcome.error,
                "exit_code": outcome.exit_code,
            },
        )
        fx.wake = fx.wake or delay_us == 0
        fx.changed.add(task_id)
        return _P
    assert isinstance(decision, Fail)
    conn.execute(
        "UPDATE tasks SET status = 'Failed', lease_token = NULL, lease_expires_at = NULL,"
        " updated_at = ?, finished_at = ?, result = ?, status_reason = ? WHERE id = ?",
        (now, now, result, outcome.error, task_id),
    )
    emit(
        conn,
        "task.failed",
        now,
        task_id,
        project_id,
        {"attempt": attempt, "error": outcome.error, "exit_code": outcome.exit_code},
    )
    fx.terminal.add(task_id)
    fx.changed.add(task_id)
    cancel_dependents(conn, fx, [task_id], now)
    return _F


def _result_json(outcome: Outcome) -> str:
    return dumps(
        {
            "exit_code": outcome.exit_code,
            "output": outcome.output,
            "stdout_tail": outcome.stdout_tail,
            "stderr_tail": outcome.stderr_tail,
            "duration_ms": outcome.duration_ms,
            "error": outcome.error,
        }
    )


_LEASE_COLUMNS = (
    "id, attempt, retries_used, retry_attempts, retry_delay, project_id, started_at, lease_token"
)


def _end_attempt_row(conn: Tx, row: Any, status: str, outcome: Outcome, now: int) -> None:
    end_attempt(
        conn,
        row["id"],
        row["attempt"],
        status,
        now,
        row["started_at"],
        exit_code=outcome.exit_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
    )


def finish(
    conn: Tx,
    fx: Effects,
    task_id: str,
    token: str,
    outcome: Outcome,
    now: int,
    rng: random.Random | None = None,
) -> str | None:
    """End the attempt held under ``token``; the task's new status, or None if the lease is lost."""
    return finish_many(conn, fx, [(task_id, token, outcome)], now, rng)[0]


def finish_many(
    conn: Tx,
    fx: Effects,
    items: Sequence[tuple[str, str, Outcome]],
    now: int,
    rng: random.Random | None = None,
) -> list[str | None]:
    """End many attempts at once: for each (task id, token, outcome), the new status or None.

    Set-based for the common case, a success: one read of every lease, then one statement each
    for the attempts, the tasks, the events and the dependency counters, whatever the number
    of tasks. A failure takes the per-task path (retry or fail, and the cancel cascade).
    """
    held: dict[str, Any] = {}
    for part in chunks(sorted({task_id for task_id, _, _ in items})):
        for row in conn.execute(
            f"SELECT {_LEASE_COLUMNS} FROM tasks WHERE id IN ({marks(part)})"
            f" AND status = 'Running'{locking(conn)}",
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
            results.append(_C)
        else:
            _end_attempt_row(conn, row, _F, outcome, now)
            results.append(_fail_attempt(conn, fx, row, outcome, now, rng))
    if completed:
        _complete(conn, fx, completed, now)
    return results


def _complete(conn: Tx, fx: Effects, completed: list[tuple[Any, Outcome]], now: int) -> None:
    """Mark tasks Completed and release their dependents, a statement per kind of row."""
    conn.executemany(
        "UPDATE attempts SET status = 'Completed', finished_at = ?, exit_code = ?, error = ?,"
        " duration_ms = ? WHERE task_id = ? AND number = ? AND finished_at IS NULL",
        [
            (
                now,
                outcome.exit_code,
                outcome.error,
                outcome.duration_ms
                if outcome.duration_ms is not None or row["started_at"] is None
                else (now - row["started_at"]) // 1000,
                row["id"],
                row["attempt"],
            )
            for row, outcome in completed
        ],
    )
    conn.executemany(
        "UPDATE tasks SET status = 'Completed', lease_token = NULL, lease_expires_at = NULL,"
        " updated_at = ?, finished_at = ?, result = ?, status_reason = NULL WHERE id = ?",
        [(now, now, _result_json(outcome), row["id"]) for row, outcome in completed],
    )
    emit_many(
        conn,
        [
            {
                "type": "task.completed",
                "task_id": row["id"],
                "project_id": row["project_id"],
                "time": now,
                "data": dumps(
                    {
                        "attempt": row["attempt"],
                        "exit_code": outcome.exit_code,
                        "duration_ms": outcome.duration_ms,
                    }
                ),
            }
            for row, outcome in completed
        ],
    )
    ids = [row["id"] for row, _ in completed]
    fx.terminal.update(ids)
    fx.changed.update(ids)
    # Most tasks have no dependents: one indexed read settles it. A dependent of two tasks
    # that complete together is released by two.
    released: dict[str, int] = {}
    for part in chunks(ids):
        for dep in conn.execute(
            f"SELECT task_id FROM task_deps WHERE depends_on IN ({marks(part)})", list(part)
        ):
            released[dep[0]] = released.get(dep[0], 0) + 1
    for dependent in sorted(released):  # in id order: writers lock rows in the same order
        left = conn.execute(
            "UPDATE tasks SET waiting_on = waiting_on - ? WHERE id = ? AND status = 'Pending'"
            " RETURNING waiting_on",
            (released[dependent], dependent),
        ).fetchone()
        if left is not None and left[0] == 0:
            fx.wake = True


def release(conn: Tx, fx: Effects, task_id: str, token: str, now: int) -> bool:
    """Hand a held task back to the queue (shutdown) without spending one of its retries."""
    row = conn.execute(
        f"SELECT {_LEASE_COLUMNS} FROM tasks WHERE {_HOLDS}{locking(conn)}", (task_id, token)
    ).fetchone()
    if row is None:
        return False
    _end_attempt_row(conn, row, _F, Outcome(False, error="handed back: the worker shut down"), now)
    conn.execute(
        "UPDATE tasks SET status = 'Pending', lease_token = NULL, lease_expires_at = NULL,"
        " run_at = ?, updated_at = ? WHERE id = ?",
        (now, now, task_id),
    )
    emit(
        conn,
        "task.retrying",
        now,
        task_id,
        row["project_id"],
        {"attempt": row["attempt"], "reason": "handed back at worker shutdown"},
    )
    fx.wake = True
    fx.changed.add(task_id)
    return True


def reap_expired(
    conn: Tx,
    fx: Effects,
    now: int,
    limit: int = 500,
    rng: random.Random | None = None,
) -> list[str]:
    """Count every expired lease (a dead worker) as a failed attempt; return the tasks reaped."""
    rows = conn.execute(
        f"SELECT {_LEASE_COLUMNS} FROM tasks WHERE status = 'Running' AND lease_expires_at < ?"
        f" LIMIT ?{locking(conn, 'FOR UPDATE SKIP LOCKED')}",
        (now, limit),
    ).fetchall()
    outcome = Outcome(False, error="lease expired: the worker running it stopped responding")
    for row in rows:
        _end_attempt_row(conn, row, _F, outcome, now)
        _fail_attempt(conn, fx, row, outcome, now, rng)
        fx.stop_running.add((row["id"], row["lease_token"]))
    return [row["id"] for row in rows]
