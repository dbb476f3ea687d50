"""The ASGI application: routes, error handling, and the services that run beside the API."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from taskqueue.server.auth import Authenticator
from taskqueue.server.errors import RequestIdMiddleware, error_response, exception_handlers
from taskqueue.server.guards import OriginGuardMiddleware
from taskqueue.server.keyring import Keyring
from taskqueue.server.openapi import openapi_document
from taskqueue.server.routes import routes
from taskqueue.server.services import Service, run_services
from taskqueue.store import Store

__all__ = ["ServerSettings", "create_app", "is_loopback"]

log: logging.Logger = logging.getLogger(__name__)


@dataclass
class ServerSettings:
    """What the API itself needs to know.

    Where it listens, on which database, and what runs beside it are the business of whoever
    builds the app (see :mod:`taskqueue.service`).
    """

    #: Largest request body accepted, in bytes.
    max_body_bytes: int = 16 * 1024 * 1024
    #: Origins (``scheme://host[:port]``, normalised) whose web pages may call the API, besides
    #: the server's own (see :mod:`taskqueue.server.guards`).
    allowed_origins: tuple[str, ...] = ()
    #: When requests need an API key: ``"auto"`` (once any key exists in the database),
    #: ``"required"`` (always: a server listening beyond loopback) or ``"off"`` (never: only
    #: for loopback, ``--no-auth``).
    auth: Literal["auto", "required", "off"] = "auto"
    #: The file holding the server's secret pepper for API key hashes; None: ``<db>.secret``
    #: beside a SQLite database (required on PostgreSQL once keys are used).
    secret_file: Path | None = None
    #: Host names (``Host`` header, without port) the API answers to; empty: loopback names.
    allowed_hosts: tuple[str, ...] = ()
    #: Addresses or networks of reverse proxies whose ``X-Forwarded-*`` headers are honoured.
    trusted_proxies: tuple[str, ...] = ()
    #: Failed authentication attempts one client address may make at once before 429s
    #: (then one more every six seconds).
    failed_auth_burst: int = 10


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """The name or address of a ``Host`` value, without its port."""
    return host if host.endswith("]") else host.rsplit(":", 1)[0]


class LoopbackHostMiddleware:
    """Refuse requests whose ``Host`` is not a loopback name, or that have no ``Host``.

    A server on 127.0.0.1 is still reachable from a browser on the same machine; checking Host
    stops a web page from reaching it through DNS rebinding. HTTP/1.1 requires the header, and
    a request without one is refused alike, so no request is served without the check.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host: str | None = None
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value.decode("latin-1")
                    break
            if host is None or not is_loopback(_hostname(host)):
                state = scope.get("state") or {}
                what = (
                    "the request has no Host header"
                    if host is None
                    else (f"Host {host[:100]!r} is not a loopback name")
                )
                response = error_response(
                    403,
                    f"{what}; this server only answers requests addressed to localhost",
                    state.get("request_id"),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _openapi(request: Request) -> Response:
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


def _announce(auth: Authenticator) -> None:
    """Say at start whether requests need a key, and how to make the first one."""
    if auth.mode == "off":
        log.warning(
            "authentication is OFF (--no-auth): anyone on this machine can use the API "
            "without a key"
        )
    elif not auth.keyring.any_keys:
        how = "make one with: taskqueue keys create --admin --name NAME"
        if auth.mode == "required":
            log.warning("every request needs an API key and this database has none; %s", how)
        else:
            log.info("no API keys yet: the API answers this machine without one; %s", how)


def create_app(
    settings: ServerSettings | None, store: Store, services: Sequence[Service] = ()
) -> Starlette:
    """The taskqueue ASGI app on ``store``.

    When the app starts it starts the store, then each of ``services`` (see
    :class:`~taskqueue.server.services.Service`), and serves once they are ready; when it
    stops it stops the services and waits for them, then closes the store.
    """
    settings = settings or ServerSettings()

    keyring = Keyring(store, settings.secret_file)
    auth = Authenticator(keyring, settings.auth, settings.failed_auth_burst)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store.start()
        try:
            await keyring.start()
            _announce(auth)
            async with keyring.running(), run_services(services):
                yield
        finally:
            await store.close()

    app = Starlette(
        routes=[*routes, Route("/openapi.json", _openapi, methods=["GET"])],
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.auth = auth
    app.state.openapi = orjson.dumps(openapi_document())
    app.add_middleware(OriginGuardMiddleware, allowed_origins=settings.allowed_origins)
    app.add_middleware(LoopbackHostMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
