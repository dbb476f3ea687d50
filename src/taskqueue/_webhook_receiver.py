"""The receiver of webhook deliveries: :class:`WebhookHandler` (see :mod:`taskqueue.webhooks`).

Its ASGI app is plain ASGI, with no framework under it, so that ``pip install taskqueue-sdk``
is enough to receive webhooks inside any ASGI server or framework; only :meth:`run` needs
uvicorn (``pip install 'taskqueue-sdk[webhooks]'``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from taskqueue._webhook_signatures import DEFAULT_TOLERANCE, secrets_of, verify_delivery
from taskqueue.errors import (
    InvalidSignatureError,
    MalformedWebhookError,
    StaleTimestampError,
    WebhookVerificationError,
)
from taskqueue.events import Event, is_event_type

__all__ = ["MAX_BODY", "MAX_SEEN", "WebhookHandler", "WebhookReceipt"]

#: The largest body the ASGI app reads, in bytes; a larger one is answered 413.
MAX_BODY = 1024 * 1024
#: How many delivered ``webhook-id`` values are remembered at most (the oldest go first).
MAX_SEEN = 100_000

_log = logging.getLogger("taskqueue.webhooks")
#: The ``error.type`` of each refusal's answer.
_KINDS: dict[type[WebhookVerificationError], str] = {
    MalformedWebhookError: "malformed_webhook",
    InvalidSignatureError: "invalid_signature",
    StaleTimestampError: "stale_timestamp",
}

# The ASGI types, as Starlette spells them, so ``Mount("/hooks", app=hooks.app)`` type-checks.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: A handler: a plain function (run in a thread) or a coroutine function, given the event.
_H = TypeVar("_H", bound=Callable[[Event], object])


@dataclass(frozen=True)
class WebhookReceipt:
    """What :meth:`WebhookHandler.handle` did with one verified delivery."""

    #: The delivery's event.
    event: Event
    #: The delivery's ``webhook-id``.
    webhook_id: str
    #: ``handled``: the handlers ran; ``duplicate``: this id was handled already, nothing ran;
    #: ``in_flight``: a delivery of this id is being handled right now, nothing ran.
    outcome: Literal["handled", "duplicate", "in_flight"]
    #: How many handlers ran.
    handlers: int = 0

    @property
    def status_code(self) -> int:
        """The HTTP status to answer: 204 handled, 200 duplicate, 409 in flight (try later)."""
        return {"handled": 204, "duplicate": 200, "in_flight": 409}[self.outcome]


class _Deliveries:
    """The ``webhook-id`` values handled (until their timestamp leaves the window) or in hand.

    Bounded: past ``limit`` ids the oldest are forgotten. Guarded by a lock, not by the event
    loop, as frameworks may call :meth:`WebhookHandler.handle` from several threads.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def begin(self, msg_id: str, now: float) -> Literal["new", "duplicate", "in_flight"]:
        """Take ``msg_id`` in hand, unless it was handled already or is being handled."""
        with self._lock:
            self._expire(now)
            until = self._seen.get(msg_id)
            if until is not None and until > now:
                return "duplicate"
            if msg_id in self._in_flight:
                return "in_flight"
            self._in_flight.add(msg_id)
            return "new"

    def finish(self, msg_id: str, *, handled: bool, until: float) -> None:
        """Let go of ``msg_id``; if ``handled``, remember it as done until ``until``."""
        with self._lock:
            self._in_flight.discard(msg_id)
            if not handled:
                return
            self._seen[msg_id] = until
            self._seen.move_to_end(msg_id)
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Oldest first: stopping at the first live entry keeps this cheap; an expired one
        # behind it only lingers (and still answers "duplicate", which is safe) until then.
        while self._seen:
            msg_id, until = next(iter(self._seen.items()))
            if until > now:
                return
            del self._seen[msg_id]


def _matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


class WebhookHandler:
    """Receive the server's webhook deliveries and dispatch each event to your handlers.

    ::

        hooks = WebhookHandler(secret="whsec_...")

        @hooks.on_task_completed
        async def done(event: Event) -> None: ...

        hooks.run(port=8081)            # or mount hooks.app in any ASGI app

    ``secret`` is one secret or several (during a rotation: the old and the new). Each
    delivery is verified (:func:`taskqueue.webhooks.verify`, ``tolerance`` seconds either
    way), then handed to every handler registered for its type, one after the other in the
    order they were registered. A handler is a coroutine function, or a plain function, which
    runs in a thread so that it never blocks the event loop.

    Deliveries are idempotent by ``webhook-id`` within the tolerance window: once the handlers
    of an id have all returned, a repeat of it is acknowledged (200) and nothing runs again.
    A handler that raises makes the delivery fail (500) and the id stays unhandled, so the
    server's retry runs the handlers again (those before it too: make them idempotent).

    ``app`` is the ASGI app: ``POST`` to ``path`` only, the body at most ``max_body`` bytes.
    """

    def __init__(
        self,
        secret: str | Sequence[str],
        *,
        tolerance: int = DEFAULT_TOLERANCE,
        path: str = "/",
        max_body: int = MAX_BODY,
        max_seen: int = MAX_SEEN,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"the path must start with '/': {path!r}")
        if tolerance < 0:
            raise ValueError("the tolerance is a number of seconds, not negative")
        if max_body < 1 or max_seen < 1:
            raise ValueError("max_body and max_seen must be positive")
        self._secrets = secrets_of(secret)
        #: How many seconds a delivery's timestamp may be from the clock, either way.
        self.tolerance: int = tolerance
        #: Where the app answers (relative to where it is mounted).
        self.path: str = path.rstrip("/") or "/"
        #: The largest body the app reads, in bytes.
        self.max_body: int = max_body
        self._handlers: list[tuple[str, Callable[[Event], object]]] = []
        self._deliveries = _Deliveries(max_seen)
        #: The ASGI app (HTTP and lifespan): serve it, or mount it in Starlette or FastAPI.
        self.app: ASGIApp = _App(self)

    # -- registering handlers ------------------------------------------------------------

    def on(self, event_type: str) -> Callable[[_H], _H]:
        """Register the decorated function for ``event_type``.

        An exact type (``task.failed``), a family (``task.*``) or every event (``*``); see
        :data:`taskqueue.events.EVENT_TYPES`. A name that is none of these is refused
        (:class:`ValueError`), so a typo fails at import rather than by silence.
        """
        if not is_event_type(event_type):
            raise ValueError(f"not an event type or family: {event_type!r}")

        def register(func: _H) -> _H:
            if not callable(func):
                raise TypeError(f"a handler must be callable, not {func!r}")
            self._handlers.append((event_type, func))
            return func

        return register

    def on_task_completed(self, func: _H) -> _H:
        """Register the decorated function for ``task.completed``."""
        return self.on("task.completed")(func)

    def on_task_failed(self, func: _H) -> _H:
        """Register the decorated function for ``task.failed`` (no retries left)."""
        return self.on("task.failed")(func)

    def on_task_started(self, func: _H) -> _H:
        """Register the decorated function for ``task.started`` (an attempt began)."""
        return self.on("task.started")(func)

    def on_task_cancelled(self, func: _H) -> _H:
        """Register the decorated function for ``task.cancelled``."""
        return self.on("task.cancelled")(func)

    def handlers_for(self, event_type: str) -> list[Callable[[Event], object]]:
        """The handlers an event of ``event_type`` is given to, in the order they run."""
        return [func for pattern, func in self._handlers if _matches(pattern, event_type)]

    # -- handling a delivery -------------------------------------------------------------

    async def handle(self, payload: bytes | str, headers: Mapping[str, str]) -> WebhookReceipt:
        """Verify one delivery and run its handlers: the app's work, for any framework.

        Raises :class:`~taskqueue.errors.WebhookVerificationError` (answer its
        ``http_status``) when the delivery is not to be trusted, and whatever a handler
        raised (answer 500, so the server tries again). Otherwise the receipt's
        ``status_code`` is the status to answer.
        """
        now = time.time()
        delivery = verify_delivery(
            payload, headers, self._secrets, tolerance=self.tolerance, now=now
        )
        state = self._deliveries.begin(delivery.msg_id, now)
        if state != "new":
            return WebhookReceipt(delivery.event, delivery.msg_id, state)
        handled = False
        try:
            count = await self._dispatch(delivery.event)
            handled = True
        finally:
            # A repeat is possible until the delivery's timestamp leaves the window.
            until = max(now, delivery.timestamp) + self.tolerance
            self._deliveries.finish(delivery.msg_id, handled=handled, until=until)
        return WebhookReceipt(delivery.event, delivery.msg_id, "handled", count)

    async def _dispatch(self, event: Event) -> int:
        handlers = self.handlers_for(event.type)
        for func in handlers:
            if inspect.iscoroutinefunction(func):
                result = await func(event)
            else:
                result = await asyncio.to_thread(func, event)
            # A plain callable that returns an awaitable (a partial of a coroutine function).
            if inspect.isawaitable(result):
                await result
        return len(handlers)

    # -- the ASGI app --------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            # A websocket: closing before accepting refuses it.
            await send({"type": "websocket.close", "code": 1000})
            return
        if _route_path(scope) != self.path:
            await _respond(send, 404, _error("not_found", "nothing is served at this path"))
            return
        if scope["method"] != "POST":
            body = _error("method_not_allowed", "webhook deliveries are POSTed")
            await _respond(send, 405, body, [(b"allow", b"POST")])
            return
        headers = _headers(scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await _respond(send, 413, _too_large(self.max_body))
            return
        try:
            payload = await _read_body(receive, self.max_body)
        except _Disconnected:
            return
        if payload is None:
            await _respond(send, 413, _too_large(self.max_body))
            return
        try:
            receipt = await self.handle(payload, headers)
        except WebhookVerificationError as exc:
            kind = _KINDS.get(type(exc), "verification_failed")
            await _respond(send, exc.http_status, _error(kind, exc.message))
            return
        except Exception as exc:
            _log.exception("a webhook handler failed (webhook-id %s)", headers.get("webhook-id"))
            # The type only: the server logs the first bytes of the answer, and an exception's
            # text may hold what the receiver's owner would not show the sender.
            message = f"a handler raised {type(exc).__name__}"
            await _respond(send, 500, _error("handler_failed", message))
            return
        if receipt.outcome == "handled":
            await _respond(send, 204, b"")
        elif receipt.outcome == "duplicate":
            await _respond(send, 200, json.dumps({"duplicate": True}).encode())
        else:
            message = "a delivery of this webhook-id is being handled; try again later"
            await _respond(send, 409, _error("in_flight", message), [(b"retry-after", b"5")])

    # -- serving -------------------------------------------------------------------------

    def run(self, port: int = 8081, host: str = "127.0.0.1", *, log_level: str = "info") -> None:
        """Serve :attr:`app` with uvicorn until interrupted (SIGINT or SIGTERM).

        Needs uvicorn: ``pip install 'taskqueue-sdk[webhooks]'``. Listens on loopback by
        default; give ``host="0.0.0.0"`` to take deliveries from another machine.
        """
        try:
            import uvicorn
        except ImportError as exc:
            raise ImportError(
                "WebhookHandler.run() serves with uvicorn, which is not installed: "
                "pip install 'taskqueue-sdk[webhooks]' (or mount WebhookHandler.app in "
                "your own ASGI server)"
            ) from exc
        uvicorn.run(self.app, host=host, port=port, log_level=log_level, lifespan="on")


class _App:
    """A handler's ASGI app: an object whose ``__call__`` is a coroutine function.

    Not the bound method itself: servers tell ASGI 3 from ASGI 2 by looking for exactly that
    (uvicorn takes a bound method for an ASGI 2 app).
    """

    def __init__(self, handler: WebhookHandler) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler._asgi(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request's path below where the app is mounted (Starlette keeps the full path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in found and name == "webhook-signature":
            found[name] += " " + value
        else:
            found.setdefault(name, value)
    return found


class _Disconnected(Exception):
    """The client went away before it sent the whole body."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body; None once it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start or stop: say so, so that servers that require lifespan are content.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _error(kind: str, message: str) -> bytes:
    """The body of an error answer, in the shape of the server's own errors."""
    return json.dumps({"error": {"type": kind, "message": message}}).encode()


def _too_large(limit: int) -> bytes:
    return _error("payload_too_large", f"the body is larger than {limit} bytes")


async def _respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    # A 204 carries no Content-Length at all (RFC 9110, 8.6).
    headers = [] if status == 204 else [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
