"""HTTP/1.1 framing of the async transport, on bytes alone: heads, bodies, chunks, headers."""

from __future__ import annotations

import gzip
import zlib

import pytest

from taskqueue.client._http1 import (
    Framing,
    MalformedAnswer,
    encode_headers,
    parse_head,
    request_head,
    take_chunk,
)


def test_a_request_head_carries_host_the_clients_headers_and_the_length() -> None:
    fixed = encode_headers({"User-Agent": "tq", "Accept": "application/json"})
    head = request_head("POST", "/api/tasks?x=1", b"h:1", fixed, b"Idempotency-Key: k\r\n", b"{}")
    assert head == (
        b"POST /api/tasks?x=1 HTTP/1.1\r\nHost: h:1\r\nUser-Agent: tq\r\n"
        b"Accept: application/json\r\nIdempotency-Key: k\r\nContent-Length: 2\r\n\r\n"
    )
    assert b"Content-Length: 0\r\n" in request_head("POST", "/x", b"h", b"", b"", None)
    assert b"Content-Length" not in request_head("GET", "/x", b"h", b"", b"", None)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Key": "a\r\nInjected: 1"},
        {"Bad Name": "v"},
        {"X-Key": "nul\x00"},
        {"": "v"},
        {"X-Key\n": "v"},
    ],
)
def test_headers_that_would_break_the_message_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        encode_headers(headers)


def test_a_head_with_a_length_keeps_the_connection() -> None:
    head = parse_head(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
        b"X-Request-ID: r1\r\nSet-Cookie: a\r\nSet-Cookie: b",
        "POST",
    )
    assert (head.status, head.reason, head.framing, head.length) == (
        201,
        "Created",
        Framing.LENGTH,
        12,
    )
    assert head.keep_alive
    assert head.headers["x-request-id"] == "r1"
    assert head.headers["set-cookie"] == "a, b"


@pytest.mark.parametrize(
    ("raw", "method", "framing", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "GET", Framing.CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked", "GET", Framing.CHUNKED, True),
        (b"HTTP/1.1 200 OK", "GET", Framing.CLOSE, False),
        (b"HTTP/1.1 204 No Content", "DELETE", Framing.NONE, True),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5", "GET", Framing.NONE, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5", "HEAD", Framing.NONE, True),
        (b"HTTP/1.1 100 Continue", "POST", Framing.NONE, True),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close",
            "GET",
            Framing.LENGTH,
            False,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1", "GET", Framing.LENGTH, False),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive",
            "GET",
            Framing.LENGTH,
            True,
        ),
        (b"HTTP/1.1 200\r\nContent-Length: 3, 3", "GET", Framing.LENGTH, True),
    ],
)
def test_how_a_body_ends(raw: bytes, method: str, framing: Framing, keep_alive: bool) -> None:
    head = parse_head(raw, method)
    assert (head.framing, head.keep_alive) == (framing, keep_alive)


@pytest.mark.parametrize(
    "raw",
    [
        b"SPDY/3 200 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\nBad Name: x",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded: continuation",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
    ],
)
def test_a_malformed_head_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        parse_head(raw, "GET")


def test_chunks_are_taken_as_they_complete() -> None:
    buffer = bytearray(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT")
    assert take_chunk(buffer) == (b"hello", False)
    assert take_chunk(buffer) == (b" world", False)
    assert take_chunk(buffer) == (b"", True)
    assert buffer == b"NEXT"  # what follows the body stays for the next answer
    partial = bytearray(b"a\r\n01234")
    assert take_chunk(partial) == (None, False)
    partial += b"56789\r\n0\r\n"
    assert take_chunk(partial) == (b"0123456789", False)
    assert take_chunk(partial) == (None, False)  # the last chunk's blank line is not in yet
    partial += b"\r\n"
    assert take_chunk(partial) == (b"", True)


@pytest.mark.parametrize(
    "raw", [b"zz\r\nxx\r\n", b"2\r\nabcd\r\n", b"-1\r\n", b"1" * 2000, b"0x5\r\nhello\r\n"]
)
def test_a_malformed_chunk_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        take_chunk(bytearray(raw))


def test_a_compressed_body_is_decoded() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 1", "GET")
    assert head.decode(gzip.compress(b'{"a": 1}')) == b'{"a": 1}'
    deflated = parse_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate", "GET")
    assert deflated.decode(zlib.compress(b"x" * 100)) == b"x" * 100
    plain = parse_head(b"HTTP/1.1 200 OK", "GET")
    assert plain.decode(b"as is") == b"as is"


def test_a_refusal_by_every_address_of_a_host_is_a_refusal() -> None:
    from taskqueue.client._aio_conn import all_refused

    both = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 8080, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 8080)"
    )
    assert all_refused(both)
    mixed = OSError(
        "Multiple exceptions: [Errno 101] Network is unreachable, "
        "[Errno 111] Connect call failed ('127.0.0.1', 8080)"
    )
    assert not all_refused(mixed)
    assert not all_refused(ConnectionRefusedError(111, "Connection refused"))
