"""Where the SDK finds its server, credentials, CA bundle and timeout.

Resolution order, first found wins for each setting:

1. arguments given to the client;
2. ``TASKQUEUE_URL``, ``TASKQUEUE_API_KEY``, ``TASKQUEUE_PUBLIC_KEY`` and
   ``TASKQUEUE_SECRET_KEY``, ``TASKQUEUE_CA_BUNDLE`` (and ``TASKQUEUE_PROFILE`` to pick a
   profile); ``TASKQUEUE_RETRY_BACKOFF``, the base of the retry backoff in seconds, is read
   only from the environment;
3. the profile in the nearest ``taskqueue.toml`` (the current directory's, else its parent's,
   and so on up to the home directory or the root), or else the profile in
   ``~/.config/taskqueue/config.toml`` (``$XDG_CONFIG_HOME`` is honoured): the nearest file
   wins, as with git. The profile is taken whole from the first file that has it, so the user
   file's key is never sent to a server that a project's file names;
4. the default, ``http://localhost:8080``, no key and a backoff of one second.

The credentials (``api_key``, or the key pair ``public_key`` and ``secret_key``) resolve as one
group, and after the profile an accounts file may give them:
:mod:`taskqueue.client._credentials` has the rules. A config file that holds ``api_key`` or
``secret_key`` must be mode 0600, or it is refused.

A config file holds profiles as tables; ``default`` is used unless another is named::

    [default]
    base_url = "http://localhost:8080"

    [prod]
    base_url = "https://tq.example.com"
    api_key = "tq_..."

    [ci]
    base_url = "https://tq.example.com"
    public_key = "tqp_..."
    secret_key = "tqs_..."
    ca_bundle = "~/certs/internal-ca.pem"
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from taskqueue.client._credentials import (
    CREDENTIAL_SETTINGS,
    SECRET_SETTINGS,
    check_private,
    resolve_credentials,
)
from taskqueue.errors import TaskQueueConfigError

__all__ = [
    "CA_BUNDLE_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_BACKOFF",
    "LOCAL_FILE",
    "RETRY_BACKOFF_ENV",
    "ResolvedConfig",
    "config_paths",
    "local_config_path",
    "read_toml",
    "resolve_config",
    "user_config_path",
]

DEFAULT_BASE_URL = "http://localhost:8080"
#: Seconds the first retry of a request waits (about: it is jittered), unless told otherwise.
DEFAULT_RETRY_BACKOFF = 1.0
#: The environment variable that sets the retry backoff when the program does not.
RETRY_BACKOFF_ENV = "TASKQUEUE_RETRY_BACKOFF"
#: The environment variable naming a CA bundle (PEM) to verify the server's certificate with.
CA_BUNDLE_ENV = "TASKQUEUE_CA_BUNDLE"
_KEYS = ("base_url", "api_key", "public_key", "secret_key", "ca_bundle", "timeout")
_STRINGS = ("base_url", "api_key", "public_key", "secret_key", "ca_bundle")


@dataclass(frozen=True)
class ResolvedConfig:
    """The settings the client ends up with, and where each came from (secrets not shown)."""

    base_url: str
    api_key: str | None = field(repr=False)
    timeout: float | None
    profile: str
    source: str | None  # the config file the profile was read from, if any
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    #: Where each setting came from: ``argument``, an environment variable's name, a config
    #: file's path, an accounts file's path and line, or ``default``.
    origins: Mapping[str, str] = field(default_factory=dict)
    #: A key pair's public id (``tqp_…``), sent with each signed request.
    public_key: str | None = None
    #: A key pair's secret (``tqs_…``): it signs requests and is never sent.
    secret_key: str | None = field(default=None, repr=False)
    #: A PEM file of the certificate authorities that TLS verification trusts instead of the
    #: system's.
    ca_bundle: str | None = None


LOCAL_FILE = "taskqueue.toml"


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user's config file: ``$XDG_CONFIG_HOME/taskqueue/config.toml``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "taskqueue" / "config.toml"


def local_config_path(start: Path | None = None) -> Path:
    """The nearest ``taskqueue.toml``: in ``start`` (the current directory) or a parent.

    The search stops at the home directory and at the root; when no directory has one, the
    answer is ``./taskqueue.toml``, where ``config set --local`` creates it.
    """
    here = Path.cwd() if start is None else start
    home = Path.home()
    for directory in (here, *here.parents):
        candidate = directory / LOCAL_FILE
        if candidate.is_file():
            return candidate if directory != here else Path(LOCAL_FILE)
        if directory == home:
            break
    return Path(LOCAL_FILE)


def config_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The config files consulted, nearest first: the project's, then the user's."""
    return [local_config_path(), user_config_path(environ)]


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
    for key in _STRINGS:
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


def _holds_secret(data: Mapping[str, Any]) -> bool:
    return any(
        isinstance(table, dict) and any(table.get(key) for key in SECRET_SETTINGS)
        for table in data.values()
    )


def resolve_config(
    base_url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    retry_backoff: float | None = None,
    *,
    public_key: str | None = None,
    secret_key: str | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
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
        if _holds_secret(data):
            check_private(path)
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
    origins: dict[str, str] = {}
    url = _pick(origins, "base_url", base_url, env, "TASKQUEUE_URL", found, source)
    given = {"api_key": api_key, "public_key": public_key, "secret_key": secret_key}
    credentials = resolve_credentials(given, env, found, source, name)
    for setting in CREDENTIAL_SETTINGS:
        origins[setting] = credentials.origins.get(setting, "default")
    timeout = _pick(origins, "timeout", None, env, None, found, source)
    bundle = _pick(
        origins,
        "ca_bundle",
        os.fspath(ca_bundle) if ca_bundle else None,
        env,
        CA_BUNDLE_ENV,
        found,
        source,
    )
    if retry_backoff is not None:
        origins["retry_backoff"] = "argument"
    else:
        retry_backoff = _env_retry_backoff(env)
        origins["retry_backoff"] = RETRY_BACKOFF_ENV if retry_backoff is not None else "default"
    return ResolvedConfig(
        base_url=_check_url(str(url or DEFAULT_BASE_URL), origins["base_url"]),
        api_key=credentials.api_key,
        timeout=float(timeout) if timeout is not None else None,
        profile=name,
        source=source,
        retry_backoff=DEFAULT_RETRY_BACKOFF if retry_backoff is None else retry_backoff,
        origins=origins,
        public_key=credentials.public_key,
        secret_key=credentials.secret_key,
        ca_bundle=_check_ca_bundle(bundle, origins["ca_bundle"]) if bundle else None,
    )


def _check_ca_bundle(path: str, origin: str) -> str:
    """``path`` (``~`` expanded) if it is a file that can be read; else a config error."""
    where = "the CA bundle given" if origin == "argument" else f"ca_bundle (from {origin})"
    expanded = os.path.expanduser(path)
    try:
        with open(expanded, "rb") as bundle:
            bundle.read(1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TaskQueueConfigError(f"{where} {path!r} cannot be read: {reason}") from None
    return expanded


def _check_url(url: str, origin: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host."""
    where = {"argument": "the base URL given", "default": "the default base URL"}.get(
        origin, f"base_url (from {origin})"
    )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        bare = "://" not in url and url.strip() and not any(c.isspace() for c in url)
        example = f"http://{url}" if bare else DEFAULT_BASE_URL
        raise TaskQueueConfigError(
            f"{where} {url!r} is not a server URL: it needs http:// or https:// and a host, "
            f"for example {example}"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise TaskQueueConfigError(f"{where} {url!r} has a bad port: {exc}") from None
    return url.rstrip("/")


def _pick(
    origins: dict[str, str],
    key: str,
    argument: Any,
    env: Mapping[str, str],
    variable: str | None,
    found: Mapping[str, Any],
    source: str | None,
) -> Any:
    """The first of argument, environment variable and profile value; notes where it was."""
    if argument:
        origins[key] = "argument"
        return argument
    if variable is not None and env.get(variable):
        origins[key] = variable
        return env[variable]
    if found.get(key) is not None and source is not None:
        origins[key] = source
        return found[key]
    origins[key] = "default"
    return None


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
