"""Ids as people type them: whole, or the short form tables show, or any unambiguous part.

Task ids are UUIDv7: their first characters are the time they were made, shared by every task
made in the same minute, and their last group (12 hexadecimal digits) is random. Tables show
that last group; every command that takes a task id also takes any part of one of at least 4
characters, its start or its end, as long as only one task matches.
"""

from __future__ import annotations

import re
import uuid
from uuid import UUID

from taskqueue.cli._context import EXIT_USAGE, CliContext
from taskqueue.errors import ProjectNotFoundError, TaskNotFoundError
from taskqueue.models import TaskFilters

__all__ = ["resolve_project", "resolve_task", "resolve_tasks", "short_id"]

_PART = re.compile(r"^[0-9A-Fa-f-]{4,36}$")
#: How many of the matches an ambiguous part lists.
_SHOWN = 5


def short_id(task_id: UUID | str) -> str:
    """The form tables show: the id's last group, its random part."""
    return str(task_id)[-12:]


def _whole(given: str) -> str | None:
    try:
        return str(uuid.UUID(given))
    except ValueError:
        return None


def resolve_task(ctx: CliContext, given: str) -> str:
    """The whole id of the one task ``given`` names (exit 2 for a bad or ambiguous part)."""
    whole = _whole(given)
    if whole is not None:
        return whole
    if not _PART.match(given):
        ctx.fail(
            f"{given!r} is not a task id: give the whole id, or at least 4 characters of its "
            "start or of its end (the ID column of `taskqueue tasks list` shows its end)",
            EXIT_USAGE,
        )
    page = ctx.client.list_tasks_page(TaskFilters(id_part=given, limit=_SHOWN))
    if page.total == 0:
        raise TaskNotFoundError(f"no task id starts or ends with {given!r}", 404)
    if page.total > 1:
        shown = ", ".join(str(t.id) for t in page.tasks)
        more = f" and {page.total - len(page.tasks)} more" if page.total > len(page.tasks) else ""
        ctx.fail(
            f"{given!r} matches {page.total} tasks ({shown}{more}); give more of the id",
            EXIT_USAGE,
        )
    return str(page.tasks[0].id)


def resolve_tasks(ctx: CliContext, given: tuple[str, ...]) -> list[str]:
    """:func:`resolve_task` of each."""
    return [resolve_task(ctx, one) for one in given]


def resolve_project(ctx: CliContext, given: str | None) -> str | None:
    """A project id from its id, its name, or an unambiguous part of its id."""
    if given is None:
        return None
    whole = _whole(given)
    if whole is not None:
        return whole
    projects = list(ctx.client.iter_projects(page_size=1000))
    for project in projects:
        if project.name == given:
            return str(project.id)
    if _PART.match(given):
        part = given.lower()
        found = [
            str(p.id) for p in projects if str(p.id).startswith(part) or str(p.id).endswith(part)
        ]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ctx.fail(
                f"{given!r} matches {len(found)} projects ({', '.join(found[:_SHOWN])}); "
                "give more of the id, or the name",
                EXIT_USAGE,
            )
    raise ProjectNotFoundError(f"no project is named {given!r} or has such an id", 404)
