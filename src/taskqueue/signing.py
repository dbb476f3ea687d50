"""Signed requests: the message a key pair signs and the headers that carry the signature.

A key pair is a public id (``tqp_…``) and a secret (``tqs_…``). The client sends three headers:

``X-TaskQueue-Key-Id``
    the public id;
``X-TaskQueue-Timestamp``
    the time of signing, whole seconds since the Unix epoch, in decimal;
``X-TaskQueue-Signature``
    ``HMAC-SHA256(secret, "timestamp:METHOD:path:body")`` as 64 lowercase hex digits, where
    ``METHOD`` is the method in capitals, ``path`` the request target exactly as sent (the
    path with its percent-escapes, then ``?`` and the query string when there is one) and
    ``body`` the body's bytes (nothing for a request without a body).

The server refuses a timestamp more than :data:`SIGNATURE_WINDOW_S` away from its clock and a
signature it has already accepted within that window.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "KEY_ID_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_WINDOW_S",
    "TIMESTAMP_HEADER",
    "sign",
    "signed_headers",
    "signing_message",
]

#: The header that names the key pair's public id.
KEY_ID_HEADER = "X-TaskQueue-Key-Id"
#: The header that carries the time of signing (Unix seconds).
TIMESTAMP_HEADER = "X-TaskQueue-Timestamp"
#: The header that carries the signature (hex HMAC-SHA256).
SIGNATURE_HEADER = "X-TaskQueue-Signature"
#: How far a request's timestamp may be from the server's clock, either way, in seconds.
SIGNATURE_WINDOW_S = 300


def signing_message(timestamp: str, method: str, target: str, body: bytes) -> bytes:
    """The bytes signed: ``timestamp:METHOD:path:body`` (``target`` includes the query)."""
    return f"{timestamp}:{method.upper()}:{target}:".encode() + body


def sign(secret: str, timestamp: str, method: str, target: str, body: bytes) -> str:
    """The signature of one request: hex HMAC-SHA256 of :func:`signing_message` under ``secret``."""
    message = signing_message(timestamp, method, target, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    public_id: str,
    secret: str,
    method: str,
    target: str,
    body: bytes = b"",
    now: float | None = None,
) -> dict[str, str]:
    """The three headers that sign one request made now (or at ``now``, Unix seconds)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        KEY_ID_HEADER: public_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, method, target, body),
    }
