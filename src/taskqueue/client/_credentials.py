"""Which credentials the client signs in with, and where they came from.

Credentials are an API key (``tq_…``, sent as a bearer key) or a key pair (a public id
``tqp_…`` and a secret ``tqs_…`` that signs each request, :mod:`taskqueue.signing`). They
resolve as one group, not setting by setting: the first level that gives any of ``api_key``,
``public_key`` or ``secret_key`` gives all of them, so a secret from one place is never paired
with a public id from another. The levels, first found wins:

1. the client's arguments;
2. ``TASKQUEUE_API_KEY``, or ``TASKQUEUE_PUBLIC_KEY`` and ``TASKQUEUE_SECRET_KEY``;
3. the profile in use (see :mod:`taskqueue.client._config`);
4. an accounts file: ``~/.taskqueue/accounts.csv``, else ``./accounts.csv``.
   One account a line: ``public_key,secret_key[,name]`` for a key pair or
   ``tq_…[,,name]`` for an API key; blank lines and ``#`` comments are skipped.
   ``TASKQUEUE_ACCOUNT`` picks one by 0-based index or by name (else the first).

A level that gives a public key without its secret (or the reverse), or both an API key and a
key pair, is a :class:`TaskQueueConfigError`. A file holding a secret (a profile file with
``api_key`` or ``secret_key``, any accounts file) must be private to its owner (mode 0600):
one that others may read is refused, as ssh refuses such a key. No message names a secret.
"""

from __future__ import annotations

import csv
import os
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskqueue.errors import TaskQueueConfigError

__all__ = [
    "ACCOUNTS_FILE",
    "ACCOUNT_ENV",
    "API_KEY_ENV",
    "CREDENTIAL_SETTINGS",
    "PUBLIC_KEY_ENV",
    "SECRET_KEY_ENV",
    "SECRET_SETTINGS",
    "Credentials",
    "accounts_paths",
    "check_private",
    "read_account",
    "resolve_credentials",
]

#: The environment variable holding an API key.
API_KEY_ENV = "TASKQUEUE_API_KEY"
#: The environment variable holding a key pair's public id.
PUBLIC_KEY_ENV = "TASKQUEUE_PUBLIC_KEY"
#: The environment variable holding a key pair's secret.
SECRET_KEY_ENV = "TASKQUEUE_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
#: The environment variable that picks an account of the accounts file (index or name).
ACCOUNT_ENV = "TASKQUEUE_ACCOUNT"
#: The accounts file's name.
ACCOUNTS_FILE = "accounts.csv"
#: The settings that make up the credentials, in the order they are reported.
CREDENTIAL_SETTINGS = ("api_key", "public_key", "secret_key")
#: Settings whose value is a secret: a file holding one must be private.
SECRET_SETTINGS = frozenset({"api_key", "secret_key"})
_ENV = {"api_key": API_KEY_ENV, "public_key": PUBLIC_KEY_ENV, "secret_key": SECRET_KEY_ENV}


@dataclass(frozen=True)
class Credentials:
    """An API key or a key pair (or nothing), and where each part came from."""

    api_key: str | None = field(default=None, repr=False)
    public_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    #: Setting name -> where it came from (only the settings given).
    origins: Mapping[str, str] = field(default_factory=dict)


def check_private(path: Path) -> None:
    """Refuse ``path``, which holds a secret, when its group or others have any permission."""
    if os.name == "nt":  # pragma: no cover - Windows has no such mode bits
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise TaskQueueConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise TaskQueueConfigError(
            f"{path} holds a secret and is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {shlex.quote(str(path))}"
        )


def accounts_paths() -> list[Path]:
    """The accounts files consulted, in order: the user's, then the current directory's."""
    return [Path.home() / ".taskqueue" / ACCOUNTS_FILE, Path(ACCOUNTS_FILE)]


@dataclass(frozen=True)
class _Account:
    line: int
    name: str
    first: str
    secret: str = field(repr=False)


def _parse_accounts(path: Path, text: str) -> list[_Account]:
    accounts: list[_Account] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            row = next(csv.reader([line], skipinitialspace=True))
        except csv.Error:
            row = []
        fields = [value.strip() for value in row]
        where = f"{path} line {number}"
        if not 1 <= len(fields) <= 3 or not fields[0]:
            raise TaskQueueConfigError(
                f"{where}: expected public_key,secret_key[,name] or tq_...[,,name] "
                f"(found {len(fields)} field(s){', the first empty' if fields else ''})"
            )
        first, secret, name = (*fields, "", "")[:3]
        if not secret and first.startswith("tqp_"):
            raise TaskQueueConfigError(
                f"{where}: the public key has no secret_key (second field); "
                "an API key's line is tq_...[,,name]"
            )
        if secret and first.startswith("tqs_"):
            raise TaskQueueConfigError(
                f"{where}: the first field looks like a secret (tqs_...); "
                "the order is public_key,secret_key"
            )
        accounts.append(_Account(number, name, first, secret))
    return accounts


def _pick_account(path: Path, accounts: list[_Account], wanted: str | None) -> _Account:
    names = [a.name for a in accounts if a.name]
    if not accounts:
        raise TaskQueueConfigError(f"{path} holds no account")
    if wanted is None:
        return accounts[0]
    if wanted.isdigit():
        index = int(wanted)
        if index >= len(accounts):
            raise TaskQueueConfigError(
                f"{ACCOUNT_ENV}={wanted}: {path} has {len(accounts)} account(s), "
                f"so the index is 0 to {len(accounts) - 1}"
            )
        return accounts[index]
    matching = [a for a in accounts if a.name == wanted]
    if not matching:
        available = ", ".join(repr(n) for n in names) or "none has a name"
        raise TaskQueueConfigError(
            f"{ACCOUNT_ENV}={wanted!r}: no account of that name in {path} "
            f"(names: {available}; or an index, 0 to {len(accounts) - 1})"
        )
    if len(matching) > 1:
        lines = " and ".join(str(a.line) for a in matching)
        raise TaskQueueConfigError(f"{path}: account {wanted!r} is on lines {lines}; keep one")
    return matching[0]


def read_account(env: Mapping[str, str]) -> Credentials | None:
    """The account chosen from the first accounts file there is, or None if there is none."""
    wanted = env.get(ACCOUNT_ENV) or None
    for path in accounts_paths():
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskQueueConfigError(f"{path}: cannot be read: {exc}") from None
        check_private(path)
        account = _pick_account(path, _parse_accounts(path, text), wanted)
        origin = f"{path} line {account.line}"
        if account.secret:
            return Credentials(
                public_key=account.first,
                secret_key=account.secret,
                origins={"public_key": origin, "secret_key": origin},
            )
        return Credentials(api_key=account.first, origins={"api_key": origin})
    if wanted is not None:
        raise TaskQueueConfigError(
            f"{ACCOUNT_ENV}={wanted!r} names an account, but there is no accounts file "
            f"({', '.join(str(p) for p in accounts_paths())})"
        )
    return None


def _checked(level: dict[str, tuple[str, str]], labels: Mapping[str, str]) -> Credentials:
    """The credentials one level gives, refused if they are half a pair or two kinds."""
    if ("public_key" in level) != ("secret_key" in level):
        have, missing = ("public_key", "secret_key")
        if "secret_key" in level:
            have, missing = missing, have
        raise TaskQueueConfigError(
            f"{labels[have]} is given without {labels[missing]}: a key pair needs both"
        )
    if "api_key" in level and "public_key" in level:
        raise TaskQueueConfigError(
            f"{labels['api_key']} and a key pair ({labels['public_key']}, "
            f"{labels['secret_key']}) are both given; keep one"
        )
    public = level.get("public_key", ("", ""))[0]
    if public.startswith("tqs_") or any(c.isspace() or not c.isprintable() for c in public):
        raise TaskQueueConfigError(
            f"{labels['public_key']} is not a public key id "
            "(tqp_...): it would be sent in the clear"
        )
    return Credentials(
        api_key=level.get("api_key", (None, ""))[0],
        public_key=level.get("public_key", (None, ""))[0],
        secret_key=level.get("secret_key", (None, ""))[0],
        origins={name: origin for name, (_, origin) in level.items()},
    )


def resolve_credentials(
    arguments: Mapping[str, str | None],
    env: Mapping[str, str],
    profile: Mapping[str, Any],
    source: str | None,
    profile_name: str,
) -> Credentials:
    """The credentials of the first level that gives any (see the module's docstring)."""
    levels: list[tuple[dict[str, tuple[str, str]], Mapping[str, str]]] = [
        (
            {k: (v, "argument") for k, v in arguments.items() if v},
            {k: f"the argument {k}=" for k in CREDENTIAL_SETTINGS},
        ),
        (
            {k: (env[_ENV[k]], _ENV[k]) for k in CREDENTIAL_SETTINGS if env.get(_ENV[k])},
            _ENV,
        ),
    ]
    if source is not None:
        levels.append(
            (
                {k: (profile[k], source) for k in CREDENTIAL_SETTINGS if profile.get(k)},
                {k: f"{k} in [{profile_name}] of {source}" for k in CREDENTIAL_SETTINGS},
            )
        )
    for level, labels in levels:
        if level:
            return _checked(level, labels)
    return read_account(env) or Credentials()
