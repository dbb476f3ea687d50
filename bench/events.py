"""The event stream benchmark: latency from commit to a stream client, and what streams cost.

Run from the repository root::

    .venv/bin/python -m bench.events            # 300 latency samples, 3 rounds of 2,000 tasks
    .venv/bin/python -m bench.events --quick    # a smoke run

Two figures, each on a ``taskqueue server`` subprocess on a fresh SQLite file:

- **Latency**: an idle server (no worker) and one stream client; one task is created at a
  time, 30 ms apart, and the latency of its ``task.created`` event is the time the client read
  it minus the event's own ``time`` (the server's clock when the change committed; the same
  machine's clock). p50 and p99; the goal is a p99 of at most 50 ms. (Under load the hub reads
  at most every 20 ms, so a busy server adds up to 20 ms: the price of one read per batch.)
- **Fan-out cost**: a server with its embedded worker drains a batch of trivial tasks
  (``true``), once with no stream open and once with 100 streams open that read every event,
  rounds alternating; the ratio of the drain rates (median of the round-by-round ratios: the
  machine is shared and noisy) is the cost of the streams. The goal is a ratio of at least 0.9.
  The stream clients run in this process, on the same 2 cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import datetime

import httpx

from bench.run import Server, fmt, percentile, say

LATENCY_GOAL_MS = 50.0
FAN_OUT_GOAL = 0.9


async def _open_stream(port: int, query: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/events?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def latency(samples: int) -> list[float]:
    """Milliseconds from each commit to the stream client reading its event."""
    server = Server(workers=0)
    server.start()
    try:
        reader, writer = await _open_stream(server.port, "types=task.created&heartbeat=60")
        await reader.readuntil(b"\n\n")  # the opening block: the stream is subscribed
        found: list[float] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
            for n in range(samples):
                # Apart by more than the hub's coalescing (20 ms), as events of an idle server
                # are: back to back, each would wait out the rest of the 20 ms after the last.
                await asyncio.sleep(0.03)
                made = await api.post(
                    "/api/tasks", json={"name": f"l{n}", "command": "true", "queue": "parked"}
                )
                made.raise_for_status()
                while True:
                    block = await reader.readuntil(b"\n\n")
                    read_at = time.time()
                    text = block.decode()
                    if "data: " not in text:
                        continue
                    event = json.loads(text.split("data: ", 1)[1])
                    committed = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
                    found.append((read_at - committed.timestamp()) * 1000)
                    break
        writer.close()
        return found
    finally:
        server.stop()


async def _drain(server: Server, tasks: int, streams: int) -> float:
    """Tasks per second drained, with ``streams`` streams open reading every event."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as api:
        start = (await api.get("/api/events", params={"format": "json", "limit": 1})).json()
        conns = [
            await _open_stream(server.port, f"after={start['last_id'] or 0}&heartbeat=60")
            for _ in range(streams)
        ]
        for reader, _ in conns:  # each stream is subscribed and has caught up
            await reader.readuntil(b"\n\n")

        async def read(reader: asyncio.StreamReader) -> None:
            while await reader.read(65536):
                pass

        readers = [asyncio.create_task(read(r)) for r, _ in conns]
        began = time.perf_counter()
        body = {"tasks": [{"name": f"d{i}", "command": "true"} for i in range(tasks)]}
        (await api.post("/api/tasks/batch", json=body)).raise_for_status()
        while True:
            counts = (await api.get("/api/health")).json()["tasks"]
            if counts.get("Pending", 0) == 0 and counts.get("Running", 0) == 0:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - began
        for _, writer in conns:
            writer.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        return tasks / elapsed


async def fan_out(rounds: int, tasks: int, streams: int) -> list[tuple[float, float]]:
    """(rate with no stream, rate with ``streams``) of each round, order alternating."""
    results: list[tuple[float, float]] = []
    for n in range(rounds):
        rates: dict[int, float] = {}
        for count in (0, streams) if n % 2 == 0 else (streams, 0):
            server = Server(workers=16)
            server.start()
            try:
                rates[count] = await _drain(server, tasks, count)
            finally:
                server.stop()
        results.append((rates[0], rates[streams]))
        say(f"  round {n + 1}: {fmt(rates[0])} tasks/s alone, {fmt(rates[streams])} with streams")
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=100)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.rounds, args.tasks = 50, 1, 300
    say(f"== latency, commit to stream client ({args.samples} events, idle server)")
    lat = asyncio.run(latency(args.samples))
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    verdict = "meets" if p99 <= LATENCY_GOAL_MS else "misses"
    say(f"  p50 {p50:.2f} ms, p99 {p99:.2f} ms ({verdict} the goal p99 <= {LATENCY_GOAL_MS} ms)")
    say(f"== fan-out: drain of {args.tasks} tasks, 0 vs {args.streams} streams")
    pairs = asyncio.run(fan_out(args.rounds, args.tasks, args.streams))
    ratio = statistics.median(with_ / alone for alone, with_ in pairs)
    verdict = "meets" if ratio >= FAN_OUT_GOAL else "misses"
    say(f"  ratio (with / without, median of rounds) {ratio:.2f} ({verdict} the goal >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
