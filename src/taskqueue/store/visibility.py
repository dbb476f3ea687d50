"""Which projects a caller may see: the condition every read and change of a caller adds.

``projects`` is None for a caller that sees everything, or the set of project ids its API key
is limited to. A task outside them (or in no project) is, for that caller, a task that does
not exist: the same :class:`NotFound`, the same absence from lists and counts.
"""

from __future__ import annotations

from typing import Any

from taskqueue.store.errors import NotFound
from taskqueue.store.sql import Tx, marks

__all__ = ["Projects", "check_project", "check_task", "project_condition"]

#: The projects a caller may see; None: every task and project.
Projects = frozenset[str] | None


def project_condition(projects: Projects, column: str = "project_id") -> tuple[str, list[Any]]:
    """An SQL condition (and its parameters) true of rows in ``projects``; ``""`` if all are."""
    if projects is None:
        return "", []
    if not projects:
        return "1 = 0", []
    ids = sorted(projects)
    return f"{column} IN ({marks(ids)})", ids


def check_task(tx: Tx, task_id: str, projects: Projects) -> None:
    """Raise :class:`NotFound` unless the task exists within ``projects``."""
    if projects is None:
        return
    row = tx.execute("SELECT project_id FROM tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None or row[0] not in projects:
        raise NotFound("task", task_id)


def check_project(project_id: str, projects: Projects) -> None:
    """Raise :class:`NotFound` unless ``project_id`` is one of ``projects``."""
    if projects is not None and project_id not in projects:
        raise NotFound("project", project_id)
