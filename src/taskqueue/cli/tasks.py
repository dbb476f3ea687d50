"""``taskqueue tasks ...``: every task operation of the API from a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from taskqueue.cli._context import (
    EXIT_FAILED,
    CliContext,
    client_command,
    confirm,
    duration,
    relative,
    rows_table,
    status_style,
)
from taskqueue.cli._ids import resolve_project, resolve_task, resolve_tasks, short_id
from taskqueue.cli.workflows import phase_table, read_phases, review_commands, workflow_summary
from taskqueue.errors import TaskNotFoundError, TaskQueueTimeoutError
from taskqueue.models import Attempt, LogChunk, Task, TaskFilters, TaskPriority, TaskStatus

__all__ = ["task_detail", "task_table", "tasks", "write_chunk"]

PRIORITIES = click.Choice([p.value for p in TaskPriority], case_sensitive=False)
#: The statuses a task can have: the queue's, and the phases a workflow shows as its status.
RUN_STATUSES = tuple(status.value for status in TaskStatus)
STATUSES = click.Choice(RUN_STATUSES, case_sensitive=False)


def _canonical(choice: str | None, values: Sequence[str]) -> str | None:
    if choice is None:
        return None
    return next(v for v in values if v.lower() == choice.lower())


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``K=V`` options as a dict; a pair without ``=`` is a usage error."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


def parse_json(text: str | None, option: str) -> Any:
    """A JSON option's value, or a usage error naming the option."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from exc


def task_table(items: Sequence[Task], title: str | None = None) -> Table:
    """Tasks as a table: short id, name, coloured status, priority, times, exit code."""
    table = rows_table(
        title, ["ID", "NAME", "STATUS", "PRIORITY", "TRY", "CREATED", "DURATION", "EXIT"]
    )
    for task in items:
        result = task.result
        retry = retry_note(task)
        table.add_row(
            short_id(task.id),
            task.name,
            status_style(task.status.value) + (f", {retry}" if retry else ""),
            task.priority.value,
            str(task.attempt),
            relative(task.created_at),
            duration(result.duration_ms if result and not retry else None),
            "-" if retry or result is None or result.exit_code is None else str(result.exit_code),
        )
    return table


def retry_note(task: Task) -> str | None:
    """``retrying at 14:03:27 (attempt 2/4)`` for a Pending task waiting for its next try."""
    if task.status is not TaskStatus.PENDING or task.attempt == 0:
        return None
    total = task.retry_attempts + 1
    attempt = f"attempt {task.attempt + 1}/{total}"
    if task.run_at is None:
        return f"retrying, {attempt}"
    when = task.run_at.astimezone().strftime("%H:%M:%S")
    return f"retrying at {when} ({attempt})"


def task_detail(task: Task) -> Table:
    """One task as field / value rows."""
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    result = task.result
    retry = retry_note(task)
    note = f", {retry}" if retry else (f" ({task.status_reason})" if task.status_reason else "")
    rows = [
        ("id", str(task.id)),
        ("name", task.name),
        ("command", task.command),
        ("status", status_style(task.status.value) + note),
        ("priority", task.priority.value),
        ("queue", task.queue),
        ("project", str(task.project_id) if task.project_id else "-"),
        ("attempt", f"{task.attempt} (retries allowed: {task.retry_attempts})"),
        ("timeout", f"{task.timeout}s" if task.timeout else "-"),
        ("depends on", ", ".join(str(d) for d in task.dependencies) or "-"),
        ("created", relative(task.created_at)),
        ("started", relative(task.started_at)),
        ("finished", relative(task.finished_at)),
    ]
    if result is not None:
        rows += [("exit code", str(result.exit_code)), ("duration", duration(result.duration_ms))]
        if result.error:
            rows.append(("error", result.error))
    if task.phases:
        rows.append(("workflow", workflow_summary(task)))
    for name, value in rows:
        table.add_row(name, value)
    if task.phases:
        table.add_row("phases", phase_table(task))
    return table


def attempt_table(items: Sequence[Attempt]) -> Table:
    """Attempts as a table."""
    table = rows_table(None, ["#", "STATUS", "WORKER", "STARTED", "DURATION", "EXIT", "ERROR"])
    for attempt in items:
        table.add_row(
            str(attempt.number),
            status_style(attempt.status.value),
            attempt.worker_id or "-",
            relative(attempt.started_at),
            duration(attempt.duration_ms),
            "-" if attempt.exit_code is None else str(attempt.exit_code),
            attempt.error or "",
        )
    return table


def write_chunk(chunk: LogChunk) -> None:
    """A chunk of output to our stdout or stderr, as the task wrote it."""
    stream = sys.stderr if chunk.stream == "stderr" else sys.stdout
    stream.write(chunk.data)
    stream.flush()


# ------------------------------------------------------------------------------ tasks


@click.group()
def tasks() -> None:
    """Create, inspect and control tasks."""


@tasks.command("create")
@click.argument("name", required=False)
@click.argument("command", required=False)
@click.option("--project-id", "--project", "project", help="Project id or name.")
@click.option("--description", default=None)
@click.option("--priority", type=PRIORITIES, default=None)
@click.option("--timeout", type=click.IntRange(1), default=None, help="Seconds.")
@click.option("--retry-attempts", type=click.IntRange(0, 100), default=None)
@click.option("--retry-delay", type=click.FloatRange(0), default=None, help="Seconds.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE")
@click.option("--cwd", "working_directory", default=None, help="Working directory.")
@click.option("--depends-on", multiple=True, metavar="TASK_ID")
@click.option("--queue", default=None)
@click.option("--metadata", default=None, help="JSON object.")
@click.option("--input", "input_json", default=None, help="JSON given to the command.")
@click.option(
    "--type",
    "task_type",
    type=click.Choice(["simple", "workflow"], case_sensitive=False),
    default=None,
    help="workflow: walk phases (the default six, unless --workflow or --phases).",
)
@click.option("--workflow", default=None, help="Walk this workflow of the task's project.")
@click.option("--phases", "phases_json", default=None, metavar="JSON|@FILE|-",
              help="Walk these phases (a JSON list).")  # fmt: skip
@click.option("--reviews-required", type=click.IntRange(0, 100), default=None,
              help="Approvals a review gate needs (default 3).")  # fmt: skip
@click.option("--max-review-rounds", type=click.IntRange(0, 100), default=None)
@click.option("--interactive", "-i", is_flag=True, help="Prompt for each field.")
@client_command
def create_task(
    ctx: CliContext,
    name: str | None,
    command: str | None,
    project: str | None,
    description: str | None,
    priority: str | None,
    timeout: int | None,
    retry_attempts: int | None,
    retry_delay: float | None,
    env: tuple[str, ...],
    working_directory: str | None,
    depends_on: tuple[str, ...],
    queue: str | None,
    metadata: str | None,
    input_json: str | None,
    task_type: str | None,
    workflow: str | None,
    phases_json: str | None,
    reviews_required: int | None,
    max_review_rounds: int | None,
    interactive: bool,
) -> None:
    """Create a task that runs COMMAND (or a Workflow task that walks phases)."""
    if interactive:
        name = click.prompt("Name", default=name)
        command = click.prompt("Command", default=command)
        project = (
            click.prompt(
                "Project (id or name, empty for none)", default=project or "", show_default=False
            )
            or None
        )
        priority = click.prompt("Priority", type=PRIORITIES, default=priority or "Normal")
        timeout = (
            click.prompt(
                "Timeout in seconds (0 for none)", type=click.IntRange(0), default=timeout or 0
            )
            or None
        )
        retry_attempts = click.prompt(
            "Retries after the first attempt",
            type=click.IntRange(0, 100),
            default=3 if retry_attempts is None else retry_attempts,
        )
    phases = read_phases(phases_json) if phases_json is not None else None
    walks = (task_type or "").lower() == "workflow" or workflow is not None or phases is not None
    if not name or not (command or (walks and (workflow or phases))):
        raise click.UsageError("give NAME and COMMAND (or --interactive)")
    fields: dict[str, Any] = {
        "task_type": "Workflow" if walks else None,
        "workflow": workflow,
        "phases": phases,
        "ai_reviews_required": reviews_required,
        "max_review_rounds": max_review_rounds,
        "description": description,
        "priority": _canonical(priority, [p.value for p in TaskPriority]),
        "timeout": timeout,
        "retry_attempts": retry_attempts,
        "retry_delay": retry_delay,
        "working_directory": working_directory,
        "queue": queue,
        "metadata": parse_json(metadata, "--metadata"),
        "input": parse_json(input_json, "--input"),
    }
    if env:
        fields["environment"] = parse_env(env)
    if depends_on:
        fields["dependencies"] = resolve_tasks(ctx, depends_on)
    client = ctx.client
    task = client.create_task(
        name,
        command,
        resolve_project(ctx, project),
        **{k: v for k, v in fields.items() if v is not None},
    )
    ctx.emit(task, lambda: task_detail(task))


@tasks.command("list")
@click.option("--status", type=STATUSES, default=None)
@click.option("--project-id", "--project", "project", help="Project id or name.")
@click.option("--priority", type=PRIORITIES, default=None)
@click.option("--queue", default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--all", "every", is_flag=True, help="Every page.")
@click.option("--reverse", is_flag=True, help="Oldest first (the default is newest first).")
@client_command
def list_tasks(
    ctx: CliContext,
    status: str | None,
    project: str | None,
    priority: str | None,
    queue: str | None,
    limit: int,
    offset: int,
    every: bool,
    reverse: bool,
) -> None:
    """List tasks, newest first; the ID column is the end of each id, which commands take."""
    filters = TaskFilters.model_validate(
        {
            "status": _canonical(status, [s.value for s in TaskStatus]),
            "project_id": resolve_project(ctx, project),
            "priority": _canonical(priority, [p.value for p in TaskPriority]),
            "queue": queue,
            "sort": "created_at" if reverse else "-created_at",
            "limit": 1000 if every else limit,
            "offset": offset,
        }
    )
    page = ctx.client.list_tasks_page(filters)
    found, total = list(page.tasks), page.total
    while every and page.tasks and len(found) < total - offset:
        page = ctx.client.list_tasks_page(
            filters.model_copy(update={"offset": offset + len(found)})
        )
        found += page.tasks
    ctx.emit(found, lambda: task_table(found) if found else "no tasks")
    if ctx.output == "table" and offset + len(found) < total:
        order = "oldest" if reverse else "newest"
        click.echo(
            f"showing {len(found):,} of {total:,}, {order} first (use --all, --limit or --offset)",
            err=True,
        )


@tasks.command("get")
@click.argument("task_id")
@client_command
def get_task(ctx: CliContext, task_id: str) -> None:
    """Show one task."""
    task = ctx.client.get_task(resolve_task(ctx, task_id))
    ctx.emit(task, lambda: task_detail(task))


@tasks.command("update")
@click.argument("task_id")
@click.option("--name", default=None)
@click.option("--description", default=None)
@click.option("--command", default=None)
@click.option("--priority", type=PRIORITIES, default=None)
@click.option("--timeout", type=click.IntRange(1), default=None)
@click.option("--retry-attempts", type=click.IntRange(0, 100), default=None)
@click.option("--queue", default=None)
@click.option("--metadata", default=None, help="JSON object (replaces the old one).")
@client_command
def update_task(
    ctx: CliContext,
    task_id: str,
    name: str | None,
    description: str | None,
    command: str | None,
    priority: str | None,
    timeout: int | None,
    retry_attempts: int | None,
    queue: str | None,
    metadata: str | None,
) -> None:
    """Change a task's fields (how it runs only while it is Pending)."""
    changes = {
        k: v
        for k, v in {
            "name": name,
            "description": description,
            "command": command,
            "priority": _canonical(priority, [p.value for p in TaskPriority]),
            "timeout": timeout,
            "retry_attempts": retry_attempts,
            "queue": queue,
            "metadata": parse_json(metadata, "--metadata"),
        }.items()
        if v is not None
    }
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    task = ctx.client.update_task(resolve_task(ctx, task_id), **changes)
    ctx.emit(task, lambda: task_detail(task))


@tasks.command("cancel")
@click.argument("task_id")
@client_command
def cancel_task(ctx: CliContext, task_id: str) -> None:
    """Cancel a task (and its dependents); a running one is killed."""
    task = ctx.client.cancel_task(resolve_task(ctx, task_id))
    ctx.emit(task, lambda: f"cancelled {task.id}")


@tasks.command("retry")
@click.argument("task_id")
@client_command
def retry_task(ctx: CliContext, task_id: str) -> None:
    """Re-queue a Failed or Cancelled task."""
    task = ctx.client.retry_task(resolve_task(ctx, task_id))
    ctx.emit(task, lambda: f"re-queued {task.id}")


@tasks.command("delete")
@click.argument("task_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@client_command
def delete_task(ctx: CliContext, task_id: str, yes: bool) -> None:
    """Delete a task."""
    task_id = resolve_task(ctx, task_id)
    if not yes:
        confirm(ctx, f"delete task {task_id}?")
    if not ctx.client.delete_task(task_id):
        raise TaskNotFoundError(f"task {task_id} not found", 404)
    ctx.emit({"deleted": task_id}, lambda: f"deleted {task_id}")


@tasks.command("wait")
@click.argument("task_id")
@click.option("--timeout", type=click.FloatRange(0), default=300.0, show_default=True)
@client_command
def wait_task(ctx: CliContext, task_id: str, timeout: float) -> None:
    """Wait until a task ends; exit 1 if it did not complete."""
    try:
        task = ctx.client.wait_for_completion(resolve_task(ctx, task_id), timeout=timeout)
    except TaskQueueTimeoutError as waited:
        if "status" not in waited.response_data:
            raise  # the request itself timed out: a connection problem
        ctx.fail(waited.message, EXIT_FAILED)
    ctx.emit(task, lambda: task_detail(task))
    if task.status is not TaskStatus.COMPLETED:
        raise SystemExit(EXIT_FAILED)


@tasks.command("logs")
@click.argument("task_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the task ends.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), default=None)
@client_command
def task_logs(ctx: CliContext, task_id: str, follow: bool, stream: str | None) -> None:
    """Print a task's output (stdout to stdout, stderr to stderr)."""
    client = ctx.client
    task_id = resolve_task(ctx, task_id)
    if follow:
        for chunk in client.follow_logs(task_id, stream=stream):
            write_chunk(chunk)
        return
    chunks: list[LogChunk] = []
    offset = 0
    while True:
        page = client.get_logs(task_id, offset=offset, limit=10_000, stream=stream)
        chunks.extend(page.chunks)
        if not page.chunks or len(page.chunks) < 10_000:
            break
        offset = page.next_offset
    if ctx.output in ("json", "yaml"):
        ctx.emit(chunks)
        return
    for chunk in chunks:
        write_chunk(chunk)


@tasks.command("attempts")
@click.argument("task_id")
@client_command
def task_attempts(ctx: CliContext, task_id: str) -> None:
    """Every attempt of a task."""
    found = ctx.client.get_attempts(resolve_task(ctx, task_id))
    ctx.emit(found, lambda: attempt_table(found) if found else "no attempts yet")


for _command in review_commands:
    tasks.add_command(_command)
