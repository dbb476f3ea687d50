"""``taskqueue config``: the client's settings, where each comes from, and its profiles."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from taskqueue.cli._context import (
    EXIT_USAGE,
    CliContext,
    rows_table,
)
from taskqueue.client import resolve_config
from taskqueue.client._config import (
    config_paths,
    local_config_path,
    read_toml,
    user_config_path,
)
from taskqueue.errors import TaskQueueConfigError, TaskQueueError

__all__ = ["config"]

#: What ``config set`` writes. Not ``secret_key``: a secret on the command line is visible to
#: other users in ``ps`` (the file is edited by hand for it, and kept mode 0600).
_SETTINGS = ("base_url", "api_key", "public_key", "ca_bundle", "timeout")
#: What ``config show`` prints, in order; the secrets masked.
_SHOWN = ("base_url", "api_key", "public_key", "secret_key", "ca_bundle", "timeout")
_MASKED = frozenset({"api_key", "secret_key"})


def _mask(secret: str | None) -> str | None:
    """A secret as ``config show`` prints it: its first four characters at most (``tq_a…``)."""
    if secret is None:
        return None
    return secret[:4] + "…" if len(secret) > 8 else "…"


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
    # Private from the first byte (it may hold a key): made 0600, then written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write("\n".join(lines))


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
        resolved = resolve_config(ctx.base_url, ctx.api_key, ctx.profile, ca_bundle=ctx.ca_bundle)
    except TaskQueueError as exc:
        ctx.fail(exc.message, EXIT_USAGE)
    data: dict[str, Any] = {
        name: _mask(getattr(resolved, name)) if name in _MASKED else getattr(resolved, name)
        for name in _SHOWN
    }
    data.update(
        {
            "profile": resolved.profile,
            "source": resolved.source,
            "origins": dict(resolved.origins),
            "files": [str(p) for p in config_paths()],
        }
    )

    def lines() -> str:
        shown = []
        for name in (*_SHOWN, "profile", "source"):
            value = data[name]
            origin = resolved.origins.get(name)
            suffix = f"  (from {origin})" if origin else ""
            shown.append(f"{name}: {value if value is not None else '-'}{suffix}")
        return "\n".join(shown)

    ctx.emit(data, lines)


@config.command("set")
@click.argument("key", type=click.Choice(_SETTINGS), metavar="KEY")
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
    """Set KEY to VALUE in a profile of the config file.

    KEY is base_url, api_key, public_key, ca_bundle or timeout. A key pair's secret_key is not
    set here, where other users could see it in ps: write it into the file (mode 0600) or set
    TASKQUEUE_SECRET_KEY.
    """
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
            **{k: ("…" if k in _MASKED else v) for k, v in values.items()},
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
