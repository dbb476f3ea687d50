"""One HTTP/1.1 connection of the async client's transport, and reading answers from it.

A connection is an ``asyncio.Protocol`` that buffers what arrives and wakes one waiter; the
reading functions frame the buffered bytes with :mod:`._http1` and wait for more only when
what is there is not enough (an answer that arrives whole costs one wake-up).
"""

from __future__ import annotations

import asyncio
import errno
import math
import zlib
from collections.abc import AsyncIterator
from typing import cast

from taskqueue.client._http1 import (
    BodyReader,
    Framing,
    MalformedAnswer,
    ResponseHead,
    take_head,
)
from taskqueue.client._wire import (
    DISCONNECTED,
    Disconnected,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    WriteError,
    WriteTimeout,
    os_error_text,
)

__all__ = [
    "KEEPALIVE_EXPIRY_S",
    "Connection",
    "Deadlines",
    "all_refused",
    "iter_body",
    "read_body",
    "read_head",
]

#: Seconds an idle connection is kept: under uvicorn's 5 s keep-alive, so the server seldom
#: closes one just as a request goes out on it.
KEEPALIVE_EXPIRY_S = 4.0
#: Reading pauses while this much is buffered and unread (a slow consumer of a stream).
_HIGH_WATER = 1 << 20


def all_refused(exc: OSError) -> bool:
    """Whether asyncio's "Multiple exceptions: ..." (one per address tried) are all refusals."""
    text = str(exc)
    if exc.errno is not None or not text.startswith("Multiple exceptions: "):
        return False
    parts = text.removeprefix("Multiple exceptions: ").split(", [")
    return all(p.lstrip("[").startswith(f"Errno {errno.ECONNREFUSED}]") for p in parts)


class Connection(asyncio.Protocol):
    """One connection: what arrived (``buffer``), whether it closed, and one waiter."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.lost: BaseException | None = None
        self.used = 0
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        #: The read and write timeouts of this connection's event loop (set by its pool).
        self.deadlines: Deadlines | None = None

    # ------------------------------------------------------------------ asyncio's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        _wake(self._waiter)

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        _wake(self._waiter)
        _wake(self._drained)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drained)

    # ------------------------------------------------------------------ ours

    def usable(self, now: float) -> bool:
        """Whether this idle connection can carry another request."""
        transport = self.transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and not self.buffer
            and now - self.idle_since < KEEPALIVE_EXPIRY_S
        )

    def close(self) -> None:
        """Close the connection (at once: nothing on it is worth finishing)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def _wait(
        self, waiter: asyncio.Future[None], timeout: float | None, error: type, url: str
    ) -> None:
        if timeout is None:
            await waiter
            return
        deadlines = self.deadlines
        if deadlines is None:
            deadlines = self.deadlines = Deadlines(asyncio.get_running_loop())
        key = deadlines.arm(waiter, timeout, error, url)
        try:
            await waiter
        finally:
            deadlines.disarm(key, waiter)

    async def wait_data(self, timeout: float | None, url: str) -> None:
        """Return when more bytes arrived or the connection closed.

        ReadTimeout after ``timeout`` seconds with neither.
        """
        if self.closed:
            return
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._wait(self._waiter, timeout, ReadTimeout, url)
        finally:
            self._waiter = None

    async def send(self, data: bytes, timeout: float | None, url: str) -> None:
        """Write a request; wait while the kernel's buffer is full."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise Disconnected(DISCONNECTED, url)
        self.transport.write(data)
        while self._writing_paused and not self.closed:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._wait(self._drained, timeout, WriteTimeout, url)
            finally:
                self._drained = None
        if self.closed and self.lost is not None:
            raise WriteError(os_error_text(self.lost) or str(self.lost), url)

    def ended(self, url: str, started: bool) -> Exception:
        """The error of a connection that closed while an answer was awaited.

        Closed (or reset) before any byte of the answer: :class:`Disconnected`, which a reused
        connection's caller may answer by sending the request again on a new one.
        """
        reason = os_error_text(self.lost) or str(self.lost) if self.lost is not None else None
        if not started:
            return Disconnected(reason or DISCONNECTED, url)
        if reason is not None:
            return ReadError(reason, url)
        return RemoteProtocolError("the server closed the connection mid-answer", url)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Deadlines:
    """The read and write timeouts of one event loop's connections, armed in coarse steps.

    A timer for every wait would cost a heap push and leave a cancelled handle behind, for
    waits that nearly all end well before their deadline; here a wait costs a dict insert and
    removal, and one timer fires for all the deadlines that fall in the same step
    (:data:`STEP_S`), at most that much after the timeout.
    """

    STEP_S = 0.05

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._steps: dict[int, dict[asyncio.Future[None], tuple[type, str]]] = {}

    def arm(self, waiter: asyncio.Future[None], timeout: float, error: type, url: str) -> int:
        """Fail ``waiter`` with ``error`` once ``timeout`` seconds have passed; its step."""
        step = math.ceil((self.loop.time() + timeout) / self.STEP_S)
        waiters = self._steps.get(step)
        if waiters is None:
            waiters = self._steps[step] = {}
            self.loop.call_at(step * self.STEP_S, self._expire, step)
        waiters[waiter] = (error, url)
        return step

    def disarm(self, step: int, waiter: asyncio.Future[None]) -> None:
        """Forget ``waiter``'s deadline (its wait ended)."""
        waiters = self._steps.get(step)
        if waiters is not None:
            waiters.pop(waiter, None)

    def _expire(self, step: int) -> None:
        for waiter, (error, url) in self._steps.pop(step, {}).items():
            if not waiter.done():
                what = "reading the answer" if error is ReadTimeout else "sending the request"
                waiter.set_exception(error(f"timed out {what}", url))


async def read_head(conn: Connection, method: str, timeout: float | None, url: str) -> ResponseHead:
    """The next final response head on ``conn``."""
    while True:
        try:
            head = take_head(conn.buffer, method)
        except MalformedAnswer as exc:
            raise RemoteProtocolError(str(exc), url) from exc
        if head is not None:
            return head
        if conn.closed:
            raise conn.ended(url, started=bool(conn.buffer))
        await conn.wait_data(timeout, url)


async def iter_body(
    conn: Connection, head: ResponseHead, timeout: float | None, url: str
) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive, framed as the head says."""
    reader = BodyReader(head)
    while True:
        try:
            data = reader.take(conn.buffer, conn.closed and conn.lost is None)
        except MalformedAnswer as exc:
            raise RemoteProtocolError(str(exc), url) from exc
        if data:
            yield data
        elif data is not None:
            return
        elif conn.closed:
            raise conn.ended(url, started=True)
        else:
            await conn.wait_data(timeout, url)


async def read_body(conn: Connection, head: ResponseHead, timeout: float | None, url: str) -> bytes:
    """The whole body, decoded if the server compressed it."""
    if head.framing is Framing.LENGTH and len(conn.buffer) >= head.length:
        body = bytes(conn.buffer[: head.length])  # the usual case: it came with the head
        del conn.buffer[: head.length]
    else:
        body = b"".join([part async for part in iter_body(conn, head, timeout, url)])
    try:
        return head.decode(body)
    except zlib.error as exc:
        raise RemoteProtocolError(f"the answer's body does not decompress: {exc}", url) from exc
