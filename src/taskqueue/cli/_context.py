"""What every client command shares: options, the SDK client, output and errors.

Exit codes (documented in docs/cli.md):

====  =====================================================
0     success
1     the task failed or was cancelled (``run`` exits with the task's own exit code)
2     usage: unknown option, bad argument, malformed file
3     not found: no such task or project
4     cannot reach the server, or it timed out
5     the server refused the request (invalid field, conflict)
6     the server failed (5xx)
====  =====================================================
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import click
import pydantic
from rich.console import Console
from rich.table import Table

from taskqueue.client._config import RETRY_BACKOFF_ENV
from taskqueue.errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    ServerError,
    TaskQueueConfigError,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
)

if TYPE_CHECKING:
    from taskqueue.client import TaskQueueClient

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_REFUSED",
    "EXIT_SERVER",
    "EXIT_USAGE",
    "CliContext",
    "client_command",
    "confirm",
    "duration",
    "json_flag",
    "relative",
    "status_style",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONNECTION = 4
EXIT_REFUSED = 5
EXIT_SERVER = 6

F = TypeVar("F", bound=Callable[..., Any])

#: The CLI's retry backoff, shorter than the SDK's: three retries end within a few seconds.
_RETRY_BACKOFF_S = 0.5

#: Output formats of commands that print data.
FORMATS = ("table", "json", "yaml")

_STATUS_STYLES = {
    "Pending": "yellow",
    "Running": "cyan",
    "Completed": "green",
    "Failed": "red",
    "Cancelled": "magenta",
}


def status_style(status: str) -> str:
    """A status word in its colour, as Rich markup."""
    style = _STATUS_STYLES.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """``3m ago`` / ``in 2h`` for a time, ``-`` for none."""
    if value is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size:
            amount = f"{int(seconds // size)}{unit}"
            break
    else:
        return "just now"
    return f"in {amount}" if future else f"{amount} ago"


def duration(ms: int | None) -> str:
    """``850ms`` / ``1.2s`` / ``3m04s`` for a duration in milliseconds."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes}m{seconds:02d}s"


@dataclass
class CliContext:
    """The options given before the command, and what is built from them."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    profile: str | None = None
    output: str = "table"
    verbose: bool = False
    #: A PEM file of certificate authorities to trust for https (``--ca-bundle``).
    ca_bundle: str | None = None
    _client: TaskQueueClient | None = field(default=None, repr=False)

    @property
    def client(self) -> TaskQueueClient:
        """The SDK client, built on first use from the options, env and profiles."""
        if self._client is None:
            # A person is waiting: retry, but give up within a few seconds (unless the
            # environment sets the backoff, which the SDK then reads).
            from taskqueue.client import TaskQueueClient  # here: `taskqueue server` needs none

            backoff = None if os.environ.get(RETRY_BACKOFF_ENV) else _RETRY_BACKOFF_S
            self._client = TaskQueueClient(
                self.base_url,
                api_key=self.api_key,
                ca_bundle=self.ca_bundle,
                profile=self.profile,
                retry_backoff=backoff,
            )
        return self._client

    def close(self) -> None:
        """Close the client if one was made."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def out(self) -> Console:
        """Rich console on stdout (colour only on a terminal and without NO_COLOR)."""
        return Console(highlight=False, soft_wrap=True, color_system=_color_system())

    @property
    def err(self) -> Console:
        """Rich console on stderr."""
        return Console(stderr=True, highlight=False, soft_wrap=True, color_system=_color_system())

    # ------------------------------------------------------------------ output

    def emit(
        self,
        data: pydantic.BaseModel
        | Sequence[pydantic.BaseModel]
        | Sequence[dict[str, Any]]
        | dict[str, Any],
        table: Callable[[], Table | str] | None = None,
    ) -> None:
        """Print data: the API's JSON (``json``), YAML, or a human table."""
        plain = _plain(data)
        if self.output == "json":
            click.echo(json.dumps(plain, indent=2, ensure_ascii=False))
        elif self.output == "yaml":
            import yaml

            click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True).rstrip())
        elif table is not None:
            self.out.print(table())
        else:
            click.echo(json.dumps(plain, indent=2, ensure_ascii=False))

    def fail(self, message: str, code: int, hint: str | None = None) -> NoReturn:
        """One clear line on stderr (and a hint), then exit with ``code``."""
        click.echo(f"error: {message}", err=True)
        if hint:
            click.echo(f"hint: {hint}", err=True)
        raise SystemExit(code)


def _color_system() -> Literal["auto"] | None:
    # NO_COLOR asks for plain text: no colour, and no bold or other styling either.
    return None if os.environ.get("NO_COLOR") else "auto"


def _plain(data: Any) -> Any:
    if isinstance(data, pydantic.BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, (list, tuple)):
        return [_plain(item) for item in data]
    return data


def _exit_for(error: TaskQueueError) -> tuple[int, str | None]:
    if isinstance(error, TaskQueueConfigError):
        return (
            EXIT_USAGE,
            "fix the setting named above (`taskqueue config show` says where each comes from)",
        )
    if isinstance(error, (TaskQueueConnectionError, TaskQueueTimeoutError)):
        return EXIT_CONNECTION, (
            "is the server running? start one with `taskqueue server`, "
            "or point at it with --base-url / TASKQUEUE_URL"
        )
    if isinstance(error, AuthenticationError):
        return EXIT_REFUSED, (
            "give an API key: TASKQUEUE_API_KEY=tq_... or a profile's api_key "
            "(`taskqueue keys create` makes one; see docs/auth.md)"
        )
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND, "list what exists with `taskqueue tasks list` or `projects list`"
    if isinstance(error, ServerError):
        return EXIT_SERVER, "the server failed; its log has the details"
    if isinstance(error, APIError):
        return EXIT_REFUSED, None
    return EXIT_REFUSED, None


def client_command(function: F) -> F:
    """Run a client command with the shared context, mapping errors to exit codes.

    It also gives the command its ``--format`` option (overriding the global one).
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context().ensure_object(CliContext)
        chosen = kwargs.pop("output_format", None)
        if chosen is not None:
            ctx.output = chosen
        try:
            return function(ctx, *args, **kwargs)
        except TaskQueueError as error:
            if ctx.verbose:
                traceback.print_exc(file=sys.stderr)
            code, hint = _exit_for(error)
            details = getattr(error, "details", None) or []
            message = error.message
            if details and len(details) > 1:
                message += "; " + "; ".join(
                    f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[1:4]
                )
            ctx.fail(message, code, hint)
        finally:
            ctx.close()

    option = click.option(
        "--format",
        "-o",
        "output_format",
        type=click.Choice(FORMATS),
        default=None,
        help="Output: a table for people, or the API's JSON / YAML for programs.",
    )
    return option(wrapper)  # type: ignore[return-value]


def confirm(ctx: CliContext, question: str) -> None:
    """Ask ``question`` on the terminal; without one, refuse (exit 2) and name ``--yes``."""
    if not sys.stdin.isatty():
        ctx.fail(
            f"{question.rstrip('?')}: needs confirmation, and there is no terminal to ask on",
            EXIT_USAGE,
            "pass --yes to go ahead without asking",
        )
    click.confirm(question, abort=True, err=True)


def rows_table(title: str | None, columns: Iterable[str]) -> Table:
    """An empty table with taskqueue's look."""
    table = Table(title=title, show_edge=False, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column)
    return table


def json_flag(function: F) -> F:
    """``--json``: the API's JSON on stdout, as ``-o json`` (for the command under it)."""

    @functools.wraps(function)
    def wrapper(ctx: CliContext, *args: Any, as_json: bool = False, **kwargs: Any) -> Any:
        if as_json:
            ctx.output = "json"
        return function(ctx, *args, **kwargs)

    option = click.option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON (the same as -o json)."
    )
    return option(wrapper)  # type: ignore[return-value]
