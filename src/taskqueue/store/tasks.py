"""Tasks: creating them (any number in one transaction), changing their fields, deleting, reading.

Status changes are not here: every one of them is a transition (:mod:`.transitions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.engine import PRIORITY_RANK, delete_refusal, edit_refusal
from taskqueue.models import TaskCreate, TaskFilters, TaskStatus, TaskType, TaskUpdate
from taskqueue.store import (
    dependencies,
    functions,
    idempotency,
    outbox,
    schedules,
    transitions,
    workflows,
)
from taskqueue.store.codec import dumps, task_to_dict, to_us
from taskqueue.store.errors import Conflict, InvalidInput, NotFound, StoreError
from taskqueue.store.ids import new_id
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import tasks as tasks_table
from taskqueue.store.sql import Tx, insert_rows, marks
from taskqueue.store.visibility import Projects, project_condition

__all__ = [
    "TASK_COLUMNS",
    "create_tasks",
    "delete_task",
    "get_task",
    "list_tasks",
    "new_task_row",
    "task_counts",
    "update_task",
    "update_tasks",
]

#: The columns of a task row (``seq`` is the database's own), from the schema.
TASK_COLUMNS: tuple[str, ...] = tuple(c.name for c in tasks_table.columns if c.name != "seq")
#: Every column NULL: what a new task's row reads as where it sets nothing.
_NULLS: dict[str, Any] = dict.fromkeys(TASK_COLUMNS)
#: Fields of :class:`TaskUpdate` that may not be set to null.
_NOT_NULL = frozenset(
    {
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
    }
)
_JSON_FIELDS = frozenset(
    {"metadata", "environment", "acceptance_criteria", "input_schema", "output_schema"}
)
#: Fields only a Function definition has.
_FUNCTION_FIELDS = ("input_schema", "output_schema", "validate_output")
_F = TaskType.FUNCTION.value
_SCHED = TaskType.SCHEDULED.value
#: Kinds of task that never run by themselves: templates of the child tasks that do.
_TEMPLATES = (TaskType.FUNCTION, TaskType.SCHEDULED)
_TEMPLATE_VALUES = tuple(t.value for t in _TEMPLATES)
_C = TaskStatus.COMPLETED.value


def _check_projects(
    tx: Tx, items: Sequence[TaskCreate], batch: bool, projects: Projects = None
) -> None:
    if projects is not None:
        unplaced = [
            {
                "loc": (["tasks", i, "project_id"] if batch else ["project_id"]),
                "msg": "this API key is limited to projects: give the project_id of one",
                "type": "missing",
            }
            for i, item in enumerate(items)
            if item.project_id is None
        ]
        if unplaced:
            raise InvalidInput("a project is required", unplaced)
    ids = list({str(item.project_id) for item in items if item.project_id is not None})
    if not ids:
        return
    found = {r[0] for r in tx.execute(f"SELECT id FROM projects WHERE id IN ({marks(ids)})", ids)}
    if projects is not None:
        found &= projects
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


def new_task_row(
    item: TaskCreate, task_id: str, dep_ids: list[str], waiting: int, now: int, key: str | None
) -> dict[str, Any]:
    """The row of a new task: the columns it sets (the others are NULL).

    Its status is set by :func:`transitions.create`, which inserts it. A Function definition
    starts at version 1 and is never runnable (it waits, ``waiting_on`` 1, for nothing).
    """
    definition = item.task_type is TaskType.FUNCTION
    template = item.task_type in _TEMPLATES
    return {
        "id": task_id,
        "name": item.name,
        "command": item.command or "",
        "language": item.language,
        "code": item.code,
        "limits": dumps(item.limits.stored()) if item.limits and item.limits.stored() else None,
        "description": item.description,
        "technical_specs": item.technical_specs,
        "acceptance_criteria": dumps(item.acceptance_criteria),
        "project_id": str(item.project_id) if item.project_id is not None else None,
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
        "phases": "[]",
        "ai_reviews_required": item.ai_reviews_required,
        "ai_reviews_completed": 0,
        "metadata": dumps(item.metadata),
        "created_at": now,
        "updated_at": now,
        "queue": item.queue,
        "run_at": to_us(item.run_at) if item.run_at is not None else now,
        "attempt": 0,
        "input": dumps(item.input) if item.input is not None else None,
        "input_schema": dumps(item.input_schema) if item.input_schema is not None else None,
        "output_schema": dumps(item.output_schema) if item.output_schema is not None else None,
        "version": 1 if definition else None,
        "validate_output": int(item.validate_output) if definition else None,
        "idempotency_key": key,
        "waiting_on": 1 if template else waiting,
    }


def create_tasks(
    tx: Tx,
    fx: Effects,
    items: Sequence[TaskCreate],
    now: int,
    idem: idempotency.IdempotencyRequest | None = None,
    batch: bool = False,
    projects: Projects = None,
) -> list[dict[str, Any]]:
    """Insert tasks (all or none), their dependency edges and their ``task.created`` events.

    ``batch`` says the items came as ``{"tasks": [...]}``, so errors locate them there; tasks
    outside ``projects`` are neither created nor usable as dependencies.
    """
    replay = idempotency.replay(tx, idem)
    if replay is not None:
        return list(replay)
    _check_projects(tx, items, batch, projects)
    walks = workflows.workflow_columns(tx, items, batch)
    new_ids = [new_id() for _ in items]
    found = dependencies.resolve(tx, items, new_ids, batch, projects)
    key = idem.key if idem is not None else None
    rows: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for item, task_id, dep_ids, refs, walk in zip(
        items, new_ids, found.ids, found.refs, walks, strict=True
    ):
        waiting = sum(1 for d in dep_ids if found.statuses.get(d) != _C)
        rows.append({**new_task_row(item, task_id, dep_ids, waiting, now, key), **walk})
        edges.extend({"task_id": task_id, "depends_on": d, "ref": refs.get(d)} for d in dep_ids)
    transitions.create(tx, fx, rows, now)
    insert_rows(tx, "task_deps", edges)
    functions.first_versions(tx, [row for row in rows if row["task_type"] == _F], now)
    scheduled = [(r, i) for r, i in zip(rows, items, strict=True) if i.task_type.value == _SCHED]
    if scheduled:
        schedules.create_schedules(tx, [r for r, _ in scheduled], [i for _, i in scheduled], now)
    # Only the columns set go into the INSERT; the wire dict reads the others as NULL.
    wire = [task_to_dict({**_NULLS, **row}) for row in rows]
    schedules.attach(tx, wire)
    idempotency.remember(tx, idem, wire, now)
    return wire


def update_task(tx: Tx, fx: Effects, task_id: str, changes: TaskUpdate, now: int) -> dict[str, Any]:
    """Change a task's fields; those that say how it runs only while it is Pending."""
    row = transitions.locked_task_row(tx, task_id)
    given = changes.model_dump(exclude_unset=True)
    _check_body_fields(row, given)
    refusal = edit_refusal(TaskStatus(row["status"]), given)
    if refusal is not None:
        raise Conflict(refusal)
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None and name in _NOT_NULL:
            raise InvalidInput(
                f"{name} cannot be null",
                [{"loc": [name], "msg": "cannot be null", "type": "value_error"}],
            )
        if name == "priority":
            assert changes.priority is not None
            values["priority"] = changes.priority.value
            values["priority_rank"] = PRIORITY_RANK[changes.priority]
        elif name == "run_at":
            values["run_at"] = to_us(value)
        elif name in _JSON_FIELDS:
            values[name] = dumps(value) if value is not None else None
        elif name == "validate_output":
            values[name] = int(value)
        else:
            values[name] = value
    if row["task_type"] == _F:
        version = functions.next_version(tx, row, values, now)
        if version is not None:
            values["version"] = version
    if values:
        values["updated_at"] = now
        assignments = ", ".join(f"{name} = ?" for name in values)
        tx.execute(f"UPDATE tasks SET {assignments} WHERE id = ?", [*values.values(), task_id])
        outbox.emit(
            tx, fx, "task.updated", now, task_id, row["project_id"], {"fields": sorted(given)}
        )
        if "run_at" in values or "queue" in values or "priority" in values:
            fx.wake = True
    wire = task_to_dict(transitions.locked_task_row(tx, task_id))
    schedules.attach(tx, [wire])
    return wire


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(msg, [{"loc": [loc], "msg": msg, "type": "value_error"}])


def _check_body_fields(row: Any, given: dict[str, Any]) -> None:
    """Refuse changes of a body the task does not have, or of schemas outside definitions.

    A task with phases (a Workflow task, or a Scheduled one that makes workflows) runs the
    bodies its phases were given when it was made: its own command and code do not change.
    """
    if row["phases"] not in (None, "[]"):
        for name in ("command", "code"):
            if name in given:
                raise _invalid(
                    name,
                    f"this task runs phases, each with the body it was given when the task was "
                    f"made; its {name} cannot change (make a new task with new phases)",
                )
    if "command" in given and row["language"] is not None:
        raise _invalid("command", "this task runs code, not a command")
    if "code" in given and row["language"] is None:
        raise _invalid("code", "this task runs a command, not code")
    if row["task_type"] != _F:
        for name in _FUNCTION_FIELDS:
            if name in given:
                raise _invalid(name, f"only Function definitions have {name}")


def delete_task(tx: Tx, fx: Effects, task_id: str, now: int) -> None:
    """Delete a task that is not Running and that no unfinished task depends on."""
    row = transitions.locked_task_row(tx, task_id)
    status = TaskStatus(row["status"])
    waiting = 0 if status is TaskStatus.RUNNING else dependencies.unfinished_dependents(tx, task_id)
    refusal = delete_refusal(status, waiting)
    if refusal is not None:
        raise Conflict(refusal)
    tx.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
    outbox.emit(tx, fx, "task.deleted", now, task_id, row["project_id"], {})
    fx.changed.add(task_id)


def get_task(tx: Tx, task_id: str, projects: Projects = None) -> dict[str, Any]:
    """One task as its wire dict, or raise :class:`NotFound` (also outside ``projects``)."""
    row = tx.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None or (projects is not None and row["project_id"] not in projects):
        raise NotFound("task", task_id)
    wire = task_to_dict(row)
    schedules.attach(tx, [wire])
    return wire


def list_tasks(
    tx: Tx, filters: TaskFilters, projects: Projects = None
) -> tuple[list[dict[str, Any]], int]:
    """A page of tasks matching ``filters`` within ``projects``, and how many match."""
    visible, params = project_condition(projects)
    conditions: list[str] = [visible] if visible else []
    if filters.status is not None:
        condition, values = workflows.status_condition(filters.status.value)
        conditions.append(condition)
        params.extend(values)
    for column, value in (
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
    if filters.id_part is not None:
        part = filters.id_part.lower()  # hexadecimal digits and dashes: no LIKE wildcard
        conditions.append("(id LIKE ? OR id LIKE ?)")
        params += [f"{part}%", f"%{part}"]
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    order = "seq DESC" if filters.sort == "-created_at" else "seq"
    rows = tx.execute(
        f"SELECT * FROM tasks {where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, filters.limit, filters.offset],
    )
    page = [task_to_dict(row) for row in rows]
    schedules.attach(tx, page)
    total = tx.execute(f"SELECT count(*) FROM tasks {where}", params).fetchone()[0]
    return page, int(total)


def task_counts(tx: Tx, projects: Projects = None) -> dict[str, int]:
    """How many tasks (within ``projects``) are in each status."""
    visible, params = project_condition(projects)
    # A Function definition or a Scheduled task is not work: it never runs by itself.
    templates = ", ".join(f"'{t}'" for t in _TEMPLATE_VALUES)
    where = f"WHERE task_type NOT IN ({templates})" + (f" AND {visible} " if visible else " ")
    rows = tx.execute(f"SELECT status, count(*) FROM tasks {where}GROUP BY status", params)
    return {str(status): int(count) for status, count in rows}


def _refusal(index: int, task_id: str, error: StoreError) -> list[dict[str, Any]]:
    """What one refused item of a batch update reports, located in the request body."""
    where: list[Any] = ["updates", index]
    if isinstance(error, NotFound):
        return [{"loc": [*where, "task_id"], "msg": error.message, "type": "not_found"}]
    if isinstance(error, InvalidInput):
        return [{**d, "loc": [*where, "changes", *d["loc"]]} for d in error.details]
    return [{"loc": [*where, "changes"], "msg": error.message, "type": "conflict"}]


def update_tasks(
    tx: Tx, fx: Effects, updates: Sequence[tuple[str, TaskUpdate]], now: int
) -> list[dict[str, Any]]:
    """Change many tasks' fields, all or none, by the rules of :func:`update_task`.

    Every item is tried, so a refusal names each refused item (``loc`` ``["updates", i, ...]``,
    ``msg``, ``type``, ``task_id``); if any was refused, :class:`Conflict` carries them all and
    the transaction (every update already made in it) is rolled back.
    """
    refused: list[dict[str, Any]] = []
    latest: dict[str, dict[str, Any]] = {}
    for index, (task_id, changes) in enumerate(updates):
        try:
            latest[task_id] = update_task(tx, fx, task_id, changes, now)
        except (NotFound, Conflict, InvalidInput) as error:
            refused.extend({"task_id": task_id, **d} for d in _refusal(index, task_id, error))
    if refused:
        first = refused[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise Conflict(
            f"{len({d['loc'][1] for d in refused})} of {len(updates)} updates were refused, "
            f"so none was applied: {where}: {first['msg']}{more}",
            refused,
        )
    return [latest[task_id] for task_id, _ in updates]
