"""``taskqueue submit``: every task of a file in one request, followed to the end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from taskqueue.cli._context import (
    EXIT_FAILED,
    CliContext,
    client_command,
)
from taskqueue.cli._ids import resolve_project
from taskqueue.cli.tasks import (
    task_table,
)
from taskqueue.errors import ValidationError
from taskqueue.models import Task, TaskStatus

__all__ = ["plan_batch", "submit"]


def _load_items(path: Path) -> list[dict[str, Any]]:
    """The task entries of a YAML file, a JSON document, or JSON lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="FILE") from exc
    data: Any
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            context = getattr(exc, "context", None)
            start = getattr(exc, "context_mark", None)
            if context and start is not None:
                problem += f" ({context} started at line {start.line + 1})"
            raise click.BadParameter(
                f"{path}: invalid YAML{where}: {problem}", param_hint="FILE"
            ) from exc
    elif text.lstrip()[:1] in ("[", "{") and not _looks_like_lines(text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                param_hint="FILE",
            ) from exc
    else:
        try:
            data = json.loads(text)
        except ValueError:
            data = []
            for number, raw in enumerate(text.splitlines(), 1):
                if raw.strip():
                    try:
                        data.append(json.loads(raw))
                    except ValueError as exc:
                        raise click.BadParameter(
                            f"{path}: line {number} is not JSON: {exc}", param_hint="FILE"
                        ) from exc
    if isinstance(data, dict) and "tasks" in data:
        data = data["tasks"]
    if not isinstance(data, list) or not data or not all(isinstance(i, dict) for i in data):
        raise click.BadParameter(
            f"{path}: expected a list of tasks (mappings with name and command)", param_hint="FILE"
        )
    return [dict(item) for item in data]


def _looks_like_lines(text: str) -> bool:
    """Whether text is JSON lines: several lines, each an object on its own."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines)


def plan_batch(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order file entries so each comes after its dependencies, which name other entries.

    Each entry's ``name`` becomes its ``ref``; a dependency that names no entry is passed on as
    given (a task id). A cycle or a repeated name is a usage error.
    """
    names: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items, 1):
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise click.BadParameter(f"entry {index} has no name", param_hint="FILE")
        if name in names:
            raise click.BadParameter(f"two entries are named {name!r}", param_hint="FILE")
        deps = item.get("dependencies", item.get("depends_on", [])) or []
        if isinstance(deps, str):
            deps = [deps]
        if not isinstance(deps, list):
            raise click.BadParameter(f"{name}: dependencies must be a list", param_hint="FILE")
        names[name] = {
            **{k: v for k, v in item.items() if k != "depends_on"},
            "ref": name,
            "dependencies": deps,
        }
    ordered: list[dict[str, Any]] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join((*trail, name))
            raise click.BadParameter(f"dependency cycle: {cycle}", param_hint="FILE")
        state[name] = "visiting"
        for dep in names[name]["dependencies"]:
            if isinstance(dep, str) and dep in names:
                visit(dep, (*trail, name))
        state[name] = "done"
        ordered.append(names[name])

    for name in names:
        visit(name, ())
    return ordered


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", default=None, help="Project id or name for entries without one.")
@click.option("--no-wait", is_flag=True, help="Create the tasks and return.")
@click.option("--verbose", is_flag=True, help="A row for every task instead of a summary.")
@client_command
def submit(ctx: CliContext, file: Path, project: str | None, no_wait: bool, verbose: bool) -> None:
    """Create every task of FILE in one request, then follow them to the end.

    FILE is YAML (a list of tasks, or a mapping with "tasks"), JSON, or JSON lines. Each task
    has a name and a command, any other task field, and dependencies naming other tasks of
    the file (or existing task ids). Exit 1 if any task does not complete.
    """
    items = plan_batch(_load_items(file))
    client = ctx.client
    project_id = resolve_project(ctx, project)
    if project_id is not None:
        for item in items:
            item.setdefault("project_id", project_id)
    try:
        created = client.create_tasks(items)
    except ValidationError as refused:
        raise _name_entry(refused, items) from None
    if no_wait:
        ctx.emit(created, lambda: task_table(created, title=f"submitted {len(created)} tasks"))
        return
    final = _wait_all(ctx, created)
    failed = [t for t in final if t.status is not TaskStatus.COMPLETED]
    if ctx.output != "table" or verbose or ctx.verbose:
        ctx.emit(
            final,
            lambda: task_table(
                final, title=f"{len(final) - len(failed)} of {len(final)} tasks completed"
            ),
        )
    else:
        click.echo(_summary(final, failed))
    if failed:
        raise SystemExit(EXIT_FAILED)


def _wait_all(ctx: CliContext, created: Sequence[Task]) -> list[Task]:
    """Every task once finished, in the order given; a progress bar on a terminal."""
    finished: dict[str, Task] = {}
    console = ctx.err
    client = ctx.client
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        bar = progress.add_task("running", total=len(created), failed=0)
        failures = 0
        with ThreadPoolExecutor(max_workers=min(16, len(created))) as pool:
            waits = [
                pool.submit(client.wait_for_completion, t.id, 3600 * 24 * 365) for t in created
            ]
            for future in as_completed(waits):
                task = future.result()
                finished[str(task.id)] = task
                failures += task.status is not TaskStatus.COMPLETED
                progress.update(bar, advance=1, failed=failures)
    return [finished[str(t.id)] for t in created]


def _summary(final: Sequence[Task], failed: Sequence[Task], shown: int = 5) -> str:
    """Counts by status, the first few failures, and how to see the rest."""
    counts: dict[str, int] = {}
    for task in final:
        counts[task.status.value] = counts.get(task.status.value, 0) + 1
    parts = ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))
    completed = counts.get(TaskStatus.COMPLETED.value, 0)
    lines = [f"{completed:,} of {len(final):,} tasks completed" + (f" ({parts})" if failed else "")]
    for task in failed[:shown]:
        reason = task.status_reason or (task.result.error if task.result else None) or ""
        lines.append(f"  {task.status.value} {task.id} {task.name}: {reason}".rstrip(": "))
    if len(failed) > shown:
        lines.append(f"  … and {len(failed) - shown:,} more")
    if failed:
        statuses = sorted({t.status.value for t in failed})
        hint = " / ".join(f"taskqueue tasks list --status {s}" for s in statuses)
        lines.append(f"list them with: {hint}")
    lines.append("every row: taskqueue submit --verbose, or -o json")
    return "\n".join(lines)


def _name_entry(error: ValidationError, items: Sequence[dict[str, Any]]) -> ValidationError:
    """The error with ``tasks.<i>`` (an index after reordering) named as the file names it."""
    details = error.details
    loc = details[0]["loc"] if details else []
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int) and loc[1] < len(items):
        rest = ".".join(str(p) for p in loc[2:]) or "entry"
        message = f"entry {items[loc[1]]['name']!r}: {rest}: {details[0]['msg']}"
        return ValidationError(message, error.status_code, error.response_data, error.request_id)
    return error
