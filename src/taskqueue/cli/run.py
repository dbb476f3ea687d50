"""``taskqueue run``, ``submit``, ``health`` and ``config``."""

from __future__ import annotations

import json
import shlex
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
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
    EXIT_USAGE,
    CliContext,
    client_command,
    rows_table,
)
from taskqueue.cli.tasks import (
    PRIORITIES,
    _canonical,
    parse_env,
    resolve_project,
    task_table,
    write_chunk,
)
from taskqueue.client import resolve_config
from taskqueue.client._config import (
    config_paths,
    local_config_path,
    read_toml,
    user_config_path,
)
from taskqueue.errors import TaskQueueConfigError, TaskQueueError, ValidationError
from taskqueue.models import Attempt, FailureReason, Task, TaskPriority, TaskStatus

__all__ = ["config", "exit_code_of", "health", "run", "submit", "workers"]

#: Exit code of a task that ran out of time (as GNU ``timeout`` does).
EXIT_TIMED_OUT = 124


def exit_code_of(task: Task) -> int:
    """The exit code ``taskqueue run`` ends with: the task's own, as a shell would give it."""
    if task.status is TaskStatus.COMPLETED:
        return 0
    result = task.result
    if task.status is TaskStatus.FAILED and result is not None:
        if result.failure_reason is FailureReason.TIMEOUT:
            return EXIT_TIMED_OUT
        if result.exit_code is not None and result.exit_code > 0:
            return min(result.exit_code, 255)
        if result.exit_code is not None and result.exit_code < 0:
            return 128 + (-result.exit_code)
    return EXIT_FAILED


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--name", default=None, help="Task name (default: the command).")
@click.option("--project", default=None, help="Project id or name.")
@click.option("--priority", type=PRIORITIES, default=None)
@click.option("--timeout", type=click.IntRange(1), default=None, help="Seconds.")
@click.option("--retry-attempts", type=click.IntRange(0, 100), default=0, show_default=True)
@click.option(
    "--retry-delay",
    type=click.FloatRange(0, 86400),
    default=None,
    help="Seconds before the first retry (doubling, jittered); default 30.",
)
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE")
@click.option("--cwd", default=None, help="Working directory on the worker.")
@click.option("--queue", default=None)
@click.option("--detach", "-d", is_flag=True, help="Print the task id and return at once.")
@client_command
def run(
    ctx: CliContext,
    command: tuple[str, ...],
    name: str | None,
    project: str | None,
    priority: str | None,
    timeout: int | None,
    retry_attempts: int,
    retry_delay: float | None,
    env: tuple[str, ...],
    cwd: str | None,
    queue: str | None,
    detach: bool,
) -> None:
    """Run COMMAND as a task: stream its output, exit with its exit code.

    Put -- before a command that has options of its own. One argument is taken as a whole
    shell command line. Ctrl-C (or SIGTERM, SIGHUP) cancels the task.
    """
    line = command[0] if len(command) == 1 else shlex.join(command)
    client = ctx.client
    fields: dict[str, Any] = {
        "priority": _canonical(priority, [p.value for p in TaskPriority]),
        "timeout": timeout,
        "retry_attempts": retry_attempts,
        "retry_delay": retry_delay,
        "working_directory": cwd,
        "queue": queue,
    }
    if env:
        fields["environment"] = parse_env(env)
    task = client.create_task(
        name or line[:255],
        line,
        resolve_project(client, project),
        **{k: v for k, v in fields.items() if v is not None},
    )
    if detach:
        ctx.emit(task, lambda: str(task.id))
        return
    done = _follow_to_the_end(ctx, task)
    if ctx.output in ("json", "yaml"):
        ctx.emit(done)
    elif done.status is TaskStatus.COMPLETED:
        click.echo(f"task {done.id} Completed", err=True)
    else:
        reason = done.status_reason or (done.result.error if done.result else None)
        click.echo(f"task {done.id} {done.status.value}{': ' + reason if reason else ''}", err=True)
    raise SystemExit(exit_code_of(done))


class _Stopped(Exception):
    """``taskqueue run`` was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def _follow_to_the_end(ctx: CliContext, task: Task) -> Task:
    """Stream the task's output and say what happens between attempts; cancel on a signal."""
    client = ctx.client
    reporter = _AttemptReporter(ctx, task)
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for chunk in client.follow_logs(task.id, on_status=reporter.status_changed):
            reporter.output_of(chunk.attempt)
            write_chunk(chunk)
        done = client.wait_for_completion(task.id, timeout=3600 * 24 * 365)
        reporter.catch_up()
        return done
    except (KeyboardInterrupt, _Stopped) as stop:
        signum = stop.signum if isinstance(stop, _Stopped) else signal.SIGINT
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the cancel short
        client.cancel_task(task.id)
        click.echo(f"\n{signal.Signals(signum).name}: cancelled task {task.id}", err=True)
        raise SystemExit(128 + signum) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _AttemptReporter:
    """Says on stderr, once each, that an attempt failed and will be retried, or started.

    It looks when the server reports a change of status and when output of a new attempt
    arrives, so a quick retry that the status changes missed is still reported, in order.
    """

    def __init__(self, ctx: CliContext, task: Task) -> None:
        self.ctx = ctx
        self.task = task
        self.latest = 1
        self.said: set[tuple[int, str]] = set()

    def status_changed(self, status: TaskStatus) -> None:
        """The server saw the task's status change."""
        self.catch_up()

    def output_of(self, attempt: int) -> None:
        """Output of ``attempt`` arrived; report what happened before it first."""
        if attempt > self.latest:
            self.catch_up()

    def catch_up(self) -> None:
        """Report every failed-and-retried and every started attempt not reported yet."""
        client = self.ctx.client
        current = client.get_task(self.task.id)
        total = current.retry_attempts + 1
        for attempt in client.get_attempts(self.task.id):
            self.latest = max(self.latest, attempt.number)
            if attempt.number > 1 and (attempt.number, "started") not in self.said:
                self._say(attempt.number, "started", f"attempt {attempt.number}/{total} started")
            retried = attempt.number < current.attempt or (
                current.status is TaskStatus.PENDING and attempt.finished_at is not None
            )
            if attempt.status is TaskStatus.FAILED and retried:
                wait = ""
                if attempt.number == current.attempt and current.run_at is not None:
                    left = (current.run_at - datetime.now(timezone.utc)).total_seconds()
                    wait = f" in {max(left, 0):.0f}s"
                line = f"attempt {attempt.number}/{total} failed ({_how(attempt)}), retrying{wait}"
                self._say(attempt.number, "failed", line)

    def _say(self, number: int, what: str, line: str) -> None:
        if (number, what) not in self.said:
            self.said.add((number, what))
            click.echo(line, err=True)


def _how(attempt: Attempt) -> str:
    if attempt.failure_reason is FailureReason.TIMEOUT:
        return "timed out"
    if attempt.exit_code is not None and attempt.exit_code < 0:
        return f"signal {-attempt.exit_code}"
    if attempt.exit_code is not None:
        return f"exit {attempt.exit_code}"
    reason = attempt.failure_reason.value if attempt.failure_reason else "failed"
    return attempt.error or reason


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
    project_id = resolve_project(client, project)
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


@click.command()
@client_command
def health(ctx: CliContext) -> None:
    """Whether the server answers, and what it holds."""
    report = ctx.client.get_health()

    def table() -> Any:
        rows = rows_table(None, ["STATUS", "VERSION", "DATABASE", "WORKERS", "TASKS"])
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.tasks.items())) or "none"
        rows.add_row(report.status, report.version, report.database, str(report.workers), counts)
        return rows

    ctx.emit(report, table)


@click.command()
@client_command
def workers(ctx: CliContext) -> None:
    """The worker processes serving the server's database."""
    report = ctx.client.list_workers()

    def table() -> Any:
        rows = rows_table(
            None, ["ID", "STATUS", "HOST", "PID", "RUNNING", "QUEUES", "VERSION", "LAST SEEN"]
        )
        for w in report.workers:
            rows.add_row(
                w.id,
                w.status.value,
                w.host,
                str(w.pid),
                f"{w.running}/{w.concurrency}",
                ", ".join(w.queues),
                w.version,
                w.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            )
        return rows

    ctx.emit(report, table)


# ------------------------------------------------------------------------------ config

_SETTINGS = ("base_url", "api_key", "timeout")


def _toml_value(key: str, value: str) -> str:
    if key == "timeout":
        try:
            number = float(value)
        except ValueError:
            raise click.BadParameter("timeout is a number of seconds", param_hint="VALUE") from None
        if number <= 0:
            raise click.BadParameter("timeout must be positive", param_hint="VALUE")
        return repr(number)
    return json.dumps(value)  # a TOML basic string is a JSON string


def _write_profiles(path: Path, profiles: dict[str, dict[str, Any]]) -> None:
    lines: list[str] = []
    for name, values in profiles.items():
        lines.append(f"[{json.dumps(name)}]" if not name.isidentifier() else f"[{name}]")
        for key, value in values.items():
            rendered = repr(float(value)) if key == "timeout" else json.dumps(str(value))
            lines.append(f"{key} = {rendered}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)  # it may hold an API key


def _read_profiles(ctx: CliContext, path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = read_toml(path)
    except TaskQueueConfigError as exc:
        ctx.fail(exc.message, EXIT_USAGE)
    return {k: dict(v) for k, v in (data or {}).items() if isinstance(v, dict)}


@click.group()
def config() -> None:
    """Show and change the client's settings and profiles."""


@config.command("show")
@click.pass_obj
def config_show(ctx: CliContext) -> None:
    """The settings commands will use, and where they come from."""
    try:
        resolved = resolve_config(ctx.base_url, ctx.api_key, ctx.profile)
    except TaskQueueError as exc:
        ctx.fail(exc.message, EXIT_USAGE)
    key = resolved.api_key
    masked = None if key is None else (key[:4] + "…" if len(key) > 8 else "…")
    data = {
        "base_url": resolved.base_url,
        "api_key": masked,
        "timeout": resolved.timeout,
        "profile": resolved.profile,
        "source": resolved.source,
        "origins": dict(resolved.origins),
        "files": [str(p) for p in config_paths()],
    }

    def lines() -> str:
        shown = []
        for name in ("base_url", "api_key", "timeout", "profile", "source"):
            value = data[name]
            origin = resolved.origins.get(name)
            suffix = f"  (from {origin})" if origin else ""
            shown.append(f"{name}: {value if value is not None else '-'}{suffix}")
        return "\n".join(shown)

    ctx.emit(data, lines)


@config.command("set")
@click.argument("key", type=click.Choice(_SETTINGS))
@click.argument("value")
@click.option("--profile", "profile_name", default=None, help="Profile (default: default).")
@click.option(
    "--local",
    is_flag=True,
    help="Write the nearest taskqueue.toml (else ./taskqueue.toml) instead of the user file.",
)
@click.pass_obj
def config_set(
    ctx: CliContext, key: str, value: str, profile_name: str | None, local: bool
) -> None:
    """Set KEY to VALUE in a profile of the config file."""
    name = profile_name or ctx.profile or "default"
    path = local_config_path() if local else user_config_path()
    _toml_value(key, value)
    profiles = _read_profiles(ctx, path)
    profiles.setdefault(name, {})[key] = value if key != "timeout" else float(value)
    _write_profiles(path, profiles)
    click.echo(f"set {key} in profile {name} of {path}")


@config.command("profiles")
@click.pass_obj
def config_profiles(ctx: CliContext) -> None:
    """The profiles of each config file."""
    found = [
        {
            "file": str(path),
            "profile": name,
            **{k: ("…" if k == "api_key" else v) for k, v in values.items()},
        }
        for path in config_paths()
        for name, values in _read_profiles(ctx, path).items()
    ]

    def table() -> Any:
        rows = rows_table(None, ["PROFILE", "BASE URL", "FILE"])
        for item in found:
            rows.add_row(str(item["profile"]), str(item.get("base_url", "-")), item["file"])
        return rows if found else "no profiles (taskqueue config set base_url URL)"

    ctx.emit(found, table)
