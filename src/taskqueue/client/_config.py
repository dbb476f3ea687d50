"""Where the SDK finds its server, key and timeout: arguments, environment, then config files.

Resolution order, first found wins for each setting:

1. arguments given to the client;
2. ``TASKQUEUE_URL``, ``TASKQUEUE_API_KEY`` (and ``TASKQUEUE_PROFILE`` to pick a profile);
   ``TASKQUEUE_RETRY_BACKOFF``, the base of the retry backoff in seconds, is read only from
   the environment;
3. the profile in ``~/.config/taskqueue/config.toml`` (``$XDG_CONFIG_HOME`` is honoured), or
   else the profile in ``./taskqueue.toml``: the profile is taken whole from the first file
   that has it, so a project's local file never receives the user's key;
4. the default, ``http://localhost:8080``, no key and a backoff of one second.

A config file holds profiles as tables; ``default`` is used unless another is named::

    [default]
    base_url = "http://localhost:8080"

    [prod]
    base_url = "https://tq.example.com"
    api_key = "tq_..."
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from taskqueue.errors import TaskQueueConfigError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_BACKOFF",
    "RETRY_BACKOFF_ENV",
    "ResolvedConfig",
    "config_paths",
    "read_toml",
    "resolve_config",
]

DEFAULT_BASE_URL = "http://localhost:8080"
#: Seconds the first retry of a request waits (about: it is jittered), unless told otherwise.
DEFAULT_RETRY_BACKOFF = 1.0
#: The environment variable that sets the retry backoff when the program does not.
RETRY_BACKOFF_ENV = "TASKQUEUE_RETRY_BACKOFF"
_KEYS = ("base_url", "api_key", "timeout")


@dataclass(frozen=True)
class ResolvedConfig:
    """The settings the client ends up with, and where the profile came from."""

    base_url: str
    api_key: str | None
    timeout: float | None
    profile: str
    source: str | None  # the config file the profile was read from, if any
    retry_backoff: float = DEFAULT_RETRY_BACKOFF


def config_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The config files consulted, in order."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(base) / "taskqueue" / "config.toml", Path("taskqueue.toml")]


def read_toml(path: Path) -> dict[str, Any] | None:
    """The TOML file at ``path`` as a dict, or None if there is no such file.

    A file that cannot be read, or is not valid TOML, raises :class:`TaskQueueConfigError`
    naming the file (and, for bad TOML, the line and column).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskQueueConfigError(f"{path}: cannot be read: {exc}") from exc
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)": the file and line in one sentence.
        raise TaskQueueConfigError(f"{path}: invalid TOML: {exc}") from exc
    return data


def _profile(path: Path, data: dict[str, Any], name: str) -> dict[str, Any] | None:
    section = data.get(name)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise TaskQueueConfigError(f"{path}: [{name}] must be a table of settings")
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise TaskQueueConfigError(
            f"{path}: [{name}] has unknown setting {unknown[0]!r}; known: {', '.join(_KEYS)}"
        )
    for key in ("base_url", "api_key"):
        if key in section and not isinstance(section[key], str):
            raise TaskQueueConfigError(f"{path}: [{name}] {key} must be a string")
    if "timeout" in section:
        timeout = section["timeout"]
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise TaskQueueConfigError(
                f"{path}: [{name}] timeout must be a positive number of seconds, not {timeout!r}"
            )
    return section


def resolve_config(
    base_url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    retry_backoff: float | None = None,
) -> ResolvedConfig:
    """Resolve the client's settings through the chain described in this module."""
    env = os.environ if environ is None else environ
    name = profile or env.get("TASKQUEUE_PROFILE") or "default"
    found: dict[str, Any] = {}
    source: str | None = None
    for path in config_paths(env):
        data = read_toml(path)
        if data is None:
            continue
        section = _profile(path, data, name)
        if section is not None:
            found, source = section, str(path)
            break
    if (
        (profile is not None or "TASKQUEUE_PROFILE" in env)
        and source is None
        and (name != "default")
    ):
        raise TaskQueueConfigError(
            f"profile {name!r} is not in any config file "
            f"({', '.join(str(p) for p in config_paths(env))})"
        )
    url = base_url or env.get("TASKQUEUE_URL") or found.get("base_url") or DEFAULT_BASE_URL
    key = api_key or env.get("TASKQUEUE_API_KEY") or found.get("api_key")
    timeout = found.get("timeout")
    if retry_backoff is None:
        retry_backoff = _env_retry_backoff(env)
    return ResolvedConfig(
        base_url=str(url).rstrip("/"),
        api_key=key,
        timeout=float(timeout) if timeout is not None else None,
        profile=name,
        source=source,
        retry_backoff=DEFAULT_RETRY_BACKOFF if retry_backoff is None else retry_backoff,
    )


def _env_retry_backoff(env: Mapping[str, str]) -> float | None:
    raw = env.get(RETRY_BACKOFF_ENV)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise TaskQueueConfigError(
            f"{RETRY_BACKOFF_ENV} must be a number of seconds, 0 or more, not {raw!r}"
        )
    return value
