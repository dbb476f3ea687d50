"""``taskqueue schedules ...``: Scheduled tasks from a terminal.

A Scheduled task is a template (a command) plus a schedule: a cron expression in a timezone,
or an interval. It never runs by itself: each slot makes one child task. See
``docs/schedules.md``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.table import Table

from taskqueue._schedule_models import CATCHUP_POLICIES, OVERLAP_POLICIES
from taskqueue.cli._context import CliContext, client_command, json_flag, relative, rows_table
from taskqueue.cli._ids import resolve_task, short_id
from taskqueue.models import ScheduleRun, Task, TaskFilters

__all__ = ["schedules"]

F = TypeVar("F", bound=Callable[..., Any])

#: Runs shown under ``schedules get``.
_RECENT_RUNS = 10


def _when(value: datetime | None) -> str:
    """A time as ISO 8601 (UTC), or ``-``."""
    return "-" if value is None else value.isoformat()


def _rule(task: Task) -> str:
    """A schedule in a few words: its cron expression or ``every Ns``."""
    schedule = task.schedule
    if schedule is None:
        return "-"
    if schedule.cron is not None:
        return schedule.cron
    return f"every {schedule.interval_seconds}s"


def schedule_table(items: Sequence[Task]) -> Table:
    """Scheduled tasks as a table: short id, name, rule, timezone, next run, paused."""
    table = rows_table(None, ["ID", "NAME", "CRON/EVERY", "TIMEZONE", "NEXT RUN", "PAUSED"])
    for task in items:
        schedule = task.schedule
        table.add_row(
            short_id(task.id),
            task.name,
            _rule(task),
            schedule.timezone if schedule else "-",
            _when(schedule.next_run_at) if schedule else "-",
            ("yes" if schedule.paused else "no") if schedule else "-",
        )
    return table


def run_table(runs: Sequence[ScheduleRun]) -> Table:
    """A schedule's runs, newest first: slot, kind, child task, status."""
    table = rows_table(None, ["SLOT", "KIND", "TASK", "STATUS", "CREATED"])
    for run in runs:
        status = (
            run.status.value if run.status else (f"skipped ({run.skipped})" if run.skipped else "-")
        )
        table.add_row(
            _when(run.slot),
            run.kind,
            short_id(run.task_id) if run.task_id else "-",
            status,
            relative(run.created_at),
        )
    return table


def schedule_detail(task: Task, runs: Sequence[ScheduleRun] = ()) -> Table:
    """One Scheduled task as field / value rows, then its recent runs."""
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    schedule = task.schedule
    rows = [
        ("id", str(task.id)),
        ("name", task.name),
        ("type", task.task_type.value),
        ("body", task.command if task.language is None else f"{task.language} code"),
        ("schedule", _rule(task)),
    ]
    if schedule is not None:
        rows += [
            ("timezone", schedule.timezone),
            ("start at", _when(schedule.start_at)),
            ("end at", _when(schedule.end_at)),
            ("overlap", schedule.overlap_policy),
            ("catchup", f"{schedule.catchup} (limit {schedule.catchup_limit})"),
            ("paused", "yes" if schedule.paused else "no"),
            ("next run", _when(schedule.next_run_at)),
            ("last run", _when(schedule.last_run_at)),
        ]
    rows.append(("queue", task.queue))
    for name, value in rows:
        table.add_row(name, value)
    for run in runs:
        status = run.status.value if run.status else (run.skipped or "-")
        child = short_id(run.task_id) if run.task_id else "-"
        table.add_row("run", f"{_when(run.slot)} {run.kind} {child} {status}")
    return table


@click.group()
def schedules() -> None:
    """Create and manage Scheduled tasks (a command run on a cron or an interval)."""


@schedules.command("create", context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--every",
    "every",
    type=click.IntRange(1, 366 * 24 * 3600),
    default=None,
    metavar="SECONDS",
    help="Fire every so many seconds (instead of a CRON expression).",
)
@click.option("--name", default=None, help="The task's name (default: the command's first word).")
@click.option(
    "--tz", "--timezone", "timezone", default="UTC", show_default=True, help="IANA timezone."
)
@click.option("--start-at", type=click.DateTime(), default=None, help="No slot before (UTC).")
@click.option("--end-at", type=click.DateTime(), default=None, help="No slot after (UTC).")
@click.option(
    "--overlap",
    type=click.Choice(OVERLAP_POLICIES),
    default="skip",
    show_default=True,
    help="What a slot does while the previous run has not ended.",
)
@click.option(
    "--catchup",
    type=click.Choice(CATCHUP_POLICIES),
    default="none",
    show_default=True,
    help="What the slots missed while no server ran become.",
)
@click.option("--catchup-limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--paused", is_flag=True, help="Create it paused (fires nothing until resumed).")
@click.option("--queue", default=None, help="The queue its runs go to.")
@client_command
@json_flag
def create_schedule(
    ctx: CliContext,
    args: tuple[str, ...],
    every: int | None,
    name: str | None,
    timezone: str,
    start_at: datetime | None,
    end_at: datetime | None,
    overlap: str,
    catchup: str,
    catchup_limit: int,
    paused: bool,
    queue: str | None,
) -> None:
    """Create a Scheduled task: [CRON] -- COMMAND, or --every SECONDS -- COMMAND.

    CRON is five fields (minute hour day month weekday), six (seconds last) or an alias
    (@hourly, @daily...), read in --tz. Put the command after --. Each slot runs the
    command as a child task.
    """
    words = list(args)
    cron: str | None = None
    if every is None:
        if not words:
            raise click.UsageError("give a CRON expression or --every SECONDS, then -- COMMAND")
        cron = words.pop(0)
    if not words:
        raise click.UsageError("give the command after --")
    command = words[0] if len(words) == 1 else shlex.join(words)
    if name is None:
        first = shlex.split(command)[0] if command.strip() else ""
        name = first.rsplit("/", 1)[-1] or "schedule"
    fields: dict[str, Any] = {}
    if queue is not None:
        fields["queue"] = queue
    task = ctx.client.create_schedule(
        name,
        command,
        cron=cron,
        interval_seconds=every,
        timezone=timezone,
        start_at=start_at,
        end_at=end_at,
        overlap_policy=overlap,
        catchup=catchup,
        catchup_limit=catchup_limit,
        paused=paused,
        **fields,
    )
    ctx.emit(task, lambda: schedule_detail(task))


@schedules.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@client_command
@json_flag
def list_schedules(ctx: CliContext, limit: int, offset: int) -> None:
    """List Scheduled tasks, newest first (the ID column is the end of each id)."""
    filters = TaskFilters(task_type="Scheduled", sort="-created_at", limit=limit, offset=offset)
    page = ctx.client.list_tasks_page(filters)
    found = list(page.tasks)
    ctx.emit(found, lambda: schedule_table(found) if found else "no Scheduled tasks")
    if ctx.output == "table" and offset + len(found) < page.total:
        click.echo(f"showing {len(found):,} of {page.total:,} (use --limit or --offset)", err=True)


@schedules.command("get")
@click.argument("task_id")
@client_command
@json_flag
def get_schedule(ctx: CliContext, task_id: str) -> None:
    """Show a Scheduled task: its schedule, when it fires next, and its recent runs."""
    found = resolve_task(ctx, task_id)
    task = ctx.client.get_task(found)
    runs = ctx.client.list_schedule_runs(found, limit=_RECENT_RUNS).runs
    ctx.emit(task, lambda: schedule_detail(task, runs))


@schedules.command("next")
@click.argument("task_id")
@click.option("--count", type=click.IntRange(1, 100), default=5, show_default=True)
@client_command
@json_flag
def next_schedule_runs(ctx: CliContext, task_id: str, count: int) -> None:
    """The next slots the schedule fires (a preview: nothing is made)."""
    slots = ctx.client.next_runs(resolve_task(ctx, task_id), count=count)
    ctx.emit(
        [{"slot": slot.isoformat()} for slot in slots],
        lambda: "\n".join(slot.isoformat() for slot in slots) or "no next runs",
    )


@schedules.command("runs")
@click.argument("task_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@client_command
@json_flag
def schedule_runs(ctx: CliContext, task_id: str, limit: int, offset: int) -> None:
    """The slots the schedule fired, newest first, with their child tasks."""
    page = ctx.client.list_schedule_runs(resolve_task(ctx, task_id), limit=limit, offset=offset)
    ctx.emit(page, lambda: run_table(page.runs) if page.runs else "no runs yet")


@schedules.command("pause")
@click.argument("task_id")
@client_command
@json_flag
def pause_schedule(ctx: CliContext, task_id: str) -> None:
    """Pause a schedule: it fires nothing until resumed."""
    task = ctx.client.pause_schedule(resolve_task(ctx, task_id))
    ctx.emit(task, lambda: f"paused {task.name} ({short_id(task.id)})")


@schedules.command("resume")
@click.argument("task_id")
@client_command
@json_flag
def resume_schedule(ctx: CliContext, task_id: str) -> None:
    """Resume a paused schedule from its next slot."""
    task = ctx.client.resume_schedule(resolve_task(ctx, task_id))
    ctx.emit(task, lambda: f"resumed {task.name} ({short_id(task.id)})")


@schedules.command("trigger")
@click.argument("task_id")
@client_command
@json_flag
def trigger_schedule(ctx: CliContext, task_id: str) -> None:
    """Run the template now, as a manual slot; prints the child task's id."""
    run = ctx.client.trigger_schedule(resolve_task(ctx, task_id))
    ctx.emit(run, lambda: f"triggered: task {run.task_id}")
