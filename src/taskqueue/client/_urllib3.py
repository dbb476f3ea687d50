"""The sync client's transport: urllib3, whose thread-safe pool serves many threads at once.

Measured from 16 threads against one server, urllib3 answers about three times as many
requests a second as ``httpx.Client`` (``bench/sdk.py``). It speaks HTTP/1.1 here:
``http2=True`` uses httpx instead (``_httpx.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from taskqueue.client._wire import (
    DISCONNECTED,
    IDEMPOTENT_METHODS,
    ConnectError,
    ConnectTimeout,
    Disconnected,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    Response,
    TransportError,
    env_proxy,
    os_error_text,
    split_lines,
    was_refused,
)

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

__all__ = ["Urllib3Transport"]

#: Idle connections kept when ``max_keepalive_connections`` is None (no limit asked).
_UNLIMITED_KEEPALIVE = 1000


class _QuietPool(urllib3.HTTPConnectionPool):
    """A pool that closes a connection it has no room to keep, without logging a warning.

    Holding at most ``maxsize`` idle connections is what ``max_keepalive_connections`` asks.
    """

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        if self.pool is not None and conn is not None:
            try:
                self.pool.put(conn, block=False)
                return
            except queue.Full:
                conn.close()
                return
        super()._put_conn(conn)


class _QuietHTTPSPool(urllib3.HTTPSConnectionPool, _QuietPool):
    """:class:`_QuietPool` for https."""


def _disconnected(exc: BaseException) -> bool:
    seen: list[BaseException] = [exc, *[a for a in exc.args if isinstance(a, BaseException)]]
    current = exc.__cause__ or exc.__context__
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return any(isinstance(e, http.client.RemoteDisconnected) for e in seen)


def _mapped(exc: BaseException, url: str) -> TransportError | None:
    """The transport error a urllib3 failure is, or None if it is not one."""
    if isinstance(exc, (NewConnectionError, ProxyError)):
        return ConnectError(os_error_text(exc) or str(exc), url, refused=was_refused(exc))
    if isinstance(exc, ConnectTimeoutError):
        return ConnectTimeout(str(exc), url)
    if isinstance(exc, ReadTimeoutError):
        return ReadTimeout(str(exc), url)
    if isinstance(exc, SSLError):
        return ConnectError(str(exc), url)
    if isinstance(exc, ProtocolError):
        if _disconnected(exc):
            return Disconnected(DISCONNECTED, url)
        return ReadError(os_error_text(exc) or str(exc), url)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return TransportError(str(exc) or type(exc).__name__, url)
    if isinstance(exc, OSError):
        return ReadError(os_error_text(exc) or str(exc), url)
    return None


@contextlib.contextmanager
def _mapping(url: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _mapped(exc, url)
        if mapped is None:
            raise
        raise mapped from exc


class _Stream:
    """A streamed urllib3 answer, read as lines."""

    def __init__(self, response: urllib3.BaseHTTPResponse, method: str, url: str) -> None:
        self._response = response
        self._method = method
        self._url = url
        self.status_code: int = response.status
        #: The whole body was read: the connection may serve another request.
        self.finished = False

    def read(self) -> Response:
        with _mapping(self._url):
            content = self._response.read()
        self.finished = True
        reply = self._response
        return Response(
            reply.status, reply.reason or "", reply.headers, content, self._method, self._url
        )

    def iter_lines(self) -> Iterator[str]:
        pending = b""
        with _mapping(self._url):
            for data in self._response.stream(64 * 1024):
                lines, pending = split_lines(pending + data)
                yield from lines
        self.finished = True
        if pending:
            yield pending.decode("utf-8", "replace")


class Urllib3Transport:
    """A urllib3 pool for one server; ``max_connections`` is held by a semaphore."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_connections: int | None,
        max_keepalive_connections: int | None,
    ) -> None:
        self._headers = dict(headers)
        keep = max_keepalive_connections
        options: dict[str, Any] = {
            "maxsize": max(keep if keep is not None else _UNLIMITED_KEEPALIVE, 1),
            "block": False,
            "retries": False,
        }
        proxy = env_proxy(base_url)
        manager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )
        manager.pool_classes_by_scheme = {"http": _QuietPool, "https": _QuietHTTPSPool}
        self._manager: urllib3.PoolManager = manager
        self._slots = threading.BoundedSemaphore(max_connections) if max_connections else None
        self._timeouts: dict[float | None, urllib3.Timeout] = {}
        if max_keepalive_connections == 0:  # keep none: the server closes each connection
            self._headers["Connection"] = "close"

    def _timeout(self, seconds: float | None) -> urllib3.Timeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = urllib3.Timeout(connect=seconds, read=seconds)
        return timeout

    @contextlib.contextmanager
    def _slot(self, url: str, timeout: float | None) -> Iterator[None]:
        if self._slots is None:
            yield
            return
        if not self._slots.acquire(timeout=timeout):
            raise PoolTimeout("no connection of the pool was free in time", url)
        try:
            yield
        finally:
            self._slots.release()

    def _headers_with(self, extra: Mapping[str, str]) -> Mapping[str, str]:
        return {**self._headers, **extra} if extra else self._headers

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer.

        A connection the server closed without answering is replaced once for a request that
        may be repeated (the async transport does the same).
        """
        for last_try in (False, True):
            try:
                with self._slot(url, timeout), _mapping(url):
                    reply = self._manager.urlopen(
                        method,
                        url,
                        body=body,
                        headers=self._headers_with(headers),
                        timeout=self._timeout(timeout),
                        redirect=False,
                        retries=False,
                        preload_content=True,
                    )
                break
            except Disconnected:
                if last_try or method not in IDEMPOTENT_METHODS:
                    raise
        return Response(reply.status, reply.reason or "", reply.headers, reply.data, method, url)

    @contextlib.contextmanager
    def stream(self, method: str, url: str, connect_timeout: float | None) -> Iterator[_Stream]:
        """Send one request and read its answer as it arrives (no read timeout)."""
        with self._slot(url, connect_timeout):
            with _mapping(url):
                reply = self._manager.urlopen(
                    method,
                    url,
                    headers=self._headers,
                    timeout=urllib3.Timeout(connect=connect_timeout, read=None),
                    redirect=False,
                    retries=False,
                    preload_content=False,
                )
            stream = _Stream(reply, method, url)
            try:
                yield stream
            finally:
                if not stream.finished:  # left before the end: the connection cannot be reused
                    reply.close()
                reply.release_conn()

    def close(self) -> None:
        """Close every pooled connection."""
        self._manager.clear()
