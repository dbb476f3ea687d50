"""Task writes: creation, cancellation, retry, update and delete, each one transaction.

Every function here runs inside the writer's transaction and writes the event of each state
change in that same transaction (the outbox), so a committed change always has its event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from taskqueue.engine import PRIORITY_RANK, check_transition, dependency_block_reason
from taskqueue.models import RUN_FIELDS, TaskCreate, TaskStatus, TaskUpdate
from taskqueue.store.database import Effects
from taskqueue.store.errors import Conflict, InvalidInput, NotFound
from taskqueue.store.ids import new_id, new_token
from taskqueue.store.rows import dumps, from_us, loads, task_to_dict, to_us
from taskqueue.store.sql import Tx, chunks, insert_rows, marks

__all__ = [
    "IdempotencyRequest",
    "cancel_dependents",
    "cancel_task",
    "create_tasks",
    "delete_task",
    "emit",
    "emit_many",
    "end_attempt",
    "get_task_row",
    "retry_task",
    "update_task",
]

#: Most dependency edges one create request may add (each is a row and an index entry).
MAX_EDGES_PER_REQUEST = 50_000

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
    """The task's row, or raise :class:`NotFound`."""
    row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
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


def _parse_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _resolve_dependencies(
    conn: Tx, items: Sequence[TaskCreate], new_ids: list[str], batch: bool
) -> tuple[list[list[str]], dict[str, str]]:
    """Each item's dependency ids, and the status of every existing task referenced.

    A dependency is an existing task's id or the ``ref`` of an *earlier* item of the batch, so
    every edge points backwards in time and no cycle can form.
    """
    refs: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    resolved: list[list[str]] = []
    existing: set[str] = set()
    total_edges = 0
    for index, item in enumerate(items):
        deps: list[str] = []
        seen: set[str] = set()
        for position, dep in enumerate(item.dependencies):
            loc = (
                ["tasks", index, "dependencies", position] if batch else ["dependencies", position]
            )
            task_id: str | None
            ref: str | None
            if isinstance(dep, str):
                task_id, ref = _parse_uuid(dep), None
                if task_id is None:
                    ref = dep
            else:
                task_id = str(dep.task_id) if dep.task_id is not None else None
                ref = dep.ref
                if (task_id is None) == (ref is None):
                    errors.append(
                        {
                            "loc": loc,
                            "msg": "give exactly one of task_id and ref",
                            "type": "value_error",
                        }
                    )
                    continue
            if ref is not None:
                if ref not in refs:
                    errors.append(
                        {
                            "loc": loc,
                            "msg": f"no earlier item of this batch has ref {ref!r}",
                            "type": "unknown_reference",
                        }
                    )
                    continue
                task_id = new_ids[refs[ref]]
            else:
                assert task_id is not None
                existing.add(task_id)
            if task_id not in seen:
                seen.add(task_id)
                deps.append(task_id)
        resolved.append(deps)
        total_edges += len(deps)
        if item.ref is not None:
            if item.ref in refs:
                errors.append(
                    {
                        "loc": ["tasks", index, "ref"],
                        "msg": f"ref {item.ref!r} is used by an earlier item",
                        "type": "duplicate_reference",
                    }
                )
            elif _parse_uuid(item.ref) is not None:
                errors.append(
                    {
                        "loc": ["tasks", index, "ref"],
                        "msg": "a ref must not look like a task id",
                        "type": "value_error",
                    }
                )
            refs[item.ref] = index
    if total_edges > MAX_EDGES_PER_REQUEST:
        raise InvalidInput(
            f"the request has {total_edges} dependencies; the limit is {MAX_EDGES_PER_REQUEST}",
            [
                {
                    "loc": ["dependencies"],
                    "msg": f"{total_edges} in one request; the limit is {MAX_EDGES_PER_REQUEST}",
                    "type": "too_long",
                }
            ],
        )
    statuses: dict[str, str] = {}
    if existing:
        ids = list(existing)
        for part in chunks(ids):
            found = conn.execute(f"SELECT id, status FROM tasks WHERE id IN ({marks(part)})", part)
            statuses.update({r["id"]: r["status"] for r in found})
    for index, (item, deps) in enumerate(zip(items, resolved, strict=True)):
        for position, dep_id in enumerate(deps):
            if dep_id in existing:
                loc = (
                    ["tasks", index, "dependencies", position]
                    if batch
                    else ["dependencies", position]
                )
                status = statuses.get(dep_id)
                if status is None:
                    errors.append(
                        {"loc": loc, "msg": f"task {dep_id} does not exist", "type": "not_found"}
                    )
                elif (reason := dependency_block_reason(dep_id, TaskStatus(status))) is not None:
                    errors.append(
                        {
                            "loc": loc,
                            "msg": f"{reason}; retry it first",
                            "type": "dependency_failed",
                        }
                    )
        del item
    if errors:
        raise InvalidInput("some dependencies cannot be used", errors)
    return resolved, statuses


def create_tasks(
    conn: Tx,
    fx: Effects,
    items: Sequence[TaskCreate],
    now: int,
    idem: IdempotencyRequest | None = None,
    batch: bool = False,
) -> list[dict[str, Any]]:
    """Insert tasks (all or none), their dependency edges and their ``task.created`` events.

    ``batch`` says the items came as ``{"tasks": [...]}``, so errors locate them there.
    """
    replay = idempotent_replay(conn, idem)
    if replay is not None:
        return list(replay)
    project_ids = {str(item.project_id) for item in items if item.project_id is not None}
    if project_ids:
        ids = list(project_ids)
        found = {
            r[0] for r in conn.execute(f"SELECT id FROM projects WHERE id IN ({marks(ids)})", ids)
        }
        missing = [
            {
                "loc": (["tasks", i, "project_id"] if batch else ["project_id"]),
                "msg": f"project {item.project_id} does not exist",
                "type": "not_found",
            }
            for i, item in enumerate(items)
            if item.project_id is not None and str(item.project_id) not in found
        ]
        if missing:
            raise InvalidInput("unknown project", missing)
    new_ids = [new_id() for _ in items]
    deps, statuses = _resolve_dependencies(conn, items, new_ids, batch)
    rows: list[dict[str, Any]] = []
    wire: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    key = idem.key if idem is not None else None
    now_iso = from_us(now)
    for item, task_id, dep_ids in zip(items, new_ids, deps, strict=True):
        waiting = sum(1 for d in dep_ids if statuses.get(d) != _C)
        project_id = str(item.project_id) if item.project_id is not None else None
        run_at = to_us(item.run_at) if item.run_at is not None else now
        # Only the columns a new task can have set; the rest default to NULL.
        rows.append(
            {
                "id": task_id,
                "name": item.name,
                "command": item.command,
                "description": item.description,
                "technical_specs": item.technical_specs,
                "acceptance_criteria": dumps(item.acceptance_criteria),
                "project_id": project_id,
                "task_type": item.task_type.value,
                "priority": item.priority.value,
                "priority_rank": PRIORITY_RANK[item.priority],
                "dependencies": dumps(dep_ids),
                "timeout": item.timeout,
                "retry_attempts": item.retry_attempts,
                "retry_delay": item.retry_delay,
                "retries_used": 0,
                "environment": dumps(item.environment),
                "working_directory": item.working_directory,
                "status": _P,
                "phases": "[]",
                "ai_reviews_required": item.ai_reviews_required,
                "ai_reviews_completed": 0,
                "metadata": dumps(item.metadata),
                "created_at": now,
                "updated_at": now,
                "queue": item.queue,
                "run_at": run_at,
                "attempt": 0,
                "input": dumps(item.input) if item.input is not None else None,
                "idempotency_key": key,
                "waiting_on": waiting,
            }
        )
        wire.append(
            {
                "id": task_id,
                "name": item.name,
                "command": item.command,
                "description": item.description,
                "technical_specs": item.technical_specs,
                "acceptance_criteria": item.acceptance_criteria,
                "project_id": project_id,
                "task_type": item.task_type.value,
                "priority": item.priority.value,
                "dependencies": dep_ids,
                "timeout": item.timeout,
                "retry_attempts": item.retry_attempts,
                "retry_delay": item.retry_delay,
                "environment": item.environment,
                "working_directory": item.working_directory,
                "status": _P,
                "status_reason": None,
                "result": None,
                "phases": [],
                "current_phase": None,
                "ai_reviews_required": item.ai_reviews_required,
                "ai_reviews_completed": 0,
                "metadata": item.metadata,
                "created_at": now_iso,
                "updated_at": now_iso,
                "queue": item.queue,
                "run_at": now_iso if item.run_at is None else from_us(run_at),
                "attempt": 0,
                "started_at": None,
                "finished_at": None,
                "parent_id": None,
                "input": item.input,
                "input_schema": None,
                "output_schema": None,
                "version": None,
                "language": None,
                "code": None,
                "idempotency_key": key,
            }
        )
        edges.extend({"task_id": task_id, "depends_on": d} for d in dep_ids)
        event_rows.append(
            {
                "type": "task.created",
                "task_id": task_id,
                "project_id": project_id,
                "time": now,
                "data": '{"status":"Pending"}',
            }
        )
        if waiting == 0:
            fx.wake = True
    insert_rows(conn, "tasks", rows)
    insert_rows(conn, "task_deps", edges)
    insert_rows(conn, "events", event_rows)
    remember(conn, idem, wire, now)
    return wire


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
            conn.execute(
                "UPDATE tasks SET status = 'Cancelled', status_reason = ?, finished_at = ?,"
                " updated_at = ? WHERE id = ?",
                (reason, now, now, dep["id"]),
            )
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
                f"SELECT id, status FROM tasks WHERE id IN ({marks(dep_ids)})", dep_ids
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
