"""``taskqueue run``: one command as a task, its output streamed, its exit code kept."""

from __future__ import annotations

import shlex
import signal
from datetime import datetime, timezone
from typing import Any

import click

from taskqueue.cli._context import (
    EXIT_FAILED,
    CliContext,
    client_command,
)
from taskqueue.cli._ids import resolve_project
from taskqueue.cli._limit_options import limit_options, limits_of
from taskqueue.cli.tasks import (
    PRIORITIES,
    _canonical,
    parse_env,
    write_chunk,
)
from taskqueue.models import Attempt, FailureReason, Task, TaskPriority, TaskStatus

__all__ = ["exit_code_of", "run"]

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
@limit_options
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
    limits: tuple[str, ...],
    no_network: bool,
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
    fields["limits"] = limits_of(limits, no_network)
    task = client.create_task(
        name or line[:255],
        line,
        resolve_project(ctx, project),
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
        attempts = client.get_attempts(self.task.id)
        started = {attempt.number: attempt.started_at for attempt in attempts}
        for attempt in attempts:
            self.latest = max(self.latest, attempt.number)
            if attempt.number > 1 and (attempt.number, "started") not in self.said:
                self._say(attempt.number, "started", f"attempt {attempt.number}/{total} started")
            retried = attempt.number < current.attempt or (
                current.status is TaskStatus.PENDING and attempt.finished_at is not None
            )
            if attempt.status is TaskStatus.FAILED and retried:
                wait = ""
                next_start = started.get(attempt.number + 1)
                if next_start is not None and attempt.finished_at is not None:
                    # The retry has started already: the wait it had.
                    left = (next_start - attempt.finished_at).total_seconds()
                    wait = f" in {max(left, 0):.0f}s"
                elif attempt.number == current.attempt and current.run_at is not None:
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
