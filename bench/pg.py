"""The PostgreSQL benchmark: the figures of ``bench.run`` again, with standalone workers.

Run from the repository root::

    .venv/bin/python -m bench.pg               # full run (about 3-5 minutes)
    .venv/bin/python -m bench.pg --quick       # smoke run with small sizes
    .venv/bin/python -m bench.pg --only drain  # one group of figures

It starts its own throwaway PostgreSQL cluster (``tests/pg_cluster.py``: ``fsync=on``,
``synchronous_commit=on``, run as ``nobody`` when we are root) in a temporary directory, and
stops it at exit. Every API figure runs a real ``taskqueue server`` subprocess; every worker is a
``taskqueue worker`` subprocess.

Figures:

``drain``    4,000 ``true`` tasks queued first (``server --workers 0``), then drained by 1, 2 or
             4 ``taskqueue worker`` processes with 16 slots in total (16, 8x2, 4x4), on
             PostgreSQL and on SQLite, each over the raw rate of a ``Pool(2)`` running ``true``
             (measured just before and just after each run: their mean).
             The rate is tasks / (last attempt finished - first attempt started), from the
             database's own timestamps, so worker process start-up (~0.5 s of imports) is not
             counted; the wall time from spawning the workers is reported beside it.
``batch``    ``POST /api/tasks/batch`` of 1,000 tasks from 4 concurrent clients, tasks/s.
``latency``  enqueue-to-start latency with one idle standalone worker: from just before the
             ``POST /api/tasks`` to the attempt's ``started_at`` (the claim), 20 tasks/s.
``claim``    ``transitions.claim`` on 1,000 vs 1,000,000 queued rows in a rolled-back
             transaction (as ``bench.run`` does on SQLite), median µs; plus ``Store.claim`` end
             to end (committed) as a detail.
``chain``    40 tasks each depending on the previous, created in one batch, run by idle
             workers: total time and per-hop overhead = (total - sum of command durations) / 40.

The results are also written to ``bench/results-pg.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from tests.pg_cluster import PgCluster, start_cluster

from bench.run import (
    JSON_HEADERS,
    TASKQUEUE,
    Figure,
    Server,
    fmt,
    iso_to_ns,
    percentile,
    print_table,
    raw_true_rate,
    say,
    task_body,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results-pg.json"
#: Most tasks in one ``POST /api/tasks/batch`` request here.
BATCH_LIMIT = 1000
#: Total worker slots of every drain run, split evenly over the worker processes.
DRAIN_SLOTS = 16
TERMINAL = ("Completed", "Failed", "Cancelled")


@dataclass
class Sizes:
    """How big each measurement is (``--quick`` shrinks them)."""

    drain_tasks: int = 4000
    drain_processes: tuple[int, ...] = (1, 2, 4)
    batch_clients: int = 4
    batch_requests_each: int = 25
    latency_tasks: int = 200
    latency_sqlite_tasks: int = 60
    latency_rate: float = 20.0
    claim_rows: tuple[int, int] = (1000, 1_000_000)
    claim_iterations: int = 2000
    claim_store_iterations: int = 300
    chain_length: int = 40

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            drain_tasks=1000,
            drain_processes=(1, 2),
            batch_requests_each=5,
            latency_tasks=40,
            latency_sqlite_tasks=20,
            claim_rows=(1000, 100_000),
            claim_iterations=500,
            claim_store_iterations=100,
            chain_length=20,
        )


# ------------------------------------------------------------------------------ the backends


@dataclass
class Backends:
    """The PostgreSQL cluster of this run and where fresh databases go."""

    cluster: PgCluster
    workdir: Path
    _made: int = 0

    def fresh(self, backend: str, label: str) -> str:
        """A new empty database: a PostgreSQL URL, or a SQLite file path."""
        self._made += 1
        name = f"bench_{label}_{self._made}"
        if backend == "postgresql":
            return self.cluster.create_database(name)
        return str(self.workdir / f"{name}.db")

    def postgres_processes(self) -> list[psutil.Process]:
        """The postmaster and every process it started (backends, WAL writer...)."""
        pid = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        master = psutil.Process(pid)
        return [master, *master.children(recursive=True)]


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def query(db: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only statement, straight from the database (not through the API)."""
    if is_postgres(db):
        with psycopg.connect(db) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def migrate(db: str) -> None:
    """``taskqueue db upgrade``: create the schema."""
    result = subprocess.run(
        [str(TASKQUEUE), "db", "upgrade", "--db", db], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"taskqueue db upgrade failed:\n{result.stdout}{result.stderr}")


# ------------------------------------------------------------------------------ CPU accounting


def cpu_by_pid(processes: Iterable[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each live process (children not included)."""
    spent: dict[int, float] = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            spent[process.pid] = float(times.user + times.system)
    return spent


def cpu_since(before: dict[int, float], processes: Iterable[psutil.Process]) -> float:
    """CPU seconds the processes spent since ``before`` (processes born since count in full)."""
    now = cpu_by_pid(processes)
    return sum(value - before.get(pid, 0.0) for pid, value in now.items())


def machine_busy(before: Any, after: Any) -> float:
    """Percentage of all cores busy between two ``psutil.cpu_times()`` samples."""
    total = sum(after) - sum(before)
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return 100.0 * (1 - idle / total) if total > 0 else 0.0


# ------------------------------------------------------------------------------ processes


class DbServer(Server):
    """``bench.run``'s server subprocess, on a database given by path or URL."""

    def __init__(self, db: str, workers: int | None) -> None:
        super().__init__(workers)
        self.db = db  # type: ignore[assignment]  # Server only ever passes str(self.db)


@contextlib.contextmanager
def serving(figures: list[Figure], db: str, workers: int | None = 0) -> Iterator[DbServer]:
    """A running server on ``db``; its exit code and logged problems go into ``figures``."""
    server = DbServer(db, workers)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    try:
        yield server
    finally:
        problems = server.problems()
        code = server.stop()
        for figure in figures:
            if code not in (0, -signal.SIGTERM, None):
                figure.notes.append(f"the server exited with code {code} on SIGTERM")
            if problems:
                figure.details["server_log_warnings"] = problems
                figure.notes.append(f"the server logged {len(problems)} warning/error line(s)")


@dataclass
class WorkerProcesses:
    """``processes`` standalone ``taskqueue worker`` subprocesses on one database."""

    db: str
    processes: int
    concurrency: int
    workdir: Path
    popen: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.processes):
            log_path = self.workdir / f"worker-{n}.log"
            command = [
                str(TASKQUEUE),
                "worker",
                "--db",
                self.db,
                "--concurrency",
                str(self.concurrency),
                "--log-level",
                "warning",
            ]
            with log_path.open("wb") as log:
                self.popen.append(
                    subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=self.workdir,
                        start_new_session=True,
                    )
                )
            self.logs.append(log_path)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until every worker printed its banner (it has opened the database)."""
        deadline = time.monotonic() + timeout
        for process, log_path in zip(self.popen, self.logs, strict=True):
            while "taskqueue worker " not in log_path.read_text(errors="replace"):
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited at start:\n{self.log_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start in {timeout} s:\n{self.log_text()}")
                time.sleep(0.02)

    def ps(self) -> list[psutil.Process]:
        found = []
        for process in self.popen:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(process.pid))
        return found

    def children_cpu(self) -> float:
        """CPU seconds of the commands the workers ran and reaped (``true``...)."""
        total = 0.0
        for process in self.ps():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += float(times.children_user + times.children_system)
        return total

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs if p.exists())

    def problems(self) -> list[str]:
        marks = ("WARNING", "ERROR", "Traceback")
        lines = self.log_text().splitlines()
        return [line for line in lines if any(m in line for m in marks)][:10]

    def stop(self) -> list[int | None]:
        for process in self.popen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process in self.popen:
            try:
                codes.append(process.wait(timeout=40))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes


@contextlib.contextmanager
def working(
    figures: list[Figure], db: str, processes: int, concurrency: int, workdir: Path
) -> Iterator[WorkerProcesses]:
    """Running standalone workers; their exit codes and logged problems go into ``figures``."""
    workers = WorkerProcesses(db, processes, concurrency, workdir)
    try:
        workers.start()
        yield workers
    finally:
        problems = workers.problems()
        codes = workers.stop()
        for figure in figures:
            if any(code not in (0, -signal.SIGTERM) for code in codes):
                figure.notes.append(f"worker exit codes on SIGTERM: {codes}")
            if problems:
                figure.details["worker_log_warnings"] = problems
                figure.notes.append(f"the workers logged {len(problems)} warning/error line(s)")


# ------------------------------------------------------------------------------ HTTP helpers


def enqueue(client: httpx.Client, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create ``tasks`` through ``POST /api/tasks/batch``, at most 1,000 a request."""
    created: list[dict[str, Any]] = []
    for first in range(0, len(tasks), BATCH_LIMIT):
        body = {"tasks": tasks[first : first + BATCH_LIMIT]}
        response = client.post("/api/tasks/batch", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"batch enqueue failed: {response.status_code} {response.text}")
        created.extend(response.json()["tasks"])
    return created


def counts(client: httpx.Client) -> dict[str, int]:
    response = client.get("/api/health")
    response.raise_for_status()
    found: dict[str, int] = response.json()["tasks"]
    return found


def wait_all_done(client: httpx.Client, total: int, timeout: float) -> dict[str, int]:
    """Poll ``/api/health`` every 0.1 s until ``total`` tasks are terminal."""
    deadline = time.monotonic() + timeout
    while True:
        found = counts(client)
        if sum(found.get(s, 0) for s in TERMINAL) >= total:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"the tasks did not finish in {timeout:.0f} s: {found}")
        time.sleep(0.1)


def wait_task(client: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    response = client.get(f"/api/tasks/{task_id}/wait", params={"timeout": timeout})
    response.raise_for_status()
    task: dict[str, Any] = response.json()
    if task["status"] not in TERMINAL:
        raise RuntimeError(f"task {task_id} is still {task['status']} after {timeout} s")
    return task


# ------------------------------------------------------------------------------ 1. drain


def drain_once(
    backends: Backends, backend: str, processes: int, count: int, workdir: Path
) -> Figure:
    """Queue ``count`` ``true`` tasks, then time ``processes`` standalone workers draining them."""
    concurrency = DRAIN_SLOTS // processes
    figure = Figure(
        f"drain_{backend}_{processes}",
        f"drain, {backend}, {processes} worker process(es) x {concurrency} slots / raw",
        None,
        "ratio",
        0.9,
        ">=",
    )
    db = backends.fresh(backend, f"drain{processes}")
    tasks = [task_body(f"bench-drain-{i}") for i in range(count)]
    run_dir = workdir / figure.name
    run_dir.mkdir()
    with (
        serving([figure], db) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        enqueue(client, tasks)
        pg_before = cpu_by_pid(backends.postgres_processes()) if backend == "postgresql" else {}
        machine_before = psutil.cpu_times()
        with working([figure], db, processes, concurrency, run_dir) as workers:
            spawned = time.perf_counter()
            # Start-up (imports, migration check: ~0.5 s of CPU a process) is not per-task work.
            workers.wait_ready()
            startup_cpu = cpu_by_pid(workers.ps())
            final = wait_all_done(client, count, timeout=240)
            wall = time.perf_counter() - spawned
            machine = machine_busy(machine_before, psutil.cpu_times())
            worker_cpu = cpu_since(startup_cpu, workers.ps())
            children_cpu = workers.children_cpu()
            pg_cpu = (
                cpu_since(pg_before, backends.postgres_processes())
                if backend == "postgresql"
                else None
            )
    first_start, last_finish, attempts = query(
        db, "SELECT min(started_at), max(finished_at), count(*) FROM attempts"
    )[0]
    span = (int(last_finish) - int(first_start)) / 1e6
    rate = count / span
    figure.details.update(
        {
            "tasks": count,
            "worker_processes": processes,
            "slots_per_process": concurrency,
            "tasks_per_s": round(rate, 1),
            "span_seconds": round(span, 3),
            "wall_seconds_from_spawn": round(wall, 3),
            "tasks_per_s_from_spawn": round(count / wall, 1),
            "attempts": attempts,
            "final_counts": final,
            "worker_startup_cpu_seconds": round(sum(startup_cpu.values()), 2),
            "worker_cpu_seconds": round(worker_cpu, 2),
            "command_cpu_seconds": round(children_cpu, 2),
            "worker_cpu_ms_per_task": round(1000 * worker_cpu / count, 3),
            "postgres_cpu_seconds": None if pg_cpu is None else round(pg_cpu, 2),
            "machine_busy_percent": round(machine, 1),
        }
    )
    if final.get("Completed", 0) != count:
        figure.notes.append(f"not every task Completed: {final}")
    if backend == "sqlite":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(db)
    return figure


def fig_drain(backends: Backends, sizes: Sizes, workdir: Path) -> list[Figure]:
    """Each drain run between two raw ``Pool(2)`` measurements; its ratio uses their mean.

    Measuring the raw rate beside each run keeps the ratio honest when the machine's load
    changes during the group (another job starting on a shared machine, say).
    """
    raw = [raw_true_rate(sizes.drain_tasks)]
    say(f"  raw Pool(2) `true`: {raw[-1]:,.0f}/s")
    figures: list[Figure] = []
    for backend in ("postgresql", "sqlite"):
        for processes in sizes.drain_processes:
            figure = guarded(
                f"drain_{backend}_{processes}",
                f"drain, {backend}, {processes} worker process(es) / raw",
                "ratio",
                0.9,
                ">=",
                functools.partial(
                    drain_once, backends, backend, processes, sizes.drain_tasks, workdir
                ),
            )
            raw.append(raw_true_rate(sizes.drain_tasks))
            beside = (raw[-2] + raw[-1]) / 2
            d = figure.details
            d["raw_pool2_true_per_s"] = round(beside, 1)
            d["raw_before"], d["raw_after"] = round(raw[-2], 1), round(raw[-1], 1)
            if "tasks_per_s" in d:
                figure.value = d["tasks_per_s"] / beside
                d["ratio_from_spawn"] = round(d["tasks_per_s_from_spawn"] / beside, 3)
                say(
                    f"  {backend:>10} x{processes}: {d['tasks_per_s']:,.0f} tasks/s over"
                    f" {d['span_seconds']:.2f} s (wall from spawn"
                    f" {d['wall_seconds_from_spawn']:.2f} s); raw {beside:,.0f}/s"
                    f" ({raw[-2]:,.0f} before, {raw[-1]:,.0f} after); worker CPU"
                    f" {d['worker_cpu_ms_per_task']:.2f} ms/task,"
                    f" machine {d['machine_busy_percent']:.0f}% busy"
                )
            figures.append(figure)
    return figures


# ------------------------------------------------------------------------------ 2. batch


def fig_batch(backends: Backends, sizes: Sizes, workdir: Path) -> list[Figure]:
    clients, requests_each, per_request = sizes.batch_clients, sizes.batch_requests_each, 1000
    figure = Figure(
        "batch_enqueue_postgresql",
        f"batch enqueue, postgresql ({clients} clients x {per_request:,}/request)",
        None,
        "tasks/s",
        50_000,
        ">=",
    )
    body = json.dumps(
        {"tasks": [task_body(f"bench-batch-{i}") for i in range(per_request)]}
    ).encode()
    statuses: list[int] = []
    latencies: list[float] = []

    async def load(url: str) -> float:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

            async def post() -> None:
                t0 = time.perf_counter()
                response = await client.post("/api/tasks/batch", content=body, headers=JSON_HEADERS)
                latencies.append(time.perf_counter() - t0)
                statuses.append(response.status_code)

            # One untimed request per connection opens the connections.
            await asyncio.gather(*(post() for _ in range(clients)))
            latencies.clear()

            async def one_client() -> None:
                for _ in range(requests_each):
                    await post()

            start = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(clients)))
            return time.perf_counter() - start

    db = backends.fresh("postgresql", "batch")
    with serving([figure], db) as server:
        server_cpu0 = server.cpu_seconds()
        pg_before = cpu_by_pid(backends.postgres_processes())
        machine_before = psutil.cpu_times()
        elapsed = asyncio.run(load(server.url))
        machine = machine_busy(machine_before, psutil.cpu_times())
        pg_cpu = cpu_since(pg_before, backends.postgres_processes())
        server_cpu = server.cpu_seconds() - server_cpu0
        with httpx.Client(base_url=server.url, timeout=60) as client:
            stored = counts(client).get("Pending", 0)
    timed = clients * requests_each * per_request
    expected = timed + clients * per_request
    figure.value = timed / elapsed
    figure.details.update(
        {
            "clients": clients,
            "requests_per_client": requests_each,
            "tasks_per_request": per_request,
            "seconds": round(elapsed, 3),
            "request_p50_ms": round(1000 * percentile(latencies, 50), 1),
            "request_max_ms": round(1000 * max(latencies), 1),
            "stored": stored,
            "expected_stored": expected,
            "server_cpu_seconds": round(server_cpu, 2),
            "server_cpu_us_per_task": round(1e6 * server_cpu / timed, 1),
            "postgres_cpu_seconds": round(pg_cpu, 2),
            "machine_busy_percent": round(machine, 1),
        }
    )
    bad = [s for s in statuses if s != 201]
    if bad:
        figure.notes.append(f"{len(bad)} responses were not 201: {sorted(set(bad))}")
    if stored != expected:
        figure.notes.append(f"stored {stored} tasks, expected {expected}")
    say(
        f"  {timed:,} tasks in {elapsed:.2f} s; request p50"
        f" {figure.details['request_p50_ms']:.0f} ms; CPU s: server {server_cpu:.2f},"
        f" postgres {pg_cpu:.2f}; machine {machine:.0f}% busy"
    )
    return [figure]


# ------------------------------------------------------------------------------ 3. latency


def measure_latency(
    backend: str, db: str, tasks: int, rate: float, workdir: Path, figure: Figure
) -> None:
    """POST ``tasks`` tasks one at a time to an idle standalone worker; fill ``figure``."""
    sent: list[tuple[str, int, int]] = []  # (id, ns before the POST, ns after the 201)
    with (
        serving([figure], db) as server,
        working([figure], db, 1, 16, workdir) as workers,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        workers.wait_ready()
        for i in range(5):  # warm up, end to end; then let the worker go idle
            made = client.post("/api/tasks", json=task_body(f"bench-warm-{i}")).json()
            wait_task(client, made["id"])
        time.sleep(0.5)
        start = time.perf_counter()
        for i in range(tasks):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            payload = json.dumps(task_body(f"bench-latency-{i}")).encode()
            before = time.time_ns()
            response = client.post("/api/tasks", content=payload, headers=JSON_HEADERS)
            after = time.time_ns()
            if response.status_code != 201:
                raise RuntimeError(f"enqueue failed: {response.status_code} {response.text}")
            sent.append((response.json()["id"], before, after))
        finished = [(wait_task(client, task_id), b, a) for task_id, b, a in sent]
    before_ms: list[float] = []  # POST sent -> started_at: the figure
    after_ms: list[float] = []  # 201 received -> started_at (negative: started before the 201)
    post_ms: list[float] = []  # the POST's round trip
    # Where the time goes, by the server's clock: created_at is taken as the write is queued.
    to_created_ms: list[float] = []
    created_to_start_ms: list[float] = []
    created_to_201_ms: list[float] = []
    for task, before, after in finished:
        started, created = iso_to_ns(task["started_at"]), iso_to_ns(task["created_at"])
        before_ms.append((started - before) / 1e6)
        after_ms.append((started - after) / 1e6)
        post_ms.append((after - before) / 1e6)
        to_created_ms.append((created - before) / 1e6)
        created_to_start_ms.append((started - created) / 1e6)
        created_to_201_ms.append((after - created) / 1e6)
    figure.value = percentile(before_ms, 99)
    figure.details.update(
        {
            "backend": backend,
            "tasks": tasks,
            "rate_per_s": rate,
            "p50_ms": round(percentile(before_ms, 50), 3),
            "p99_ms": round(percentile(before_ms, 99), 3),
            "max_ms": round(max(before_ms), 3),
            "after_201_p50_ms": round(percentile(after_ms, 50), 3),
            "after_201_p99_ms": round(percentile(after_ms, 99), 3),
            "post_round_trip_p50_ms": round(percentile(post_ms, 50), 3),
            "post_round_trip_p99_ms": round(percentile(post_ms, 99), 3),
            "post_to_created_at_p50_ms": round(percentile(to_created_ms, 50), 3),
            "created_at_to_start_p50_ms": round(percentile(created_to_start_ms, 50), 3),
            "created_at_to_start_p99_ms": round(percentile(created_to_start_ms, 99), 3),
            "created_at_to_201_p50_ms": round(percentile(created_to_201_ms, 50), 3),
            "created_at_to_201_p99_ms": round(percentile(created_to_201_ms, 99), 3),
            "not_completed": sum(1 for t, _, _ in finished if t["status"] != "Completed"),
        }
    )


def fig_latency(backends: Backends, sizes: Sizes, workdir: Path) -> list[Figure]:
    figures = []
    runs = (("postgresql", sizes.latency_tasks), ("sqlite", sizes.latency_sqlite_tasks))
    for backend, tasks in runs:
        figure = Figure(
            f"latency_{backend}",
            f"enqueue-to-start p99, {backend}, 1 idle standalone worker",
            None,
            "ms",
            3.0,
            "<=",
        )
        if backend == "sqlite":
            figure.notes.append(
                "for reference: SQLite has no cross-process wake-up, so a standalone worker"
                " finds new tasks by polling (every 20 ms by default)"
            )
        run_dir = workdir / figure.name
        run_dir.mkdir()
        db = backends.fresh(backend, "latency")
        try:
            measure_latency(backend, db, tasks, sizes.latency_rate, run_dir, figure)
        except Exception as exc:
            figure.notes.append(f"FAILED: {type(exc).__name__}: {exc}")
        d = figure.details
        if "p50_ms" in d:
            say(
                f"  {backend:>10}: before POST -> started_at p50 {d['p50_ms']:.2f} ms,"
                f" p99 {d['p99_ms']:.2f} ms, max {d['max_ms']:.2f} ms; after the 201: p50"
                f" {d['after_201_p50_ms']:.2f} ms, p99 {d['after_201_p99_ms']:.2f} ms;"
                f" POST round trip p50 {d['post_round_trip_p50_ms']:.2f} ms"
            )
            say(
                f"  {'':>10}  by the server's clock: POST -> created_at p50"
                f" {d['post_to_created_at_p50_ms']:.2f} ms; created_at -> started_at p50"
                f" {d['created_at_to_start_p50_ms']:.2f} ms (p99"
                f" {d['created_at_to_start_p99_ms']:.2f}); created_at -> 201 received p50"
                f" {d['created_at_to_201_p50_ms']:.2f} ms (p99 {d['created_at_to_201_p99_ms']:.2f})"
            )
        figures.append(figure)
    return figures


# ------------------------------------------------------------------------------ 4. claim


_CLAIM_SELECT = (
    "SELECT seq FROM tasks WHERE status = 'Pending' AND waiting_on = 0 AND queue IN ('default')"
    " AND run_at <= {now} ORDER BY priority_rank DESC, run_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED"
)


def build_claim_db(url: str, count: int) -> float:
    """Fill a migrated database with ``count`` runnable Pending tasks; seconds it took."""
    from bench.run import claim_row_template

    migrate(url)
    now = time.time_ns() // 1000 - 60_000_000
    template = claim_row_template(now)
    # Every column as the store writes it; the ones that differ per row come from the series.
    varying = {
        "id": "gen_random_uuid()::text",
        "name": "'bench-claim-' || i",
        "created_at": "%(now)s + i",
        "updated_at": "%(now)s + i",
        "run_at": "%(now)s + i",
    }
    values = ", ".join(varying.get(column, f"%({column})s") for column in template)
    fill = (
        f"INSERT INTO tasks ({', '.join(template)}) SELECT {values}"
        " FROM generate_series(0, %(count)s - 1) AS i"
    )
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # only for the build
        conn.execute(fill, {**template, "now": now, "count": count})  # type: ignore[arg-type]
        conn.execute("VACUUM (ANALYZE) tasks")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - start


def time_claims(url: str, iterations: int) -> dict[str, Any]:
    """``transitions.claim`` of one task in a rolled-back transaction, ``iterations`` times."""
    from psycopg.rows import dict_row

    from taskqueue.store.pipeline import Effects
    from taskqueue.store.postgres import PgTx
    from taskqueue.store.transitions import claim

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        tx = PgTx(conn)  # type: ignore[arg-type]  # claim reads rows by column name only
        samples: list[float] = []
        for i in range(iterations + 50):
            now = time.time_ns() // 1000
            conn.execute("BEGIN")
            try:
                t0 = time.perf_counter_ns()
                claimed = claim(tx, Effects(), "bench", ["default"], 1, 30_000_000, now)
                t1 = time.perf_counter_ns()
            finally:
                conn.execute("ROLLBACK")
            if len(claimed) != 1:
                raise RuntimeError(f"claim returned {len(claimed)} tasks")
            if i >= 50:  # the first ones warm the caches and prepare the statements
                samples.append((t1 - t0) / 1000)
        statement = _CLAIM_SELECT.format(now=time.time_ns() // 1000)
        plan = [str(next(iter(row.values()))) for row in conn.execute("EXPLAIN " + statement)]
        row = conn.execute(
            "SELECT count(*) AS n FROM tasks WHERE status = 'Pending'"  # type: ignore[arg-type]
        ).fetchone()
    return {
        "median_us": statistics.median(samples),
        "p90_us": percentile(samples, 90),
        "min_us": min(samples),
        "iterations": len(samples),
        "pending": row["n"] if row else None,
        "plan": plan,
    }


def time_store_claims(url: str, iterations: int) -> dict[str, Any]:
    """``Store.claim`` of one task, committed, ``iterations`` times: the worker's real path."""
    from taskqueue.store import Store

    async def run() -> list[float]:
        store = Store(url, listen=False)
        store.db.start()
        try:
            samples: list[float] = []
            for i in range(iterations + 20):
                t0 = time.perf_counter_ns()
                claimed = await store.claim("bench", ["default"], 1, 30.0)
                t1 = time.perf_counter_ns()
                if len(claimed) != 1:
                    raise RuntimeError(f"Store.claim returned {len(claimed)} tasks")
                if i >= 20:
                    samples.append((t1 - t0) / 1000)
            return samples
        finally:
            await store.close()

    samples = asyncio.run(run())
    return {"median_us": statistics.median(samples), "p90_us": percentile(samples, 90)}


def fig_claim(backends: Backends, sizes: Sizes, workdir: Path) -> list[Figure]:
    small, large = sizes.claim_rows
    figure = Figure(
        "claim_cost_postgresql",
        f"claim cost, postgresql, {large:,} / {small:,} queued tasks",
        None,
        "ratio",
        1.5,
        "<=",
    )
    runs: dict[int, dict[str, Any]] = {}
    for count in (small, large):
        url = backends.fresh("postgresql", f"claim{count}")
        build = build_claim_db(url, count)
        say(f"  built {count:,} tasks in {build:.1f} s; timing {sizes.claim_iterations:,} claims")
        timing = time_claims(url, sizes.claim_iterations)
        store_timing = time_store_claims(url, sizes.claim_store_iterations)
        timing["build_seconds"] = build
        timing["store_claim_median_us"] = store_timing["median_us"]
        timing["store_claim_p90_us"] = store_timing["p90_us"]
        runs[count] = timing
        say(
            f"  {count:>9,} queued: claim median {timing['median_us']:.0f} µs"
            f" (p90 {timing['p90_us']:.0f}); Store.claim committed median"
            f" {store_timing['median_us']:.0f} µs; plan: {' / '.join(timing['plan'][:3])}"
        )
        backends.cluster.drop_database(url.rsplit("/", 1)[1])
    figure.value = runs[large]["median_us"] / runs[small]["median_us"]
    figure.details.update(
        {
            f"median_us_{small}": round(runs[small]["median_us"], 1),
            f"median_us_{large}": round(runs[large]["median_us"], 1),
            "store_claim_ratio": round(
                runs[large]["store_claim_median_us"] / runs[small]["store_claim_median_us"], 3
            ),
            "runs": {
                str(k): {key: (round(v, 1) if isinstance(v, float) else v) for key, v in r.items()}
                for k, r in runs.items()
            },
        }
    )
    return [figure]


# ------------------------------------------------------------------------------ 5. chain


def chain_bodies(length: int) -> list[dict[str, Any]]:
    bodies = []
    for i in range(length):
        body = task_body(f"bench-chain-{i}") | {"ref": f"c{i}"}
        if i:
            body["dependencies"] = [{"ref": f"c{i - 1}"}]
        bodies.append(body)
    return bodies


def run_chain(db: str, embedded: bool, length: int, workdir: Path, figure: Figure) -> None:
    """Create a chain of ``length`` dependent ``true`` tasks and time it end to end."""
    workers_ctx: contextlib.AbstractContextManager[Any] = (
        contextlib.nullcontext() if embedded else working([figure], db, 1, 16, workdir)
    )
    with (
        serving([figure], db, workers=None if embedded else 0) as server,
        workers_ctx as workers,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        if workers is not None:
            workers.wait_ready()
        warm = client.post("/api/tasks", json=task_body("bench-chain-warm")).json()
        wait_task(client, warm["id"])
        time.sleep(0.5)
        before = time.time_ns()
        created = enqueue(client, chain_bodies(length))
        last = wait_task(client, created[-1]["id"], timeout=120)
        tasks = [client.get(f"/api/tasks/{t['id']}").json() for t in created]
    if last["status"] != "Completed" or any(t["status"] != "Completed" for t in tasks):
        raise RuntimeError(f"the chain did not complete: {[t['status'] for t in tasks]}")
    starts = [iso_to_ns(t["started_at"]) for t in tasks]
    ends = [iso_to_ns(t["finished_at"]) for t in tasks]
    if any(later < earlier for earlier, later in zip(ends[:-1], starts[1:], strict=True)):
        raise RuntimeError("a task of the chain started before the one it depends on finished")
    durations_ms = [float(t["result"]["duration_ms"]) for t in tasks]
    total_ms = (ends[-1] - before) / 1e6
    gaps_ms = [(s - e) / 1e6 for e, s in zip(ends[:-1], starts[1:], strict=True)]
    runs_ms = [(e - s) / 1e6 for s, e in zip(starts, ends, strict=True)]
    figure.value = (total_ms - sum(durations_ms)) / length
    figure.details.update(
        {
            "tasks": length,
            "total_ms": round(total_ms, 1),
            "sum_command_ms": sum(durations_ms),
            "first_start_after_post_ms": round((starts[0] - before) / 1e6, 2),
            "release_to_claim_p50_ms": round(statistics.median(gaps_ms), 2),
            "release_to_claim_max_ms": round(max(gaps_ms), 2),
            "claim_to_finish_p50_ms": round(statistics.median(runs_ms), 2),
            "claim_to_finish_max_ms": round(max(runs_ms), 2),
            "note": "duration_ms is the command's whole-ms time as the worker records it",
        }
    )


def fig_chain(backends: Backends, sizes: Sizes, workdir: Path) -> list[Figure]:
    figures = []
    setups = (
        ("postgresql", False, "1 standalone worker"),
        ("sqlite", True, "the server's embedded worker"),
        ("sqlite", False, "1 standalone worker"),
    )
    for backend, embedded, who in setups:
        kind = "embedded" if embedded else "standalone"
        figure = Figure(
            f"chain_{backend}_{kind}",
            f"chain of {sizes.chain_length}, {backend}, {who}: per-hop overhead",
            None,
            "ms",
            10.0,
            "<=",
        )
        run_dir = workdir / figure.name
        run_dir.mkdir()
        db = backends.fresh(backend, "chain")
        try:
            run_chain(db, embedded, sizes.chain_length, run_dir, figure)
        except Exception as exc:
            figure.notes.append(f"FAILED: {type(exc).__name__}: {exc}")
        d = figure.details
        if "total_ms" in d:
            say(
                f"  {backend:>10} ({who}): total {d['total_ms']:.0f} ms, commands"
                f" {d['sum_command_ms']:.0f} ms; release -> next claim p50"
                f" {d['release_to_claim_p50_ms']:.2f} ms (max {d['release_to_claim_max_ms']:.1f});"
                f" claim -> finished p50 {d['claim_to_finish_p50_ms']:.2f} ms;"
                f" POST -> first start {d['first_start_after_post_ms']:.1f} ms"
            )
        figures.append(figure)
    return figures


# ------------------------------------------------------------------------------ main


FigureGroup = Callable[[Backends, Sizes, Path], list[Figure]]

GROUPS: dict[str, FigureGroup] = {
    "drain": fig_drain,
    "batch": fig_batch,
    "latency": fig_latency,
    "claim": fig_claim,
    "chain": fig_chain,
}


def guarded(
    name: str, title: str, unit: str, goal: float, op: str, measure: Callable[[], Figure]
) -> Figure:
    """``measure()``, or a figure without a value that says why it failed."""
    try:
        return measure()
    except Exception as exc:
        text = str(exc).strip() or repr(exc)
        figure = Figure(name, title, None, unit, goal, op, details={"error": text})
        figure.notes.append(f"FAILED: {type(exc).__name__}: {text.splitlines()[-1]}")
        return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run, smaller sizes")
    parser.add_argument("--only", choices=sorted(GROUPS), action="append", help="run one group")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    if not TASKQUEUE.exists():
        parser.error(f"{TASKQUEUE} not found: run with the project's venv python")
    sizes = Sizes.quick() if args.quick else Sizes()
    names = args.only or list(GROUPS)

    say(
        f"taskqueue PostgreSQL bench ({'quick' if args.quick else 'full'}) on"
        f" {os.cpu_count()} CPU(s), load average"
        f" {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    busy_before = psutil.cpu_percent(interval=1.0)
    if busy_before > 20:
        say(
            f"WARNING: the machine is already {busy_before:.0f}% busy before the run (other"
            " processes): every figure here will be lower than on a quiet machine"
        )
    base = Path(tempfile.mkdtemp(prefix="taskqueue-bench-pg-"))
    base.chmod(0o755)  # the cluster's owner (nobody, when we are root) must reach its directory
    started = time.perf_counter()
    figures: list[Figure] = []
    cluster: PgCluster | None = None
    version = "?"
    try:
        cluster = start_cluster(base / "cluster")
        with psycopg.connect(cluster.url) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        say(f"PostgreSQL {version} at {cluster.url} (fsync=on, synchronous_commit=on)")
        workdir = base / "work"
        workdir.mkdir()
        backends = Backends(cluster, workdir)
        for name in names:
            say(f"\n== {name}")
            busy = psutil.cpu_percent(interval=0.5)
            if busy > 20:
                say(f"  WARNING: the machine is {busy:.0f}% busy with other work before {name}")
            t0 = time.perf_counter()
            try:
                group = GROUPS[name](backends, sizes, workdir)
            except Exception as exc:
                text = str(exc).strip() or repr(exc)
                failed = Figure(name, name, None, "-", 0, ">=", details={"error": text})
                failed.notes.append(f"FAILED: {type(exc).__name__}: {text.splitlines()[-1]}")
                group = [failed]
            for figure in group:
                figure.details["group_wall_seconds"] = round(time.perf_counter() - t0, 1)
                figure.details["machine_busy_percent_before_group"] = busy
                if busy > 20:
                    figure.notes.append(f"the machine was {busy:.0f}% busy before this group")
                status = "met" if figure.met else "NOT met"
                say(
                    f"  -> {figure.title}: {fmt(figure.value)} {figure.unit}"
                    f"  (goal {figure.goal_op} {fmt(figure.goal)}: {status})"
                )
                for note in figure.notes:
                    say(f"     note: {note}")
            figures.extend(group)
    finally:
        if cluster is not None:
            cluster.stop("fast")
        shutil.rmtree(base, ignore_errors=True)
    total = time.perf_counter() - started
    print_table(figures)
    say(f"total {total:.0f} s; results in {args.output}")
    report = {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgresql": version,
            "sqlite": sqlite3.sqlite_version,
            "busy_percent_before_run": busy_before,
            "load_average_at_end": os.getloadavg(),
        },
        "drain_slots": f"{DRAIN_SLOTS} in total, split evenly over the worker processes",
        "total_seconds": round(total, 1),
        "figures": {f.name: f.as_json() for f in figures},
    }
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if all(f.met for f in figures) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
