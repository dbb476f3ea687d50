"""A key pair held by a client: it signs each request and never shows its secret.

The transports call :meth:`KeyPair.headers` once per request they send (each attempt of a
retried call too), with the request target exactly as their request line carries it, so the
signature covers what the server receives (:mod:`taskqueue.signing` fixes the format).
"""

from __future__ import annotations

from taskqueue.signing import signed_headers

__all__ = ["KeyPair"]


class KeyPair:
    """A public id (``tqp_…``) and its secret (``tqs_…``); the secret is in no repr."""

    __slots__ = ("_secret", "public_id")

    def __init__(self, public_id: str, secret: str) -> None:
        self.public_id = public_id
        self._secret = secret

    def headers(self, method: str, target: str, body: bytes | None) -> dict[str, str]:
        """The headers that sign one request made now: key id, timestamp, signature."""
        return signed_headers(self.public_id, self._secret, method, target, body or b"")

    def __repr__(self) -> str:
        return f"KeyPair(public_id={self.public_id!r}, secret=***)"
