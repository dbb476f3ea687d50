"""Task writes after creation: cancel (with its cascade), retry, update and delete.

Every function here runs inside the writer's transaction and writes the event of each state
change in that same transaction (the outbox), so a committed change always has its event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from taskqueue.engine import PRIORITY_RANK, check_transition, dependency_block_reason
from taskqueue.models import RUN_FIELDS, TaskStatus, TaskUpdate
from taskqueue.store.database import Effects
from taskqueue.store.errors import Conflict, InvalidInput, NotFound
from taskqueue.store.ids import new_token
from taskqueue.store.rows import dumps, loads, task_to_dict, to_us
from taskqueue.store.sql import Tx, chunks, insert_rows, locking, marks

__all__ = [
    "IdempotencyRequest",
    "cancel_dependents",
    "cancel_task",
    "delete_task",
    "emit",
    "emit_many",
    "end_attempt",
    "get_task_row",
    "retry_task",
    "update_task",
]

_P, _R = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
_C, _F, _X = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value, TaskStatus.CANCELLED.value


@dataclass(frozen=True)
class IdempotencyRequest:
    """An ``Idempotency-Key`` with a hash of the request it came with."""

    key: str
    request_hash: str


def emit(
    conn: Tx,
    type_: str,
    now: int,
    task_id: str | None = None,
    project_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event to the outbox."""
    conn.execute(
        "INSERT INTO events (type, task_id, project_id, time, data) VALUES (?, ?, ?, ?, ?)",
        (type_, task_id, project_id, now, dumps(data or {})),
    )


def emit_many(conn: Tx, rows: list[dict[str, Any]]) -> None:
    """Append many events to the outbox in one statement."""
    insert_rows(conn, "events", rows)


def get_task_row(conn: Tx, task_id: str) -> Any:
    """The task's row (locked until the transaction ends), or raise :class:`NotFound`."""
    row = conn.execute(f"SELECT * FROM tasks WHERE id = ?{locking(conn)}", (task_id,)).fetchone()
    if row is None:
        raise NotFound("task", task_id)
    return row


def idempotent_replay(conn: Tx, idem: IdempotencyRequest | None) -> Any:
    """The stored response of an earlier request with the same key, if any.

    A key reused with a different request is a conflict, never a silent replay.
    """
    if idem is None:
        return None
    row = conn.execute(
        "SELECT request_hash, response FROM idempotency_keys WHERE key = ?", (idem.key,)
    ).fetchone()
    if row is None:
        return None
    if row["request_hash"] != idem.request_hash:
        raise Conflict("this Idempotency-Key was already used with a different request")
    return loads(row["response"])


def remember(conn: Tx, idem: IdempotencyRequest | None, response: Any, now: int) -> None:
    """Store the response of a request made with an idempotency key."""
    if idem is not None:
        conn.execute(
            "INSERT INTO idempotency_keys (key, request_hash, status_code, response, created_at)"
            " VALUES (?, ?, 201, ?, ?)",
            (idem.key, idem.request_hash, dumps(response), now),
        )


def cancel_dependents(conn: Tx, fx: Effects, task_ids: Iterable[str], now: int) -> None:
    """Cancel, transitively, every unfinished task that depends on one of ``task_ids``."""
    frontier = list(task_ids)
    while frontier:
        dependents = [
            row
            for part in chunks(frontier)
            for row in conn.execute(
                "SELECT t.id, t.project_id, d.depends_on, p.status AS parent_status"
                " FROM task_deps d JOIN tasks t ON t.id = d.task_id"
                " JOIN tasks p ON p.id = d.depends_on"
                f" WHERE d.depends_on IN ({marks(part)}) AND t.status = 'Pending'",
                list(part),
            )
        ]
        frontier = []
        done: set[str] = set()
        for dep in dependents:
            if dep["id"] in done:
                continue
            done.add(dep["id"])
            reason = dependency_block_reason(dep["depends_on"], TaskStatus(dep["parent_status"]))
            reason = reason or f"dependency {dep['depends_on']} cannot complete"
            cancelled = conn.execute(
                "UPDATE tasks SET status = 'Cancelled', status_reason = ?, finished_at = ?,"
                " updated_at = ? WHERE id = ? AND status = 'Pending'",
                (reason, now, now, dep["id"]),
            )
            if cancelled.rowcount == 0:  # pragma: no cover - cancelled meanwhile by another writer
                continue
            emit(conn, "task.cancelled", now, dep["id"], dep["project_id"], {"reason": reason})
            fx.terminal.add(dep["id"])
            fx.changed.add(dep["id"])
            frontier.append(dep["id"])


def cancel_task(
    conn: Tx, fx: Effects, task_id: str, now: int, reason: str = "cancelled by request"
) -> dict[str, Any]:
    """Cancel a Pending or Running task (and its dependents). Cancelling again is a no-op."""
    row = get_task_row(conn, task_id)
    status = row["status"]
    if status == _X:
        return task_to_dict(row)
    check_transition_or_conflict(TaskStatus(status), TaskStatus.CANCELLED)
    if status == _R:
        end_attempt(conn, task_id, row["attempt"], _X, now, row["started_at"], error=reason)
        fx.stop_running.add((task_id, row["lease_token"]))
    conn.execute(
        "UPDATE tasks SET status = 'Cancelled', status_reason = ?, finished_at = ?,"
        " updated_at = ?, lease_token = NULL, lease_expires_at = NULL WHERE id = ?",
        (reason, now, now, task_id),
    )
    emit(conn, "task.cancelled", now, task_id, row["project_id"], {"reason": reason})
    fx.terminal.add(task_id)
    fx.changed.add(task_id)
    cancel_dependents(conn, fx, [task_id], now)
    return task_to_dict(get_task_row(conn, task_id))


def check_transition_or_conflict(current: TaskStatus, target: TaskStatus) -> None:
    """Like :func:`check_transition`, raising :class:`Conflict` for the API."""
    try:
        check_transition(current, target)
    except Exception as exc:
        raise Conflict(str(exc)) from exc


def end_attempt(
    conn: Tx,
    task_id: str,
    number: int,
    status: str,
    now: int,
    started_at: int | None,
    *,
    exit_code: int | None = None,
    error: str | None = None,
    duration_ms: int | None = None,
) -> None:
    """Record how an attempt ended."""
    if duration_ms is None and started_at is not None:
        duration_ms = (now - started_at) // 1000
    conn.execute(
        "UPDATE attempts SET status = ?, finished_at = ?, exit_code = ?, error = ?,"
        " duration_ms = ? WHERE task_id = ? AND number = ? AND finished_at IS NULL",
        (status, now, exit_code, error, duration_ms, task_id, number),
    )


def retry_task(conn: Tx, fx: Effects, task_id: str, now: int) -> dict[str, Any]:
    """Re-queue a Failed or Cancelled task with a fresh retry budget."""
    row = get_task_row(conn, task_id)
    check_transition_or_conflict(TaskStatus(row["status"]), TaskStatus.PENDING)
    if row["status"] == _R:  # Running -> Pending is the engine's retry, not a user's
        raise Conflict("a Running task cannot be retried; cancel it first")
    dep_ids: list[str] = loads(row["dependencies"])
    waiting = 0
    if dep_ids:
        found = {
            r["id"]: r["status"]
            for r in conn.execute(
                f"SELECT id, status FROM tasks WHERE id IN ({marks(dep_ids)})"
                f"{locking(conn, 'FOR SHARE')}",
                dep_ids,
            )
        }
        for dep_id in dep_ids:
            status = found.get(dep_id)
            if status is None:
                raise Conflict(f"dependency {dep_id} no longer exists; the task cannot run")
            if status in (_F, _X):
                raise Conflict(f"dependency {dep_id} is {status}; retry it first")
            if status != _C:
                waiting += 1
    conn.execute(
        "UPDATE tasks SET status = 'Pending', status_reason = NULL, retries_used = 0,"
        " run_at = ?, finished_at = NULL, updated_at = ?, waiting_on = ?, lease_token = NULL,"
        " lease_expires_at = NULL WHERE id = ?",
        (now, now, waiting, task_id),
    )
    emit(conn, "task.retrying", now, task_id, row["project_id"], {"reason": "manual retry"})
    fx.changed.add(task_id)
    fx.wake = fx.wake or waiting == 0
    return task_to_dict(get_task_row(conn, task_id))


def update_task(
    conn: Tx, fx: Effects, task_id: str, changes: TaskUpdate, now: int
) -> dict[str, Any]:
    """Change a task's fields; fields that say how it runs only while it is Pending."""
    row = get_task_row(conn, task_id)
    given = changes.model_dump(exclude_unset=True)
    run_changes = sorted(set(given) & RUN_FIELDS)
    if run_changes and row["status"] != _P:
        raise Conflict(
            f"{', '.join(run_changes)} can change only while the task is Pending; "
            f"it is {row['status']}"
        )
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None and name in (
            "name",
            "command",
            "metadata",
            "acceptance_criteria",
            "environment",
            "priority",
            "run_at",
            "queue",
            "retry_attempts",
            "retry_delay",
            "description",
        ):
            raise InvalidInput(
                f"{name} cannot be null",
                [{"loc": [name], "msg": "cannot be null", "type": "value_error"}],
            )
        if name == "priority":
            values["priority"] = changes.priority.value if changes.priority else None
            values["priority_rank"] = PRIORITY_RANK[changes.priority] if changes.priority else 1
        elif name == "run_at":
            values["run_at"] = to_us(value)
        elif name in ("metadata", "environment", "acceptance_criteria"):
            values[name] = dumps(value)
        else:
            values[name] = value
    if values:
        values["updated_at"] = now
        assignments = ", ".join(f"{name} = ?" for name in values)
        conn.execute(f"UPDATE tasks SET {assignments} WHERE id = ?", [*values.values(), task_id])
        emit(conn, "task.updated", now, task_id, row["project_id"], {"fields": sorted(given)})
        if "run_at" in values or "queue" in values or "priority" in values:
            fx.wake = True
    return task_to_dict(get_task_row(conn, task_id))


def delete_task(conn: Tx, fx: Effects, task_id: str, now: int) -> None:
    """Delete a task that is not Running and that no unfinished task depends on."""
    row = get_task_row(conn, task_id)
    if row["status"] == _R:
        raise Conflict("the task is Running; cancel it before deleting it")
    waiting = conn.execute(
        "SELECT count(*) FROM task_deps d JOIN tasks t ON t.id = d.task_id"
        " WHERE d.depends_on = ? AND t.status NOT IN ('Completed', 'Failed', 'Cancelled')",
        (task_id,),
    ).fetchone()[0]
    if waiting:
        raise Conflict(f"{waiting} unfinished task(s) depend on this task")
    conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
    emit(conn, "task.deleted", now, task_id, row["project_id"], {})
    fx.changed.add(task_id)


def new_lease_token() -> str:
    """A fresh random lease token."""
    return new_token()
