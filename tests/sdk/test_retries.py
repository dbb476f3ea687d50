"""Retries under injected faults: a small proxy between the SDK and a real server.

The proxy answers each request according to a script: a 503, a 429 with ``Retry-After``, or
forward it to the server and then drop the connection without answering (the server acted on
it; the client cannot know). Each logical create must yield exactly one task.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from taskqueue import (
    AsyncTaskQueueClient,
    RateLimitError,
    ServerError,
    TaskQueueClient,
    TaskQueueConnectionError,
)
from tests.conftest import ServerProcess, free_port


@dataclass
class Seen:
    """A request the proxy received."""

    at: float
    method: str
    path: str
    idempotency_key: str | None


@dataclass
class FaultProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 that misbehaves on cue."""

    upstream_port: int
    port: int = field(default_factory=free_port)
    script: list[str] = field(default_factory=list)  # "503", "429:<seconds>", "drop"
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.seen.append(Seen(time.monotonic(), method, path, headers.get("idempotency-key")))
            action = self.script.pop(0) if self.script else "forward"
            if action == "503" or action.startswith("429"):
                status = 503 if action == "503" else 429
                extra = "" if status == 503 else f"Retry-After: {action.split(':')[1]}\r\n"
                payload = b'{"error": {"type": "unavailable", "message": "try later"}}'
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            forwarded = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            up_writer.write(forwarded + body)
            await up_writer.drain()
            answer = await up_reader.read()  # until the server closes
            up_writer.close()
            if action == "drop":
                return  # the server acted; the client gets no answer at all
            writer.write(answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def run(self, started: threading.Event, stop: threading.Event) -> None:
        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            started.set()
            async with server:
                while not stop.is_set():
                    await asyncio.sleep(0.02)

        asyncio.run(main())


@pytest.fixture
def proxy(live: ServerProcess) -> Iterator[FaultProxy]:
    fault = FaultProxy(upstream_port=live.port)
    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=fault.run, args=(started, stop), daemon=True)
    thread.start()
    assert started.wait(10)
    yield fault
    stop.set()
    thread.join(10)


def tasks_named(live: ServerProcess, name: str) -> int:
    page = httpx.get(f"{live.url}/api/tasks", params={"limit": 1000}, timeout=10).json()
    return sum(1 for t in page["tasks"] if t["name"] == name)


def test_503s_are_retried_with_one_idempotency_key(proxy: FaultProxy, live: ServerProcess) -> None:
    proxy.script = ["503", "503"]
    with TaskQueueClient(proxy.url, retry_attempts=3, retry_backoff=0.05) as client:
        task = client.create_task("after-503s", "true", queue="parked")
    assert [s.path for s in proxy.seen] == ["/api/tasks"] * 3
    keys = {s.idempotency_key for s in proxy.seen}
    assert len(keys) == 1
    assert None not in keys
    assert tasks_named(live, "after-503s") == 1
    assert task.name == "after-503s"


def test_429_waits_as_retry_after_says(proxy: FaultProxy) -> None:
    proxy.script = ["429:1"]
    with TaskQueueClient(proxy.url, retry_attempts=2, retry_backoff=0.01) as client:
        assert client.get_health().status == "ok"
    first, second = proxy.seen[0].at, proxy.seen[1].at
    assert second - first >= 0.95  # Retry-After: 1, not the 0.01 s backoff


def test_a_create_whose_answer_was_lost_yields_one_task(
    proxy: FaultProxy, live: ServerProcess
) -> None:
    proxy.script = ["drop", "drop"]
    with TaskQueueClient(proxy.url, retry_attempts=3, retry_backoff=0.05) as client:
        task = client.create_task("answer-lost", "true", queue="parked")
        batch = None
        proxy.script = ["drop"]
        batch = client.create_tasks([{"name": "batch-lost", "command": "true", "queue": "parked"}])
        proxy.script = ["drop"]
        project = client.create_project("project-lost")
    assert len(proxy.seen) == 3 + 2 + 2
    assert tasks_named(live, "answer-lost") == 1
    assert tasks_named(live, "batch-lost") == 1
    assert task.name == "answer-lost"
    assert batch[0].name == "batch-lost"
    assert project.name == "project-lost"


def test_a_non_idempotent_call_is_not_repeated_after_a_lost_answer(
    proxy: FaultProxy, live: ServerProcess
) -> None:
    with TaskQueueClient(live.url) as direct:
        task = direct.create_task("retry-me", "exit 1", retry_attempts=0)
        direct.wait_for_completion(task.id, timeout=30)
    proxy.script = ["drop"]
    with TaskQueueClient(proxy.url, retry_attempts=3, retry_backoff=0.05) as client:
        with pytest.raises(TaskQueueConnectionError):
            client.retry_task(task.id)
    assert len(proxy.seen) == 1  # sent once; the server re-queued it once


def test_retries_give_up_with_the_last_error(proxy: FaultProxy) -> None:
    proxy.script = ["503"] * 3
    with TaskQueueClient(proxy.url, retry_attempts=2, retry_backoff=0.01) as client:
        with pytest.raises(ServerError) as failed:
            client.get_health()
    assert failed.value.status_code == 503
    assert failed.value.message == "try later"
    proxy.script = ["429:0"] * 2
    with TaskQueueClient(proxy.url, retry_attempts=1, retry_backoff=0.01) as client:
        with pytest.raises(RateLimitError) as limited:
            client.get_health()
    assert limited.value.retry_after == 0


def test_the_async_client_retries_the_same_way(proxy: FaultProxy, live: ServerProcess) -> None:
    proxy.script = ["503", "drop"]

    async def main() -> str:
        async with AsyncTaskQueueClient(proxy.url, retry_attempts=3, retry_backoff=0.05) as client:
            task = await client.create_task("async-faults", "true", queue="parked")
            return task.name

    assert asyncio.run(main()) == "async-faults"
    assert len({s.idempotency_key for s in proxy.seen}) == 1
    assert tasks_named(live, "async-faults") == 1


def test_a_refused_local_connection_is_reported_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on the port: no retries, and both clients say so in the same words."""
    url = f"http://127.0.0.1:{free_port()}"
    caplog.set_level("DEBUG", logger="taskqueue.client")
    with TaskQueueClient(url, retry_attempts=3, retry_backoff=30) as client:
        with pytest.raises(TaskQueueConnectionError) as sync_error:
            client.get_health()

    async def call() -> str:
        async with AsyncTaskQueueClient(url, retry_attempts=3, retry_backoff=30) as client:
            with pytest.raises(TaskQueueConnectionError) as async_error:
                await client.get_health()
        return async_error.value.message

    assert asyncio.run(call()) == sync_error.value.message
    assert (
        sync_error.value.message
        == f"cannot reach the taskqueue server at {url}: connection refused"
    )
    assert not [r for r in caplog.records if "retry" in r.getMessage()]
