"""httpx under either client: for HTTP/2 (``http2=True``) and for an injected ``transport``.

aiohttp and urllib3 carry the clients' requests by default (they measure faster under
concurrency); httpx is kept for what only it offers here: HTTP/2 through ``h2``, and pluggable
transports (``httpx.MockTransport``, ``httpx.ASGITransport``, a recording subclass...).
A key pair signs each request through an ``httpx.Auth`` flow, which httpx runs for every
request it sends, on the target it is about to send.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import TYPE_CHECKING

import httpx

from taskqueue.client._wire import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    TransportError,
    WriteError,
    WriteTimeout,
    os_error_text,
    split_lines,
    was_refused,
)

if TYPE_CHECKING:
    from taskqueue.client._keypair import KeyPair

__all__ = ["HttpxAsyncTransport", "HttpxSyncTransport", "SigningAuth", "limits"]

_MAPPED: tuple[tuple[type[httpx.TransportError], type[TransportError]], ...] = (
    (httpx.ConnectTimeout, ConnectTimeout),
    (httpx.PoolTimeout, PoolTimeout),
    (httpx.ReadTimeout, ReadTimeout),
    (httpx.WriteTimeout, WriteTimeout),
    (httpx.ConnectError, ConnectError),
    (httpx.RemoteProtocolError, RemoteProtocolError),
    (httpx.ReadError, ReadError),
    (httpx.WriteError, WriteError),
)


def limits(max_connections: int | None, max_keepalive_connections: int | None) -> httpx.Limits:
    """The pool limits, as httpx takes them."""
    return httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
    )


class SigningAuth(httpx.Auth):
    """Signs each request with a key pair, over the path and query httpx sends (``raw_path``)."""

    requires_request_body = True

    def __init__(self, key_pair: KeyPair) -> None:
        self._key_pair = key_pair

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the signature headers, computed now, and send the request once."""
        target = request.url.raw_path.decode("ascii")
        request.headers.update(self._key_pair.headers(request.method, target, request.content))
        yield request


def _mapped(exc: httpx.TransportError, url: str) -> TransportError:
    kind = next((ours for theirs, ours in _MAPPED if isinstance(exc, theirs)), TransportError)
    text = os_error_text(exc) if kind is ConnectError else None
    return kind(text or str(exc) or type(exc).__name__, url, refused=was_refused(exc))


@contextlib.contextmanager
def _mapping(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise _mapped(exc, url) from exc


def _response(reply: httpx.Response, method: str, url: str) -> Response:
    return Response(
        reply.status_code, reply.reason_phrase, reply.headers, reply.content, method, url
    )


class _AsyncStream:
    def __init__(self, reply: httpx.Response, method: str, url: str) -> None:
        self._reply, self._method, self._url = reply, method, url
        self.status_code: int = reply.status_code

    async def aread(self) -> Response:
        with _mapping(self._url):
            await self._reply.aread()
        return _response(self._reply, self._method, self._url)

    async def aiter_lines(self) -> AsyncIterator[str]:
        # Lines end at "\n" only: httpx's aiter_lines also ends them at U+2028 and others,
        # which JSON leaves unescaped inside strings (a command's output).
        rest = b""
        with _mapping(self._url):
            async for data in self._reply.aiter_bytes():
                lines, rest = split_lines(rest + data)
                for line in lines:
                    yield line


class _SyncStream:
    def __init__(self, reply: httpx.Response, method: str, url: str) -> None:
        self._reply, self._method, self._url = reply, method, url
        self.status_code: int = reply.status_code

    def read(self) -> Response:
        with _mapping(self._url):
            self._reply.read()
        return _response(self._reply, self._method, self._url)

    def iter_lines(self) -> Iterator[str]:
        rest = b""
        with _mapping(self._url):
            for data in self._reply.iter_bytes():
                lines, rest = split_lines(rest + data)
                yield from lines


class HttpxAsyncTransport:
    """``httpx.AsyncClient`` as the async client's transport."""

    def __init__(
        self,
        headers: Mapping[str, str],
        limits: httpx.Limits,
        *,
        http2: bool,
        transport: httpx.AsyncBaseTransport | None,
        key_pair: KeyPair | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            headers=dict(headers),
            limits=limits,
            http2=http2,
            transport=transport,
            auth=None if key_pair is None else SigningAuth(key_pair),
            verify=True if ssl_context is None else ssl_context,
        )

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer."""
        with _mapping(url):
            reply = await self._http.request(
                method, url, content=body, headers=headers, timeout=timeout
            )
        return _response(reply, method, url)

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, url: str, connect_timeout: float | None
    ) -> AsyncIterator[_AsyncStream]:
        """Send one request and read its answer as it arrives (no read timeout)."""
        timeout = httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout)
        with _mapping(url):
            async with self._http.stream(method, url, timeout=timeout) as reply:
                yield _AsyncStream(reply, method, url)

    async def aclose(self) -> None:
        """Close the pool."""
        await self._http.aclose()


class HttpxSyncTransport:
    """``httpx.Client`` as the sync client's transport."""

    def __init__(
        self,
        headers: Mapping[str, str],
        limits: httpx.Limits,
        *,
        http2: bool,
        transport: httpx.BaseTransport | None,
        key_pair: KeyPair | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._http = httpx.Client(
            headers=dict(headers),
            limits=limits,
            http2=http2,
            transport=transport,
            auth=None if key_pair is None else SigningAuth(key_pair),
            verify=True if ssl_context is None else ssl_context,
        )

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer."""
        with _mapping(url):
            reply = self._http.request(method, url, content=body, headers=headers, timeout=timeout)
        return _response(reply, method, url)

    @contextlib.contextmanager
    def stream(self, method: str, url: str, connect_timeout: float | None) -> Iterator[_SyncStream]:
        """Send one request and read its answer as it arrives (no read timeout)."""
        timeout = httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout)
        with _mapping(url), self._http.stream(method, url, timeout=timeout) as reply:
            yield _SyncStream(reply, method, url)

    def close(self) -> None:
        """Close the pool."""
        self._http.close()
