"""``taskqueue exec``: code in a language as a task, its output streamed, its exit code kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from taskqueue.cli._context import EXIT_USAGE, CliContext, client_command
from taskqueue.cli._limit_options import limit_options, limits_of
from taskqueue.cli.run import _follow_to_the_end, exit_code_of
from taskqueue.cli.tasks import parse_env
from taskqueue.languages import LANGUAGES, canonical_language, detect_language
from taskqueue.models import TaskStatus

__all__ = ["exec_code"]


def _source(ctx: CliContext, script: str | None, code: str | None) -> tuple[str, str | None]:
    """The code to run and the file name it came from (None: given with -e)."""
    if (script is None) == (code is None):
        ctx.fail("give a SCRIPT file or -e CODE (one of the two)", EXIT_USAGE)
    if code is not None:
        return code, None
    assert script is not None
    if script == "-":
        return sys.stdin.read(), None
    try:
        return Path(script).read_text(encoding="utf-8"), script
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(f"cannot read {script}: {exc}", EXIT_USAGE)


def _language(ctx: CliContext, given: str | None, filename: str | None) -> str:
    known = ", ".join(language.name for language in LANGUAGES)
    if given is not None:
        name = canonical_language(given)
        if name is None:
            ctx.fail(f"unknown language {given!r}; known languages: {known}", EXIT_USAGE)
        return name
    detected = detect_language(filename) if filename is not None else None
    if detected is None:
        what = f"the file name {filename!r}" if filename else "code given with -e or on stdin"
        ctx.fail(f"cannot tell the language of {what}: give --language ({known})", EXIT_USAGE)
    return detected


@click.command("exec")
@click.argument("script", required=False)
@click.option("--language", "-l", default=None, help="Language (default: from the file name).")
@click.option("-e", "--code", "code", default=None, help="The code itself, instead of a file.")
@click.option("--input", "input_json", default=None, help="JSON given on stdin and in a file.")
@click.option("--timeout", type=click.IntRange(1), default=None, help="Seconds.")
@click.option("--retry-attempts", type=click.IntRange(0, 100), default=0, show_default=True)
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE")
@click.option("--queue", default="default", show_default=True)
@click.option("--name", default=None, help="Task name (default: the file, or the language).")
@limit_options
@click.option("--detach", "-d", is_flag=True, help="Print the task id and return at once.")
@client_command
def exec_code(
    ctx: CliContext,
    script: str | None,
    language: str | None,
    code: str | None,
    input_json: str | None,
    timeout: int | None,
    retry_attempts: int,
    env: tuple[str, ...],
    queue: str,
    name: str | None,
    limits: tuple[str, ...],
    no_network: bool,
    detach: bool,
) -> None:
    """Run SCRIPT (or -e CODE) on a worker offering its language; stream its output.

    The language comes from the file name (hello.py is python3) unless --language says.
    Exits with the code's own exit code. Ctrl-C (or SIGTERM, SIGHUP) cancels it.
    """
    source, filename = _source(ctx, script, code)
    lang = _language(ctx, language, filename)
    fields: dict[str, Any] = {"timeout": timeout, "queue": queue, "retry_attempts": retry_attempts}
    if input_json is not None:
        try:
            fields["input"] = json.loads(input_json)
        except json.JSONDecodeError as exc:
            ctx.fail(f"--input is not JSON: {exc}", EXIT_USAGE)
    if env:
        fields["environment"] = parse_env(env)
    asked = limits_of(limits, no_network)
    if asked is not None:
        fields["limits"] = asked
    client = ctx.client
    job = client.execute_async(lang, source, name=name or filename or f"{lang} code", **fields)
    task = client.get_job(job)
    if detach:
        ctx.emit(task, lambda: str(task.id))
        return
    done = _follow_to_the_end(ctx, task)
    if ctx.output in ("json", "yaml"):
        ctx.emit(done)
    elif done.status is not TaskStatus.COMPLETED:
        reason = done.status_reason or (done.result.error if done.result else None)
        click.echo(f"task {done.id} {done.status.value}{': ' + reason if reason else ''}", err=True)
    raise SystemExit(exit_code_of(done))
