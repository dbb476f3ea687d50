"""Creating tasks: one transaction for any number, with dependencies resolved inside it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from taskqueue.engine import PRIORITY_RANK, dependency_block_reason
from taskqueue.models import TaskCreate, TaskStatus
from taskqueue.store.database import Effects
from taskqueue.store.errors import InvalidInput
from taskqueue.store.ids import new_id
from taskqueue.store.rows import dumps, from_us, to_us
from taskqueue.store.sql import Tx, chunks, insert_rows, locking, marks
from taskqueue.store.task_ops import IdempotencyRequest, idempotent_replay, remember

__all__ = ["MAX_EDGES_PER_REQUEST", "create_tasks"]

#: Most dependency edges one create request may add (each is a row and an index entry).
MAX_EDGES_PER_REQUEST = 50_000

_P, _C = TaskStatus.PENDING.value, TaskStatus.COMPLETED.value


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
            # Locked against a concurrent finish: it then sees the new edges and counts them.
            found = conn.execute(
                f"SELECT id, status FROM tasks WHERE id IN ({marks(part)})"
                f"{locking(conn, 'FOR SHARE')}",
                part,
            )
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
