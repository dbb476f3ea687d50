"""The sync client's transport: HTTP/1.1 on plain sockets, shared safely by many threads.

From 16 threads, urllib3 spent ~300 µs of CPU on a request and httpx's sync client ~800
(http.client parses headers through the email package; both check, log and wrap a lot); the
same exchange framed by ``_http1.py`` on a socket costs ~60 µs (``bench/sdk.py``). Sockets are
pooled under a semaphore (at most ``max_connections`` in use, at most
``max_keepalive_connections`` kept idle, each for up to 4 s, and none reused that the server
has closed); the socket timeout bounds each connect, send and read. HTTP/1.1 only:
``http2=True``, an httpx transport and proxies go through httpx (``_connect.py``). With a key
pair, each request's head is signed as it is built (every attempt afresh).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from taskqueue.client._http1 import (
    BodyReader,
    Framing,
    MalformedAnswer,
    ResponseHead,
    encode_headers,
    request_head,
    take_head,
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
    RemoteProtocolError,
    Response,
    WriteError,
    WriteTimeout,
    os_error_text,
    split_lines,
    was_refused,
)

if TYPE_CHECKING:
    from taskqueue.client._keypair import KeyPair

__all__ = ["SocketTransport"]

#: Seconds an idle connection is kept (under uvicorn's 5 s keep-alive, as the async side).
KEEPALIVE_EXPIRY_S = 4.0
_READ_SIZE = 64 * 1024


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read: the server closed it, or sent junk."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])  # pragma: no cover - Windows


class _Conn:
    """One socket, what it has received, and how much it has served."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.closed = False
        self.used = 0
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        return now - self.idle_since < KEEPALIVE_EXPIRY_S and not _readable(self.sock)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes, timeout: float | None, url: str) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise WriteTimeout("timed out sending the request", url) from None
        except OSError as exc:
            if self.used > 1:  # a reused socket the server had closed: the request was not read
                raise Disconnected(DISCONNECTED, url) from exc
            raise WriteError(os_error_text(exc) or str(exc), url) from exc

    def fill(self, timeout: float | None, url: str, started: bool) -> None:
        """Receive more bytes into the buffer; at the end, mark the connection closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(_READ_SIZE)
        except TimeoutError:
            raise ReadTimeout("timed out reading the answer", url) from None
        except OSError as exc:
            reason = os_error_text(exc) or str(exc)
            if not started and not self.buffer:  # reset before any byte of the answer
                raise Disconnected(reason, url) from exc
            raise ReadError(reason, url) from exc
        if data:
            self.buffer += data
            return
        self.closed = True
        if not started and not self.buffer:
            raise Disconnected(DISCONNECTED, url)

    def read_head(self, method: str, timeout: float | None, url: str) -> ResponseHead:
        while True:
            try:
                head = take_head(self.buffer, method)
            except MalformedAnswer as exc:
                raise RemoteProtocolError(str(exc), url) from exc
            if head is not None:
                return head
            if self.closed:
                raise RemoteProtocolError("the server closed the connection mid-answer", url)
            self.fill(timeout, url, started=bool(self.buffer))

    def iter_body(self, head: ResponseHead, timeout: float | None, url: str) -> Iterator[bytes]:
        reader = BodyReader(head)
        while True:
            try:
                data = reader.take(self.buffer, self.closed)
            except MalformedAnswer as exc:
                raise RemoteProtocolError(str(exc), url) from exc
            if data:
                yield data
            elif data is not None:
                return
            else:
                self.fill(timeout, url, started=True)

    def read_body(self, head: ResponseHead, timeout: float | None, url: str) -> bytes:
        if head.framing is Framing.LENGTH and len(self.buffer) >= head.length:
            body = bytes(self.buffer[: head.length])
            del self.buffer[: head.length]
        else:
            body = b"".join(self.iter_body(head, timeout, url))
        try:
            return head.decode(body)
        except zlib.error as exc:
            raise RemoteProtocolError(f"the answer's body does not decompress: {exc}", url) from exc


class _Stream:
    """A streamed answer: read whole, or line by line as it arrives (no read timeout)."""

    def __init__(self, conn: _Conn, head: ResponseHead, method: str, url: str) -> None:
        self._conn, self._head, self._method, self._url = conn, head, method, url
        self.status_code: int = head.status
        self.finished = False

    def read(self) -> Response:
        content = self._conn.read_body(self._head, None, self._url)
        self.finished = True
        head = self._head
        return Response(head.status, head.reason, head.headers, content, self._method, self._url)

    def iter_lines(self) -> Iterator[str]:
        pending = b""
        for data in self._conn.iter_body(self._head, None, self._url):
            lines, pending = split_lines(pending + data)
            yield from lines
        self.finished = True
        if pending:
            yield pending.decode("utf-8", "replace")


class SocketTransport:
    """The sync client's HTTP/1.1 transport: a pool of sockets to one server."""

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
        self._host = parts.hostname or ""
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc.rpartition("@")[2].encode("idna")
        self._fixed = encode_headers(headers)
        self._slots = threading.BoundedSemaphore(max_connections) if max_connections else None
        self._keepalive = max_keepalive_connections
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = ssl_context
        self._key_pair = key_pair
        self._closed = False

    # ------------------------------------------------------------------ the pool

    def _connect(self, timeout: float | None, url: str) -> _Conn:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=timeout)
        except TimeoutError:
            raise ConnectTimeout("timed out while connecting", url) from None
        except OSError as exc:
            text = os_error_text(exc) or str(exc)
            raise ConnectError(text, url, refused=was_refused(exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            with self._lock:
                if self._context is None:
                    self._context = ssl.create_default_context()
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self._host)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                sock.close()
                raise ConnectError(str(exc), url) from exc
            except TimeoutError:
                sock.close()
                raise ConnectTimeout("timed out in the TLS handshake", url) from None
        return _Conn(sock)

    def _acquire(self, timeout: float | None, url: str) -> _Conn:
        if self._slots is not None and not self._slots.acquire(timeout=timeout):
            raise PoolTimeout("no connection of the pool was free in time", url)
        try:
            now = time.monotonic()
            while True:
                with self._lock:
                    conn = self._idle.pop() if self._idle else None
                if conn is None:
                    return self._connect(timeout, url)
                if conn.usable(now):
                    return conn
                conn.close()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def _release(self, conn: _Conn, reusable: bool) -> None:
        if self._slots is not None:
            self._slots.release()
        with self._lock:
            room = self._keepalive is None or len(self._idle) < self._keepalive
            if reusable and room and not self._closed and not conn.closed:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
                return
        conn.close()

    # ------------------------------------------------------------------ requests

    def _head(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        target = self._prefix + url[len(self._base) :] if url.startswith(self._base) else url
        target = target or "/"
        if self._key_pair is not None:
            headers = {**headers, **self._key_pair.headers(method, target, body)}
        extra = encode_headers(headers) if headers else b""
        head = request_head(method, target, self._host_header, self._fixed, extra, body)
        return head + body if body else head

    def _exchange(
        self,
        method: str,
        url: str,
        request: tuple[Mapping[str, str], bytes | None],
        timeout: float | None,
        read_timeout: float | None,
    ) -> tuple[_Conn, ResponseHead]:
        """Send a request and read its answer's head: the connection (still held) and the head.

        A reused connection that the server had closed (no byte of an answer) is replaced once
        for a request that may be repeated (its head made again: a fresh signature).
        """
        for last_try in (False, True):
            data = self._head(method, url, *request)
            conn = self._acquire(timeout, url)
            conn.used += 1
            try:
                conn.send(data, timeout, url)
                return conn, conn.read_head(method, read_timeout, url)
            except Disconnected:
                self._release(conn, False)
                if last_try or conn.used == 1 or method not in IDEMPOTENT_METHODS:
                    raise
            except BaseException:
                self._release(conn, False)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request and read its whole answer."""
        conn, head = self._exchange(method, url, (headers, body), timeout, timeout)
        reusable = False
        try:
            content = conn.read_body(head, timeout, url)
            reusable = head.keep_alive and not conn.buffer
        finally:
            self._release(conn, reusable)
        return Response(head.status, head.reason, head.headers, content, method, url)

    @contextlib.contextmanager
    def stream(self, method: str, url: str, connect_timeout: float | None) -> Iterator[_Stream]:
        """Send one request and read its answer as it arrives (no read timeout)."""
        conn, head = self._exchange(method, url, ({}, None), connect_timeout, None)
        reply = _Stream(conn, head, method, url)
        try:
            yield reply
        finally:
            self._release(conn, reply.finished and head.keep_alive and not conn.buffer)

    def close(self) -> None:
        """Close every idle connection; those in use close when their answer is read."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
