"""What a transport hands the clients' core: answers, transport errors and encoded requests.

The clients run on different HTTP libraries (aiohttp under the async client, urllib3 under the
sync one, httpx for HTTP/2 or an injected transport); each transport turns its library's
answers and failures into these types, so the retry rules, the error mapping and every message
are decided once (``_base.py``) whatever carried the request. Nothing here does I/O.
"""

from __future__ import annotations

import errno
import json as _json
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

__all__ = [
    "DISCONNECTED",
    "IDEMPOTENT_METHODS",
    "AsyncStream",
    "AsyncTransport",
    "ConnectError",
    "ConnectTimeout",
    "Disconnected",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
    "SyncStream",
    "SyncTransport",
    "TimeoutException",
    "TransportError",
    "WriteError",
    "WriteTimeout",
    "encode_body",
    "encode_url",
    "env_proxy",
    "os_error_text",
    "split_lines",
    "was_refused",
]

#: Methods that may be sent again when the first try never reached the server's handler.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: What a server that closed without answering is said to have done (httpx's words).
DISCONNECTED = "Server disconnected without sending a response."
#: Characters left as they are in a path (the rest is percent-encoded, as httpx does).
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers (case-insensitive lookups) and the body read whole."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    content: bytes
    method: str
    url: str

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        return _json.loads(self.content)

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the URL asked."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def path(self) -> str:
        """The path of the URL asked."""
        return urlsplit(self.url).path


class TransportError(Exception):
    """A request that did not get a complete answer; ``host`` is the server's host name."""

    def __init__(self, message: str, url: str = "", *, refused: bool = False) -> None:
        super().__init__(message)
        self.url = url
        #: The connection was refused (nothing listens on that port).
        self.refused = refused

    @property
    def host(self) -> str:
        """The host the request went to ("" when unknown)."""
        return urlsplit(self.url).hostname or ""


class ConnectError(TransportError):
    """No connection could be made: the request was never sent."""


class TimeoutException(TransportError):
    """A timeout; the subclass says which phase."""


class ConnectTimeout(TimeoutException):
    """Connecting took longer than the timeout: the request was never sent."""


class PoolTimeout(TimeoutException):
    """No connection of the pool was free within the timeout: the request was never sent."""


class ReadTimeout(TimeoutException):
    """The answer did not come within the timeout: the server may have acted on the request."""


class WriteTimeout(TimeoutException):
    """Sending the request took longer than the timeout."""


class ReadError(TransportError):
    """The connection failed while the answer was awaited or read."""


class WriteError(TransportError):
    """The connection failed while the request was being sent."""


class RemoteProtocolError(TransportError):
    """The server closed the connection without a (complete, well-formed) answer."""


class Disconnected(RemoteProtocolError):
    """The connection closed before any byte of the answer.

    On a reused connection that is most likely the server's keep-alive timeout closing it as
    the request went out: the request was not read, and one that may be repeated is sent
    again on a new connection at once.
    """


def _errno_text(code: int, strerror: str | None) -> str:
    if code < 0 and strerror:  # resolver errors (socket.gaierror) carry their own text
        return f"[Errno {code}] {strerror}"
    return f"[Errno {code}] {os.strerror(code)}"


def os_error_text(error: BaseException) -> str | None:
    """``[Errno N] text`` of the first OS error in ``error``'s chain, as httpx words it.

    Every transport reports a failed connection in these words, so both clients say the same
    thing for the same cause (aiohttp's and urllib3's own messages differ).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    # An ssl error is an OSError whose errno (1) is not its cause: its own words say more
    # ("CERTIFICATE_VERIFY_FAILED", not "Operation not permitted"). Only a process that
    # imported ssl can have one, so this module need not import it.
    ssl = sys.modules.get("ssl")
    tls_error: type[BaseException] | None = getattr(ssl, "SSLError", None)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if tls_error is not None and isinstance(current, tls_error):
            return None
        if isinstance(current, socket.gaierror) and current.errno is not None:
            return _errno_text(current.errno, current.strerror)
        if isinstance(current, OSError) and current.errno:
            return _errno_text(current.errno, current.strerror)
        current = current.__cause__ or current.__context__
    return None


def was_refused(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a refused connection."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, OSError) and current.errno == errno.ECONNREFUSED:
            return True
        if isinstance(current, TransportError) and current.refused:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def split_lines(data: bytes) -> tuple[list[str], bytes]:
    """The complete lines in ``data`` (decoded, without line ends) and the unfinished rest."""
    *lines, rest = data.split(b"\n")
    return [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines], rest


def env_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url``, as httpx would use it; None for none.

    ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``ALL_PROXY``, unless ``NO_PROXY`` covers the host.
    """
    import urllib.request

    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _param(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


def encode_url(base_url: str, path: str, params: Mapping[str, Any] | None = None) -> str:
    """The full URL of a request: base, percent-encoded path, and the query.

    The query is built as httpx builds it (booleans as ``true``/``false``).
    """
    url = base_url + quote(path, safe=_PATH_SAFE)
    if params:
        url += "?" + urlencode([(k, _param(v)) for k, v in params.items()])
    return url


def encode_body(body: Any) -> bytes | None:
    """A JSON body as compact UTF-8 bytes (``None``: no body)."""
    if body is None:
        return None
    return _json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class AsyncStream(Protocol):
    """A streamed answer being read (the async client's log follow)."""

    status_code: int

    async def aread(self) -> Response:
        """The rest of the body, read whole, as a :class:`Response`."""
        ...

    def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines as they arrive (without their line ends)."""
        ...


class SyncStream(Protocol):
    """A streamed answer being read (the sync client's log follow)."""

    status_code: int

    def read(self) -> Response:
        """The rest of the body, read whole, as a :class:`Response`."""
        ...

    def iter_lines(self) -> Iterator[str]:
        """The body's lines as they arrive (without their line ends)."""
        ...


class AsyncTransport(Protocol):
    """What the async client needs of an HTTP library."""

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer; raise a :class:`TransportError`."""
        ...

    def stream(
        self, method: str, url: str, connect_timeout: float | None
    ) -> AbstractAsyncContextManager[AsyncStream]:
        """Send one request and read its answer as it comes, with no read timeout."""
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...


class SyncTransport(Protocol):
    """What the sync client needs of an HTTP library."""

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer; raise a :class:`TransportError`."""
        ...

    def stream(
        self, method: str, url: str, connect_timeout: float | None
    ) -> AbstractContextManager[SyncStream]:
        """Send one request and read its answer as it comes, with no read timeout."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...
