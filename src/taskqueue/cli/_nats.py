"""``taskqueue server --nats-url``: publish every event to NATS (see ``docs/nats.md``).

Kept apart from :mod:`taskqueue.cli.main` so the command tree grows by one decorator; it
imports nothing of the server, and checks that ``nats-py`` is installed before anything
starts.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import click

__all__ = ["NATS_SCHEMES", "nats_option"]

#: The URL schemes NATS clients connect with.
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _check_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """The URL if it can be used: ``nats-py`` is installed and each server is a NATS URL."""
    if not value:
        return None
    from taskqueue.nats import describe_servers, server_secrets
    from taskqueue.security import redact_logs

    redact_logs(server_secrets(value))  # before any line can show it
    servers = [part.strip() for part in value.split(",") if part.strip()]
    for server in servers:
        scheme = server.partition("://")[0] if "://" in server else ""
        if scheme.lower() not in NATS_SCHEMES:
            raise click.BadParameter(
                f"{describe_servers(server)} is not a NATS URL (nats://HOST:PORT, or "
                f"{', '.join(s + '://' for s in NATS_SCHEMES[1:])}); several are "
                "comma-separated",
                param_hint="--nats-url",
            )
    if importlib.util.find_spec("nats") is None:
        raise click.UsageError(
            "--nats-url needs the NATS client, which is not installed: "
            "pip install 'taskqueue-sdk[nats]'"
        )
    return ",".join(servers)


def nats_option(function: Any) -> Any:
    """``--nats-url`` (env ``TASKQUEUE_NATS_URL``): the command gets ``nats_url`` or None."""
    return click.option(
        "--nats-url",
        envvar="TASKQUEUE_NATS_URL",
        metavar="URL",
        default=None,
        callback=_check_url,
        help="Publish every event to this NATS server, on taskqueue.<project>.<type> "
        "(several servers comma-separated; env TASKQUEUE_NATS_URL; needs "
        "taskqueue-sdk[nats]). See docs/nats.md.",
    )(function)
