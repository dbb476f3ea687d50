"""HTTP/1.1 on uvicorn's httptools protocol, with limits on what a connection may cost.

Uvicorn reads a request's head without bound (a 200 MB header is parsed for minutes, in memory
all along), never closes a connection that has sent nothing or half a request line, and answers
its concurrency limit in plain text. This protocol adds:

* a cap on the request head (request line and headers): a head over
  :attr:`HttpLimits.max_header_bytes` is answered 431 and the connection closed, having read at
  most one socket read past the cap;
* a deadline for the head: a connection that has not sent a whole head within
  :attr:`HttpLimits.header_timeout` of opening (or of the first byte of its next request) is
  closed, with a 408 if it had started one;
* a bound on open connections: over :attr:`HttpLimits.max_connections`, a request is answered
  503 (``Retry-After: 1``) and its connection closed; over twice that, a new connection is
  closed at once;
* every answer the protocol gives itself (400, 408, 431, 503) in the API's error shape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from taskqueue.server.errors import error_response, new_request_id

__all__ = ["HttpLimits", "LimitedHttpProtocol", "limited_protocol"]


@dataclass(frozen=True)
class HttpLimits:
    """What one connection may cost the server."""

    #: Largest request head (request line and headers), in bytes.
    max_header_bytes: int = 64 * 1024
    #: Seconds a connection has to send a whole request head.
    header_timeout: float = 10.0
    #: Connections served at once; a request on one more is answered 503.
    max_connections: int = 1000


#: Seconds a refused connection is still read (and what arrives dropped) before it is closed.
LINGER_S = 1.0
#: The log says the server is over its connection limit at most this often, in seconds.
WARN_EVERY_S = 10.0


class _Refused(Exception):
    """Raised from a parser callback: answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _busy_app(limit: int) -> Any:
    async def busy(scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        response = error_response(
            503,
            f"the server is serving its limit of {limit} connections; try again shortly",
            request_id,
            headers={"Retry-After": "1", "Connection": "close", "X-Request-ID": request_id},
        )
        await response(scope, receive, send)

    return busy


class LimitedHttpProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with :class:`HttpLimits` (see :func:`limited_protocol`)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    _warned_at: ClassVar[float] = -WARN_EVERY_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # answered here, in the API's error shape
        self._head_open = False  # between a request's first byte and the end of its headers
        self._head_bytes = 0  # of the head, counted exactly from the parser's callbacks
        self._head_reads = 0  # of the head, counted from whole reads after its first
        self._began_in_read = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Serve a new connection, or close it at once when far over the limit."""
        super().connection_made(transport)
        if len(self.connections) > 2 * self.limits.max_connections:
            self._refused = True
            self.transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection and its deadline."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, enforcing the head's size; the deadline starts with a new head."""
        if self._refused:
            return
        self._unset_keepalive_if_required()
        self._began_in_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._answer(exc.__context__.status, exc.__context__.message)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_open:
            if not self._began_in_read:
                self._head_reads += len(data)
            if max(self._head_reads, self._head_bytes) > self.limits.max_header_bytes:
                self._answer(431, self._too_large())
                return
            if self._head_timer is None:
                self._arm_head_timer()

    def on_message_begin(self) -> None:
        """A new request: its head is counted from here."""
        super().on_message_begin()
        self._head_open = True
        self._began_in_read = True
        self._head_bytes = self._head_reads = 0

    def on_url(self, url: bytes) -> None:
        """Count the request line."""
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count one header."""
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        """The head is whole: stop its clock, and answer 503 when over the connection limit."""
        self._head_open = False
        self._cancel_head_timer()
        if len(self.connections) <= self.limits.max_connections:
            super().on_headers_complete()
            return
        now = self.loop.time()
        if now - LimitedHttpProtocol._warned_at >= WARN_EVERY_S:
            LimitedHttpProtocol._warned_at = now
            self.logger.warning(
                "over the limit of %d connections: answering 503", self.limits.max_connections
            )
        app = self.app
        self.app = _busy_app(self.limits.max_connections)
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def send_400_response(self, msg: str) -> None:
        """Uvicorn's answer to a request HTTP forbids, in the API's error shape."""
        self._answer(400, "the request is not valid HTTP/1.1")

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            raise _Refused(431, self._too_large())

    def _too_large(self) -> str:
        return f"the request's headers are over the limit of {self.limits.max_header_bytes} bytes"

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a request is being answered; its successor can wait
        elif self._head_open:
            self._answer(408, f"the request's head did not arrive within {self._timeout()} s")
        else:
            self.transport.close()  # opened and never used

    def _timeout(self) -> str:
        return f"{self.limits.header_timeout:g}"

    def _answer(self, status: int, message: str) -> None:
        """Write an error answer and close.

        What the client still sends is read and dropped for a moment (a lingering close): a
        socket closed with unread data answers with a reset, which can destroy the answer
        before the client reads it.
        """
        self._refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        request_id = new_request_id()
        response = error_response(status, message, request_id)
        head = [STATUS_LINE[status]]
        for name, value in [
            *self.server_state.default_headers,
            *response.raw_headers,
            (b"connection", b"close"),
            (b"x-request-id", request_id.encode()),
        ]:
            head.append(name + b": " + value + b"\r\n")
        self.transport.write(b"".join([*head, b"\r\n", response.body]))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for these limits."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})
