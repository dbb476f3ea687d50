"""Which requests may change state: origins, content types and CORS.

A server on a loopback address is still reachable from any web page its user opens: a page can
send a cross-site ``POST`` (an HTML form, ``fetch`` in ``no-cors`` mode) without the browser
asking first, as long as it uses a content type a form can send. So every state-changing
request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) is refused with 403 when

* its ``Origin`` is present and is neither the server's own (the origin the request was
  addressed to, its scheme and ``Host``, or the address the server is bound to) nor one
  given with ``--allow-origin``; ``null`` (a sandboxed or ``file:`` page) is never the
  server's own;
* the browser marks it ``Sec-Fetch-Site: cross-site`` or ``same-site`` and its origin is not
  an allowed one.

And with 415 when it carries a body that is not ``application/json``, or no body but a content
type a form sends (``application/x-www-form-urlencoded``, ``multipart/form-data``,
``text/plain``): a browser sends JSON cross-site only after a preflight, which only an allowed
origin passes. The SDK and the CLI send no ``Origin``, JSON bodies, and no content type on the
calls without a body.

For an allowed origin the API speaks CORS: a preflight ``OPTIONS`` is answered 204 with the
``Access-Control-Allow-*`` headers, and every answer carries ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskqueue.server.errors import error_response, request_id_of

__all__ = ["STATE_CHANGING", "OriginGuardMiddleware", "normalize_origin", "parse_allowed_origin"]

#: The methods that may change state, and so must come from an accepted origin.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What an HTML form can send without a preflight (besides no content type at all).
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
#: ``Sec-Fetch-Site`` values that mean the request comes from another origin.
FOREIGN_SITES = frozenset({b"cross-site", b"same-site"})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALLOW_METHODS = b"GET, POST, PUT, DELETE"
_ALLOW_HEADERS = (
    b"Accept, Authorization, Content-Type, Idempotency-Key, X-Request-ID, X-API-Key, "
    b"X-TaskQueue-Key-Id, X-TaskQueue-Timestamp, X-TaskQueue-Signature"
)
_EXPOSE_HEADERS = b"Retry-After, X-Request-ID"
_MAX_AGE = b"600"
JSON_ONLY = "send the body as JSON with the header 'Content-Type: application/json'"


def normalize_origin(value: str) -> str | None:
    """``value`` as ``scheme://host[:port]`` in one spelling, or None if not an http(s) origin.

    The scheme and host are lower-cased and a default port is dropped, as browsers send it.
    """
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if parts.path or parts.query or parts.fragment or value.rstrip().endswith(("?", "#")):
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_allowed_origin(value: str) -> str:
    """An origin for ``--allow-origin``, normalised; ValueError saying what is wrong."""
    if value.strip() in ("*", "null"):
        raise ValueError(
            f"{value.strip()!r} would let any web page change tasks; name each origin "
            "(scheme://host[:port])"
        )
    origin = normalize_origin(value)
    if origin is None:
        raise ValueError(
            f"{value!r} is not an origin: scheme://host[:port], http or https, with no path "
            "(e.g. https://dashboard.example.com)"
        )
    return origin


def _own_origins(scope: Scope, host: bytes | None) -> set[str]:
    """The origins that are this server: the one the request was addressed to, and its address.

    Their scheme is the request's: ``https`` over TLS, or as a trusted proxy forwarded it.
    """
    own: set[str] = set()
    scheme = "https" if scope.get("scheme") == "https" else "http"
    if host:
        addressed = normalize_origin(f"{scheme}://" + host.decode("latin-1"))
        if addressed is not None:
            own.add(addressed)
    server = scope.get("server")
    if server and server[1] is not None:
        bound_host = f"[{server[0]}]" if ":" in server[0] else server[0]
        own.add(normalize_origin(f"{scheme}://{bound_host}:{server[1]}") or "")
    return own


def _media_type(value: bytes) -> str:
    return value.decode("latin-1").split(";")[0].strip().lower()


#: Pages a browser posts a form to: approval links, whose token is their credential (the
#: origin checks still apply). Their routes take nothing but the form.
FORM_PATHS = ("/reviews/",)


def content_type_refusal(headers: dict[bytes, bytes], path: str = "") -> str | None:
    """Why a state-changing request's body or content type is refused, or None."""
    content_type = headers.get(b"content-type")
    length = headers.get(b"content-length", b"0").strip()
    has_body = b"transfer-encoding" in headers or length not in (b"", b"0")
    if (
        path.startswith(FORM_PATHS)
        and content_type is not None
        and _media_type(content_type) == "application/x-www-form-urlencoded"
    ):
        return None
    if has_body:
        if content_type is None or _media_type(content_type) != "application/json":
            return JSON_ONLY
        return None
    if content_type is not None and _media_type(content_type) in FORM_TYPES:
        return (
            f"a request without a body must not be sent as {_media_type(content_type)!r} (what "
            "an HTML form sends); send no Content-Type, or 'Content-Type: application/json'"
        )
    return None


class OriginGuardMiddleware:
    """Refuse state-changing requests from foreign origins or in form content types.

    Requests from the allowed origins get CORS: preflights answered, ``Access-Control-Allow-
    Origin`` on every answer.
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed: frozenset[str] = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of each, as the routes read them
        given = headers.get(b"origin")
        origin = given.decode("latin-1") if given is not None else None
        allowed = origin is not None and normalize_origin(origin) in self.allowed
        method = scope["method"]
        if (
            method == "OPTIONS"
            and origin is not None
            and b"access-control-request-method" in headers
        ):
            await self._preflight(scope, receive, send, origin, allowed)
            return
        if method in STATE_CHANGING:
            refusal = self._refusal(scope, headers, origin, allowed)
            if refusal is not None:
                status, message = refusal
                await error_response(status, message, request_id_of(scope))(scope, receive, send)
                return
        if not allowed:
            await self.app(scope, receive, send)
            return
        assert origin is not None
        cors = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", _EXPOSE_HEADERS),
            (b"vary", b"Origin"),
        ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _refusal(
        self, scope: Scope, headers: dict[bytes, bytes], origin: str | None, allowed: bool
    ) -> tuple[int, str] | None:
        own = _own_origins(scope, headers.get(b"host"))
        if origin is not None and not allowed and normalize_origin(origin) not in own:
            shown = origin if len(origin) <= 100 else origin[:100] + "..."
            return 403, (
                f"Origin {shown!r} may not change anything here: this server accepts "
                "state-changing requests only from its own origin or one allowed with "
                "--allow-origin"
            )
        site = headers.get(b"sec-fetch-site", b"").strip().lower()
        if site in FOREIGN_SITES and not allowed:
            return 403, (
                f"the browser marks this request as {site.decode()} (Sec-Fetch-Site); this "
                "server accepts state-changing requests only from its own origin or one "
                "allowed with --allow-origin"
            )
        message = content_type_refusal(headers, scope.get("path", ""))
        return None if message is None else (415, message)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, allowed: bool
    ) -> None:
        if not allowed:
            shown = origin if len(origin) <= 100 else origin[:100] + "..."
            response = error_response(
                403,
                f"Origin {shown!r} is not allowed to call this API from a web page; start the "
                "server with --allow-origin ORIGIN to allow it",
                request_id_of(scope),
                headers={"Vary": "Origin"},
            )
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", _ALLOW_METHODS),
                    (b"access-control-allow-headers", _ALLOW_HEADERS),
                    (b"access-control-max-age", _MAX_AGE),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
