"""What the clients' transports promise, through both clients, against real servers.

The async client runs on its own HTTP/1.1 transport over asyncio, the sync one on urllib3:
from the user's side both must time out, limit and keep connections, stream, and word
failures the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskqueue import (
    AsyncTaskQueueClient,
    TaskQueueClient,
    TaskQueueConnectionError,
    TaskQueueError,
    TaskQueueTimeoutError,
)
from tests.conftest import ServerProcess, free_port
from tests.sdk.recorder import HEALTH_BYTES, TLS, Recorder, Scripted, serving

KINDS = pytest.mark.parametrize("kind", ["sync", "async"])


def run(kind: str, url: str, call: Callable[[Any], Any], **options: Any) -> Any:
    """``call(client)`` on a new client of ``kind`` (awaited for the async one), then close."""
    if kind == "sync":
        with TaskQueueClient(url, **options) as client:
            return call(client)

    async def main() -> Any:
        async with AsyncTaskQueueClient(url, **options) as client:
            result = call(client)
            return await result if inspect.isawaitable(result) else result

    return asyncio.run(main())


def at_once(kind: str, url: str, count: int, rounds: int = 1, **options: Any) -> None:
    """``count`` concurrent ``get_health()`` calls, ``rounds`` times, on one client."""
    if kind == "sync":
        with TaskQueueClient(url, **options) as client:
            for _ in range(rounds):
                with concurrent.futures.ThreadPoolExecutor(count) as pool:
                    list(pool.map(lambda _: client.get_health(), range(count)))
        return

    async def main() -> None:
        async with AsyncTaskQueueClient(url, **options) as client:
            for _ in range(rounds):
                await asyncio.gather(*(client.get_health() for _ in range(count)))

    asyncio.run(main())


def failure(kind: str, url: str, **options: Any) -> TaskQueueError:
    """What ``get_health()`` raises on a client of ``kind``."""

    def call(client: Any) -> Any:
        return client.get_health()

    with pytest.raises(TaskQueueError) as caught:
        run(kind, url, call, **options)
    return caught.value


# --------------------------------------------------------------------------- timeouts


@KINDS
def test_an_answer_slower_than_the_timeout_is_a_timeout_error(
    kind: str, recorder: Recorder
) -> None:
    recorder.delay = 1.0
    error = failure(kind, recorder.url, timeout=0.2, retry_attempts=0)
    assert isinstance(error, TaskQueueTimeoutError)
    assert error.message == f"the request to {recorder.url} timed out (ReadTimeout)"
    assert error.original_exception is not None


@KINDS
def test_a_timed_out_read_is_retried_when_it_may_be(kind: str, recorder: Recorder) -> None:
    recorder.delay = 0.5
    failure(kind, recorder.url, timeout=0.1, retry_attempts=1, retry_backoff=0)
    assert [s.method for s in recorder.seen] == ["GET", "GET"]  # a read may be repeated


# --------------------------------------------------------------------------- the pool


@KINDS
def test_no_more_than_max_connections_are_used_at_once(kind: str, recorder: Recorder) -> None:
    recorder.delay = 0.1
    at_once(kind, recorder.url, 8, max_connections=3)
    assert recorder.max_in_flight == 3
    assert len(recorder.client_ports()) == 3


@KINDS
def test_at_most_max_keepalive_connections_stay_open(kind: str, recorder: Recorder) -> None:
    recorder.delay = 0.05
    at_once(kind, recorder.url, 6, rounds=2, max_connections=6, max_keepalive_connections=2)
    first, second = recorder.seen[:6], recorder.seen[6:]
    reused = {s.client_port for s in second} & {s.client_port for s in first}
    assert len(reused) == 2  # the two kept; the other four were closed and made again
    recorder.seen.clear()
    at_once(kind, recorder.url, 6, rounds=2, max_connections=6, max_keepalive_connections=6)
    assert len(recorder.client_ports()) == 6  # all kept, all reused


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
@KINDS
def test_a_connection_the_server_closes_unanswered_is_replaced_for_a_read(
    kind: str, recorder: Recorder, reset: bool
) -> None:
    recorder.drop_second = True  # as a keep-alive timeout firing just as the request arrives
    recorder.reset = reset

    def twice(client: Any) -> Any:
        if kind == "sync":
            return [client.get_health().status, client.get_health().status]

        async def both() -> list[str]:
            return [(await client.get_health()).status, (await client.get_health()).status]

        return both()

    assert run(kind, recorder.url, twice, retry_attempts=0) == ["ok", "ok"]
    assert len(recorder.seen) == 3
    assert len(recorder.client_ports()) == 2


@KINDS
def test_a_post_the_server_may_have_read_is_not_sent_again(kind: str, recorder: Recorder) -> None:
    recorder.drop_second = True

    def health_then_retry(client: Any) -> Any:
        if kind == "sync":
            client.get_health()
            return client.retry_task("00000000-0000-0000-0000-000000000000")

        async def calls() -> Any:
            await client.get_health()
            return await client.retry_task("00000000-0000-0000-0000-000000000000")

        return calls()

    with pytest.raises(TaskQueueConnectionError) as failed:
        run(kind, recorder.url, health_then_retry, retry_attempts=3, retry_backoff=0)
    assert failed.value.message == (
        f"cannot reach the taskqueue server at {recorder.url}: "
        "Server disconnected without sending a response."
    )
    assert [s.method for s in recorder.seen] == ["GET", "POST"]


# --------------------------------------------------------------------------- https


@KINDS
def test_https_is_verified_against_the_trusted_certificates(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(Recorder(), tls=True) as server:
        untrusted = failure(kind, server.url, retry_attempts=0)
        assert isinstance(untrusted, TaskQueueConnectionError)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.message
        monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "cert.pem"))
        health = run(kind, server.url, lambda c: c.get_health(), api_key="k", retry_attempts=0)
        assert health.status == "ok"
        assert server.headers()["authorization"] == "Bearer k"


@KINDS
def test_a_proxy_named_by_the_environment_is_used(
    kind: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", recorder.url)
    target = "http://tq.example.invalid:8080"
    health = run(kind, target, lambda c: c.get_health(), retry_attempts=0)
    assert health.status == "ok"
    assert recorder.seen[-1].path == f"{target}/api/health"  # asked of the proxy, in full


# --------------------------------------------------------------------------- failures


def test_a_refused_connection_to_localhost_is_reported_at_once_by_both() -> None:
    url = f"http://localhost:{free_port()}"  # ::1 and 127.0.0.1: both refuse
    errors = [failure(kind, url, retry_attempts=3, retry_backoff=30) for kind in ("sync", "async")]
    assert [e.message for e in errors] == [
        f"cannot reach the taskqueue server at {url}: connection refused"
    ] * 2
    assert all(
        isinstance(getattr(e, "original_exception", None), ConnectionRefusedError) for e in errors
    )


def test_an_unknown_host_is_worded_the_same_by_both() -> None:
    url = "http://no-such-host.invalid:8080"
    errors = [failure(kind, url, retry_attempts=0) for kind in ("sync", "async")]
    assert all(isinstance(e, TaskQueueConnectionError) for e in errors)
    messages = {str(e) for e in errors}
    assert len(messages) == 1, messages
    assert messages.pop().startswith(f"cannot reach the taskqueue server at {url}: [Errno ")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        + HEALTH_BYTES,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (HEALTH_BYTES[:7], HEALTH_BYTES[7:]))
        + b"0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
        % (len(HEALTH_BYTES), HEALTH_BYTES),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(gzip.compress(HEALTH_BYTES)), gzip.compress(HEALTH_BYTES)),
    ],
    ids=["until-close", "chunked", "informational-first", "gzip"],
)
@pytest.mark.parametrize("pieces", [1, 7])
@KINDS
def test_other_framings_of_an_answer_are_read(kind: str, answer: bytes, pieces: int) -> None:
    with Scripted(answer, pieces).running() as server:
        health = run(kind, server.url, lambda c: c.get_health(), retry_attempts=0)
    assert health.status == "ok"


@KINDS
def test_an_answer_cut_short_is_a_connection_error(kind: str) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + HEALTH_BYTES[:10]
    with Scripted(answer).running() as server:
        error = failure(kind, server.url, retry_attempts=0)
    assert isinstance(error, TaskQueueConnectionError)
    assert error.message.startswith(f"cannot reach the taskqueue server at {server.url}: ")


@KINDS
def test_what_is_not_http_is_a_connection_error(kind: str) -> None:
    with Scripted(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").running() as server:
        error = failure(kind, server.url, retry_attempts=0)
    assert isinstance(error, TaskQueueConnectionError)


# --------------------------------------------------------------------------- a real server


@KINDS
def test_large_bodies_both_ways(kind: str, live: ServerProcess) -> None:
    items = [
        {"name": f"big-{i}", "command": "true" + " " * 200, "queue": "parked"} for i in range(1500)
    ]

    def create_and_list(client: Any) -> Any:
        if kind == "sync":
            return len(client.create_tasks(items)), len(
                client.list_tasks(queue="parked", limit=1000)
            )

        async def calls() -> tuple[int, int]:
            created = await client.create_tasks(items)
            return len(created), len(await client.list_tasks(queue="parked", limit=1000))

        return calls()

    assert run(kind, live.url, create_and_list) == (1500, 1000)


@KINDS
def test_output_is_followed_as_it_is_written(
    kind: str, live: ServerProcess, tmp_path: Path
) -> None:
    """The command waits for a file that the test makes only once it has read the first line
    from the stream: a follow that waited for the end would never get there."""
    marker = tmp_path / f"go-{kind}"
    command = f"echo first; while [ ! -e {marker} ]; do sleep 0.05; done; echo second"

    def seen(chunk: Any, lines: list[str]) -> None:
        lines.append(chunk.data)
        marker.touch()

    def follow(client: Any) -> Any:
        lines: list[str] = []
        if kind == "sync":
            task = client.create_task(f"follow-{kind}", command)
            for chunk in client.follow_logs(task.id):
                seen(chunk, lines)
            return lines

        async def calls() -> list[str]:
            task = await client.create_task(f"follow-{kind}", command)
            async for chunk in client.follow_logs(task.id):
                seen(chunk, lines)
            return lines

        return calls()

    assert run(kind, live.url, follow) == ["first\n", "second\n"]


@KINDS
def test_a_follow_reports_status_changes_between_attempts(
    kind: str, live: ServerProcess, tmp_path: Path
) -> None:
    """The first attempt fails only once the test has read its output from the stream, so the
    follow is under way when the task goes back to Pending and then Running again."""
    marker = tmp_path / f"fail-{kind}"
    command = (
        'echo "try $TASKQUEUE_ATTEMPT"; [ "$TASKQUEUE_ATTEMPT" = 2 ] && exit 0; '
        f"while [ ! -e {marker} ]; do sleep 0.05; done; exit 1"
    )
    statuses: list[str] = []

    def seen(status: Any) -> None:
        statuses.append(status.value)

    def read(chunk: Any, lines: list[str]) -> None:
        lines.append(chunk.data)
        marker.touch()

    def follow(client: Any) -> Any:
        fields = {"retry_attempts": 1, "retry_delay": 1}
        lines: list[str] = []
        if kind == "sync":
            task = client.create_task(f"statuses-{kind}", command, **fields)
            for chunk in client.follow_logs(task.id, on_status=seen):
                read(chunk, lines)
            return lines

        async def calls() -> list[str]:
            task = await client.create_task(f"statuses-{kind}", command, **fields)
            async for chunk in client.follow_logs(task.id, on_status=seen):
                read(chunk, lines)
            return lines

        return calls()

    assert run(kind, live.url, follow) == ["try 1\n", "try 2\n"]
    assert statuses[-2:] == ["Pending", "Running"]
