"""The outbox: every state change appends its event here, in the transaction that makes it.

A committed change therefore always has its event, and an event is never written for a change
that rolled back: readers of the ``events`` table (streams, webhooks) can trust it alone.
Readers read it here too, after an id: event ids only grow, and a reader that stores the last
id it handed on (:func:`set_cursor`) resumes exactly where it was.

Ids grow in commit order on SQLite (one writer). On PostgreSQL two transactions may commit
their events out of id order; a reader that has passed a gap would skip the late one, so the
stream reads only events older than a short settling delay when it resumes past a gap (see
:mod:`taskqueue.server.events`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.store.codec import dumps, from_us, loads
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx, insert_rows, marks
from taskqueue.store.visibility import Projects, project_condition

__all__ = [
    "UNOWNED_PREFIXES",
    "cursor_position",
    "emit",
    "emit_many",
    "event_bounds",
    "event_by_id",
    "event_row",
    "event_to_dict",
    "read_events",
    "set_cursor",
]


def event_row(
    type_: str,
    now: int,
    task_id: str | None = None,
    project_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One event as a row of the ``events`` table, for :func:`emit_many`."""
    return {
        "type": type_,
        "task_id": task_id,
        "project_id": project_id,
        "time": now,
        "data": dumps(data or {}),
    }


def emit(
    tx: Tx,
    fx: Effects,
    type_: str,
    now: int,
    task_id: str | None = None,
    project_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event (and tell the commit's listeners that events were written)."""
    fx.events = True
    tx.execute(
        "INSERT INTO events (type, task_id, project_id, time, data) VALUES (?, ?, ?, ?, ?)",
        (type_, task_id, project_id, now, dumps(data or {})),
    )


def emit_many(tx: Tx, fx: Effects, rows: list[dict[str, Any]]) -> None:
    """Append many events (rows made by :func:`event_row`) in one statement."""
    if rows:
        fx.events = True
        insert_rows(tx, "events", rows)


# ---------------------------------------------------------------------------- readers

#: Event types no project owns and only a caller that sees every project may read.
UNOWNED_PREFIXES = ("key.", "auth.", "webhook.")


def event_to_dict(row: Any) -> dict[str, Any]:
    """A row of ``events`` as the wire's event envelope (see :class:`taskqueue.events.Event`).

    Its ``id`` is the event's position (``position`` in the row): what readers resume after.
    """
    return {
        "id": row["position"],
        "type": row["type"],
        "time": from_us(row["time"]),
        "project_id": row["project_id"],
        "task_id": row["task_id"],
        "data": loads(row["data"]),
        "trace_id": row["trace_id"],
    }


def _type_condition(types: Sequence[str]) -> tuple[str, list[Any]]:
    """``type`` is one of ``types``, where ``task.*`` names a family and ``*`` every type."""
    if not types or "*" in types:
        return "", []
    exact = [t for t in types if not t.endswith(".*")]
    families = [t[:-1] + "%" for t in types if t.endswith(".*")]
    parts = [f"type IN ({marks(exact)})"] if exact else []
    parts += ["type LIKE ?"] * len(families)
    return "(" + " OR ".join(parts) + ")", [*exact, *families]


def read_events(
    tx: Tx,
    after: int,
    limit: int,
    *,
    projects: Projects = None,
    project_id: str | None = None,
    task_id: str | None = None,
    types: Sequence[str] = (),
    queue: str | None = None,
    with_queue: bool = False,
) -> list[dict[str, Any]]:
    """Up to ``limit`` events after id ``after``, oldest first, that pass every filter.

    ``projects`` limits them to a caller's projects (None: every project, and the events no
    project owns); ``queue`` keeps events of tasks on that queue (a deleted task's events have
    no queue any more and are left out). ``with_queue`` adds each event's task's ``queue``
    (None when it has none), for a reader that filters by queue itself.
    """
    position = tx.dialect.event_position
    where = [f"{position} > ?"]
    params: list[Any] = [after]
    visible, ids = project_condition(projects)
    if visible:
        where.append(visible)
        params += ids
    if project_id is not None:
        where.append("project_id = ?")
        params.append(project_id)
    if task_id is not None:
        where.append("task_id = ?")
        params.append(task_id)
    kinds, names = _type_condition(types)
    if kinds:
        where.append(kinds)
        params += names
    if queue is not None:
        where.append("task_id IN (SELECT id FROM tasks WHERE queue = ?)")
        params.append(queue)
    params.append(limit)
    extra = ", (SELECT queue FROM tasks WHERE tasks.id = events.task_id) AS queue"
    rows = tx.execute(
        f"SELECT {position} AS position, type, task_id, project_id, time, data, trace_id"
        f"{extra if with_queue else ''}"
        f" FROM events WHERE {' AND '.join(where)} ORDER BY {position} LIMIT ?",
        params,
    ).fetchall()
    if not with_queue:
        return [event_to_dict(row) for row in rows]
    return [{**event_to_dict(row), "queue": row["queue"]} for row in rows]


def event_by_id(tx: Tx, event_id: int) -> dict[str, Any] | None:
    """The event stored under row id ``event_id``, its ``id`` being its position.

    None until the event has a position (PostgreSQL numbers events after commit), or when it
    is gone.
    """
    position = tx.dialect.event_position
    row = tx.execute(
        f"SELECT {position} AS position, type, task_id, project_id, time, data, trace_id"
        " FROM events WHERE id = ?",
        (event_id,),
    ).fetchone()
    if row is None or row["position"] is None:
        return None
    return event_to_dict(row)


def event_bounds(tx: Tx) -> tuple[int | None, int | None]:
    """The oldest and newest event positions stored (None, None when there is no event)."""
    position = tx.dialect.event_position
    row = tx.execute(f"SELECT MIN({position}), MAX({position}) FROM events").fetchone()
    return (row[0], row[1]) if row is not None else (None, None)


def sequence_events(tx: Tx, fx: Effects, limit: int = 10_000) -> int:
    """Give committed events their positions, where the database needs it done after commit.

    On PostgreSQL, one transaction at a time (the others skip it) numbers up to ``limit``
    events without a position, in id order, after the last position it gave (kept in the
    ``event_cursors`` row ``sequence``, so pruning never makes a number come back). An event
    committed late, after others with higher ids were numbered, is numbered after them: the
    positions readers follow only grow, and none is ever skipped. SQLite needs none of it.
    Returns how many events were numbered.
    """
    numbered = tx.dialect.sequence_events(tx, limit)
    if numbered:
        fx.events = True  # readers in other processes read the new positions
    return numbered


def cursor_position(tx: Tx, name: str) -> int | None:
    """Where the reader ``name`` is: the id of the last event it handed on (None: never ran)."""
    row = tx.execute("SELECT position FROM event_cursors WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def set_cursor(tx: Tx, name: str, position: int, now: int) -> None:
    """Record that the reader ``name`` handed on every event up to ``position``.

    Never moves a cursor back: a reader that restarted from an older position and catches up
    does not undo a newer one's progress.
    """
    moved = tx.execute(
        "UPDATE event_cursors SET position = ?, updated_at = ? WHERE name = ? AND position < ?",
        (position, now, name, position),
    )
    if moved.rowcount == 0:
        exists = tx.execute("SELECT 1 FROM event_cursors WHERE name = ?", (name,)).fetchone()
        if exists is None:
            tx.execute(
                "INSERT INTO event_cursors (name, position, updated_at) VALUES (?, ?, ?)",
                (name, position, now),
            )
