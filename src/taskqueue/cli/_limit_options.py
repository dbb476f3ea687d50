"""``--limit NAME=VALUE`` and ``--no-network``: a task's limits from the options of a command."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["limit_options", "limits_of"]


def limit_options(function: Any) -> Any:
    """Add ``--limit`` (repeated, as ``limits``) and ``--no-network`` to a command."""
    function = click.option(
        "--no-network", is_flag=True, help="Run it without any network (see docs/security.md)."
    )(function)
    return click.option(
        "--limit",
        "limits",
        multiple=True,
        metavar="NAME=VALUE",
        help="A limit (repeat): cpu_seconds, memory_bytes, file_size_bytes, processes,"
        " open_files; bytes may end in K, M, G.",
    )(function)


def limits_of(given: tuple[str, ...], no_network: bool) -> dict[str, Any] | None:
    """The task's ``limits`` from ``--limit`` options and ``--no-network``; None if neither."""
    from taskqueue._limits import parse_limit

    if not given and not no_network:
        return None
    limits: dict[str, Any] = {"network": False} if no_network else {}
    for text in given:
        try:
            name, value = parse_limit(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--limit") from None
        limits[name] = value
    return limits
