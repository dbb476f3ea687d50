"""What one connection may cost the server: the size and time of a request head, and how many
connections are served at once.

Raw sockets against a real server process. Timeouts here guard against a hang (generously);
no test asserts how fast anything was. The server's header deadline is shortened to a second
(``--header-timeout``) so the tests need not wait ten.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ServerProcess, free_port, wait_until
from tests.integration.test_hostile_input import ERROR_TYPES

pytestmark = pytest.mark.sqlite_only

MiB = 1024 * 1024
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def limited(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("limits")
    server = ServerProcess(
        db=base / "tq.db",
        port=free_port(),
        args=["--workers", "0", "--header-timeout", "1"],
        log=base / "server.log",
    )
    server.start()
    yield server
    server.stop()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=60)


def read_until_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def parse(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and JSON body of one raw HTTP answer, checked to be in the error shape."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"] == "application/json", answer[:500]
    error = json.loads(body[: int(headers["content-length"])])["error"]
    assert set(error) == {"type", "message", "details", "request_id"}
    assert error["type"] == ERROR_TYPES[status]
    assert headers["x-request-id"] == error["request_id"]
    return status, headers, error


def rss(server: ServerProcess) -> int:
    assert server.process is not None
    return int(psutil.Process(server.process.pid).memory_info().rss)


def healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/api/health", timeout=60).status_code == 200


def send_huge_header(server: ServerProcess, size: int) -> bytes:
    """One request with a header of ``size`` bytes, sent until the server stops reading; the
    answer."""
    with connect(server) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        chunk = b"a" * MiB
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(size // MiB):
                sock.sendall(chunk)
        return read_until_eof(sock)


def test_a_huge_header_is_431_and_costs_the_server_nothing(limited: ServerProcess) -> None:
    before = rss(limited)
    answers: list[bytes] = []
    senders = [
        threading.Thread(target=lambda: answers.append(send_huge_header(limited, 200 * MiB)))
        for _ in range(2)
    ]
    for sender in senders:
        sender.start()
    assert healthy(limited)  # while the two connections send
    for sender in senders:
        sender.join(120)
    assert len(answers) == 2
    for answer in answers:
        status, headers, error = parse(answer)
        assert status == 431
        assert headers["connection"] == "close"
        assert str(LIMIT) in error["message"]
    # Today's server held both headers in memory (+400 MB); a few socket reads' worth is sane.
    assert rss(limited) - before < 64 * MiB
    assert healthy(limited)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"X-Big: " + b"a" * (LIMIT + 1) + b"\r\n", id="one-header"),
        pytest.param(b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 30) for i in range(2000)), id="many"),
        pytest.param(b"X-Big: " + b"a" * (LIMIT - 100) + b"\r\nX-More: " + b"b" * 200, id="sum"),
    ],
)
def test_a_head_over_the_limit_in_one_read_is_431(limited: ServerProcess, head: bytes) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n\r\n")
        status, _, _ = parse(read_until_eof(sock))
    assert status == 431


def test_a_long_url_over_the_limit_is_431(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /api/" + b"a" * (LIMIT + 10) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, _ = parse(read_until_eof(sock))
    assert status == 431


def test_a_head_under_the_limit_is_served(limited: ServerProcess) -> None:
    response = httpx.get(
        f"{limited.url}/api/health", headers={"X-Big": "a" * (LIMIT - 1024)}, timeout=60
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"GET /api/hea", id="request-line"),
        pytest.param(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n", id="headers"),
        pytest.param(b"G", id="one-byte"),
    ],
)
def test_a_partial_request_left_idle_is_closed(limited: ServerProcess, partial: bytes) -> None:
    with connect(limited) as sock:
        sock.sendall(partial)
        status, headers, error = parse(read_until_eof(sock))  # EOF: the server closed it
    assert status == 408
    assert headers["connection"] == "close"
    assert "did not arrive" in error["message"]


def test_a_request_trickled_byte_by_byte_is_closed(limited: ServerProcess) -> None:
    """Each byte arrives well within the deadline of the last: the deadline is for the head."""
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 500
    with connect(limited) as sock:
        for byte in request:
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            pytest.fail("the server let a request trickle in for the whole of its head")
        answer = read_until_eof(sock)
    status, _, _ = parse(answer)
    assert status == 408


def test_a_connection_that_sends_nothing_is_closed(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        assert read_until_eof(sock) == b""


def test_a_keep_alive_connection_serves_many_requests(limited: ServerProcess) -> None:
    """The head's deadline is per request: a connection used for longer is not cut."""
    with httpx.Client(base_url=limited.url, timeout=60) as client:
        for _ in range(3):
            assert client.get("/api/health").status_code == 200
            threading.Event().wait(0.6)  # each pause well within the keep-alive timeout
        assert client.get("/api/health").status_code == 200


def test_invalid_http_is_a_400_in_the_error_shape(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /api/tasks/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, error = parse(read_until_eof(sock))
    assert status == 400
    assert "HTTP" in error["message"]


def test_connections_over_the_limit_get_a_clear_503(tmp_path: Any) -> None:
    server = ServerProcess(
        db=tmp_path / "tq.db",
        port=free_port(),
        args=["--workers", "0", "--max-connections", "4", "--header-timeout", "60"],
        log=tmp_path / "server.log",
    )
    server.start()
    try:
        held = [connect(server) for _ in range(4)]
        try:
            wait_until(lambda: busy_answer(server) is not None, 60, "a 503 over the limit")
            response = busy_answer(server)
            assert response is not None
            error = response.json()["error"]
            assert error["type"] == "unavailable"
            assert "limit of 4 connections" in error["message"]
            assert response.headers["retry-after"] == "1"
            assert response.headers["x-request-id"] == error["request_id"]
        finally:
            for sock in held:
                sock.close()
        wait_until(lambda: healthy(server), 60, "health once the connections closed")
    finally:
        server.stop()
    assert server.log is not None
    assert "over the limit of 4 connections" in server.log.read_text()


def busy_answer(server: ServerProcess) -> httpx.Response | None:
    response = httpx.get(f"{server.url}/api/health", timeout=60)
    return response if response.status_code == 503 else None
