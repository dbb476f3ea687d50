"""A thousand event streams open on one real server while tasks run: every stream gets every
event, and the server's memory does not grow with what the streams are sent."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.conftest import ServerProcess, wait_until

pytestmark = pytest.mark.sqlite_only  # the fan-out is the API's, whatever the database

STREAMS = 1000
TASKS = 40


async def _open(port: int, after: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/events?after={after}&types=task.completed&heartbeat=5 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


_MARK = b'"type":"task.completed"'


async def _read_all(reader: asyncio.StreamReader, want: int) -> int:
    """How many task.completed events arrive before ``want`` have or the stream ends."""
    got = 0
    buffer = b""
    while got < want:
        data = await reader.read(65536)
        if not data:
            break
        buffer += data
        found = buffer.count(_MARK)
        got += found
        # Keep only what may be the start of a marker split across reads.
        buffer = buffer[buffer.rfind(_MARK) + len(_MARK) :] if found else buffer[-len(_MARK) :]
    return got


def test_a_thousand_streams_each_get_every_event_in_bounded_memory(
    make_server: Callable[..., ServerProcess],
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    server = make_server("--workers", "4", "--max-connections", "2000")
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        start = api.get("/api/events", params={"format": "json", "limit": 1}).json()["last_id"]
        start = start or 0

        async def main() -> tuple[list[int], int, int]:
            conns = [await _open(server.port, start) for _ in range(STREAMS)]
            wait_until(lambda: len(process.net_connections()) >= STREAMS, 30, "streams open")
            before = process.memory_info().rss
            readers = [asyncio.create_task(_read_all(r, TASKS)) for r, _ in conns]
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _run_tasks, api)
            counts = await asyncio.wait_for(asyncio.gather(*readers), 120)
            after = process.memory_info().rss
            for _, writer in conns:
                writer.close()
            return counts, before, after

        counts, before, after = asyncio.run(main())
    assert counts == [TASKS] * STREAMS
    # 40,000 events were sent; what the server holds for them stays small (the window of
    # recent events is shared; a stream holds only its position).
    assert after - before < 64 * 1024 * 1024, (before, after)


def _run_tasks(api: httpx.Client) -> None:
    made = api.post(
        "/api/tasks/batch",
        json={"tasks": [{"name": f"t{i}", "command": "true"} for i in range(TASKS)]},
    )
    assert made.status_code == 201, made.text
