"""Webhook signatures, the Standard Webhooks way, and the receiver's side of them.

Every delivery the server sends carries three headers: ``webhook-id`` (the same on every
retry of one event, so a receiver can drop repeats), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``, with
one ``v1,`` entry per secret in force (two while a secret is being rotated), space-separated.
Secrets are ``whsec_`` followed by base64 of the key bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["SECRET_PREFIX", "generate_secret", "sign"]

#: How every webhook secret starts.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    """The HMAC key a secret stands for (``whsec_`` + base64; any other string as UTF-8)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError:
            pass
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` entry of ``body`` under ``secret``: ``v1,<base64>``."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
