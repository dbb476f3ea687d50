"""Projects: create, read, update, and delete (refused while it has tasks, unless cascading)."""

from __future__ import annotations

from typing import Any

from taskqueue.engine import project_delete_refusal
from taskqueue.models import ProjectCreate, ProjectUpdate
from taskqueue.store import idempotency, outbox
from taskqueue.store.codec import dumps, project_to_dict, to_us
from taskqueue.store.errors import Conflict, InvalidInput, NotFound
from taskqueue.store.ids import new_id
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import FINISHED_SQL
from taskqueue.store.sql import Tx, insert_rows
from taskqueue.store.visibility import Projects, project_condition

__all__ = [
    "create_project",
    "delete_project",
    "get_project",
    "get_project_row",
    "list_projects",
    "update_project",
]


def get_project_row(conn: Tx, project_id: str) -> Any:
    """The project's row, or raise :class:`NotFound`."""
    row = conn.execute("SELECT * FROM projects WHERE id = ?", (project_id,)).fetchone()
    if row is None:
        raise NotFound("project", project_id)
    return row


def _name_taken(conn: Tx, name: str, other_than: str = "") -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM projects WHERE name = ? AND id != ?", (name, other_than)
        ).fetchone()
        is not None
    )


def create_project(
    conn: Tx,
    fx: Effects,
    data: ProjectCreate,
    now: int,
    idem: idempotency.IdempotencyRequest | None = None,
) -> dict[str, Any]:
    """Insert a project; names are unique."""
    replay = idempotency.replay(conn, idem)
    if replay is not None:
        return dict(replay)
    if _name_taken(conn, data.name):
        raise Conflict(f"a project named {data.name!r} already exists")
    project_id = new_id()
    row: dict[str, Any] = {
        "id": project_id,
        "name": data.name,
        "description": data.description,
        "status": data.status,
        "due_date": to_us(data.due_date) if data.due_date is not None else None,
        "tags": dumps(data.tags),
        "metadata": dumps(data.metadata),
        "created_at": now,
        "updated_at": now,
    }
    # A concurrent create of the same name fails on the unique key, and the pipeline runs
    # this again (it then sees the winner's row and answers Conflict).
    insert_rows(conn, "projects", [row])
    outbox.emit(conn, fx, "project.created", now, None, project_id, {"name": data.name})
    result = project_to_dict(row)
    idempotency.remember(conn, idem, result, now)
    return result


def update_project(
    conn: Tx, fx: Effects, project_id: str, changes: ProjectUpdate, now: int
) -> dict[str, Any]:
    """Change the fields given."""
    get_project_row(conn, project_id)
    given = changes.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None and name in ("name", "status", "tags", "metadata"):
            raise InvalidInput(
                f"{name} cannot be null",
                [{"loc": [name], "msg": "cannot be null", "type": "value_error"}],
            )
        if name == "name" and _name_taken(conn, value, other_than=project_id):
            raise Conflict(f"a project named {value!r} already exists")
        if name in ("tags", "metadata"):
            values[name] = dumps(value)
        elif name == "due_date":
            values[name] = to_us(value) if value is not None else None
        else:
            values[name] = value
    if values:
        values["updated_at"] = now
        assignments = ", ".join(f"{name} = ?" for name in values)
        conn.execute(
            f"UPDATE projects SET {assignments} WHERE id = ?", [*values.values(), project_id]
        )
        outbox.emit(conn, fx, "project.updated", now, None, project_id, {"fields": sorted(given)})
    return project_to_dict(get_project_row(conn, project_id))


def delete_project(conn: Tx, fx: Effects, project_id: str, cascade: bool, now: int) -> None:
    """Delete a project; with tasks only when ``cascade`` and none of them is Running."""
    get_project_row(conn, project_id)
    count = conn.execute(
        "SELECT count(*) FROM tasks WHERE project_id = ?", (project_id,)
    ).fetchone()[0]
    running = 0
    outside: tuple[str, str] | None = None
    if count and cascade:
        running = conn.execute(
            "SELECT count(*) FROM tasks WHERE project_id = ? AND status = 'Running'",
            (project_id,),
        ).fetchone()[0]
        row = conn.execute(
            "SELECT t.id, p.id FROM task_deps d JOIN tasks t ON t.id = d.task_id"
            " JOIN tasks p ON p.id = d.depends_on"
            " WHERE p.project_id = ? AND (t.project_id IS NULL OR t.project_id <> ?)"
            f" AND t.status NOT IN {FINISHED_SQL} LIMIT 1",
            (project_id, project_id),
        ).fetchone()
        outside = None if row is None else (row[0], row[1])
    refusal = project_delete_refusal(count, cascade, running, outside)
    if refusal is not None:
        raise Conflict(refusal)
    if count:
        ids = [
            r[0] for r in conn.execute("SELECT id FROM tasks WHERE project_id = ?", (project_id,))
        ]
        conn.execute("DELETE FROM tasks WHERE project_id = ?", (project_id,))
        fx.changed.update(ids)
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))
    outbox.emit(conn, fx, "project.deleted", now, None, project_id, {"tasks_deleted": count})


def get_project(conn: Tx, project_id: str) -> dict[str, Any]:
    """One project as its wire dict, or raise :class:`NotFound`."""
    return project_to_dict(get_project_row(conn, project_id))


def list_projects(
    conn: Tx, limit: int, offset: int, projects: Projects = None
) -> tuple[list[dict[str, Any]], int]:
    """A page of projects (of ``projects``) in creation order, and how many there are."""
    visible, params = project_condition(projects, "id")
    where = f"WHERE {visible} " if visible else ""
    rows = conn.execute(
        f"SELECT * FROM projects {where}ORDER BY created_at, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    page = [project_to_dict(row) for row in rows]
    total = conn.execute(f"SELECT count(*) FROM projects {where}", params).fetchone()[0]
    return page, int(total)
