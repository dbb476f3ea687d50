"""The global options that say which server the client commands talk to, and as whom.

``--api-key VALUE`` still works, but a value on the command line can be read by every user of
the machine (``ps``, ``/proc/PID/cmdline``), so it warns; ``--api-key-file PATH`` (``-``:
standard input) reads the key from a file private to its owner instead. A key pair has no
option at all: its secret comes from the environment, a profile or an accounts file only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from taskqueue.client._credentials import check_private
from taskqueue.errors import TaskQueueConfigError

__all__ = ["ARGV_KEY_WARNING", "client_options", "read_api_key_file"]

#: What ``--api-key VALUE`` prints on stderr (one line).
ARGV_KEY_WARNING = (
    "warning: an API key on the command line is visible to other users in `ps`; "
    "set TASKQUEUE_API_KEY or use --api-key-file PATH instead"
)


def _one_line(text: str, name: str) -> str:
    key = text.strip()
    if not key:
        raise click.BadParameter(f"{name} is empty", param_hint="--api-key-file")
    if "\n" in key or "\r" in key:
        raise click.BadParameter(
            f"{name} holds more than one line; put the key alone in it",
            param_hint="--api-key-file",
        )
    return key


def read_api_key_file(path: str) -> str:
    """The API key in the file at ``path`` (``-``: standard input), which must be 0600.

    A file that others may read is refused (exit 2) with the ``chmod 600`` it needs; the key is
    in no message.
    """
    from taskqueue.security import read_secret_file

    if path == "-":
        return _one_line(sys.stdin.read(), "standard input")
    try:
        key, others_may_read = read_secret_file(path, "API key file")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-key-file") from None
    if others_may_read is not None:
        try:
            check_private(Path(path))
        except TaskQueueConfigError as exc:
            raise click.BadParameter(exc.message, param_hint="--api-key-file") from None
    return key


def api_key_of(api_key: str | None, api_key_file: str | None) -> str | None:
    """The key the options give: read from ``--api-key-file``, or ``--api-key`` (warned)."""
    if api_key is not None and api_key_file is not None:
        raise click.UsageError("give the API key once: --api-key or --api-key-file, not both")
    if api_key_file is not None:
        return read_api_key_file(api_key_file)
    if api_key is not None:
        click.echo(ARGV_KEY_WARNING, err=True)
    return api_key


def client_options(function: Any) -> Any:
    """``--base-url``, ``--api-key``, ``--api-key-file``, ``--ca-bundle`` and ``--profile``."""
    options = [
        click.option(
            "--base-url",
            default=None,
            metavar="URL",
            help="Server URL (else TASKQUEUE_URL, a profile, or http://localhost:8080).",
        ),
        click.option(
            "--api-key-file",
            default=None,
            metavar="PATH",
            help="Read the API key from this file (mode 0600), or from standard input for -.",
        ),
        click.option(
            "--api-key",
            default=None,
            metavar="KEY",
            help="API key; other users can see it in ps: prefer TASKQUEUE_API_KEY or "
            "--api-key-file (else a profile or accounts.csv).",
        ),
        click.option(
            "--ca-bundle",
            default=None,
            metavar="PATH",
            help="PEM file of the certificate authorities to trust for https (else "
            "TASKQUEUE_CA_BUNDLE, a profile, or the system's).",
        ),
        click.option("--profile", default=None, help="Profile of the config file to use."),
    ]
    for option in reversed(options):
        function = option(function)
    return function
