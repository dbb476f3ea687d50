"""The ASGI application: routes, error handling, and the services that run beside the API."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taskqueue._limits import LimitPolicy
from taskqueue.integrations.webhook_sender import WebhookSender, WebhookSettings
from taskqueue.server.auth import Authenticator
from taskqueue.server.errors import RequestIdMiddleware, exception_handlers
from taskqueue.server.events import EventHub
from taskqueue.server.guards import OriginGuardMiddleware
from taskqueue.server.hosts import HostGuardMiddleware, ProxyHeadersMiddleware, is_loopback
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
    #: Host names or addresses (``Host`` header, without port) the API answers to; empty:
    #: loopback names only; ``*``: any; ``0.0.0.0`` or ``::``: the address each connection
    #: arrived on. Loopback names are always answered on a loopback connection (see
    #: :mod:`taskqueue.server.hosts`).
    allowed_hosts: tuple[str, ...] = ()
    #: Addresses or networks of reverse proxies whose ``X-Forwarded-*`` headers are honoured;
    #: empty: none (the headers are ignored).
    trusted_proxies: tuple[str, ...] = ()
    #: Failed authentication attempts one client address may make at once before 429s
    #: (then one more every six seconds).
    failed_auth_burst: int = 10
    #: How webhooks are sent (by ``test`` and ``redeliver`` here; by the dispatcher, which
    #: whoever builds the app runs beside it, see :mod:`taskqueue.service`).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    #: The operator's limits (``--max-limit``): tasks asking above a maximum are refused.
    limits: LimitPolicy = field(default_factory=LimitPolicy)
    #: Longest a request waits for executions or a batch to end, in seconds (a longer
    #: ``timeout_ms`` is cut to it).
    max_request_wait: float = 300.0


_document_lock = threading.Lock()
_document: list[bytes] = []  # the rendered document, once built


def _rendered_document() -> bytes:
    with _document_lock:  # built once, by the first request that asks
        if not _document:
            _document.append(orjson.dumps(openapi_document()))
        return _document[0]


async def _openapi(request: Request) -> Response:
    # Built on first use (a third of a second of schema generation that a server which is
    # never asked for its document does not pay at start), off the event loop.
    document = await run_in_threadpool(_rendered_document)
    return Response(document, media_type="application/json")


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
    hub = EventHub(store)
    sender = WebhookSender(settings.webhooks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store.start()
        try:
            await keyring.start()
            async with keyring.running(), run_services(services):
                yield
        finally:
            hub.close()
            await sender.aclose()
            await store.close()

    app = Starlette(
        routes=[*routes, Route("/openapi.json", _openapi, methods=["GET"])],
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.auth = auth
    app.state.events = hub  # ended before the server drains (see cli.serve)
    app.state.webhook_sender = sender
    app.add_middleware(OriginGuardMiddleware, allowed_origins=settings.allowed_origins)
    app.add_middleware(HostGuardMiddleware, allowed_hosts=settings.allowed_hosts)
    # Outside the host guard: it checks the host a trusted proxy says the client asked for.
    app.add_middleware(ProxyHeadersMiddleware, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(RequestIdMiddleware)
    return app
