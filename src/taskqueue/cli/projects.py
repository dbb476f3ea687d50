"""``taskqueue projects ...``: create and manage projects from a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from taskqueue.cli._context import (
    EXIT_REFUSED,
    CliContext,
    client_command,
    confirm,
    relative,
    rows_table,
)
from taskqueue.cli._ids import resolve_project, short_id
from taskqueue.errors import ConflictError, ProjectNotFoundError
from taskqueue.models import Project

__all__ = ["project_table", "projects"]


def project_table(items: Sequence[Project]) -> Table:
    """Projects as a table."""
    table = rows_table(None, ["ID", "NAME", "STATUS", "TAGS", "CREATED"])
    for project in items:
        table.add_row(
            short_id(project.id),
            project.name,
            project.status,
            ", ".join(project.tags) or "-",
            relative(project.created_at),
        )
    return table


@click.group()
def projects() -> None:
    """Create and manage projects."""


@projects.command("create")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--status", default=None)
@click.option("--tag", "tags", multiple=True)
@client_command
def create_project(
    ctx: CliContext, name: str, description: str | None, status: str | None, tags: tuple[str, ...]
) -> None:
    """Create a project."""
    fields: dict[str, Any] = {"description": description, "status": status}
    if tags:
        fields["tags"] = list(tags)
    project = ctx.client.create_project(name, **{k: v for k, v in fields.items() if v is not None})
    ctx.emit(project, lambda: project_table([project]))


@projects.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@client_command
def list_projects(ctx: CliContext, limit: int, offset: int) -> None:
    """List projects."""
    found = ctx.client.list_projects(limit=limit, offset=offset)
    ctx.emit(found, lambda: project_table(found) if found else "no projects")


@projects.command("get")
@click.argument("project")
@client_command
def get_project(ctx: CliContext, project: str) -> None:
    """Show one project (by id or name)."""
    client = ctx.client
    found = client.get_project(resolve_project(ctx, project) or project)
    ctx.emit(found, lambda: project_table([found]))


@projects.command("update")
@click.argument("project")
@click.option("--name", default=None)
@click.option("--description", default=None)
@click.option("--status", default=None)
@click.option("--tag", "tags", multiple=True, help="Replaces the tags.")
@client_command
def update_project(
    ctx: CliContext,
    project: str,
    name: str | None,
    description: str | None,
    status: str | None,
    tags: tuple[str, ...],
) -> None:
    """Change a project's fields."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {"name": name, "description": description, "status": status}.items()
        if v is not None
    }
    if tags:
        changes["tags"] = list(tags)
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    client = ctx.client
    updated = client.update_project(resolve_project(ctx, project) or project, **changes)
    ctx.emit(updated, lambda: project_table([updated]))


@projects.command("delete")
@click.argument("project")
@click.option("--cascade", is_flag=True, help="Delete its tasks too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@client_command
def delete_project(ctx: CliContext, project: str, cascade: bool, yes: bool) -> None:
    """Delete a project (by id or name)."""
    client = ctx.client
    project_id = resolve_project(ctx, project) or project
    if not yes:
        confirm(ctx, f"delete project {project}{' and its tasks' if cascade else ''}?")
    try:
        deleted = client.delete_project(project_id, cascade=cascade)
    except ConflictError as refused:
        if "cascade=true" not in refused.message:
            raise
        ctx.fail(refused.message.replace("pass cascade=true", "use --cascade"), EXIT_REFUSED)
    if not deleted:
        raise ProjectNotFoundError(f"project {project_id} not found", 404)
    ctx.emit({"deleted": project_id}, lambda: f"deleted {project_id}")
