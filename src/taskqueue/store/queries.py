"""Reads: tasks, projects, attempts, output and counts."""

from __future__ import annotations

from typing import Any

from taskqueue.models import TaskFilters
from taskqueue.store.errors import NotFound
from taskqueue.store.rows import attempt_to_dict, project_to_dict, task_to_dict, to_us
from taskqueue.store.sql import Tx, chunks, marks

__all__ = [
    "get_project",
    "get_task",
    "has_expired_leases",
    "has_runnable",
    "held_attempts",
    "list_attempts",
    "list_projects",
    "list_tasks",
    "read_logs",
    "task_counts",
    "task_status",
]


def get_task(conn: Tx, task_id: str) -> dict[str, Any]:
    """One task as its wire dict, or raise :class:`NotFound`."""
    row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None:
        raise NotFound("task", task_id)
    return task_to_dict(row)


def task_status(conn: Tx, task_id: str) -> str | None:
    """A task's status, or None if it does not exist."""
    row = conn.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else str(row[0])


def list_tasks(conn: Tx, filters: TaskFilters) -> tuple[list[dict[str, Any]], int]:
    """A page of tasks matching ``filters``, oldest first, and how many match in all."""
    conditions: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("status", filters.status.value if filters.status else None),
        ("project_id", str(filters.project_id) if filters.project_id else None),
        ("priority", filters.priority.value if filters.priority else None),
        ("task_type", filters.task_type.value if filters.task_type else None),
        ("queue", filters.queue),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if filters.created_after is not None:
        conditions.append("created_at > ?")
        params.append(to_us(filters.created_after))
    if filters.created_before is not None:
        conditions.append("created_at < ?")
        params.append(to_us(filters.created_before))
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = conn.execute(
        f"SELECT * FROM tasks {where} ORDER BY seq LIMIT ? OFFSET ?",
        [*params, filters.limit, filters.offset],
    )
    page = [task_to_dict(row) for row in rows]
    total = conn.execute(f"SELECT count(*) FROM tasks {where}", params).fetchone()[0]
    return page, int(total)


def get_project(conn: Tx, project_id: str) -> dict[str, Any]:
    """One project as its wire dict, or raise :class:`NotFound`."""
    row = conn.execute("SELECT * FROM projects WHERE id = ?", (project_id,)).fetchone()
    if row is None:
        raise NotFound("project", project_id)
    return project_to_dict(row)


def list_projects(conn: Tx, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of projects in creation order, and how many there are."""
    rows = conn.execute(
        "SELECT * FROM projects ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)
    )
    page = [project_to_dict(row) for row in rows]
    total = conn.execute("SELECT count(*) FROM projects").fetchone()[0]
    return page, int(total)


def list_attempts(conn: Tx, task_id: str) -> list[dict[str, Any]]:
    """Every attempt of a task, first to last."""
    if task_status(conn, task_id) is None:
        raise NotFound("task", task_id)
    rows = conn.execute("SELECT * FROM attempts WHERE task_id = ? ORDER BY number", (task_id,))
    return [attempt_to_dict(row) for row in rows]


def read_logs(
    conn: Tx,
    task_id: str,
    offset: int,
    limit: int,
    stream: str | None,
    attempt: int | None,
) -> tuple[list[dict[str, Any]], int, str]:
    """Output chunks from ``offset`` (a chunk seq), the offset to continue from, and the status.

    The status is read before the chunks, so a terminal status means every chunk is already
    visible to the read that follows it.
    """
    status = task_status(conn, task_id)
    if status is None:
        raise NotFound("task", task_id)
    sql = "SELECT seq, attempt, stream, data FROM output_chunks WHERE task_id = ? AND seq >= ?"
    params: list[Any] = [task_id, offset]
    if stream is not None:
        sql += " AND stream = ?"
        params.append(stream)
    if attempt is not None:
        sql += " AND attempt = ?"
        params.append(attempt)
    rows = conn.execute(f"{sql} ORDER BY seq LIMIT ?", [*params, limit]).fetchall()
    chunks = [
        {"seq": r["seq"], "attempt": r["attempt"], "stream": r["stream"], "data": r["data"]}
        for r in rows
    ]
    if rows:
        next_offset = rows[-1]["seq"] + 1
    else:
        last = conn.execute(
            "SELECT max(seq) FROM output_chunks WHERE task_id = ?", (task_id,)
        ).fetchone()[0]
        next_offset = offset if last is None or last < offset else last + 1
    return chunks, next_offset, status


def task_counts(conn: Tx) -> dict[str, int]:
    """How many tasks are in each status."""
    rows = conn.execute("SELECT status, count(*) FROM tasks GROUP BY status")
    return {str(status): int(count) for status, count in rows}


def has_runnable(conn: Tx, queues: list[str], now: int) -> bool:
    """Whether any task of ``queues`` could be claimed now (uses the claim's index)."""
    return (
        conn.execute(
            "SELECT 1 FROM tasks WHERE status = 'Pending' AND waiting_on = 0"
            f" AND queue IN ({marks(queues)}) AND run_at <= ? LIMIT 1",
            (*queues, now),
        ).fetchone()
        is not None
    )


def has_expired_leases(conn: Tx, now: int) -> bool:
    """Whether some running task's lease has expired."""
    return (
        conn.execute(
            "SELECT 1 FROM tasks WHERE status = 'Running' AND lease_expires_at < ? LIMIT 1", (now,)
        ).fetchone()
        is not None
    )


def held_attempts(conn: Tx, attempts: list[tuple[str, int]], now: int) -> set[tuple[str, int]]:
    """Which (task id, attempt) pairs are running under a lease that has not expired."""
    held: set[tuple[str, int]] = set()
    ids = sorted({task_id for task_id, _ in attempts})
    for part in chunks(ids):
        rows = conn.execute(
            f"SELECT id, attempt FROM tasks WHERE id IN ({marks(part)})"
            " AND status = 'Running' AND lease_expires_at >= ?",
            [*part, now],
        )
        held.update((r["id"], r["attempt"]) for r in rows)
    return held & set(attempts)
