"""Authentication at one boundary: every request resolves to a :class:`Principal` or is refused.

Every route declares the scope it needs (see ``SCOPES`` in :mod:`.routes`); the route's
resource calls :func:`authorize` before its handler, which finds the caller's key (a bearer
key in ``Authorization: Bearer`` or ``X-API-Key``, or a signed request, see
:mod:`taskqueue.signing`), checks its scope and its rate limit, and leaves the principal on
``request.state``. Handlers hand the principal's projects to the store, so what a key limited
to some projects may see is a condition of every query.

Refusals: 401 (with ``WWW-Authenticate``) for a missing, unknown, revoked or expired key or a
bad signature, 403 for a scope the key lacks, 429 (with ``Retry-After``) past a key's rate or
after too many failed attempts from one address. No answer or log line holds a presented key.
"""

from __future__ import annotations

import enum
import hmac
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from taskqueue.server.body import read_request_body
from taskqueue.server.errors import ApiError
from taskqueue.server.keyring import KeyRecord, Keyring
from taskqueue.server.ratelimit import FAILED_AUTH_BURST, FAILED_AUTH_RATE, Buckets
from taskqueue.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_WINDOW_S,
    TIMESTAMP_HEADER,
    sign,
)
from taskqueue.store.visibility import Projects

__all__ = [
    "OPEN",
    "Authenticator",
    "Principal",
    "Scope",
    "authorize",
    "principal_of",
    "projects_of",
]

log: logging.Logger = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="taskqueue"'}
_KEY_ID = KEY_ID_HEADER.lower()
_SIGNATURE = SIGNATURE_HEADER.lower()
_TIMESTAMP = TIMESTAMP_HEADER.lower()
#: Principals kept per key at most (one per key: a key's record changes only on a re-read).
MAX_PRINCIPALS = 10_000
#: Signatures remembered at most (older ones are forgotten first).
MAX_SEEN_SIGNATURES = 1_000_000


class Scope(str, enum.Enum):
    """What a route needs of the caller's key: each scope includes those below it."""

    #: Anyone, with or without a key (the server's name; health's bare ``ok``).
    PUBLIC = "public"
    #: Reading tasks, projects, logs.
    READ = "read"
    #: Creating, changing, cancelling and retrying tasks and projects.
    WRITE = "write"
    #: Keys, workers, and deleting projects.
    ADMIN = "admin"


_RANK = {Scope.PUBLIC: 0, Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}
#: The scopes a key may be given.
KEY_SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a key's id and name, its highest scope, its projects."""

    key_id: str | None
    name: str
    scope: Scope
    #: The projects the caller may see; None: all of them.
    projects: Projects

    def allows(self, needed: Scope) -> bool:
        """Whether the caller's scope includes ``needed``."""
        return _RANK[self.scope] >= _RANK[needed]


#: The caller of a server that needs no key: everything is allowed.
OPEN = Principal(key_id=None, name="no authentication", scope=Scope.ADMIN, projects=None)


def _top_scope(scopes: frozenset[str]) -> Scope:
    ranked = [Scope(s) for s in scopes if s in KEY_SCOPES]
    return max(ranked, key=lambda s: _RANK[s], default=Scope.PUBLIC)


class Authenticator:
    """The per-process state of authentication: the key ring, limits and seen signatures."""

    def __init__(
        self, keyring: Keyring, mode: str, failed_auth_burst: int = FAILED_AUTH_BURST
    ) -> None:
        self.keyring: Keyring = keyring
        #: Failed attempts an address may make at once (then one every six seconds).
        self.failed_auth_burst: int = failed_auth_burst
        #: ``auto``, ``required`` or ``off`` (see ``ServerSettings.auth``).
        self.mode: str = mode
        self.key_buckets: Buckets = Buckets()
        self.failure_buckets: Buckets = Buckets()
        self._seen: dict[str, float] = {}
        self._principals: dict[str, tuple[KeyRecord, Principal]] = {}

    @property
    def required(self) -> bool:
        """Whether requests need a key now."""
        return self.mode == "required" or (self.mode == "auto" and self.keyring.any_keys)

    def principal(self, record: KeyRecord) -> Principal:
        """The principal of a key's record, made once per record (not on every request)."""
        cached = self._principals.get(record.id)
        if cached is not None and cached[0] is record:
            return cached[1]
        principal = Principal(record.id, record.name, _top_scope(record.scopes), record.projects)
        if len(self._principals) >= MAX_PRINCIPALS:
            self._principals.clear()
        self._principals[record.id] = (record, principal)
        return principal

    def remember_signature(self, signature: str, now: float) -> bool:
        """Record a signature; False if it was already used within the window (a replay)."""
        if signature in self._seen:
            return False
        if len(self._seen) >= MAX_SEEN_SIGNATURES or len(self._seen) % 1024 == 0:
            horizon = now - 2 * SIGNATURE_WINDOW_S
            self._seen = {s: t for s, t in self._seen.items() if t > horizon}
            while len(self._seen) >= MAX_SEEN_SIGNATURES:
                self._seen.pop(next(iter(self._seen)))
        self._seen[signature] = now
        return True


def principal_of(request: Request) -> Principal:
    """The principal :func:`authorize` found for this request."""
    principal: Principal = request.state.principal
    return principal


def projects_of(request: Request) -> Projects:
    """The projects this request's caller may see (None: all)."""
    return principal_of(request).projects


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authorize(request: Request, needed: Scope) -> Principal | None:
    """Resolve the caller and check it may use a route that needs ``needed``.

    Returns the principal (also left on ``request.state.principal``), or None for a public
    route called without a usable key. Raises :class:`ApiError` (401, 403 or 429).
    """
    auth: Authenticator = request.app.state.auth
    if not auth.required:
        request.state.principal = OPEN
        return OPEN
    now_us = int(time.time() * 1_000_000)
    try:
        record = await _identify(request, auth, now_us)
    except ApiError:
        if needed is Scope.PUBLIC:
            return None
        raise
    if record is None:
        if needed is Scope.PUBLIC:
            return None
        raise _refuse(request, auth, 401, "this request needs an API key", "missing key")
    principal = auth.principal(record)
    if not principal.allows(needed):
        scopes = ", ".join(sorted(record.scopes)) or "none"
        raise _refuse(
            request,
            auth,
            403,
            f"the API key {record.name!r} has the scopes {scopes}; "
            f"{request.method} {request.url.path} needs {needed.value}",
            "insufficient scope",
            record,
            count_failure=False,
        )
    if record.rate_limit is not None:
        burst = record.burst or max(1, math.ceil(record.rate_limit))
        wait, bucket = auth.key_buckets.take(record.id, record.rate_limit, burst)
        request.state.rate_headers = bucket.headers(wait)
        if wait:
            retry = max(1, math.ceil(wait))
            headers = {**request.state.rate_headers, "Retry-After": str(retry)}
            raise ApiError(
                429,
                f"the API key {record.name!r} is over its rate of {record.rate_limit:g} "
                f"requests a second (burst {burst}); retry in {retry} s",
                headers=headers,
            )
    auth.keyring.used(record.id, now_us)
    request.state.principal = principal
    return principal


async def _identify(request: Request, auth: Authenticator, now_us: int) -> KeyRecord | None:
    """The key the request presents (checked), None if it presents none; raises if bad."""
    headers = request.headers
    if _KEY_ID in headers or _SIGNATURE in headers:
        return await _signed(request, auth)
    presented = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if presented is None and authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refuse(
                request, auth, 401, "Authorization must be 'Bearer <API key>'", "malformed"
            )
        presented = token.strip()
    if presented is None:
        return None
    record = auth.keyring.lookup(presented)
    if record is None:
        prefix = auth.keyring.known_prefix(presented)
        raise _refuse(request, auth, 401, "the API key is not valid", "unknown key", prefix=prefix)
    refusal = record.refusal(now_us)
    if refusal is not None:
        raise _refuse(request, auth, 401, refusal, refusal.removeprefix("the API key "), record)
    return record


async def _signed(request: Request, auth: Authenticator) -> KeyRecord:
    """The key pair that signed this request, after checking the signature."""
    headers = request.headers
    public_id = headers.get(_KEY_ID, "")
    stamp = headers.get(_TIMESTAMP, "")
    signature = headers.get(_SIGNATURE, "")
    if not (public_id and stamp and signature):
        raise _refuse(
            request,
            auth,
            401,
            f"a signed request needs the headers {KEY_ID_HEADER}, {TIMESTAMP_HEADER} and "
            f"{SIGNATURE_HEADER}",
            "incomplete signature",
        )
    found = auth.keyring.pair(public_id)
    if found is None:
        raise _refuse(request, auth, 401, "the key id is not valid", "unknown key pair")
    record, secret = found
    now = time.time()
    # isdigit() alone takes '²' and other non-ASCII digits, and int() refuses more than
    # 4300 digits: either was a 500. A Unix time in seconds has at most 20 digits.
    valid = stamp.isascii() and stamp.isdigit() and len(stamp) <= 20
    if not valid or abs(now - int(stamp)) > SIGNATURE_WINDOW_S:
        raise _refuse(
            request,
            auth,
            401,
            f"{TIMESTAMP_HEADER} must be the Unix time in seconds within "
            f"{SIGNATURE_WINDOW_S} s of the server's clock ({int(now)})",
            "timestamp outside the window",
            record,
        )
    body = await read_request_body(request) if _has_body(request) else b""
    target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    if query:
        target = f"{target}?{query}"
    expected = sign(secret, stamp, request.method, target, body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise _refuse(request, auth, 401, "the signature is not valid", "bad signature", record)
    refusal = record.refusal(int(now * 1_000_000))
    if refusal is not None:
        raise _refuse(request, auth, 401, refusal, refusal.removeprefix("the API key "), record)
    if not auth.remember_signature(expected, now):
        raise _refuse(
            request, auth, 401, "this signature was already used: sign each request anew", "replay"
        )
    return record


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length != "0") or "transfer-encoding" in request.headers


def _refuse(
    request: Request,
    auth: Authenticator,
    status: int,
    message: str,
    reason: str,
    record: KeyRecord | None = None,
    *,
    prefix: str | None = None,
    count_failure: bool = True,
) -> ApiError:
    """The refusal to raise, after recording it (audit event, log line, failure limit)."""
    client = _client(request)
    denial: dict[str, Any] = {
        "time": int(time.time() * 1_000_000),
        "reason": reason,
        "status": status,
        "method": request.method,
        "path": request.url.path[:200],
        "client": client,
    }
    if record is not None:
        denial["key_id"], denial["key_name"] = record.id, record.name
        prefix = record.prefix
    if prefix is not None:
        denial["key_prefix"] = prefix
    headers = dict(_CHALLENGE) if status == 401 else {}
    if count_failure:
        wait, _ = auth.failure_buckets.take(client, FAILED_AUTH_RATE, auth.failed_auth_burst)
        if wait:  # past the limit: refused without a word more, and not logged each time
            retry = max(1, math.ceil(wait))
            auth.keyring.denied({**denial, "status": 429, "reason": f"{reason}; rate limited"})
            return ApiError(
                429,
                f"too many failed authentication attempts from {client}; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
    auth.keyring.denied(denial)
    log.warning(
        "refused %s %s from %s: %s%s",
        request.method,
        request.url.path[:200],
        client,
        reason,
        f" (key {prefix})" if prefix else "",
    )
    return ApiError(status, message, headers=headers)
