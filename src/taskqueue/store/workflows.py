"""Workflow tasks in the store: project workflows, the phases a new task walks, reviews, links.

The transitions of a workflow (a phase's end, a review gate's verdicts) are in
:mod:`.transitions.gates`; here are the reads and the rows around them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from taskqueue._workflow_models import SEED_PHASES, PhaseSpec, WorkflowCreate
from taskqueue.engine.workflows import Body, default_phases, resolve_phases
from taskqueue.models import TaskCreate, TaskType
from taskqueue.store import idempotency
from taskqueue.store.codec import dumps, from_us, loads
from taskqueue.store.errors import Conflict, InvalidInput, NotFound
from taskqueue.store.ids import new_id
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx
from taskqueue.store.transitions import gates, locked_task_row
from taskqueue.store.transitions.phases import round_of
from taskqueue.store.visibility import Projects

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "LinkClosed",
    "create_link",
    "create_workflow",
    "delete_workflow",
    "get_workflow",
    "list_reviews",
    "list_workflows",
    "read_link",
    "review",
    "status_condition",
    "token_hash",
    "use_link",
    "workflow_columns",
]

#: How many times a review may send a workflow back, unless it or its workflow says.
DEFAULT_MAX_ROUNDS = 3
_W = TaskType.WORKFLOW.value


def token_hash(token: str) -> str:
    """What the store keeps of an approval link's token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------- project workflows


def _workflow_to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "name": row["name"],
        "version": row["version"],
        "description": row["description"],
        "phases": [PhaseSpec(**p).model_dump() for p in loads(row["phases"])],
        "max_review_rounds": row["max_review_rounds"],
        "created_at": from_us(row["created_at"]),
    }


def _project(tx: Tx, project_id: str, projects: Projects) -> None:
    found = tx.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone()
    if found is None or (projects is not None and project_id not in projects):
        raise NotFound("project", project_id)


def create_workflow(
    tx: Tx,
    project_id: str,
    body: WorkflowCreate,
    now: int,
    idem: idempotency.IdempotencyRequest | None = None,
    projects: Projects = None,
) -> dict[str, Any]:
    """Store the next version of the project's workflow ``body.name`` (1 if it is new)."""
    _project(tx, project_id, projects)
    replayed = idempotency.replay(tx, idem)
    if replayed is not None:
        return dict(replayed)
    last = tx.execute(
        "SELECT max(version) FROM workflows WHERE project_id = ? AND name = ?",
        (project_id, body.name),
    ).fetchone()[0]
    row = {
        "id": new_id(),
        "project_id": project_id,
        "name": body.name,
        "version": int(last or 0) + 1,
        "description": body.description,
        "phases": dumps([p.model_dump(exclude_none=True) for p in body.phases]),
        "max_review_rounds": body.max_review_rounds,
        "created_at": now,
    }
    tx.execute(
        "INSERT INTO workflows (id, project_id, name, version, description, phases,"
        " max_review_rounds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        tuple(row.values()),
    )
    wire = _workflow_to_dict(row)
    idempotency.remember(tx, idem, wire, now)
    return wire


def list_workflows(tx: Tx, project_id: str, projects: Projects = None) -> list[dict[str, Any]]:
    """The latest version of each of the project's workflows, by name."""
    _project(tx, project_id, projects)
    rows = tx.execute(
        "SELECT * FROM workflows w WHERE project_id = ? AND version = (SELECT max(version)"
        " FROM workflows v WHERE v.project_id = w.project_id AND v.name = w.name) ORDER BY name",
        (project_id,),
    )
    return [_workflow_to_dict(r) for r in rows]


def _find(tx: Tx, project_id: str, name: str, version: int | None) -> Any:
    if version is None:
        return tx.execute(
            "SELECT * FROM workflows WHERE project_id = ? AND name = ? ORDER BY version DESC"
            " LIMIT 1",
            (project_id, name),
        ).fetchone()
    return tx.execute(
        "SELECT * FROM workflows WHERE project_id = ? AND name = ? AND version = ?",
        (project_id, name, version),
    ).fetchone()


def get_workflow(
    tx: Tx, project_id: str, name: str, version: int | None, projects: Projects = None
) -> dict[str, Any]:
    """One version of a project's workflow (the latest if ``version`` is None)."""
    _project(tx, project_id, projects)
    row = _find(tx, project_id, name, version)
    if row is None:
        shown = name if version is None else f"{name} version {version}"
        raise NotFound("workflow", shown)
    return _workflow_to_dict(row)


def delete_workflow(tx: Tx, project_id: str, name: str, projects: Projects = None) -> None:
    """Delete every version of a project's workflow (tasks keep the phases they copied)."""
    _project(tx, project_id, projects)
    deleted = tx.execute(
        "DELETE FROM workflows WHERE project_id = ? AND name = ?", (project_id, name)
    ).rowcount
    if not deleted:
        raise NotFound("workflow", name)


# ---------------------------------------------------------------------------- new workflow tasks


def workflow_columns(tx: Tx, items: Sequence[TaskCreate], batch: bool) -> list[dict[str, Any]]:
    """The workflow columns of each new task (empty for tasks that are not workflows).

    A Scheduled task given phases (or a workflow) keeps them for the Workflow tasks it makes.

    A task walks its inline ``phases``, the project workflow it names, or the default six;
    each phase resolved against the task's own body and settings. Refused (all items) when a
    named workflow does not exist or a phase would run nothing.
    """
    columns: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        walks = item.task_type is TaskType.WORKFLOW or (
            item.task_type is TaskType.SCHEDULED
            and (item.phases is not None or item.workflow is not None)
        )
        if not walks:
            columns.append({})
            continue
        where: list[Any] = ["tasks", i] if batch else []
        specs, ref, rounds = item.phases, None, item.max_review_rounds
        if item.workflow is not None:
            found = _find(tx, str(item.project_id), item.workflow, item.workflow_version)
            if found is None:
                shown = item.workflow
                if item.workflow_version is not None:
                    shown += f" version {item.workflow_version}"
                details.append({"loc": [*where, "workflow"], "type": "not_found",
                                "msg": f"the project has no workflow {shown}"})  # fmt: skip
                columns.append({})
                continue
            specs = [PhaseSpec(**p) for p in loads(found["phases"])]
            ref = {"id": found["id"], "name": found["name"], "version": found["version"]}
            rounds = found["max_review_rounds"] if rounds is None else rounds
        body = Body(
            command=item.command, language=item.language, code=item.code,
            timeout=item.timeout, retry_attempts=item.retry_attempts,
            retry_delay=item.retry_delay, reviews_required=item.ai_reviews_required,
        )  # fmt: skip
        resolved, problem = resolve_phases(specs or default_phases(), body)
        if problem is not None:
            at, msg = problem
            loc = [*where, "workflow"] if ref is not None else [*where, "phases", at]
            details.append({"loc": loc, "msg": msg, "type": "phase_body"})
            columns.append({})
            continue
        columns.append(
            {
                "phases": dumps(resolved),
                "current_phase": resolved[0]["name"],
                # Workers are picked by the language of the phase that runs next.
                "language": resolved[0]["language"],
                "review_rounds": 0,
                "max_review_rounds": DEFAULT_MAX_ROUNDS if rounds is None else rounds,
                "development_workflow": dumps(ref) if ref is not None else None,
            }
        )
    if details:
        raise InvalidInput(details[0]["msg"], details)
    return columns


def status_condition(status: str) -> tuple[str, list[Any]]:
    """The SQL condition (and its parameters) of the tasks that show ``status``.

    A workflow in a seed-named phase shows that phase as its status, not Pending or Running.
    """
    phases = ", ".join(f"'{name}'" for name in sorted(SEED_PHASES))
    in_phase = f"task_type = '{_W}' AND COALESCE(current_phase, '') IN ({phases})"
    if status in SEED_PHASES:
        return (
            f"(task_type = '{_W}' AND status IN ('Pending', 'Running') AND current_phase = ?)",
            [status],
        )
    if status in ("Pending", "Running"):
        return f"(status = ? AND NOT ({in_phase}))", [status]
    return "status = ?", [status]


# ---------------------------------------------------------------------------- reviews


def _visible_task(tx: Tx, task_id: str, projects: Projects) -> Any:
    row = tx.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None or (projects is not None and row["project_id"] not in projects):
        raise NotFound("task", task_id)
    return row


def _pending(tx: Tx, row: Any) -> dict[str, Any] | None:
    gate = gates.open_gate(row)
    if gate is None:
        return None
    _, phase = gate
    number = round_of(row)
    reviewers = [
        r[0]
        for r in tx.execute(
            "SELECT reviewer FROM reviews WHERE task_id = ? AND phase = ? AND round = ?"
            " AND verdict = 'approve' ORDER BY created_at, id",
            (row["id"], phase["name"], number),
        )
    ]
    return {
        "phase": phase["name"],
        "round": number,
        "reviews_required": phase["reviews_required"],
        "approvals": row["ai_reviews_completed"],
        "reviewers": reviewers,
    }


def list_reviews(tx: Tx, task_id: str, projects: Projects = None) -> dict[str, Any]:
    """Every review of a task, oldest first, and the gate it waits at (if it does)."""
    row = _visible_task(tx, task_id, projects)
    reviews = [
        gates.review_to_dict(r)
        for r in tx.execute(
            "SELECT * FROM reviews WHERE task_id = ? ORDER BY created_at, id", (task_id,)
        )
    ]
    return {"task_id": task_id, "reviews": reviews, "pending": _pending(tx, row)}


def review(
    tx: Tx,
    fx: Effects,
    task_id: str,
    verdict: str,
    reviewer: str,
    comment: str,
    now: int,
    projects: Projects = None,
) -> dict[str, Any]:
    """A verdict by the API on the gate a task (within ``projects``) waits at."""
    _visible_task(tx, task_id, projects)
    return gates.review(tx, fx, task_id, verdict, reviewer, comment, now)


# ---------------------------------------------------------------------------- approval links


class LinkClosed(Conflict):
    """The approval link was used, has expired, or its review is over (HTTP 410)."""


def create_link(
    tx: Tx,
    task_id: str,
    reviewer: str,
    token: str,
    expires_at: int,
    now: int,
    projects: Projects = None,
) -> dict[str, Any]:
    """Store a single-use link (its token's hash) to the gate the task waits at."""
    _visible_task(tx, task_id, projects)
    row = locked_task_row(tx, task_id)
    gate = gates.open_gate(row)
    if gate is None:
        raise gates.not_waiting(row)
    phase = gate[1]["name"]
    number = round_of(row)
    tx.execute(
        "INSERT INTO review_links (token_hash, task_id, phase, round, reviewer, expires_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (token_hash(token), task_id, phase, number, reviewer, expires_at, now),
    )
    return {
        "task_id": task_id,
        "phase": phase,
        "round": number,
        "reviewer": reviewer,
        "expires_at": from_us(expires_at),
    }


def _link_problem(tx: Tx, link: Any, now: int) -> str | None:
    if link["used_at"] is not None:
        return "this link was used already: each link works once"
    if link["expires_at"] <= now:
        return "this link has expired"
    row = tx.execute("SELECT * FROM tasks WHERE id = ?", (link["task_id"],)).fetchone()
    gate = gates.open_gate(row) if row is not None else None
    if gate is None or (gate[1]["name"], round_of(row)) != (link["phase"], link["round"]):
        return "the review this link was for is over"
    return None


def read_link(tx: Tx, token: str, now: int) -> dict[str, Any]:
    """What an approval link shows: its task, gate, round and reviewer, and why it is closed.

    Raise :class:`NotFound` for a token no link has.
    """
    link = tx.execute(
        "SELECT * FROM review_links WHERE token_hash = ?", (token_hash(token),)
    ).fetchone()
    if link is None:
        raise NotFound("review link", "given")
    task = tx.execute("SELECT * FROM tasks WHERE id = ?", (link["task_id"],)).fetchone()
    reviews = list_reviews(tx, link["task_id"]) if task is not None else None
    return {
        "task_id": link["task_id"],
        "phase": link["phase"],
        "round": link["round"],
        "reviewer": link["reviewer"],
        "expires_at": from_us(link["expires_at"]),
        "closed": _link_problem(tx, link, now),
        "task": task,
        "reviews": reviews,
    }


def use_link(
    tx: Tx, fx: Effects, token: str, verdict: str, comment: str, now: int
) -> dict[str, Any]:
    """Give the link's verdict (once): the review made. :class:`Conflict` if it is closed."""
    link = tx.execute(
        f"SELECT * FROM review_links WHERE token_hash = ?{tx.dialect.lock()}",
        (token_hash(token),),
    ).fetchone()
    if link is None:
        raise NotFound("review link", "given")
    problem = _link_problem(tx, link, now)
    if problem is not None:
        raise LinkClosed(problem)
    tx.execute(
        "UPDATE review_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        (now, link["token_hash"]),
    )
    return gates.review(
        tx, fx, link["task_id"], verdict, link["reviewer"], comment, now, via="link",
        expect=(link["phase"], link["round"]),
    )  # fmt: skip
