"""The SDK benchmark: ``GET /api/tasks/{id}`` from wrk, bare clients and the SDK, in one run.

Run from the repository root::

    .venv/bin/python -m bench.sdk                 # 5 rounds of 3,000 requests a row (~3 min)
    .venv/bin/python -m bench.sdk --quick         # 1 round of 600 (a smoke run)
    .venv/bin/python -m bench.sdk --rounds 3 --requests 3000

One ``taskqueue server --workers 0`` on a fresh SQLite file serves every row; one task on the
queue ``parked`` (nothing runs it) is read again and again, and every answer is checked. A row
is a client and how many requests it keeps in flight (coroutines for async clients, threads
for sync ones, each sharing one client); wrk (C, 50 connections, 1 s) is the server's
capacity. Each round measures every row once, in an order that rotates from round to round,
each right after a run of wrk, and a row's ratio to wrk is the median of those round-by-round
ratios (a row's req/s is its median round): the machine is shared and noisy, and what slows a
row slows the wrk run beside it too. The slow bare httpx clients run 1,000 requests a round.
Then the memory of a process that imported the SDK and made 200 concurrent calls (in this
venv and in an SDK-only one), and what ``pip install taskqueue-sdk`` installs. MB means 10^6
bytes. The results are also written to ``bench/sdk_results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.run import (
    ROOT,
    TASKQUEUE,
    VENV_BIN,
    Figure,
    Server,
    ensure_wrk,
    fmt,
    running_server,
    say,
)
from bench.sdk_install import MB, describe_rss, median_rss, sdk_only_venv
from bench.sdk_load import AsyncClients, Round, SyncClients, async_round, thread_round, wrk_round
from taskqueue import TaskQueueClient

RESULTS = Path(__file__).resolve().parent / "sdk_results.json"
THREADS = 16


@dataclass
class Row:
    """One client at one concurrency, its rounds, and each round's ratio to the wrk run just
    before it."""

    name: str
    client: str
    in_flight: str
    #: Requests a round (None: the run's number; fewer for clients too slow to wait for).
    requests: int | None = None
    rounds: list[Round] = field(default_factory=list)
    to_wrk: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float | None:
        return statistics.median(r.rate for r in self.rounds) if self.rounds else None

    @property
    def ratio(self) -> float | None:
        """The median of the round-by-round ratios to wrk."""
        return statistics.median(self.to_wrk) if self.to_wrk else None

    def cpu_us(self) -> float | None:
        if not self.rounds or not any(r.client_cpu_s for r in self.rounds):
            return None
        return statistics.median(1e6 * r.client_cpu_s / r.requests for r in self.rounds)


@dataclass
class Goal(Figure):
    """A figure with a strict (``<``) goal as well as ``>=`` and ``<=``."""

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        if self.goal_op == "<":
            return self.value < self.goal
        return super().met


def make_rows() -> list[Row]:
    rows = [Row("wrk", "wrk (C)", "50 connections")]
    for n in (1, 10, 100):
        rows.append(Row(f"aiohttp_{n}", "bare aiohttp.ClientSession", f"{n} coroutines"))
    for n in (10, 100):
        rows.append(Row(f"httpx_async_{n}", "bare httpx.AsyncClient", f"{n} coroutines", 1000))
    for n in (1, 10, 100):
        rows.append(Row(f"sdk_async_{n}", "AsyncTaskQueueClient", f"{n} coroutines"))
    rows.append(Row("urllib3_16", "bare urllib3.PoolManager", f"{THREADS} threads"))
    rows.append(Row("httpx_sync_16", "bare httpx.Client", f"{THREADS} threads", 1000))
    rows.append(Row("sdk_sync_16", "TaskQueueClient", f"{THREADS} threads"))
    return rows


Measure = Callable[[int], Awaitable[Round]]


def measures(
    server: Server, path: str, wrk: str | None, a: AsyncClients, s: SyncClients, workdir: Path
) -> dict[str, Measure]:
    """How to measure each row once (``total`` requests); rows it cannot measure are left out."""

    def in_flight(get: Callable[[], Awaitable[None]], n: int) -> Measure:
        return lambda total: async_round(get, total, n, server)

    def threads(get: Callable[[], None]) -> Measure:
        return lambda total: asyncio.to_thread(thread_round, get, total, THREADS, server)

    table: dict[str, Measure] = {}
    if wrk is not None:
        table["wrk"] = lambda _: asyncio.to_thread(wrk_round, wrk, server, path, workdir)
    for n in (1, 10, 100):
        if a.aiohttp is not None:
            table[f"aiohttp_{n}"] = in_flight(a.get_aiohttp, n)
        table[f"sdk_async_{n}"] = in_flight(a.get_sdk, n)
    for n in (10, 100):
        table[f"httpx_async_{n}"] = in_flight(a.get_httpx, n)
    table["urllib3_16"] = threads(s.get_urllib3)
    table["httpx_sync_16"] = threads(s.get_httpx)
    table["sdk_sync_16"] = threads(s.get_sdk)
    return table


async def measure_rows(
    server: Server, task_id: str, wrk: str | None, rows: list[Row], rounds: int, total: int
) -> None:
    path = f"/api/tasks/{task_id}"
    clients = AsyncClients(server.url, task_id)
    await clients.open()
    sync = SyncClients(server.url, task_id)
    try:
        with tempfile.TemporaryDirectory(prefix="taskqueue-bench-wrk-") as tmp:
            table = measures(server, path, wrk, clients, sync, Path(tmp))
            for row in rows:
                if row.name not in table:
                    row.note = "not measured: " + (
                        "wrk is absent" if row.name == "wrk" else "aiohttp is not installed"
                    )
            order = [row for row in rows if row.name in table and row.name != "wrk"]
            for row in order:  # warm-up, not counted: opens the connections
                await table[row.name](min(total, 300))
            for i in range(rounds):
                for row in order[i % len(order) :] + order[: i % len(order)]:
                    await measure_pair(table, rows[0], row, i, row.requests or total)
    finally:
        await clients.close()
        sync.close()


async def measure_pair(
    table: dict[str, Measure], wrk: Row, row: Row, round_index: int, total: int
) -> None:
    """One round of ``row``, just after one of wrk (if there is wrk): the machine is shared,
    and what slows one slows the other alike."""
    reference = await table["wrk"](0) if "wrk" in table else None
    result = await table[row.name](total)
    row.rounds.append(result)
    text = (
        f"  round {round_index + 1}: {row.client:28} {row.in_flight:15} {result.rate:8,.0f} req/s"
    )
    if reference is not None:
        wrk.rounds.append(reference)
        row.to_wrk.append(result.rate / reference.rate)
        text += f" / wrk {reference.rate:,.0f} = {row.to_wrk[-1]:.2f}"
    say(text + f" ({result.requests:,} in {result.seconds:.2f} s)")


def print_rows(rows: list[Row]) -> None:
    lines = [
        ("client", "in flight", "req/s (median)", "/ wrk (median)", "client CPU µs/req", "rounds")
    ]
    for row in rows:
        rate = row.rate
        ratio = "1" if row.name == "wrk" and rate else fmt(row.ratio)
        cpu = row.cpu_us()
        if row.to_wrk:
            rounds = "/ wrk: " + " ".join(f"{r:.2f}" for r in row.to_wrk)
        elif row.rounds:
            rates = sorted(r.rate for r in row.rounds)
            rounds = f"{len(rates)} runs, {rates[0]:,.0f} to {rates[-1]:,.0f} req/s"
        else:
            rounds = row.note
        lines.append(
            (row.client, row.in_flight, fmt(rate), ratio, f"{cpu:,.0f}" if cpu else "-", rounds)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    say("")
    for n, line in enumerate(lines):
        say("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            say("  ".join("-" * w for w in widths))


def make_goals(rows: dict[str, Row]) -> list[Goal]:
    def relative(a: str, b: str) -> float | None:
        """Row ``a`` over row ``b``, each as its median ratio to the wrk runs beside it (the
        figures of the table above); their own req/s when there is no wrk."""
        x, y = rows[a].ratio or rows[a].rate, rows[b].ratio or rows[b].rate
        return x / y if x is not None and y else None

    return [
        Goal(
            "async_vs_wrk",
            "AsyncTaskQueueClient, 100 in flight / wrk",
            rows["sdk_async_100"].ratio,
            "",
            0.8,
            ">=",
        ),
        Goal(
            "async_100_vs_10",
            "AsyncTaskQueueClient, 100 in flight / 10 in flight",
            relative("sdk_async_100", "sdk_async_10"),
            "",
            1.0,
            ">=",
        ),
        Goal(
            "sync_vs_wrk",
            f"TaskQueueClient, {THREADS} threads / wrk",
            rows["sdk_sync_16"].ratio,
            "",
            0.35,
            ">=",
        ),
        Goal("rss", "RSS after import + 200 concurrent calls (this venv)", None, "MB", 50, "<"),
        Goal(
            "rss_sdk_only",
            "RSS after import + 200 concurrent calls (SDK-only venv)",
            None,
            "MB",
            50,
            "<",
        ),
        Goal(
            "server_dists",
            "server distributions installed by the SDK-only install",
            None,
            "",
            0,
            "<=",
        ),
        Goal(
            "package_size",
            "installed taskqueue package (server modules included)",
            None,
            "MB",
            5,
            "<",
        ),
    ]


def step_memory(server: Server, task_id: str, goals: dict[str, Goal], quick: bool) -> None:
    runs = 1 if quick else 3
    here = median_rss(VENV_BIN / "python", server.url, task_id, runs)
    goals["rss"].value = here["rss_end"] / MB
    goals["rss"].details.update(here)
    say(f"  this venv: {describe_rss(here)}")
    with sdk_only_venv() as install:
        goals["server_dists"].value = len(install.server_distributions)
        goals["server_dists"].details.update(
            {"distributions": install.distributions, "server": install.server_distributions}
        )
        goals["package_size"].value = install.package_bytes / MB
        only = median_rss(install.python, server.url, task_id, runs)
        goals["rss_sdk_only"].value = only["rss_end"] / MB
        goals["rss_sdk_only"].details.update(only)
        say(f"  SDK-only venv ({install.wheel}): {describe_rss(only)}")
        say(f"  installed: {', '.join(install.distributions)}")
        say(
            f"  site-packages {install.site_packages_bytes / MB:.1f} MB, largest (MB):"
            f" {install.largest_mb}; `import taskqueue.server` there: {install.server_import}"
        )


def print_goals(goals: list[Goal]) -> None:
    lines = [("goal", "value", "target", "met")]
    for g in goals:
        shown = f"{g.value:.0f}" if g.name == "server_dists" and g.value is not None else None
        value = "-" if g.value is None else shown or f"{fmt(g.value)} {g.unit}".strip()
        lines.append(
            (
                g.title,
                value,
                f"{g.goal_op} {fmt(g.goal)} {g.unit}".strip(),
                "yes" if g.met else "NO",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    say("")
    for n, line in enumerate(lines):
        say("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            say("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 600 requests a row")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--requests", type=int, default=3000, help="requests a row a round")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    rounds, total = (1, 600) if args.quick else (args.rounds, args.requests)
    if not TASKQUEUE.exists():
        parser.error(f"{TASKQUEUE} not found: run with the project's venv python")
    say(
        f"taskqueue SDK bench: {rounds} round(s) of {total:,} requests a row on {os.cpu_count()}"
        f" CPU(s), load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    wrk = ensure_wrk()
    if wrk is None:
        say(
            "  WRK IS ABSENT: install it with `apt-get update && apt-get install -y wrk`; the"
            " ratios to wrk below are not measured and their goals show NO"
        )
    rows = make_rows()
    goals = make_goals({r.name: r for r in rows})
    started = time.perf_counter()
    session = Figure("server", "server", None, "", 0, ">=")
    with running_server(session, workers=0) as server:
        with TaskQueueClient(server.url) as client:
            task_id = str(client.create_task("bench-sdk-get", "true", queue="parked").id)
        say(f"server {server.url} (--workers 0); GET /api/tasks/{task_id}\n\n== requests")
        asyncio.run(measure_rows(server, task_id, wrk, rows, rounds, total))
        goals = make_goals({r.name: r for r in rows})
        say("\n== memory and install")
        step_memory(server, task_id, {g.name: g for g in goals}, args.quick)
    print_rows(rows)
    print_goals(goals)
    say(f"\ntotal {time.perf_counter() - started:.0f} s; results in {args.output}")
    report = {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "rounds": rounds,
        "requests_per_round": total,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "rows": {
            r.name: {
                "client": r.client,
                "in_flight": r.in_flight,
                "req_per_s": r.rate,
                "rounds": [x.as_json() for x in r.rounds],
                "note": r.note,
            }
            for r in rows
        },
        "goals": {g.name: g.as_json() for g in goals},
    }
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if all(g.met for g in goals) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
