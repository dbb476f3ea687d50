"""The ``taskqueue`` command line: the entry point and its server-side commands.

Server-side commands import the server lazily, so the client side of the CLI works with the
plain ``taskqueue`` install.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from taskqueue._version import __version__
from taskqueue.cli._context import FORMATS, CliContext
from taskqueue.cli._database import db_option, explain, need_server
from taskqueue.cli._logging import FORMATS as LOG_FORMATS
from taskqueue.cli._logging import setup_logging
from taskqueue.cli._nats import nats_option
from taskqueue.cli._options import api_key_of, client_options
from taskqueue.cli._webhooks_options import WebhookOptions, webhook_options
from taskqueue.cli.config import config
from taskqueue.cli.events import events, watch
from taskqueue.cli.exec_code import exec_code
from taskqueue.cli.functions import batch_execute, execute, functions
from taskqueue.cli.keys import keys
from taskqueue.cli.projects import projects
from taskqueue.cli.remote import NO_AUTH_WARNING, api_settings, check_serving, public_url
from taskqueue.cli.run import run
from taskqueue.cli.schedules import schedules
from taskqueue.cli.serve import (
    HttpOptions,
    close_all,
    http_options,
    next_steps,
    open_listeners,
    serve,
)
from taskqueue.cli.status import health, workers
from taskqueue.cli.submit import submit
from taskqueue.cli.tasks import tasks
from taskqueue.cli.webhooks import webhooks
from taskqueue.cli.workflows import workflows

if TYPE_CHECKING:
    from taskqueue._limits import LimitPolicy
    from taskqueue.integrations.webhook_sender import WebhookSettings
    from taskqueue.security import RunAs

__all__ = ["main"]


def _run_as_option(function: Any) -> Any:
    """``--run-as USER``: the command gets ``run_as``, the user resolved (or None)."""

    def resolve(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        from taskqueue.security import resolve_run_as

        try:
            return resolve_run_as(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(
        "--run-as",
        envvar="TASKQUEUE_RUN_AS",
        default=None,
        metavar="USER",
        callback=resolve,
        help="Run every command as this unprivileged user (taskqueue itself runs as root); "
        "env TASKQUEUE_RUN_AS.",
    )(function)


def _warn_if_root(run_as: RunAs | None, runs_commands: bool) -> None:
    from taskqueue.security import running_as_root

    if runs_commands and run_as is None and running_as_root():
        click.echo(
            "warning: taskqueue runs as root without --run-as, so every command runs as root: "
            "it can read the database, its URL and this process's secrets; pass --run-as USER "
            "to run commands as an unprivileged user",
            err=True,
        )


def _positive_seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A finite number of seconds above 0, from the option or its environment variable."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        given = repr(value)
        if ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.ENVIRONMENT:
            given = f"{param.envvar}={value!r}"
        raise click.BadParameter(f"{given} is not a positive number of seconds")
    return seconds


def _check_languages(value: str | None) -> list[str] | None:
    """``--languages``: known names or aliases, comma-separated; None when not given."""
    if value is None:
        return None
    from taskqueue.languages import LANGUAGES, canonical_language

    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if canonical_language(name) is None:
            known = ", ".join(language.name for language in LANGUAGES)
            raise click.BadParameter(f"unknown language {name!r}; known languages: {known}")
    return names


def _check_limits(values: tuple[str, ...], param: click.Parameter) -> dict[str, int]:
    """``--default-limit`` / ``--max-limit NAME=VALUE`` (repeated): the limits by name."""
    from taskqueue._limits import parse_limit

    limits: dict[str, int] = {}
    for value in values:
        try:
            name, number = parse_limit(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param=param) from None
        limits[name] = number
    return limits


def _limit_policy(defaults: dict[str, int], maxima: dict[str, int]) -> LimitPolicy:
    """The operator's limits; a default above its maximum is a usage error."""
    from taskqueue._limits import LimitPolicy

    for name, value in defaults.items():
        if name in maxima and value > maxima[name]:
            raise click.BadParameter(
                f"{name}={value} is over --max-limit {name}={maxima[name]}",
                param_hint="--default-limit",
            )
    return LimitPolicy(defaults=defaults, maxima=maxima)


def _worker_options(function: Any) -> Any:
    """The options ``server`` and ``worker`` share: leases, draining, beats and logging."""
    options = [
        *(
            click.option(
                f"--{kind}-limit",
                f"{kind}_limits",
                multiple=True,
                metavar="NAME=VALUE",
                callback=lambda _ctx, param, value: _check_limits(value, param),
                help=f"{what} (repeat; NAME: cpu_seconds, memory_bytes, file_size_bytes,"
                " processes, open_files; bytes may end in K, M, G). See docs/security.md.",
            )
            for kind, what in (
                ("default", "A limit for tasks that leave it out"),
                ("max", "The most a task may ask (more is refused with 422)"),
            )
        ),
        click.option(
            "--languages",
            default=None,
            callback=lambda _ctx, _param, value: _check_languages(value),
            help='Languages offered for code tasks, comma-separated (e.g. python3,bash; "" '
            "for none); default: every one whose toolchain this machine has.",
        ),
        click.option(
            "--lease-seconds",
            default=30.0,
            show_default=True,
            type=click.FloatRange(1, 3600),
            help="How long a claim lasts; heartbeats renew it every third of that.",
        ),
        click.option(
            "--drain-timeout",
            default=30.0,
            show_default=True,
            type=click.FloatRange(0, 86400),
            help="On SIGTERM, how long running tasks may finish before being handed back.",
        ),
        click.option(
            "--retention-hours",
            default=168.0,
            show_default=True,
            type=click.FloatRange(0, 100 * 365 * 24),
            help="Prune finished tasks (with output and events) this old; 0 keeps them forever.",
        ),
        click.option(
            "--notify/--no-notify",
            "listen",
            envvar="TASKQUEUE_NOTIFY",
            default=True,
            show_default=True,
            help="PostgreSQL: wake on LISTEN/NOTIFY (else poll only, e.g. behind PgBouncer).",
        ),
        # Hidden: the defaults suit every deployment; tests shorten them so they need not wait.
        *(
            click.option(
                f"--{name}-interval",
                envvar=f"TASKQUEUE_{name.upper()}_INTERVAL",
                default=default,
                hidden=True,
                callback=_positive_seconds,
                help=f"Seconds between {what} (env TASKQUEUE_{name.upper()}_INTERVAL).",
            )
            for name, default, what in (
                ("presence", "5", "the registry beats"),
                ("housekeeping", "60", "housekeeping runs"),
            )
        ),
        click.option(
            "--log-level",
            default="info",
            show_default=True,
            type=click.Choice(["debug", "info", "warning", "error"]),
        ),
        click.option(
            "--log-format",
            envvar="TASKQUEUE_LOG_FORMAT",
            default="text",
            show_default=True,
            type=click.Choice(LOG_FORMATS),
            help="text, or one JSON object a line (env TASKQUEUE_LOG_FORMAT).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _check_queues(queues: tuple[str, ...]) -> tuple[str, ...]:
    from taskqueue.models import QUEUE_RE

    for queue in queues:
        if len(queue) > 100 or not QUEUE_RE.fullmatch(queue):
            raise click.BadParameter(
                f"{queue!r} is not a queue name: 1 to 100 letters, digits and . _ : -",
                param_hint="--queue",
            )
    return queues


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="taskqueue")
@client_options
@click.option(
    "--format",
    "-o",
    "output",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output of commands that print data.",
)
@click.option("--verbose", "-v", is_flag=True, help="Tracebacks and retry decisions on errors.")
@click.pass_context
def main(
    ctx: click.Context,
    base_url: str | None,
    api_key: str | None,
    api_key_file: str | None,
    ca_bundle: str | None,
    profile: str | None,
    output: str,
    verbose: bool,
) -> None:
    """taskqueue: run shell commands durably, with priorities, retries and dependencies."""
    ctx.obj = CliContext(
        base_url=base_url,
        api_key=api_key_of(api_key, api_key_file),
        ca_bundle=ca_bundle,
        profile=profile,
        output=output,
        verbose=verbose,
    )
    if verbose:
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("taskqueue.client").setLevel(logging.DEBUG)


main.add_command(tasks)
main.add_command(projects)
main.add_command(keys)
main.add_command(run)
main.add_command(exec_code)
main.add_command(submit)
main.add_command(health)
main.add_command(config)
main.add_command(workers)
main.add_command(events)
main.add_command(webhooks)
main.add_command(functions)
main.add_command(schedules)
main.add_command(workflows)
main.add_command(execute)
main.add_command(batch_execute)
tasks.add_command(watch)


def _webhook_settings(options: WebhookOptions) -> WebhookSettings:
    from taskqueue.integrations.webhook_sender import WebhookSettings

    return WebhookSettings(
        dispatch=options.dispatch,
        allow_private=options.allow_private,
        timeout=options.timeout,
        retry_scale=options.retry_scale,
        lease=options.lease,
    )


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="TASKQUEUE_HOST",
    help="Address to listen on; any but a loopback one (0.0.0.0, ::, an address of this "
    "machine) requires an API key on every request (env TASKQUEUE_HOST).",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@db_option
@click.option(
    "--workers",
    default=16,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="Tasks run at once by the embedded worker; 0 serves the API only.",
)
@click.option(
    "--secret-file",
    envvar="TASKQUEUE_SECRET_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file holding the secret API keys are hashed with (made if missing; default: "
    "beside a SQLite database; on PostgreSQL give every server the same file; env "
    "TASKQUEUE_SECRET_FILE).",
)
@click.option(
    "--failed-auth-burst",
    envvar="TASKQUEUE_FAILED_AUTH_BURST",
    type=click.IntRange(1),
    default=10,
    hidden=True,  # for tests that probe authentication on purpose, like the fuzzer
    help="Failed authentication attempts an address may make before 429s.",
)
@click.option(
    "--scheduler-clock",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    hidden=True,  # for tests that drive the scheduler's time
    help="Fire schedules by the time in this file (seconds since the epoch) while it exists.",
)
@_run_as_option
@_worker_options
@http_options
@nats_option
@webhook_options
def server(
    host: str,
    port: int,
    db: str,
    workers: int,
    secret_file: Path | None,
    failed_auth_burst: int,
    scheduler_clock: Path | None,
    run_as: RunAs | None,
    default_limits: dict[str, int],
    max_limits: dict[str, int],
    languages: list[str] | None,
    lease_seconds: float,
    drain_timeout: float,
    retention_hours: float,
    listen: bool,
    presence_interval: float,
    housekeeping_interval: float,
    log_level: str,
    log_format: str,
    http: HttpOptions,
    nats_url: str | None,
    webhooks: WebhookOptions,
) -> None:
    """Serve the HTTP API and run tasks, on SQLite (created if needed) or PostgreSQL."""
    need_server()
    from taskqueue.apikeys import PepperError
    from taskqueue.service import ServerOptions, UnusableDatabase, build_server, check_keys
    from taskqueue.store import describe_database
    from taskqueue.worker import WorkerSettings

    check_serving(host, http)  # --no-auth beyond loopback, TLS files: before anything listens
    setup_logging(log_level, log_format)
    sockets = open_listeners(host, port)  # a busy port is the one line said, before warnings
    _warn_if_root(run_as, workers > 0)
    if http.no_auth:
        click.echo(NO_AUTH_WARNING, err=True)
    policy = _limit_policy(default_limits, max_limits)
    embedded = None
    if workers > 0:
        embedded = WorkerSettings(
            run_as=run_as,
            limits=policy,
            languages=languages,
            concurrency=workers,
            lease_seconds=lease_seconds,
            drain_timeout=drain_timeout,
            retention_hours=retention_hours or None,
            presence_interval=presence_interval,
            housekeeping_interval=housekeeping_interval,
        )
    api = api_settings(
        host,
        sockets,
        http,
        secret_file=secret_file,
        failed_auth_burst=failed_auth_burst,
        limits=policy,
    )
    api.webhooks = _webhook_settings(webhooks)
    try:
        app, _ = build_server(
            ServerOptions(
                db=db,
                listen=listen,
                worker=embedded,
                api=api,
                nats_url=nats_url,
                scheduler_clock=scheduler_clock,
            )
        )
        has_keys = check_keys(db, secret_file)
    except BaseException as exc:
        close_all(sockets)
        if isinstance(exc, UnusableDatabase):
            raise explain(exc) from exc
        if isinstance(exc, PepperError):
            raise click.ClickException(str(exc)) from None
        raise
    url = public_url(host, sockets, http)
    steps = next_steps(url, workers, drain_timeout, needs_key=api.auth == "required")
    if api.auth == "auto" and not has_keys:
        steps = (
            "  API keys: none yet, so this machine's clients need none; the first one made "
            "(`taskqueue keys create --admin --name NAME`) turns them on\n" + steps
        )
    banner = (
        f"taskqueue {__version__} serving {url} (database {describe_database(db)}, "
        f"{workers} worker slot(s))\n{steps}"
    )
    if not serve(app, sockets, http, banner):
        raise click.ClickException(f"could not serve on {host}:{port}; see the log above")


@main.command()
@db_option
@click.option(
    "--concurrency",
    default=16,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Tasks run at once.",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    default=["default"],
    show_default=True,
    callback=lambda _ctx, _param, value: _check_queues(value),
    help="Queue to serve; repeat for several.",
)
@_run_as_option
@_worker_options
def worker(
    db: str,
    concurrency: int,
    queues: tuple[str, ...],
    run_as: RunAs | None,
    default_limits: dict[str, int],
    max_limits: dict[str, int],
    languages: list[str] | None,
    lease_seconds: float,
    drain_timeout: float,
    retention_hours: float,
    listen: bool,
    presence_interval: float,
    housekeeping_interval: float,
    log_level: str,
    log_format: str,
) -> None:
    """Run tasks from the database, without serving the API."""
    need_server()
    setup_logging(log_level, log_format)
    _warn_if_root(run_as, True)
    from taskqueue.service import UnusableDatabase, build_worker
    from taskqueue.store import describe_database
    from taskqueue.worker import WorkerSettings

    settings = WorkerSettings(
        run_as=run_as,
        limits=_limit_policy(default_limits, max_limits),
        languages=languages,
        concurrency=concurrency,
        queues=queues,
        lease_seconds=lease_seconds,
        drain_timeout=drain_timeout,
        retention_hours=retention_hours or None,
        presence_interval=presence_interval,
        housekeeping_interval=housekeeping_interval,
    )
    try:
        runner, store = build_worker(db, settings, listen=listen)
    except UnusableDatabase as exc:
        raise explain(exc) from exc

    async def run() -> None:
        store.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        click.echo(
            f"taskqueue worker {runner.worker_id} on {describe_database(db)} "
            f"(concurrency {concurrency}, queues {', '.join(queues)})",
            err=True,
        )
        try:
            await runner.run()
        finally:
            await store.close()

    _run_loop(run())


def _run_loop(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(coro)
    else:
        uvloop.run(coro)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@db_option
def db_upgrade(db: str) -> None:
    """Create the database if needed and apply every migration."""
    need_server()
    from taskqueue.service import UnusableDatabase, open_store
    from taskqueue.store import describe_database

    try:
        open_store(db)
    except UnusableDatabase as exc:
        raise explain(exc) from exc
    click.echo(f"database {describe_database(db)} is up to date")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
