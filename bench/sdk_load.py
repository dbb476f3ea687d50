"""Load for ``bench/sdk.py``: ``GET /api/tasks/{id}`` from wrk, bare clients and the SDK.

Every Python client runs a fixed number of requests (3,000 by default) with a fixed number in
flight (coroutines for async clients, threads for sync ones) and checks every answer; wrk,
which counts for itself, runs for a second. Each returns one :class:`Round`.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.run import Server
from taskqueue import AsyncTaskQueueClient, TaskQueueClient

#: The connections wrk keeps open (as in ``bench/run.py``): the server's capacity.
WRK_CONNECTIONS = 50
MAX_CONNECTIONS = 100

WRK_GET = """
local other = 0
function response(status, headers, body)
  if status ~= 200 then other = other + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status))
end
"""


@dataclass
class Round:
    """One measurement: requests answered, seconds, and the CPU the client and server spent."""

    requests: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def as_json(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.rate, 1),
            "client_cpu_us_per_request": round(1e6 * self.client_cpu_s / self.requests, 1),
            "server_cpu_us_per_request": round(1e6 * self.server_cpu_s / self.requests, 1),
        }


def wrk_round(wrk: str, server: Server, path: str, workdir: Path, seconds: int = 1) -> Round:
    """wrk with 50 connections for ``seconds``: what the server serves when the client is C."""
    script = workdir / "get.lua"
    script.write_text(WRK_GET)
    command = [wrk, f"-c{WRK_CONNECTIONS}", "-t1", f"-d{seconds}s", "--timeout", "10s"]
    server0 = server.cpu_seconds()
    result = subprocess.run(
        [*command, "-s", str(script), server.url + path],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    server_cpu = server.cpu_seconds() - server0
    match = re.search(r"^BENCH (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    stats = {k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    if stats["errors"]:
        raise RuntimeError(f"wrk saw {stats['errors']} errors or non-200 answers")
    return Round(stats["requests"], stats["duration_us"] / 1e6, 0.0, server_cpu)


async def async_round(
    get: Callable[[], Awaitable[None]], total: int, in_flight: int, server: Server
) -> Round:
    """``total`` calls of ``get()``, ``in_flight`` at a time (one coroutine each)."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await get()

    server0, cpu0, start = server.cpu_seconds(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - start
    return Round(total, elapsed, time.process_time() - cpu0, server.cpu_seconds() - server0)


def thread_round(get: Callable[[], None], total: int, threads: int, server: Server) -> Round:
    """``total`` calls of ``get()`` from ``threads`` threads at once."""
    lock = threading.Lock()
    left = [total]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                get()
        except Exception as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    server0, cpu0, start = server.cpu_seconds(), time.process_time(), time.perf_counter()
    barrier.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} thread(s) failed: {errors[0]!r}") from errors[0]
    return Round(total, elapsed, time.process_time() - cpu0, server.cpu_seconds() - server0)


def _checked(task_id: str, data: Any) -> None:
    if data["id"] != task_id:
        raise RuntimeError(f"unexpected answer: {data!r}")


class AsyncClients:
    """The async clients of one run, opened once on the bench's event loop."""

    def __init__(self, url: str, task_id: str) -> None:
        self.url, self.task_id, self.path = url, task_id, f"/api/tasks/{task_id}"
        self.sdk = AsyncTaskQueueClient(url, max_connections=MAX_CONNECTIONS)
        self.httpx = httpx.AsyncClient(
            base_url=url, limits=httpx.Limits(max_connections=MAX_CONNECTIONS), timeout=30
        )
        self.aiohttp: Any = None

    async def open(self) -> None:
        try:
            import aiohttp
        except ImportError:  # a dev extra; the table says it was not measured
            return
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
        self.aiohttp = aiohttp.ClientSession(self.url, connector=connector)

    async def get_sdk(self) -> None:
        task = await self.sdk.get_task(self.task_id)
        if str(task.id) != self.task_id:
            raise RuntimeError(f"unexpected answer: {task!r}")

    async def get_httpx(self) -> None:
        response = await self.httpx.get(self.path)
        response.raise_for_status()
        _checked(self.task_id, response.json())

    async def get_aiohttp(self) -> None:
        async with self.aiohttp.get(self.path) as response:
            response.raise_for_status()
            _checked(self.task_id, json.loads(await response.read()))

    async def close(self) -> None:
        await self.sdk.close()
        await self.httpx.aclose()
        if self.aiohttp is not None:
            await self.aiohttp.close()


class SyncClients:
    """The sync clients of one run, each shared by every thread."""

    def __init__(self, url: str, task_id: str) -> None:
        import urllib3

        self.url, self.task_id, self.path = url, task_id, f"/api/tasks/{task_id}"
        self.sdk = TaskQueueClient(url, max_connections=MAX_CONNECTIONS)
        self.httpx = httpx.Client(
            base_url=url, limits=httpx.Limits(max_connections=MAX_CONNECTIONS), timeout=30
        )
        self.urllib3 = urllib3.PoolManager(maxsize=MAX_CONNECTIONS)

    def get_sdk(self) -> None:
        task = self.sdk.get_task(self.task_id)
        if str(task.id) != self.task_id:
            raise RuntimeError(f"unexpected answer: {task!r}")

    def get_httpx(self) -> None:
        response = self.httpx.get(self.path)
        response.raise_for_status()
        _checked(self.task_id, response.json())

    def get_urllib3(self) -> None:
        response = self.urllib3.request("GET", self.url + self.path)
        if response.status != 200:
            raise RuntimeError(f"GET {self.path}: {response.status}")
        _checked(self.task_id, json.loads(response.data))

    def close(self) -> None:
        self.sdk.close()
        self.httpx.close()
        self.urllib3.clear()
