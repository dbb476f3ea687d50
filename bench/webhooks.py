"""The webhook benchmark: dispatch rate to a local receiver, and latency from commit to it.

Run from the repository root::

    .venv/bin/python -m bench.webhooks            # 2,000 events, 200 latency samples
    .venv/bin/python -m bench.webhooks --quick    # a smoke run

The server is a ``taskqueue server`` subprocess (no worker, ``--webhook-allow-private``) on a
fresh SQLite file; the receiver is the SDK's ``WebhookHandler`` served by uvicorn in another
subprocess (``tests/webhook_receiver.py``), verifying every signature. Both share the
machine's cores with this script.

- **Dispatch rate**: events pile up while the subscription is disabled; it is then enabled,
  and the rate is the events delivered (2xx, one at a time, in order) over the time until the
  last was recorded.
- **Latency**: one task created at a time on an idle server; for each ``task.created`` event,
  the time its delivery was recorded minus the event's own time (when the change committed).
  That includes the receiver's answer and the write of the deliveries log: an upper bound on
  the time to the receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import Server, free_port, percentile, say

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.receivers import Receiver, start_receiver  # noqa: E402


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _delivered(api: httpx.AsyncClient, hook: str) -> int:
    return int((await api.get(f"/api/webhooks/{hook}")).json()["position"])


async def _subscribe(api: httpx.AsyncClient) -> tuple[dict[str, Any], Receiver]:
    """A disabled subscription to ``task.created`` and a receiver that knows its secret."""
    made = await api.post("/api/webhooks", json={"url": "http://127.0.0.1:1/",
                                                 "event_types": ["task.created"],
                                                 "enabled": False})  # fmt: skip
    hook: dict[str, Any] = made.json()
    receiver = start_receiver(Path(tempfile.mkdtemp()), free_port(), "--secret", hook["secret"])
    return hook, receiver


async def dispatch_rate(events: int) -> float:
    """Events per second delivered to the receiver, from a backlog of ``events``."""
    server = Server(workers=0, args=("--webhook-allow-private",))
    server.start()
    receiver = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as api:
            hook, receiver = await _subscribe(api)
            for start in range(0, events, 500):
                batch = [
                    {"name": f"w{n}", "command": "true", "queue": "parked"}
                    for n in range(start, min(events, start + 500))
                ]
                (await api.post("/api/tasks/batch", json={"tasks": batch})).raise_for_status()
            last = (await api.get("/api/events", params={"format": "json", "limit": 1})).json()
            target = int(last["last_id"])
            began = time.perf_counter()
            await api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url,
                                                               "enabled": True})  # fmt: skip
            while await _delivered(api, hook["id"]) < target:
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - began
            total = (await api.get(f"/api/webhooks/{hook['id']}/deliveries")).json()["total"]
            assert total == events, f"{total} deliveries for {events} events"
            return events / elapsed
    finally:
        if receiver is not None:
            receiver.stop()
        server.stop()


async def latency(samples: int) -> list[float]:
    """Milliseconds from each commit to its delivery being recorded."""
    server = Server(workers=0, args=("--webhook-allow-private",))
    server.start()
    receiver = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as api:
            hook, receiver = await _subscribe(api)
            await api.put(f"/api/webhooks/{hook['id']}", json={"url": receiver.url,
                                                               "enabled": True})  # fmt: skip
            for n in range(samples):
                task = await api.post("/api/tasks", json={"name": f"l{n}", "command": "true",
                                                          "queue": "parked"})  # fmt: skip
                task.raise_for_status()
                while len(receiver.events("*")) <= n:
                    await asyncio.sleep(0.002)
            page = await api.get(f"/api/webhooks/{hook['id']}/deliveries",
                                 params={"limit": samples})  # fmt: skip
            events = (await api.get("/api/events", params={"format": "json",
                                                           "types": "task.created",
                                                           "limit": 1000})).json()  # fmt: skip
            committed = {e["id"]: _time(e["time"]) for e in events["items"]}
            return [
                (_time(d["created_at"]) - committed[d["event_id"]]) * 1000
                for d in page.json()["deliveries"]
            ]
    finally:
        if receiver is not None:
            receiver.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.samples = 300, 30
    say(f"== dispatch rate: a backlog of {args.events} events to a local receiver")
    rate = asyncio.run(dispatch_rate(args.events))
    say(f"  {rate:,.0f} events/s delivered, in order, each verified by the receiver")
    say(f"== latency, commit to delivery recorded ({args.samples} events, idle server)")
    found = asyncio.run(latency(args.samples))
    say(f"  p50 {percentile(found, 50):.1f} ms, p99 {percentile(found, 99):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
