"""The async client's transport: HTTP/1.1 on asyncio's own protocols, with a pool that scales.

Measured with 100 requests in flight (``bench/sdk.py``): httpx's async pool loses throughput as
concurrency rises (encode/httpx#3215) and h11 alone spends ~110 µs on one exchange; aiohttp
scales but adds ~10 MB to the process. This transport needs neither: connections are asyncio
protocols (``_aio_conn.py``), framed by ``_http1.py``, pooled here under a semaphore (at most
``max_connections``, at most ``max_keepalive_connections`` kept idle, each for up to 4 s).
It speaks HTTP/1.1 only; ``http2=True`` and proxies go through httpx (``_connect.py``).
With a key pair, each request's head is signed as it is built (every attempt afresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from taskqueue.client._aio_conn import (
    Connection,
    Deadlines,
    all_refused,
    iter_body,
    read_body,
    read_head,
)
from taskqueue.client._http1 import ResponseHead, encode_headers, request_head
from taskqueue.client._wire import (
    IDEMPOTENT_METHODS,
    ConnectError,
    ConnectTimeout,
    Disconnected,
    PoolTimeout,
    Response,
    os_error_text,
    split_lines,
    was_refused,
)

if TYPE_CHECKING:
    from taskqueue.client._keypair import KeyPair

__all__ = ["AsyncioTransport"]


class _Pool:
    """The connections of one event loop: at most ``limit`` in use, ``keepalive`` idle."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int | None, keepalive: int | None):
        self.loop = loop
        self.slots = asyncio.Semaphore(limit) if limit else None
        self.keepalive = keepalive
        self.idle: list[Connection] = []
        self.closed = False
        self.deadlines = Deadlines(loop)

    async def acquire(self, timeout: float | None, url: str, connect: _Connector) -> Connection:
        """A connection for one request: an idle one, or a new one.

        PoolTimeout if none frees up within ``timeout``.
        """
        if self.slots is not None:
            if self.slots.locked():
                try:
                    await asyncio.wait_for(self.slots.acquire(), timeout)
                except asyncio.TimeoutError:
                    raise PoolTimeout("no connection of the pool was free in time", url) from None
            else:
                await self.slots.acquire()
        try:
            now = time.monotonic()
            while self.idle:
                conn = self.idle.pop()
                if conn.usable(now):
                    return conn
                conn.close()
            conn = await connect(self.loop, timeout, url)
            conn.deadlines = self.deadlines
            return conn
        except BaseException:
            if self.slots is not None:
                self.slots.release()
            raise

    def release(self, conn: Connection, reusable: bool) -> None:
        """Give a connection back: kept idle if it may carry another request and there is room."""
        if self.slots is not None:
            self.slots.release()
        room = self.keepalive is None or len(self.idle) < self.keepalive
        if reusable and room and not self.closed and not conn.closed:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connections; those in use close when they are given back."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            with contextlib.suppress(RuntimeError):  # made on an event loop now closed
                conn.close()


class _Connector:
    """Opens connections to one server (TCP, TLS for https)."""

    def __init__(self, base_url: str, context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        try:
            ipaddress.ip_address(self.host)
            self.literal = True
        except ValueError:
            self.literal = False
        self._context: ssl.SSLContext | None = context

    async def __call__(
        self, loop: asyncio.AbstractEventLoop, timeout: float | None, url: str
    ) -> Connection:
        conn = Connection()
        if self.tls and self._context is None:
            self._context = ssl.create_default_context()
        connecting = loop.create_connection(
            lambda: conn,
            self.host,
            self.port,
            ssl=self._context if self.tls else None,
            happy_eyeballs_delay=None if self.literal else 0.25,
        )
        try:
            await asyncio.wait_for(connecting, timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout("timed out while connecting", url) from None
        except ssl.SSLError as exc:
            raise ConnectError(str(exc), url) from exc
        except OSError as exc:
            if all_refused(exc):  # every address refused: a refusal, as for a single address
                cause = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
                cause.__cause__ = exc
                raise ConnectError(str(os_error_text(cause)), url, refused=True) from cause
            text = os_error_text(exc) or str(exc)
            raise ConnectError(text, url, refused=was_refused(exc)) from exc
        return conn


class _Stream:
    """A streamed answer: read whole, or line by line as it arrives (no read timeout)."""

    def __init__(self, conn: Connection, head: ResponseHead, method: str, url: str) -> None:
        self._conn, self._head, self._method, self._url = conn, head, method, url
        self.status_code: int = head.status
        #: The whole body was read: the connection may carry another request.
        self.finished = False

    async def aread(self) -> Response:
        content = await read_body(self._conn, self._head, None, self._url)
        self.finished = True
        head = self._head
        return Response(head.status, head.reason, head.headers, content, self._method, self._url)

    async def aiter_lines(self) -> AsyncIterator[str]:
        pending = b""
        async for data in iter_body(self._conn, self._head, None, self._url):
            lines, pending = split_lines(pending + data)
            for line in lines:
                yield line
        self.finished = True
        if pending:
            yield pending.decode("utf-8", "replace")


class AsyncioTransport:
    """The async client's HTTP/1.1 transport: one pool per event loop, made on first use."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_connections: int | None,
        max_keepalive_connections: int | None,
        key_pair: KeyPair | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self._base = base_url
        self._prefix = parts.path
        netloc = parts.netloc.rpartition("@")[2]
        self._host_header = netloc.encode("idna")
        self._fixed = encode_headers(headers)
        self._limit = max_connections
        self._keepalive = max_keepalive_connections
        self._connect = _Connector(base_url, ssl_context)
        self._key_pair = key_pair
        self._pool: _Pool | None = None

    def _current(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:  # made on another event loop, which cannot serve this one
                pool.close()
            pool = self._pool = _Pool(loop, self._limit, self._keepalive)
        return pool

    def _head(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        if url.startswith(self._base):
            target = self._prefix + url[len(self._base) :]
        else:  # pragma: no cover - the clients only ask for their own server's URLs
            parts = urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        target = target or "/"
        if self._key_pair is not None:
            headers = {**headers, **self._key_pair.headers(method, target, body)}
        extra = encode_headers(headers) if headers else b""
        head = request_head(method, target, self._host_header, self._fixed, extra, body)
        return head + body if body else head

    async def _exchange(
        self,
        pool: _Pool,
        method: str,
        url: str,
        request: tuple[Mapping[str, str], bytes | None],
        timeouts: tuple[float | None, float | None],
    ) -> tuple[Connection, ResponseHead]:
        """Send a request and read its answer's head: the connection (still held) and the head.

        A reused connection that the server had closed (no byte of an answer) is replaced once
        for a request that may be repeated (its head made again: a fresh signature).
        """
        timeout, read_timeout = timeouts
        for fresh_retry in (False, True):
            data = self._head(method, url, *request)
            conn = await pool.acquire(timeout, url, self._connect)
            reused = conn.used > 0
            conn.used += 1
            try:
                await conn.send(data, timeout, url)
                return conn, await read_head(conn, method, read_timeout, url)
            except Disconnected:
                pool.release(conn, False)
                if fresh_retry or not reused or method not in IDEMPOTENT_METHODS:
                    raise
            except BaseException:
                pool.release(conn, False)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer."""
        pool = self._current()
        conn, head = await self._exchange(pool, method, url, (headers, body), (timeout, timeout))
        reusable = False
        try:
            content = await read_body(conn, head, timeout, url)
            reusable = head.keep_alive and not conn.buffer
        finally:
            pool.release(conn, reusable)
        return Response(head.status, head.reason, head.headers, content, method, url)

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, url: str, connect_timeout: float | None
    ) -> AsyncIterator[_Stream]:
        """Send one request and read its answer as it arrives (no read timeout)."""
        pool = self._current()
        conn, head = await self._exchange(pool, method, url, ({}, None), (connect_timeout, None))
        reply = _Stream(conn, head, method, url)
        try:
            yield reply
        finally:
            pool.release(conn, reply.finished and head.keep_alive and not conn.buffer)

    async def aclose(self) -> None:
        """Close every idle connection; those in use close when their answer is read."""
        if self._pool is not None:
            self._pool.close()
