"""The authentication benchmark: what checking an API key costs a request, in one run.

Run from the repository root::

    .venv/bin/python -m bench.auth                # 10 rounds of 2,000 requests a row
    .venv/bin/python -m bench.auth --quick        # 2 rounds of 300 (a smoke run)
    .venv/bin/python -m bench.auth --rounds 10 --requests 3000 --clients 16

Two ``taskqueue server --workers 0`` processes on fresh SQLite files run side by side: *open*,
on a database with no key (so no request needs one), and *keyed*, on a database with an admin
key (``taskqueue keys create --admin --db``), which every request presents as
``Authorization: Bearer``. Each is measured on single enqueues (``POST /api/tasks`` onto the
queue ``parked``, which nothing serves) and on reads of one task (``GET /api/tasks/{id}``),
from ``--clients`` coroutines sharing one ``httpx.AsyncClient``; every answer is checked.
Each round measures every row on both servers, one right after the other, in an order that
alternates from round to round, and a row's ratio keyed/open is the median of the
round-by-round ratios (its req/s is its median round): the machine is shared and noisy, and
what slows one server's run slows the other's beside it too. The server CPU time per request
(user + system, from ``psutil``) is the most direct figure of what authentication adds. The
goal is a ratio of at least 0.95. The results are also written to ``bench/results-auth.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import TASKQUEUE, Server, fmt, say
from bench.sdk_load import Round, async_round

RESULTS = Path(__file__).resolve().parent / "results-auth.json"
GOAL = 0.95
BODY = {"name": "bench-auth", "command": "true", "queue": "parked"}


class KeyedServer(Server):
    """A bench server on a database that has an admin key (made on the file before it starts)."""

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers)
        made = subprocess.run(
            [str(TASKQUEUE), "keys", "create", "--admin", "--name", "bench", "--db", str(self.db)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.dir,
        )
        if made.returncode != 0:
            raise RuntimeError(f"keys create failed: {made.stderr}")
        self.key: str | None = made.stdout.strip()


@dataclass
class Row:
    """One kind of request on one server, and its rounds."""

    what: str
    server: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.rounds)

    @property
    def server_us(self) -> float:
        return statistics.median(1e6 * r.server_cpu_s / r.requests for r in self.rounds)


class Target:
    """One server and a client on it that presents its key, if it has one."""

    def __init__(self, name: str, server: Server, clients: int) -> None:
        self.name = name
        self.server = server
        self.clients = clients
        self.client = self._new_client()
        self.task_id = ""

    def _new_client(self) -> httpx.AsyncClient:
        key = getattr(self.server, "key", None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        return httpx.AsyncClient(
            base_url=self.server.url, headers=headers, limits=limits, timeout=30
        )

    async def fresh(self) -> None:
        """New connections, opened before a run is timed: the server closes idle keep-alive
        connections (5 s) while the other server is measured, and a request on one it is just
        closing fails."""
        await self.client.aclose()
        self.client = self._new_client()
        await asyncio.gather(*(self.get() for _ in range(self.clients)))

    async def open(self) -> None:
        if getattr(self.server, "key", None):  # the key is needed: check that it is
            async with httpx.AsyncClient(base_url=self.server.url) as bare_client:
                bare = await bare_client.get("/api/tasks")  # logs one "missing key" warning
            if bare.status_code != 401:
                raise RuntimeError(f"the keyed server answered {bare.status_code} without a key")
        response = await self.client.post("/api/tasks", json=BODY)
        response.raise_for_status()
        self.task_id = response.json()["id"]

    async def enqueue(self) -> None:
        response = await self.client.post("/api/tasks", json=BODY)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/tasks: {response.status_code} {response.text[:200]}")

    async def get(self) -> None:
        response = await self.client.get(f"/api/tasks/{self.task_id}")
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/tasks/id: {response.status_code} {response.text[:200]}")


async def measure(
    targets: list[Target], rounds: int, total: int, clients: int
) -> tuple[dict[tuple[str, str], Row], dict[str, list[float]]]:
    rows = {(w, t.name): Row(w, t.name) for w in ("enqueue", "get") for t in targets}
    ratios: dict[str, list[float]] = {w: [] for w in ("enqueue", "get", "enqueue_cpu", "get_cpu")}
    for target in targets:
        await target.open()

    def call(target: Target, what: str) -> Callable[[], Awaitable[None]]:
        return target.enqueue if what == "enqueue" else target.get

    for target in targets:  # warm-up, not counted: opens the connections
        for what in ("enqueue", "get"):
            await async_round(call(target, what), min(total, 300), clients, target.server)
    for i in range(rounds):
        order = targets if i % 2 == 0 else targets[::-1]
        for what in ("enqueue", "get") if i % 2 == 0 else ("get", "enqueue"):
            got: dict[str, Round] = {}
            for target in order:
                await target.fresh()
                got[target.name] = await async_round(
                    call(target, what), total, clients, target.server
                )
                rows[(what, target.name)].rounds.append(got[target.name])
            ratio = got["keyed"].rate / got["open"].rate
            ratios[what].append(ratio)
            # The server CPU a request, open over keyed: the rate ratio of a CPU-bound server,
            # less swayed by what else the machine runs than the rates themselves.
            cpu = _cpu_us(got["open"]) / _cpu_us(got["keyed"])
            ratios[f"{what}_cpu"].append(cpu)
            say(
                f"  round {i + 1}: {what:8} open {got['open'].rate:7,.0f} req/s, keyed "
                f"{got['keyed'].rate:7,.0f} req/s, keyed/open {ratio:.3f}; server CPU/req "
                f"{_cpu_us(got['open']):,.0f} → {_cpu_us(got['keyed']):,.0f} µs ({cpu:.3f})"
            )
    return rows, ratios


async def idle_cpu(servers: list[Server], seconds: float) -> list[float]:
    """The CPU each server spends a second while nothing calls it, in ms (its background)."""
    before = [server.cpu_seconds() for server in servers]
    await asyncio.sleep(seconds)
    return [1e3 * (s.cpu_seconds() - b) / seconds for s, b in zip(servers, before, strict=True)]


def _cpu_us(result: Round) -> float:
    return 1e6 * result.server_cpu_s / result.requests


def report(
    rows: dict[tuple[str, str], Row], ratios: dict[str, list[float]], args: argparse.Namespace
) -> dict[str, Any]:
    say("")
    say(f"{'request':22} {'open req/s':>11} {'keyed req/s':>12} {'keyed/open':>11} "
        f"{'server CPU µs/req open → keyed':>32} {'CPU open/keyed':>15}")  # fmt: skip
    names = {"enqueue": "POST /api/tasks", "get": "GET /api/tasks/{id}"}
    out: dict[str, Any] = {}
    for what in ("enqueue", "get"):
        open_, keyed = rows[(what, "open")], rows[(what, "keyed")]
        ratio = statistics.median(ratios[what])
        cpu = statistics.median(ratios[f"{what}_cpu"])
        met = "meets" if ratio >= GOAL else "BELOW"
        say(
            f"{names[what]:22} {open_.rate:11,.0f} {keyed.rate:12,.0f} {ratio:11.3f} "
            f"{fmt(open_.server_us):>22} → {fmt(keyed.server_us):>7} {cpu:15.3f}"
            f"   (rate ratio {met} the goal {GOAL})"
        )
        out[what] = {
            "request": names[what],
            "open_req_per_s": round(open_.rate, 1),
            "keyed_req_per_s": round(keyed.rate, 1),
            "ratio_keyed_open": round(ratio, 4),
            "ratios": [round(r, 4) for r in ratios[what]],
            "cpu_ratio_open_keyed": round(cpu, 4),
            "cpu_ratios": [round(r, 4) for r in ratios[f"{what}_cpu"]],
            "server_cpu_us_per_request": {
                "open": round(open_.server_us, 1),
                "keyed": round(keyed.server_us, 1),
            },
            "goal": GOAL,
            "met": ratio >= GOAL,
        }
    return {
        "when": datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "clients": args.clients,
        "figures": out,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    open_server, keyed_server = Server(0), KeyedServer(0)
    targets: list[Target] = []
    try:
        open_server.start()
        keyed_server.start()
        targets = [
            Target("open", open_server, args.clients),
            Target("keyed", keyed_server, args.clients),
        ]
        say(
            f"two servers (--workers 0, SQLite): open {open_server.url}, keyed "
            f"{keyed_server.url}; {args.rounds} rounds of {args.requests:,} requests, "
            f"{args.clients} in flight"
        )
        idle = await idle_cpu([open_server, keyed_server], 5.0)
        say(
            f"idle, server CPU: open {idle[0]:.1f} ms/s, keyed {idle[1]:.1f} ms/s (re-reading "
            "the keys each 0.5 s, writing last-used times each 2 s)"
        )
        rows, ratios = await measure(targets, args.rounds, args.requests, args.clients)
        result = report(rows, ratios, args)
        result["idle_server_cpu_ms_per_s"] = {"open": round(idle[0], 2), "keyed": round(idle[1], 2)}
        problems = [
            line
            for line in open_server.problems() + keyed_server.problems()
            if "missing key" not in line  # the check that the keyed server needs the key
        ]
        if problems:
            result["server_log_warnings"] = problems
            say(f"the servers logged {len(problems)} warning line(s): {problems[:3]}")
        return result
    finally:
        for target in targets:
            await target.client.aclose()
        open_server.stop()
        keyed_server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000, help="requests a row a round")
    parser.add_argument("--clients", type=int, default=16, help="requests in flight")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 300: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 2, 300
    result = asyncio.run(run(args))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    say(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
