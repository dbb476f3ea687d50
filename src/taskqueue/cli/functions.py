"""``taskqueue functions ...``, ``execute`` and ``batch-execute``: Function tasks from a terminal.

A Function task is a definition (a command or code, an input and an output JSON Schema, a
version) executed with inputs: one at a time (``execute``, which prints the output) or a file
of them (``batch-execute``, one JSON input a line). See ``docs/functions.md``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import pydantic
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taskqueue._function_models import MAX_BATCH_ITEMS, MAX_EXECUTE_WAIT_MS
from taskqueue._validation import validation_details
from taskqueue.cli._context import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliContext,
    client_command,
    json_flag,
    relative,
    rows_table,
)
from taskqueue.cli._ids import resolve_task, short_id
from taskqueue.errors import ExecutionError
from taskqueue.languages import LANGUAGES, canonical_language, detect_language
from taskqueue.models import (
    TERMINAL_STATUSES,
    BatchExecuteRequest,
    BatchExecuteResponse,
    BatchExecuteResult,
    ExecutionResult,
    Task,
    TaskFilters,
    TaskType,
    TaskVersion,
)

__all__ = [
    "batch_execute",
    "execute",
    "functions",
    "read_json_argument",
    "read_jsonl",
]

F = TypeVar("F", bound=Callable[..., Any])

#: How long each poll of a running batch waits for it to end (the progress bar's refresh).
_BATCH_POLL_MS = 1000
#: Failed items listed after a batch's summary; the rest are counted.
_FAILURES_SHOWN = 10


def read_json_argument(value: str, option: str) -> Any:
    """A JSON option's value: the JSON itself, ``@FILE`` (read from the file) or ``-`` (stdin).

    Unreadable or malformed JSON is a usage error naming the option (exit 2).
    """
    source = "stdin" if value == "-" else value[1:] if value.startswith("@") else None
    text = value
    if value == "-":
        text = sys.stdin.read()
    elif source is not None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {source}: {exc}", param_hint=option) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        where = f" ({source})" if source else ""
        raise click.BadParameter(f"not valid JSON{where}: {exc}", param_hint=option) from None


def _schema(value: str | None, option: str) -> dict[str, Any] | None:
    """A JSON Schema option: an object, given inline or as ``@FILE``."""
    if value is None:
        return None
    schema = read_json_argument(value, option)
    if not isinstance(schema, dict):
        raise click.BadParameter(
            f"a JSON Schema is a JSON object, not {type(schema).__name__}", param_hint=option
        )
    return schema


def read_jsonl(name: str) -> list[Any]:
    """The inputs of a JSON-lines file (``-``: stdin), one JSON value a line; blanks skipped.

    A line that is not JSON is a usage error naming its number (exit 2): nothing is sent.
    """
    if name == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {name}: {exc}", param_hint="INPUTS") from None
    where = "stdin" if name == "-" else name
    inputs: list[Any] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            inputs.append(json.loads(raw))
        except ValueError as exc:
            raise click.BadParameter(
                f"{where}: line {number} is not JSON: {exc}", param_hint="INPUTS"
            ) from None
    if not inputs:
        raise click.BadParameter(
            f"{where} holds no inputs (one JSON value a line)", param_hint="INPUTS"
        )
    if len(inputs) > MAX_BATCH_ITEMS:
        raise click.BadParameter(
            f"{where} holds {len(inputs):,} inputs; a batch takes at most {MAX_BATCH_ITEMS:,}",
            param_hint="INPUTS",
        )
    return inputs


def _compact(value: Any) -> str:
    return "-" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _shape(schema: dict[str, Any] | None) -> str:
    """A schema in a few words, for tables: ``{text: string, n?: integer}``, or its type."""
    if schema is None:
        return "-"
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        required = schema.get("required") or []
        fields = [
            f"{name}{'' if name in required else '?'}: "
            f"{spec.get('type', 'any') if isinstance(spec, dict) else 'any'}"
            for name, spec in properties.items()
        ]
        return "{" + ", ".join(fields) + "}"
    kind = schema.get("type")
    return str(kind) if kind is not None else "schema"


def _body(task: Task | TaskVersion, one_line: bool = False) -> str:
    """The body: a code task's language and size, or the command (its first line, in tables)."""
    if task.language is not None:
        return f"{task.language} code ({len(task.code or '')} characters)"
    lines = task.command.splitlines() or [""]
    return lines[0] + " …" if one_line and len(lines) > 1 else task.command


# ------------------------------------------------------------------------------ tables


def function_table(items: Sequence[Task]) -> Table:
    """Function definitions as a table: short id, name, version, description."""
    table = rows_table(None, ["ID", "NAME", "VERSION", "DESCRIPTION"])
    for task in items:
        version = "-" if task.version is None else str(task.version)
        table.add_row(short_id(task.id), task.name, version, task.description or "-")
    return table


def function_detail(task: Task) -> Table:
    """One definition as field / value rows, its schemas as compact JSON."""
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("id", str(task.id)),
        ("name", task.name),
        ("type", task.task_type.value),
        ("version", "-" if task.version is None else str(task.version)),
        ("description", task.description or "-"),
        ("body", _body(task)),
        ("input schema", _compact(task.input_schema)),
        ("output schema", _compact(task.output_schema)),
        ("timeout", f"{task.timeout}s" if task.timeout else "-"),
        ("retries", str(task.retry_attempts)),
        ("created", relative(task.created_at)),
        ("updated", relative(task.updated_at)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def version_table(items: Sequence[TaskVersion]) -> Table:
    """A definition's versions, oldest first (the whole schemas: ``--json``)."""
    table = rows_table(None, ["VERSION", "CREATED", "BODY", "INPUT SCHEMA", "OUTPUT SCHEMA"])
    for item in items:
        table.add_row(
            str(item.version),
            relative(item.created_at),
            _body(item, one_line=True),
            _shape(item.input_schema),
            _shape(item.output_schema),
        )
    return table


# ------------------------------------------------------------------------------ functions


@click.group()
def functions() -> None:
    """Create and inspect Function definitions (run them with execute and batch-execute)."""


@functions.command("create")
@click.argument("name")
@click.option("--command", default=None, help="The shell command that runs each execution.")
@click.option("--language", "-l", default=None, help="The language of --code or --file.")
@click.option("--code", default=None, help="The code itself (with --language).")
@click.option(
    "--file",
    "script",
    default=None,
    metavar="SCRIPT",
    help="A file of code (its language from the file name unless --language says).",
)
@click.option("--description", default=None)
@click.option("--input-schema", default=None, metavar="JSON|@FILE", help="The input's JSON Schema.")
@click.option(
    "--output-schema", default=None, metavar="JSON|@FILE", help="The output's JSON Schema."
)
@click.option(
    "--no-validate-output",
    "trust_output",
    is_flag=True,
    help="Do not check outputs against the output schema (unless an execution forces it).",
)
@click.option("--timeout", type=click.IntRange(1), default=None, help="Seconds per execution.")
@click.option(
    "--retry-attempts",
    type=click.IntRange(0, 100),
    default=None,
    help="Retries of a failed execution (default: the server's, 3).",
)
@client_command
@json_flag
def create_function(
    ctx: CliContext,
    name: str,
    command: str | None,
    language: str | None,
    code: str | None,
    script: str | None,
    description: str | None,
    input_schema: str | None,
    output_schema: str | None,
    trust_output: bool,
    timeout: int | None,
    retry_attempts: int | None,
) -> None:
    """Create the Function definition NAME (version 1).

    Its body is a --command, or --language with --code, or a --file of code. Each execution
    gets its input on stdin and in the file named by $TASKQUEUE_INPUT, and writes its output
    (JSON) to the file named by $TASKQUEUE_OUTPUT.
    """
    fields: dict[str, Any] = {"task_type": TaskType.FUNCTION.value}
    if sum(given is not None for given in (command, code, script)) != 1:
        raise click.UsageError("give the body: --command, or --language and --code, or --file")
    if command is not None and language is not None:
        raise click.UsageError("--language goes with --code or --file, not --command")
    if code is not None or script is not None:
        fields["language"], fields["code"] = _code(ctx, language, code, script)
    fields["input_schema"] = _schema(input_schema, "--input-schema")
    fields["output_schema"] = _schema(output_schema, "--output-schema")
    if trust_output:
        fields["validate_output"] = False
    fields.update(description=description, timeout=timeout, retry_attempts=retry_attempts)
    given = {k: v for k, v in fields.items() if v is not None}
    task = ctx.client.create_task(name, command, **given)
    ctx.emit(task, lambda: function_detail(task))


def _code(
    ctx: CliContext, language: str | None, code: str | None, script: str | None
) -> tuple[str, str]:
    """The language and the code of ``--code`` or ``--file``."""
    known = ", ".join(known_language.name for known_language in LANGUAGES)
    if script is not None:
        try:
            code = Path(script).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {script}: {exc}", param_hint="--file") from None
    assert code is not None
    if language is None:
        detected = detect_language(script) if script is not None else None
        if detected is None:
            what = f"the file name {script!r}" if script else "--code"
            ctx.fail(f"cannot tell the language of {what}: give --language ({known})", EXIT_USAGE)
        return detected, code
    name = canonical_language(language)
    if name is None:
        ctx.fail(f"unknown language {language!r}; known languages: {known}", EXIT_USAGE)
    return name, code


@functions.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@client_command
@json_flag
def list_functions(ctx: CliContext, limit: int, offset: int) -> None:
    """List Function definitions, newest first (the ID column is the end of each id)."""
    filters = TaskFilters(
        task_type=TaskType.FUNCTION, sort="-created_at", limit=limit, offset=offset
    )
    page = ctx.client.list_tasks_page(filters)
    found = list(page.tasks)
    ctx.emit(found, lambda: function_table(found) if found else "no Function definitions")
    if ctx.output == "table" and offset + len(found) < page.total:
        click.echo(f"showing {len(found):,} of {page.total:,} (use --limit or --offset)", err=True)


@functions.command("get")
@click.argument("task_id")
@click.option("--version", type=click.IntRange(1), default=None, help="As of this version.")
@client_command
@json_flag
def get_function(ctx: CliContext, task_id: str, version: int | None) -> None:
    """Show a Function definition: its body and schemas (as of --version N)."""
    task = ctx.client.get_task(resolve_task(ctx, task_id), version=version)
    ctx.emit(task, lambda: function_detail(task))


@functions.command("versions")
@click.argument("task_id")
@client_command
@json_flag
def function_versions(ctx: CliContext, task_id: str) -> None:
    """Every version of a Function definition, oldest first."""
    found = ctx.client.get_task_versions(resolve_task(ctx, task_id))
    ctx.emit(found, lambda: version_table(found) if found else "no versions")


# ------------------------------------------------------------------------------ execute


def _failure_line(result: ExecutionResult) -> str:
    reason = f" ({result.failure_reason.value})" if result.failure_reason else ""
    error = f": {result.error}" if result.error else ""
    return f"execution {result.execution_id} {result.status.value}{reason}{error}"


@click.command("execute")
@click.argument("task_id")
@click.option(
    "--input",
    "input_json",
    default=None,
    metavar="JSON|@FILE|-",
    help="The input: JSON, @FILE to read it from a file, or - for stdin (default: null).",
)
@click.option("--version", type=click.IntRange(1), default=None, help="Run this version.")
@click.option(
    "--timeout-ms",
    type=click.IntRange(0, MAX_EXECUTE_WAIT_MS),
    default=None,
    help="Wait at most this long, then print the execution still running (default: until it ends).",
)
@click.option(
    "--force-validation", is_flag=True, help="Check the output even if the definition trusts it."
)
@client_command
@json_flag
def execute(
    ctx: CliContext,
    task_id: str,
    input_json: str | None,
    version: int | None,
    timeout_ms: int | None,
    force_validation: bool,
) -> None:
    """Execute the Function definition TASK_ID with an input; print its output (JSON).

    Exits 0 when it completed, 1 when it failed or was cancelled (the error on stderr), or
    when it is still running after --timeout-ms. An input that does not match the input
    schema is refused (exit 5), each field error named by its JSON path.
    """
    given = None if input_json is None else read_json_argument(input_json, "--input")
    definition = resolve_task(ctx, task_id)
    try:
        result = ctx.client.execute(
            definition,
            given,
            version=version,
            timeout_ms=timeout_ms,
            force_validation=force_validation,
        )
    except ExecutionError as failed:
        if ctx.output != "table":
            ctx.emit(failed.result)
        ctx.fail(_failure_line(failed.result), EXIT_FAILED)
    if result.status not in TERMINAL_STATUSES:
        if ctx.output != "table":
            ctx.emit(result)
        ctx.fail(
            f"execution {result.execution_id} is still {result.status.value} after {timeout_ms}ms",
            EXIT_FAILED,
            f"its task is {result.execution_id}: `taskqueue tasks wait {result.execution_id}`",
        )
    if ctx.output == "table":
        click.echo(json.dumps(result.output, indent=2, ensure_ascii=False))
    else:
        ctx.emit(result)


# ------------------------------------------------------------------------------ batches


def _ended(batch: BatchExecuteResponse) -> int:
    return batch.success_count + batch.failure_count + batch.skipped_count


def _wait_batch(ctx: CliContext, batch: BatchExecuteResponse, show: bool) -> BatchExecuteResponse:
    """The batch once Completed, long-polling a second at a time; a bar on a terminal."""
    console = ctx.err
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (show and console.is_terminal),
    ) as progress:
        bar = progress.add_task(
            "executing", total=batch.total_items, completed=_ended(batch), failed=0
        )
        while batch.status != "Completed":
            batch = ctx.client.get_batch(batch.batch_id, timeout_ms=_BATCH_POLL_MS)
            progress.update(bar, completed=_ended(batch), failed=batch.failure_count)
    return batch


def _item_line(item: BatchExecuteResult) -> str:
    reason = f" ({item.failure_reason.value})" if item.failure_reason else ""
    what = "skipped" if item.skipped else item.status.value
    error = f": {item.error}" if item.error else ""
    return f"  item {item.id} (line {item.index + 1}) {what}{reason}{error}"


def _summary(batch: BatchExecuteResponse) -> str:
    lines = [
        f"total {batch.total_items:,}, succeeded {batch.success_count:,}, "
        f"failed {batch.failure_count:,}, skipped {batch.skipped_count:,}"
    ]
    failed = [item for item in batch.results if not item.success and not item.skipped]
    for item in failed[:_FAILURES_SHOWN]:
        lines.append(_item_line(item))
    if len(failed) > _FAILURES_SHOWN:
        lines.append(f"  … and {len(failed) - _FAILURES_SHOWN:,} more (every item: --json)")
    return "\n".join(lines)


@click.command("batch-execute")
@click.argument("task_id")
@click.argument("inputs", metavar="INPUTS")
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Items run at once.",
)
@click.option(
    "--stop-on-first-error", is_flag=True, help="Skip the items not started once one fails."
)
@click.option("--version", type=click.IntRange(1), default=None, help="Run this version.")
@client_command
@json_flag
def batch_execute(
    ctx: CliContext,
    task_id: str,
    inputs: str,
    max_concurrency: int,
    stop_on_first_error: bool,
    version: int | None,
) -> None:
    """Execute TASK_ID once per line of INPUTS (a JSON input a line; - for stdin).

    Shows a progress bar on a terminal, then the counts and each failed item (line numbers
    are those of the non-blank lines). Exits 1 if any item failed.
    """
    values = read_jsonl(inputs)
    definition = resolve_task(ctx, task_id)
    fields = {
        "task_id": definition,
        "inputs": values,
        "max_concurrency": max_concurrency,
        "stop_on_first_error": stop_on_first_error,
        "version": version,
        "timeout_ms": _BATCH_POLL_MS,
    }
    try:
        request = BatchExecuteRequest.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
    except pydantic.ValidationError as exc:
        detail = validation_details(exc)[0]
        where = ".".join(str(part) for part in detail["loc"])
        ctx.fail(f"{inputs}: {where}: {detail['msg']}", EXIT_USAGE)
    started = ctx.client.batch_execute_advanced(request)
    batch = _wait_batch(ctx, started, show=ctx.output == "table")
    if ctx.output == "table":
        click.echo(_summary(batch))
    else:
        ctx.emit(batch)
    if batch.failure_count:
        raise SystemExit(EXIT_FAILED)
