"""Errors as responses: one outer middleware, one exception mapper keyed by class.

Every 4xx and 5xx body is ``{"error": {"type", "message", "details", "request_id"}}``. The
outermost middleware gives each request an id (or keeps a sane ``X-Request-ID`` it was sent),
echoes it in the response headers, and turns anything unexpected into a 500 with that body, so
no traceback ever reaches a client.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import orjson
import pydantic
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskqueue._validation import validation_details
from taskqueue.store.errors import Conflict, InvalidInput, NotFound, StoreError, Unavailable

__all__ = [
    "ApiError",
    "RequestIdMiddleware",
    "error_response",
    "exception_handlers",
    "new_request_id",
    "validation_details",
]

log: logging.Logger = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    403: "authorization_error",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API answers with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status: int = status
        self.message: str = message
        self.details: list[dict[str, Any]] = details or []
        self.headers: dict[str, str] = dict(headers or {})


def request_id_of(scope: Scope) -> str | None:
    """The id given to this request by :class:`RequestIdMiddleware`."""
    state = scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


def error_response(
    status: int,
    message: str,
    request_id: str | None,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON error response in the one shape every error takes."""
    body = {
        "error": {
            "type": _TYPES.get(status, "error"),
            "message": message,
            "details": details or [],
            "request_id": request_id,
        }
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def _summary(details: list[dict[str, Any]]) -> str:
    first = details[0]
    loc = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{loc}: {first['msg']}{more}"


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status, exc.message, request_id_of(request.scope), exc.details, exc.headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "no such endpoint", 405: "method not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    if exc.status_code == 404 and request.url.path.startswith("/api/"):
        message = f"no endpoint {request.method} {request.url.path}"
    return error_response(
        exc.status_code, message, request_id_of(request.scope), headers=exc.headers
    )


async def _pydantic_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, pydantic.ValidationError)
    details = validation_details(exc)
    if any(d["type"] == "json_invalid" for d in details):
        return error_response(
            400,
            f"the body is not valid JSON: {details[0]['msg']}",
            request_id_of(request.scope),
            details,
        )
    return error_response(422, _summary(details), request_id_of(request.scope), details)


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    rid = request_id_of(request.scope)
    if isinstance(exc, NotFound):
        return error_response(404, exc.message, rid)
    if isinstance(exc, Conflict):
        return error_response(409, exc.message, rid, exc.details)
    if isinstance(exc, InvalidInput):
        # Well formed (the document allows it) but it names what is not there or cannot be
        # used: a conflict with what is stored, like a used name; 422 is for breaking the schema.
        return error_response(
            409, _summary(exc.details) if exc.details else exc.message, rid, exc.details
        )
    if isinstance(exc, Unavailable):
        log.warning("request %s: %s", rid, exc.message)
        return error_response(503, exc.message, rid, headers={"Retry-After": "1"})
    return error_response(400, exc.message, rid)  # pragma: no cover - no other subclasses


#: The exception mapper: Starlette picks the handler of the nearest class.
exception_handlers: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_error,
    pydantic.ValidationError: _pydantic_error,
    StoreError: _store_error,
}


_REQUEST_PREFIX = os.urandom(4).hex()
_request_counter = itertools.count(1)


def new_request_id() -> str:
    """A fresh request id: unique across processes (random prefix) and requests (counter)."""
    return f"{_REQUEST_PREFIX}-{next(_request_counter):x}"


class RequestIdMiddleware:
    """Outermost layer: a request id for every request, and a JSON 500 for any crash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if given and _REQUEST_ID_RE.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            log.debug("request %s: the client went away", request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            if started:
                raise
            response = error_response(
                500, "internal error; the server log has the details", request_id
            )
            await response(scope, receive, send_with_id)
