"""Dependency edges: resolved when tasks are created, counted down as dependencies complete.

An edge table ``task_deps (task_id, depends_on)`` and a ``waiting_on`` counter per task: a task
is runnable only at 0. A dependency is an existing task's id or the ``ref`` of an *earlier*
item of the same batch, so every edge points backwards in time and no cycle can form.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskqueue.engine import dependency_block_reason
from taskqueue.models import TaskCreate, TaskStatus, TaskType
from taskqueue.store.codec import loads
from taskqueue.store.errors import Conflict, InvalidInput
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import FINISHED_SQL
from taskqueue.store.sql import Tx, chunks, marks
from taskqueue.store.visibility import Projects, project_condition

#: Tasks that never run by themselves (their runs do): nothing can depend on them.
_TEMPLATES = (TaskType.FUNCTION, TaskType.SCHEDULED)
_TEMPLATE_VALUES = tuple(t.value for t in _TEMPLATES)

__all__ = [
    "MAX_EDGES_PER_REQUEST",
    "Resolved",
    "count_waiting",
    "outputs",
    "pending_dependents",
    "release_dependents",
    "resolve",
    "unfinished_dependents",
]

#: Most dependency edges one create request may add (each is a row and an index entry).
MAX_EDGES_PER_REQUEST = 50_000

_C, _F, _X = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value, TaskStatus.CANCELLED.value


def _parse_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _error(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


@dataclass
class Resolved:
    """Each item's dependency ids, the refs some were named by, and the statuses found."""

    #: Per item: the ids of its dependencies, in the order given.
    ids: list[list[str]]
    #: Per item: the dependencies it named by ref (id → ref).
    refs: list[dict[str, str]]
    #: The status of every existing task referenced.
    statuses: dict[str, str] = field(default_factory=dict)


def _references(
    items: Sequence[TaskCreate], new_ids: list[str], batch: bool
) -> tuple[Resolved, set[str], list[dict[str, Any]]]:
    """Each item's dependencies, the existing tasks they name, and the errors found."""
    refs: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    resolved = Resolved([], [])
    existing: set[str] = set()
    for index, item in enumerate(items):
        deps: list[str] = []
        named: dict[str, str] = {}
        for position, dep in enumerate(item.dependencies):
            loc = (
                ["tasks", index, "dependencies", position] if batch else ["dependencies", position]
            )
            task_id: str | None
            ref: str | None
            if isinstance(dep, str):
                task_id = _parse_uuid(dep)
                ref = dep if task_id is None else None
            else:
                task_id = str(dep.task_id) if dep.task_id is not None else None
                ref = dep.ref
                if (task_id is None) == (ref is None):
                    errors.append(_error(loc, "give exactly one of task_id and ref", "value_error"))
                    continue
            if ref is not None:
                if ref not in refs:
                    msg = f"no earlier item of this batch has ref {ref!r}"
                    errors.append(_error(loc, msg, "unknown_reference"))
                    continue
                task_id = new_ids[refs[ref]]
                named.setdefault(task_id, ref)
            else:
                assert task_id is not None
                existing.add(task_id)
            if task_id not in deps:
                deps.append(task_id)
        resolved.ids.append(deps)
        resolved.refs.append(named)
        if item.ref is not None:
            loc = ["tasks", index, "ref"]
            if item.ref in refs:
                msg = f"ref {item.ref!r} is used by an earlier item"
                errors.append(_error(loc, msg, "duplicate_reference"))
            elif _parse_uuid(item.ref) is not None:
                errors.append(_error(loc, "a ref must not look like a task id", "value_error"))
            refs[item.ref] = index
    return resolved, existing, errors


def resolve(
    tx: Tx,
    items: Sequence[TaskCreate],
    new_ids: list[str],
    batch: bool,
    projects: Projects = None,
) -> Resolved:
    """Each item's dependency ids (and refs), and the status of every existing task referenced.

    Raises :class:`InvalidInput` naming each dependency that cannot be used: unknown, or
    already Failed or Cancelled (the new task could never run).
    """
    resolved, existing, errors = _references(items, new_ids, batch)
    total_edges = sum(len(deps) for deps in resolved.ids)
    if total_edges > MAX_EDGES_PER_REQUEST:
        limit = MAX_EDGES_PER_REQUEST
        raise InvalidInput(
            f"the request has {total_edges} dependencies; the limit is {limit}",
            [
                _error(
                    ["dependencies"],
                    f"{total_edges} in one request; the limit is {limit}",
                    "too_long",
                )
            ],
        )
    statuses = resolved.statuses
    # Templates named (id → their task_type): Function definitions, Scheduled tasks.
    kinds = {
        task_id: item.task_type.value
        for item, task_id in zip(items, new_ids, strict=True)
        if item.task_type in _TEMPLATES
    }
    visible, in_projects = project_condition(projects)  # others' tasks do not exist for us
    visible = f" AND {visible}" if visible else ""
    for part in chunks(list(existing)):
        # Locked against a concurrent finish: it then sees the new edges and counts them.
        share = tx.dialect.lock("FOR SHARE")
        found = tx.execute(
            f"SELECT id, status, task_type FROM tasks WHERE id IN ({marks(part)}){visible}{share}",
            [*part, *in_projects],
        ).fetchall()
        statuses.update({r["id"]: r["status"] for r in found})
        kinds.update({r["id"]: r["task_type"] for r in found if r["task_type"] in _TEMPLATE_VALUES})
    for index, deps in enumerate(resolved.ids):
        for position, dep_id in enumerate(deps):
            loc = (
                ["tasks", index, "dependencies", position] if batch else ["dependencies", position]
            )
            if dep_id in kinds:
                msg = f"task {dep_id} is a {kinds[dep_id]} task, which never runs by itself"
                errors.append(_error(loc, f"{msg}; depend on one of its runs", "template"))
                continue
            if dep_id not in existing:
                continue
            status = statuses.get(dep_id)
            if status is None:
                errors.append(_error(loc, f"task {dep_id} does not exist", "not_found"))
            elif (reason := dependency_block_reason(dep_id, TaskStatus(status))) is not None:
                errors.append(_error(loc, f"{reason}; retry it first", "dependency_failed"))
    if errors:
        raise InvalidInput("some dependencies cannot be used", errors)
    return resolved


def count_waiting(tx: Tx, dep_ids: list[str]) -> int:
    """How many of ``dep_ids`` have not Completed, for a task queued again (a manual retry).

    Raises :class:`~taskqueue.store.errors.Conflict` if one is gone or can never complete.
    """
    if not dep_ids:
        return 0
    share = tx.dialect.lock("FOR SHARE")
    found = {
        r["id"]: r["status"]
        for r in tx.execute(
            f"SELECT id, status FROM tasks WHERE id IN ({marks(dep_ids)}){share}", dep_ids
        )
    }
    waiting = 0
    for dep_id in dep_ids:
        status = found.get(dep_id)
        if status is None:
            raise Conflict(f"dependency {dep_id} no longer exists; the task cannot run")
        if status in (_F, _X):
            raise Conflict(f"dependency {dep_id} is {status}; retry it first")
        if status != _C:
            waiting += 1
    return waiting


def release_dependents(tx: Tx, fx: Effects, completed: Sequence[str]) -> None:
    """Count ``completed`` tasks off their dependents; a dependent reaching 0 may run."""
    # Most tasks have no dependents: one indexed read settles it. A dependent of two tasks
    # that complete together is released by two.
    released: dict[str, int] = {}
    for part in chunks(completed):
        for dep in tx.execute(
            f"SELECT task_id FROM task_deps WHERE depends_on IN ({marks(part)})", list(part)
        ):
            released[dep[0]] = released.get(dep[0], 0) + 1
    for dependent in sorted(released):  # in id order: writers lock rows in the same order
        left = tx.execute(
            "UPDATE tasks SET waiting_on = waiting_on - ? WHERE id = ? AND status = 'Pending'"
            " RETURNING waiting_on",
            (released[dependent], dependent),
        ).fetchone()
        if left is not None and left[0] == 0:
            fx.wake = True


def pending_dependents(tx: Tx, task_ids: Iterable[str]) -> list[Any]:
    """Pending tasks depending on one of ``task_ids``: id, project_id, depends_on, its status."""
    ids = list(task_ids)
    return [
        row
        for part in chunks(ids)
        for row in tx.execute(
            "SELECT t.id, t.project_id, d.depends_on, p.status AS parent_status"
            " FROM task_deps d JOIN tasks t ON t.id = d.task_id"
            " JOIN tasks p ON p.id = d.depends_on"
            f" WHERE d.depends_on IN ({marks(part)}) AND t.status = 'Pending'",
            list(part),
        )
    ]


def unfinished_dependents(tx: Tx, task_id: str) -> int:
    """How many unfinished tasks depend on ``task_id``."""
    return int(
        tx.execute(
            "SELECT count(*) FROM task_deps d JOIN tasks t ON t.id = d.task_id"
            f" WHERE d.depends_on = ? AND t.status NOT IN {FINISHED_SQL}",
            (task_id,),
        ).fetchone()[0]
    )


def outputs(tx: Tx, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What each task's dependencies produced: ``$TASKQUEUE_DEPENDENCIES`` of each.

    Per task, a map from each dependency's id, and from the ref it was named by (where one
    was), to ``{"id", "ref", "name", "status", "output"}``. Tasks without dependencies are
    not in the answer.
    """
    found: dict[str, dict[str, Any]] = {}
    for part in chunks(list(task_ids)):
        rows = tx.execute(
            "SELECT d.task_id, d.depends_on, d.ref, t.name, t.status, t.result"
            " FROM task_deps d JOIN tasks t ON t.id = d.depends_on"
            f" WHERE d.task_id IN ({marks(part)})",
            list(part),
        )
        for row in rows:
            result = loads(row["result"]) or {}
            entry = {
                "id": row["depends_on"],
                "ref": row["ref"],
                "name": row["name"],
                "status": row["status"],
                "output": result.get("output"),
            }
            mapping = found.setdefault(row["task_id"], {})
            mapping[row["depends_on"]] = entry
            if row["ref"] is not None:
                mapping[row["ref"]] = entry
    return found
