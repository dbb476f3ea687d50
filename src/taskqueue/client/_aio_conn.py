"""One HTTP/1.1 connection of the async client's transport, and reading answers from it.

A connection is an ``asyncio.Protocol`` that buffers what arrives and wakes one waiter; the
reading functions frame the buffered bytes with :mod:`._http1` and wait for more only when
what is there is not enough (an answer that arrives whole costs one wake-up).
"""

from __future__ import annotations

import asyncio
import errno
import zlib
from collections.abc import AsyncIterator
from typing import cast

from taskqueue.client._http1 import (
    MAX_HEAD_BYTES,
    Framing,
    MalformedAnswer,
    ResponseHead,
    parse_head,
    take_chunk,
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
        loop = asyncio.get_running_loop()
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, waiter, error, url)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()

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
        """The error of a connection that closed while an answer was awaited."""
        if self.lost is not None:
            return ReadError(os_error_text(self.lost) or str(self.lost), url)
        if not started:
            return Disconnected(DISCONNECTED, url)
        return RemoteProtocolError("the server closed the connection mid-answer", url)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], error: type, url: str) -> None:
    if not waiter.done():
        what = "reading the answer" if error is ReadTimeout else "sending the request"
        waiter.set_exception(error(f"timed out {what}", url))


async def read_head(conn: Connection, method: str, timeout: float | None, url: str) -> ResponseHead:
    """The next final response head on ``conn`` (informational 1xx heads are skipped)."""
    while True:
        end = conn.buffer.find(b"\r\n\r\n")
        if end >= 0:
            try:
                head = parse_head(bytes(conn.buffer[:end]), method)
            except MalformedAnswer as exc:
                raise RemoteProtocolError(str(exc), url) from exc
            del conn.buffer[: end + 4]
            if 100 <= head.status < 200 and head.status != 101:
                continue
            return head
        if len(conn.buffer) > MAX_HEAD_BYTES:
            raise RemoteProtocolError("the answer's head is too long", url)
        if conn.closed:
            raise conn.ended(url, started=bool(conn.buffer))
        await conn.wait_data(timeout, url)


async def iter_body(
    conn: Connection, head: ResponseHead, timeout: float | None, url: str
) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive, framed as the head says."""
    if head.framing is Framing.NONE:
        return
    remaining = head.length
    while head.framing is not Framing.LENGTH or remaining:
        if head.framing is Framing.CHUNKED:
            try:
                data, last = take_chunk(conn.buffer)
            except MalformedAnswer as exc:
                raise RemoteProtocolError(str(exc), url) from exc
            if last:
                return
        elif conn.buffer:
            take = (
                len(conn.buffer)
                if head.framing is Framing.CLOSE
                else min(remaining, len(conn.buffer))
            )
            data = bytes(conn.buffer[:take])
            del conn.buffer[:take]
            remaining -= take
        else:
            data = None
        if data:
            yield data
            continue
        if conn.closed:
            if head.framing is Framing.CLOSE and conn.lost is None:
                return
            raise conn.ended(url, started=True)
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
