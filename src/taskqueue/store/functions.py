"""Function definitions: their versions, and the child tasks that execute them.

A definition is a row of ``tasks`` (``task_type`` Function) holding its current version's body
and schemas; ``task_versions`` keeps every version. An execution is a child Simple task
(``parent_id`` the definition, ``version`` the one it runs) made from a version: its id is the
execution's id. Inputs are validated against the schema by the caller (the API), before
:func:`start` is called with the version they were checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskqueue.models import TERMINAL_STATUSES, TaskStatus, TaskType
from taskqueue.store import idempotency, transitions
from taskqueue.store.children import child_row
from taskqueue.store.codec import dumps, from_us, loads, task_to_dict
from taskqueue.store.errors import Conflict, InvalidInput, NotFound
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx, insert_rows

__all__ = [
    "Definition",
    "Run",
    "definition",
    "execution",
    "execution_result",
    "first_versions",
    "list_versions",
    "next_version",
    "start",
    "task_at_version",
]

_F = TaskType.FUNCTION.value
_S = TaskType.SIMPLE.value
#: The columns a version keeps: those whose change makes a new version.
VERSIONED = ("command", "language", "code", "input_schema", "output_schema")
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)


def _version_row(task_id: str, version: int, source: Any, now: int) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "version": version,
        **{column: source[column] for column in VERSIONED},
        "created_at": now,
    }


def first_versions(tx: Tx, rows: Sequence[dict[str, Any]], now: int) -> None:
    """Store version 1 of each new definition (``rows``: their new task rows)."""
    insert_rows(tx, "task_versions", [_version_row(r["id"], 1, r, now) for r in rows])


def next_version(tx: Tx, row: Any, values: dict[str, Any], now: int) -> int | None:
    """The new version of a definition whose ``values`` change, or None if no body change.

    ``row`` is the definition's row before the change; the new version's body is stored.
    """
    current = {column: row[column] for column in VERSIONED}
    changed = {c: values[c] for c in VERSIONED if c in values and values[c] != current[c]}
    if not changed:
        return None
    version = int(row["version"]) + 1
    insert_rows(
        tx, "task_versions", [_version_row(row["id"], version, {**current, **changed}, now)]
    )
    return version


def _version_to_dict(row: Any) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "version": row["version"],
        "command": row["command"],
        "language": row["language"],
        "code": row["code"],
        "input_schema": loads(row["input_schema"]),
        "output_schema": loads(row["output_schema"]),
        "created_at": from_us(row["created_at"]),
    }


def _visible_row(tx: Tx, task_id: str, projects: frozenset[str] | None, lock: bool = False) -> Any:
    row = tx.execute(
        f"SELECT * FROM tasks WHERE id = ?{tx.dialect.lock() if lock else ''}", (task_id,)
    ).fetchone()
    if row is None or (projects is not None and row["project_id"] not in projects):
        raise NotFound("task", task_id)
    return row


def _version_of(
    tx: Tx, task_id: str, version: int | None, projects: frozenset[str] | None, lock: bool = False
) -> tuple[Any, Any]:
    """A definition's row and the row of one of its versions (None: the current one)."""
    row = _visible_row(tx, task_id, projects, lock)
    if row["task_type"] != _F:
        raise _not_a_definition(row)
    number = row["version"] if version is None else version
    found = tx.execute(
        "SELECT * FROM task_versions WHERE task_id = ? AND version = ?", (task_id, number)
    ).fetchone()
    if found is None:
        raise _unknown_version(row, number)
    return row, found


def _not_a_definition(row: Any) -> Conflict:
    return Conflict(
        f"task {row['id']} is a {row['task_type']} task, not a Function definition; only "
        "definitions have versions and executions"
    )


def _unknown_version(row: Any, version: int) -> InvalidInput:
    latest = row["version"]
    msg = f"task {row['id']} has versions 1 to {latest}, not {version}"
    return InvalidInput(msg, [{"loc": ["version"], "msg": msg, "type": "not_found"}])


def list_versions(tx: Tx, task_id: str, projects: frozenset[str] | None) -> list[dict[str, Any]]:
    """Every version of a definition, oldest first."""
    row = _visible_row(tx, task_id, projects)
    if row["task_type"] != _F:
        raise _not_a_definition(row)
    rows = tx.execute(
        "SELECT * FROM task_versions WHERE task_id = ? ORDER BY version", (task_id,)
    ).fetchall()
    return [_version_to_dict(r) for r in rows]


def task_at_version(
    tx: Tx, task_id: str, version: int, projects: frozenset[str] | None
) -> dict[str, Any]:
    """A definition as it was at ``version``: its body and schemas then, the rest as now."""
    row, found = _version_of(tx, task_id, version, projects)
    return task_to_dict({**dict(row), "version": version, **{c: found[c] for c in VERSIONED}})


@dataclass(frozen=True)
class Definition:
    """A definition's version, as an execution of it runs: what the API validates inputs by."""

    task_id: str
    version: int
    input_schema: Any
    output_schema: Any
    validate_output: bool
    project_id: str | None


def definition(
    tx: Tx, task_id: str, version: int | None, projects: frozenset[str] | None
) -> Definition:
    """The version of a definition an execution would run (None: the current one)."""
    row, found = _version_of(tx, task_id, version, projects)
    return Definition(
        task_id=task_id,
        version=int(found["version"]),
        input_schema=loads(found["input_schema"]),
        output_schema=loads(found["output_schema"]),
        validate_output=bool(row["validate_output"]),
        project_id=row["project_id"],
    )


@dataclass(frozen=True)
class Run:
    """One execution to start: its input, whether its output is checked, and its batch."""

    input: Any
    validate: bool
    batch_id: str | None = None
    held: bool = False


def _child_row(definition: Any, version: Any, run: Run, now: int) -> dict[str, Any]:
    """The row of a child task running ``version`` of ``definition`` with ``run``'s input."""
    return child_row(
        definition,
        now,
        version=version["version"],
        **{column: version[column] for column in ("command", "language", "code")},
        input=dumps(run.input) if run.input is not None else None,
        output_schema=version["output_schema"] if run.validate else None,
        batch_id=run.batch_id,
        waiting_on=1 if run.held else 0,
    )


def start(
    tx: Tx,
    fx: Effects,
    task_id: str,
    version: int,
    runs: Sequence[Run],
    now: int,
    idem: idempotency.IdempotencyRequest | None = None,
) -> list[str]:
    """Create the child tasks of ``runs`` (all or none); their ids, the executions' ids.

    A repeat of a keyed request returns the executions the first one started.
    """
    replay = idempotency.replay(tx, idem)
    if replay is not None:
        return [str(item["id"]) for item in replay]
    row, found = _version_of(tx, task_id, version, None, lock=True)
    children = [_child_row(row, found, run, now) for run in runs]
    transitions.create(tx, fx, children, now)
    ids = [child["id"] for child in children]
    idempotency.remember(tx, idem, [{"id": i} for i in ids], now)
    return ids


def execution_result(row: Any) -> dict[str, Any]:
    """A child task's row as an ``ExecutionResult``."""
    result = loads(row["result"]) or {}
    status = row["status"]
    failed = status in _TERMINAL and status != TaskStatus.COMPLETED.value
    return {
        "execution_id": row["id"],
        "task_id": row["parent_id"],
        "version": row["version"],
        "status": status,
        "input": loads(row["input"]),
        "output": result.get("output") if status == TaskStatus.COMPLETED.value else None,
        "error": (row["status_reason"] or result.get("error")) if failed else None,
        "failure_reason": row["failure_reason"] if failed else None,
        "exit_code": result.get("exit_code"),
        "duration_ms": result.get("duration_ms"),
        "attempts": row["attempt"],
        "validated": row["output_schema"] is not None,
        "created_at": from_us(row["created_at"]),
        "started_at": from_us(row["started_at"]),
        "finished_at": from_us(row["finished_at"]),
    }


def execution(tx: Tx, execution_id: str, projects: frozenset[str] | None) -> dict[str, Any]:
    """One execution as an ``ExecutionResult``, or raise :class:`NotFound`."""
    row = tx.execute("SELECT * FROM tasks WHERE id = ?", (execution_id,)).fetchone()
    if (
        row is None
        or row["parent_id"] is None
        or row["version"] is None
        or row["task_type"] != _S
        or (projects is not None and row["project_id"] not in projects)
    ):
        raise NotFound("execution", execution_id)
    return execution_result(row)
