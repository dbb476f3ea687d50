"""``taskqueue events`` and ``taskqueue tasks watch``: what happens, as it happens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from taskqueue.cli._context import CliContext, client_command, rows_table
from taskqueue.cli._ids import resolve_project, resolve_task, short_id
from taskqueue.events import Event, is_event_type

__all__ = ["event_line", "events", "watch"]

#: What each event's one-line summary shows of its data.
_SUMMARY_KEYS = ("name", "attempt", "exit_code", "duration_ms", "failure_reason", "reason", "error")


def event_line(event: Event) -> str:
    """One line for people: time, id, type, what it is about, and the gist of its data."""
    when = event.time.astimezone().strftime("%H:%M:%S.%f")[:-3]
    about = short_id(event.task_id) if event.task_id else (event.project_id or "-")
    gist = " ".join(
        f"{key}={event.data[key]}" for key in _SUMMARY_KEYS if event.data.get(key) is not None
    )
    return f"{when}  {event.id:>8}  {event.type:<16} {about}  {gist}".rstrip()


def _types(given: tuple[str, ...]) -> list[str] | None:
    names = [name.strip() for value in given for name in value.split(",") if name.strip()]
    for name in names:
        if not is_event_type(name):
            raise click.BadParameter(
                f"unknown event type {name!r} (e.g. task.completed, task.*; see docs/events.md)",
                param_hint="--type",
            )
    return names or None


def _print(ctx: CliContext, event: Event) -> None:
    if ctx.output == "table":
        click.echo(event_line(event))
    else:  # one JSON object a line: a stream never ends, so never one array
        click.echo(json.dumps(event.model_dump(mode="json"), ensure_ascii=False))


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they happen.")
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Only events of this type or family (task.failed, task.*); repeat or comma-separate.",
)
@click.option("--project", default=None, help="Only events of this project (id or name).")
@click.option("--task", "task_id", default=None, help="Only events of this task.")
@click.option("--queue", default=None, help="Only events of tasks on this queue.")
@click.option(
    "--after",
    type=click.IntRange(0),
    default=None,
    help="Start after this event id (default: the last --limit events; with --follow and no "
    "--after, only new events).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@client_command
def events(
    ctx: CliContext,
    follow: bool,
    types: tuple[str, ...],
    project: str | None,
    task_id: str | None,
    queue: str | None,
    after: int | None,
    limit: int,
) -> None:
    """Print events: task, project and key changes (see docs/events.md)."""
    client = ctx.client
    filters: dict[str, Any] = {
        "types": _types(types),
        "project_id": resolve_project(ctx, project) if project else None,
        "task_id": resolve_task(ctx, task_id) if task_id else None,
        "queue": queue,
    }
    if follow:
        try:
            for event in client.events(after=after, **filters):
                _print(ctx, event)
        except KeyboardInterrupt:
            return
        return
    if after is None:
        last = client.list_events(after=0, limit=1).last_id or 0
        after = max(last - limit, 0)
    page = client.list_events(after=after, limit=limit, **filters)
    if ctx.output != "table":
        ctx.emit(page)
        return
    for event in page.items:
        click.echo(event_line(event))
    if not page.items:
        click.echo("no events")


# ---------------------------------------------------------------------------- tasks watch

_ENDED = {"task.completed", "task.failed", "task.cancelled", "task.deleted"}


def _watch_table(running: dict[str, dict[str, Any]], ended: list[str]) -> Table:
    table = rows_table(f"running tasks: {len(running)}", ["ID", "NAME", "ATTEMPT", "FOR"])
    now = datetime.now(timezone.utc)
    for task_id, info in sorted(running.items(), key=lambda item: item[1]["since"]):
        seconds = int((now - info["since"]).total_seconds())
        table.add_row(short_id(task_id), info["name"], str(info["attempt"]), f"{seconds}s")
    if ended:
        table.caption = "  ".join(ended[-3:])
    return table


def _running_now(ctx: CliContext, project_id: str | None) -> dict[str, dict[str, Any]]:
    # A read filter, as `tasks list --status Running` sends it.
    found = ctx.client.list_tasks(status="Running", project_id=project_id, limit=1000)
    return {
        str(t.id): {
            "name": t.name,
            "attempt": t.attempt,
            "since": t.started_at or datetime.now(timezone.utc),
        }
        for t in found
    }


def _updates(ctx: CliContext, project_id: str | None, after: int) -> Iterator[Event]:
    return ctx.client.events(after=after, project_id=project_id, types=["task.*"])


@click.command()
@click.option("--project", default=None, help="Only tasks of this project (id or name).")
@client_command
def watch(ctx: CliContext, project: str | None) -> None:
    """A live table of running tasks, fed by the event stream (Ctrl-C to stop)."""
    project_id = resolve_project(ctx, project) if project else None
    after = ctx.client.list_events(after=0, limit=1).last_id or 0
    running = _running_now(ctx, project_id)
    ended: list[str] = []
    try:
        with Live(_watch_table(running, ended), console=ctx.out, auto_refresh=False) as live:
            for event in _updates(ctx, project_id, after):
                task_id = str(event.task_id)
                if event.type == "task.started":
                    running[task_id] = {
                        "name": event.data.get("name", "?"),
                        "attempt": event.data.get("attempt", 1),
                        "since": event.time,
                    }
                elif event.type in _ENDED or event.type == "task.retrying":
                    info = running.pop(task_id, None)
                    if info is not None:
                        ended.append(f"{short_id(task_id)} {event.type.removeprefix('task.')}")
                live.update(_watch_table(running, ended), refresh=True)
    except KeyboardInterrupt:
        return
