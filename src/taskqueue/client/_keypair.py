"""A key pair held by a client: it signs each request and never shows its secret.

The transports call :meth:`KeyPair.headers` once per request they send (each attempt of a
retried call too), with the request target exactly as their request line carries it, so the
signature covers what the server receives (:mod:`taskqueue.signing` fixes the format).

The timestamp has whole seconds, and the server refuses a signature it has already accepted,
so the same request sent twice in one second (a retry after a short backoff, a resend on a
fresh connection, a loop polling one task) would be refused the second time. Each repeat is
therefore signed with the second after the last one used for that request: every signature a
client sends is new, and it stays well inside the server's window (:data:`MAX_AHEAD_S`).
"""

from __future__ import annotations

import hashlib
import threading
import time

from taskqueue.signing import SIGNATURE_WINDOW_S, signed_headers

__all__ = ["MAX_AHEAD_S", "KeyPair"]

#: How far ahead of the clock a repeat's timestamp may go (a sixth of the server's window);
#: past that a repeat keeps the latest timestamp, and the server may refuse it as a replay.
MAX_AHEAD_S = SIGNATURE_WINDOW_S // 6
#: Requests remembered before the oldest are forgotten.
_REMEMBERED = 4096


class KeyPair:
    """A public id (``tqp_…``) and its secret (``tqs_…``); the secret is in no repr."""

    __slots__ = ("_last", "_lock", "_secret", "public_id")

    def __init__(self, public_id: str, secret: str) -> None:
        self.public_id = public_id
        self._secret = secret
        self._lock = threading.Lock()
        #: (method, target, body digest) -> the last timestamp it was signed with.
        self._last: dict[tuple[str, str, bytes], int] = {}

    def _timestamp(self, method: str, target: str, body: bytes, now: float | None) -> int:
        """Now in whole seconds, or one past the last second this same request was signed."""
        second = int(time.time() if now is None else now)
        request = (method.upper(), target, hashlib.sha256(body).digest())
        with self._lock:
            last = self._last.get(request)
            if last is not None and last >= second:
                second = min(last + 1, second + MAX_AHEAD_S)
            self._last[request] = second
            if len(self._last) > _REMEMBERED:
                horizon = second - SIGNATURE_WINDOW_S
                self._last = {k: v for k, v in self._last.items() if v >= horizon}
                while len(self._last) > _REMEMBERED // 2:  # a burst of distinct requests
                    del self._last[next(iter(self._last))]
        return second

    def headers(
        self, method: str, target: str, body: bytes | None, now: float | None = None
    ) -> dict[str, str]:
        """The headers that sign one request made now (or at ``now``): key id, time, signature."""
        data = body or b""
        stamp = self._timestamp(method, target, data, now)
        return signed_headers(self.public_id, self._secret, method, target, data, now=stamp)

    def __repr__(self) -> str:
        return f"KeyPair(public_id={self.public_id!r}, secret=***)"
