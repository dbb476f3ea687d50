"""HTTP/1.1 framing for the async client's transport, with no I/O (RFC 9112).

The request head is built from bytes made once per client; a response is read from a buffer:
its head, then its body by ``Content-Length``, chunked transfer coding, or until the server
closes. Everything here works on bytes already received, so each piece is tested alone.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "MAX_HEAD_BYTES",
    "BodyReader",
    "Framing",
    "MalformedAnswer",
    "ResponseHead",
    "encode_headers",
    "parse_head",
    "request_head",
    "take_chunk",
    "take_head",
]

#: The longest response head accepted (status line and headers).
MAX_HEAD_BYTES = 64 * 1024
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TOKEN_TEXT = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
#: Methods that send ``Content-Length: 0`` when they carry no body (as httpx does).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class MalformedAnswer(ValueError):
    """The bytes the server sent are not an HTTP/1.1 response."""


class Framing(str, Enum):
    """How a response's body ends."""

    NONE = "none"  # no body (1xx, 204, 304, HEAD)
    LENGTH = "length"  # after Content-Length bytes
    CHUNKED = "chunked"  # after the last chunk
    CLOSE = "close"  # when the server closes the connection


@dataclass(frozen=True)
class ResponseHead:
    """A response's status line and headers (names lower-cased, repeats joined by ``, ``)."""

    status: int
    reason: str
    headers: dict[str, str]
    framing: Framing
    length: int
    #: Whether the connection may carry another request after this response.
    keep_alive: bool

    def decode(self, body: bytes) -> bytes:
        """The body without a ``Content-Encoding`` of gzip or deflate (none is asked for)."""
        coding = self.headers.get("content-encoding", "").strip().lower()
        if coding == "gzip":
            return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
        if coding == "deflate":
            return zlib.decompress(body)
        return body


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines as bytes, refusing a name or value that would break the message."""
    lines = []
    for name, value in headers.items():
        if not _TOKEN.match(name.encode("latin-1", "replace")) or _BAD_VALUE.search(value):
            raise ValueError(f"header {name!r} has a name or value that cannot be sent")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def request_head(
    method: str, target: str, host: bytes, fixed: bytes, extra: bytes, body: bytes | None
) -> bytes:
    """The head of a request: request line, ``Host``, the client's headers, this request's."""
    if body is not None:
        length = b"Content-Length: %d\r\n" % len(body)
    elif method in _BODY_METHODS:
        length = b"Content-Length: 0\r\n"
    else:
        length = b""
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n" % (
        method.encode("ascii"),
        target.encode("ascii"),
        host,
        fixed,
        extra,
        length,
    )


def _headers(block: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split("\r\n") if block else ():
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN_TEXT.match(name):  # a folded line starts with a space
            raise MalformedAnswer(f"malformed header line {line[:100]!r}")
        key = name.lower()
        text = value.strip(" \t")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _framing(status: int, method: str, headers: dict[str, str]) -> tuple[Framing, int]:
    if method == "HEAD" or status < 200 or status in (204, 304):
        return Framing.NONE, 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.replace(" ", "").lower().split(",")[-1] != "chunked":
            return Framing.CLOSE, 0
        return Framing.CHUNKED, 0
    length = headers.get("content-length")
    if length is None:
        return Framing.CLOSE, 0
    values = {v.strip() for v in length.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise MalformedAnswer(f"bad Content-Length {length!r}")
    return Framing.LENGTH, int(next(iter(values)))


def parse_head(data: bytes, method: str) -> ResponseHead:
    """A response head (the bytes before the blank line that ends it)."""
    status_line, _, block = data.partition(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise MalformedAnswer(f"not an HTTP/1.1 response: {status_line[:100]!r}")
    status = int(code)
    headers = _headers(block.decode("latin-1"))
    framing, length = _framing(status, method, headers)
    connection = headers.get("connection", "").lower()
    keep_alive = (
        framing is not Framing.CLOSE
        and "close" not in connection
        and (version == b"HTTP/1.1" or "keep-alive" in connection)
    )
    return ResponseHead(status, reason.decode("latin-1"), headers, framing, length, keep_alive)


def take_chunk(buffer: bytearray) -> tuple[bytes | None, bool]:
    """Take one chunk of a chunked body off the front of ``buffer``.

    ``(data, False)`` for a chunk, ``(b"", True)`` for the last one (its trailers dropped), and
    ``(None, False)`` when the buffer does not hold a whole chunk yet.
    """
    end = buffer.find(b"\r\n")
    if end < 0:
        if len(buffer) > 1024:
            raise MalformedAnswer("chunk size line too long")
        return None, False
    size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
    if not _HEX.match(size_text):
        raise MalformedAnswer(f"bad chunk size {size_text[:20]!r}")
    size = int(size_text, 16)
    if size == 0:
        if buffer[end : end + 4] == b"\r\n\r\n":
            del buffer[: end + 4]
            return b"", True
        trailers_end = buffer.find(b"\r\n\r\n", end)
        if trailers_end < 0:
            return None, False
        del buffer[: trailers_end + 4]
        return b"", True
    start, stop = end + 2, end + 2 + size
    if len(buffer) < stop + 2:
        return None, False
    if buffer[stop : stop + 2] != b"\r\n":
        raise MalformedAnswer("a chunk does not end where its size says")
    data = bytes(buffer[start:stop])
    del buffer[: stop + 2]
    return data, False


def take_head(buffer: bytearray, method: str) -> ResponseHead | None:
    """Take the next final response head off the front of ``buffer``.

    An informational 1xx head before it is dropped; None if it has not all arrived yet.
    """
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise MalformedAnswer("the answer's head is too long")
            return None
        head = parse_head(bytes(buffer[:end]), method)
        del buffer[: end + 4]
        if not 100 <= head.status < 200 or head.status == 101:
            return head


class BodyReader:
    """Takes a response's body off a buffer piece by piece, framed as its head says.

    The clients' transports feed the buffer from their connections as bytes arrive.
    """

    def __init__(self, head: ResponseHead) -> None:
        self.head = head
        self.remaining = head.length
        self.done = head.framing is Framing.NONE or (
            head.framing is Framing.LENGTH and head.length == 0
        )

    def take(self, buffer: bytearray, closed: bool) -> bytes | None:
        """The next piece of the body, ``b""`` once it has ended, or None for "wait for more".

        ``closed``: the server closed the connection cleanly, which ends a body framed by
        closing and cuts any other short (:class:`MalformedAnswer`).
        """
        if self.done:
            return b""
        framing = self.head.framing
        if framing is Framing.CHUNKED:
            data, last = take_chunk(buffer)
            if last:
                self.done = True
                return b""
            if data is not None:
                return data
        elif buffer:
            size = len(buffer) if framing is Framing.CLOSE else min(self.remaining, len(buffer))
            data = bytes(buffer[:size])
            del buffer[:size]
            if framing is Framing.LENGTH:
                self.remaining -= size
                self.done = not self.remaining
            return data
        if closed:
            if framing is not Framing.CLOSE:
                raise MalformedAnswer("the server closed the connection mid-answer")
            self.done = True
            return b""
        return None
