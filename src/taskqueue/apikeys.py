"""API key material: making keys, the pepper they are hashed under, and the hash itself.

A bearer key is ``tq_`` and 43 base62 characters (32 random bytes), so secret scanners can
match it; its first :data:`PREFIX_LENGTH` characters are its prefix, stored and shown so a key
can be found and recognised. The database holds only ``HMAC-SHA256(pepper, key)``: random keys
need no slow hash, and without the pepper (a file the database does not hold) a stolen
database yields nothing to try keys against.

A key pair is a public id ``tqp_…`` and a secret ``tqs_…`` derived from the pepper and the
public id, so the database holds no secret of it either; the server derives the same secret to
check a signature (see :mod:`taskqueue.signing`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "BEARER_PREFIX",
    "PAIR_PREFIX",
    "PAIR_SECRET_PREFIX",
    "PREFIX_LENGTH",
    "PepperError",
    "base62",
    "fingerprint",
    "hash_key",
    "load_pepper",
    "new_bearer_key",
    "new_key_row",
    "new_pair_id",
    "pair_secret",
    "prefix_of",
]

BEARER_PREFIX = "tq_"
PAIR_PREFIX = "tqp_"
PAIR_SECRET_PREFIX = "tqs_"  # noqa: S105 - a prefix, not a secret
#: How many leading characters of a bearer key are stored and shown (``tq_`` and 8 more).
PREFIX_LENGTH = 11
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PEPPER_BYTES = 32


class PepperError(Exception):
    """The pepper file is missing, unreadable, malformed or readable by others."""


def base62(data: bytes, width: int) -> str:
    """``data`` as a base62 number of exactly ``width`` digits (zero-padded)."""
    number = int.from_bytes(data, "big")
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def new_bearer_key() -> str:
    """A new bearer key: ``tq_`` and 43 base62 characters of 32 random bytes."""
    return BEARER_PREFIX + base62(secrets.token_bytes(32), 43)


def new_pair_id() -> str:
    """A new key pair's public id: ``tqp_`` and 16 base62 characters."""
    return PAIR_PREFIX + base62(secrets.token_bytes(12), 16)


def prefix_of(key: str) -> str:
    """The stored prefix of a presented key (a bearer key's first characters, a pair's id)."""
    return key if key.startswith(PAIR_PREFIX) else key[:PREFIX_LENGTH]


def hash_key(pepper: bytes, key: str) -> str:
    """The stored form of a bearer key: hex ``HMAC-SHA256(pepper, key)``."""
    return hmac.new(pepper, key.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def pair_secret(pepper: bytes, public_id: str) -> str:
    """The signing secret of the key pair ``public_id``: ``tqs_`` and 43 base62 characters."""
    digest = hmac.new(pepper, b"sign:" + public_id.encode(), hashlib.sha256).digest()
    return PAIR_SECRET_PREFIX + base62(digest, 43)


def fingerprint(pepper: bytes) -> str:
    """A name of the pepper that reveals nothing of it (kept to spot a wrong secret file)."""
    return hmac.new(pepper, b"taskqueue pepper fingerprint", hashlib.sha256).hexdigest()[:16]


def load_pepper(path: Path, *, create: bool) -> bytes:
    """The pepper in ``path`` (64 hex digits); made first, mode 0600, if ``create`` and missing.

    Raises :class:`PepperError` when the file is missing (and not to be made), not a pepper, or
    readable by other users.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        if not create:
            raise PepperError(f"the secret file {path} does not exist") from None
        return _create_pepper(path)
    except OSError as exc:
        raise PepperError(f"cannot read the secret file {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PepperError(
                f"the secret file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
        text = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    try:
        pepper = bytes.fromhex(text)
    except ValueError:
        pepper = b""
    if len(pepper) != _PEPPER_BYTES:
        raise PepperError(f"the secret file {path} does not hold 64 hexadecimal digits")
    return pepper


def _create_pepper(path: Path) -> bytes:
    pepper = secrets.token_bytes(_PEPPER_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_pepper(path, create=False)
    except OSError as exc:
        raise PepperError(f"cannot create the secret file {path}: {exc.strerror}") from None
    try:
        os.write(fd, pepper.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return pepper


def new_key_row(
    pepper: bytes,
    key_id: str,
    *,
    name: str,
    scopes: list[str],
    projects: list[str] | None,
    kind: str = "bearer",
    expires_at: int | None = None,
    rate_limit: float | None = None,
    burst: int | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new key's row for the database, and its secret to show once.

    The secret is ``{"key": "tq_…"}`` for a bearer key, ``{"public_key": "tqp_…",
    "secret_key": "tqs_…"}`` for a key pair; the row holds neither secret.
    """
    if kind == "pair":
        public_id = new_pair_id()
        prefix, digest = public_id, None
        shown = {"public_key": public_id, "secret_key": pair_secret(pepper, public_id)}
    else:
        key = new_bearer_key()
        prefix, digest = prefix_of(key), hash_key(pepper, key)
        shown = {"key": key}
    row = {
        "id": key_id,
        "name": name,
        "prefix": prefix,
        "kind": kind,
        "hash": digest,
        "scopes": sorted(set(scopes)),
        "projects": sorted(set(projects)) if projects is not None else None,
        "rate_limit": rate_limit,
        "burst": burst,
        "expires_at": expires_at,
    }
    return row, shown
