"""Does a large body stall the event loop? Health latency while a big batch is checked.

Run from the repository root::

    .venv/bin/python -m bench.loop            # three bodies of ~16 MB, about a minute
    .venv/bin/python -m bench.loop --quick    # smaller bodies, a smoke run

For each body a real ``taskqueue server --workers 0`` (on a fresh SQLite file) is probed with
``GET /api/health`` in a tight loop on one keep-alive connection: first for a second while
idle, then while one ``POST /api/tasks/batch`` of that body is sent, checked and answered. It
prints the idle and the during latencies and their ratio (during max / idle p50): on a server
whose loop is not blocked, health waits only for its turn between short pieces of work.

Bodies:

``over_limit``   70,000 small tasks (~16 MB), over the 5,000-task limit: 422
``invalid``      5,000 tasks with 3 KB of metadata each (~15 MB), the last one invalid: 422
``valid``        the same 5,000 tasks, all valid: 201, all stored
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

import httpx

from bench.run import ROOT, TASKQUEUE, Server, percentile, say

JSON_HEADERS = {"Content-Type": "application/json"}


def bodies(quick: bool) -> dict[str, tuple[bytes, int]]:
    """Each body to send, by name, with the status it must get."""
    scale = 10 if quick else 1
    small = [
        {"name": f"t{i}", "command": "true", "metadata": {"k": "x" * 150}}
        for i in range(70_000 // scale)
    ]
    large = [
        {"name": f"t{i}", "command": "true", "metadata": {"k": "x" * 3000}}
        for i in range(5000 // scale)
    ]
    broken = [*large[:-1], {**large[-1], "priority": "Bogus"}]
    return {
        "over_limit": (json.dumps({"tasks": small}).encode(), 422),
        "invalid": (json.dumps({"tasks": broken}).encode(), 422),
        "valid": (json.dumps({"tasks": large}).encode(), 201),
    }


class Prober(threading.Thread):
    """``GET /api/health`` in a loop on one connection; the latency of each, by phase."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = {"idle": [], "during": []}
        self.stopped = threading.Event()
        self.failures = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stopped.is_set():
                phase = self.phase
                started = time.perf_counter()
                response = client.get("/api/health")
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    self.failures += 1
                # By the phase it started in: a probe the batch held up ends after the batch.
                self.latencies.setdefault(phase, []).append(elapsed)
                time.sleep(0.002)


def measure(name: str, body: bytes, expected: int) -> dict[str, Any]:
    """One body against a fresh server: the health latencies idle and during its request."""
    server = Server(workers=0)
    server.start()
    try:
        prober = Prober(server.url)
        prober.start()
        time.sleep(1.0)
        prober.phase = "during"
        started = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=300) as client:
            response = client.post("/api/tasks/batch", content=body, headers=JSON_HEADERS)
        request_s = time.perf_counter() - started
        prober.phase = "after"
        prober.stopped.set()
        prober.join(60)
        stored = server.counts().get("Pending", 0)
    finally:
        server.stop()
    idle, during = prober.latencies["idle"], prober.latencies["during"]
    return {
        "body": name,
        "mb": round(len(body) / 1e6, 1),
        "status": response.status_code,
        "expected_status": expected,
        "stored": stored,
        "request_s": round(request_s, 3),
        "idle_p50_ms": round(1000 * percentile(idle, 50), 2),
        "during_p50_ms": round(1000 * percentile(during, 50), 2) if during else None,
        "during_max_ms": round(1000 * max(during), 1) if during else None,
        "probes_during": len(during),
        "ratio": round(max(during) / percentile(idle, 50), 1) if during else None,
        "health_failures": prober.failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loop", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="bodies a tenth of the size")
    parser.add_argument("--only", choices=["over_limit", "invalid", "valid"], help="one body")
    args = parser.parse_args(argv)
    if not TASKQUEUE.exists():
        parser.error(f"{TASKQUEUE} not found: run with the project's venv python")
    rows = []
    for name, (body, expected) in bodies(args.quick).items():
        if args.only and name != args.only:
            continue
        row = measure(name, body, expected)
        rows.append(row)
        say(
            f"{name:<10} {row['mb']:>5} MB -> {row['status']} in {row['request_s']:.2f} s; "
            f"health idle p50 {row['idle_p50_ms']} ms, during p50 {row['during_p50_ms']} ms, "
            f"max {row['during_max_ms']} ms ({row['probes_during']} probes); "
            f"during max / idle p50 = {row['ratio']}"
        )
        if row["status"] != expected:
            say(f"  expected {expected}")
    return 0 if all(r["status"] == r["expected_status"] for r in rows) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
