"""The ASGI application: routes, error handling, and the workers that run beside the API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from taskqueue.server.errors import RequestIdMiddleware, error_response, exception_handlers
from taskqueue.server.openapi import openapi_document
from taskqueue.server.routes import routes
from taskqueue.store import Store
from taskqueue.worker import Worker, WorkerSettings

__all__ = ["ServerSettings", "create_app", "is_loopback"]

log: logging.Logger = logging.getLogger(__name__)


@dataclass
class ServerSettings:
    """How the server runs. ``workers=0`` serves the API only."""

    db: str = "taskqueue.db"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 16
    max_body_bytes: int = 16 * 1024 * 1024
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    #: On PostgreSQL, LISTEN for other processes' commits (else poll only).
    listen: bool = True


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LoopbackHostMiddleware:
    """Refuse requests whose ``Host`` is not a loopback name.

    A server on 127.0.0.1 is still reachable from a browser on the same machine; checking Host
    stops a web page from reaching it through DNS rebinding.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = ""
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value.decode("latin-1")
                    break
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host and not is_loopback(hostname):
                state = scope.get("state") or {}
                response = error_response(
                    403,
                    f"Host {host[:100]!r} is not a loopback name; this server only answers "
                    "requests addressed to localhost",
                    state.get("request_id"),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _openapi(request: Request) -> Response:
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


def create_app(settings: ServerSettings | None = None, store: Store | None = None) -> Starlette:
    """The taskqueue ASGI app; it opens the store and starts the workers when it starts."""
    settings = settings or ServerSettings()
    store = store or Store(settings.db, listen=settings.listen)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store.start()
        worker_task: asyncio.Task[None] | None = None
        worker: Worker | None = None
        if settings.workers > 0:
            settings.worker.concurrency = settings.workers
            worker = Worker(store, settings.worker)
            worker_task = asyncio.create_task(worker.run(), name="taskqueue-worker")
            worker_task.add_done_callback(_worker_ended)
        app.state.worker_count = 1 if worker else 0
        app.state.worker = worker
        app.state.worker_task = worker_task
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):  # already logged by _worker_ended
                    await worker_task
            await store.close()

    def _worker_ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the embedded worker stopped: %r", task.exception())
        app.state.worker_count = 0

    app = Starlette(
        routes=[*routes, Route("/openapi.json", _openapi, methods=["GET"])],
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.worker_count = 0
    app.state.openapi = orjson.dumps(openapi_document())
    app.add_middleware(LoopbackHostMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
