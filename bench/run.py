"""The taskqueue benchmark: five figures, each printed beside its goal.

Run from the repository root::

    .venv/bin/python -m bench.run            # full run (about 1-3 minutes)
    .venv/bin/python -m bench.run --quick    # smoke run with small sizes (under 30 s)
    .venv/bin/python -m bench.run --only single_enqueue   # one figure
    .venv/bin/python -m bench.run --no-wrk   # single_enqueue load from asyncio, not wrk

Figures (every one but ``claim_cost`` runs against a real ``taskqueue server`` subprocess on a
fresh SQLite file in a temporary directory):

``single_enqueue``  one ``POST /api/tasks`` per task from 50 keep-alive clients (wrk), tasks/s
``batch_enqueue``   ``POST /api/tasks/batch`` of 1,000 tasks from 4 concurrent clients, tasks/s
``drain``           2,000 ``true`` tasks run by the server vs a ``Pool(2)`` running ``true``
``latency``         enqueue-to-start latency at 20 tasks/s on an idle server, p50/p99 ms
``claim_cost``      ``transitions.claim`` on 1,000 vs 1,000,000 queued tasks, median µs

The results are also written to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TASKQUEUE = VENV_BIN / "taskqueue"
RESULTS = Path(__file__).resolve().parent / "results.json"
JSON_HEADERS = {"Content-Type": "application/json"}


# ------------------------------------------------------------------------------ results


@dataclass
class Figure:
    """One measured figure and its goal."""

    name: str
    title: str
    value: float | None
    unit: str
    goal: float
    goal_op: str  # ">=" or "<="
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.goal if self.goal_op == ">=" else self.value <= self.goal

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["met"] = self.met
        return data


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def say(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``taskqueue server`` subprocess on a fresh SQLite file in its own temp dir."""

    def __init__(self, workers: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.workers = workers
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-"))
        self.db = self.dir / "bench.db"
        self.log_path = self.dir / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    def start(self) -> None:
        command = [
            str(TASKQUEUE),
            "server",
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        command += self.args
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True
        )
        log.close()
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/api/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer in 60 s:\n{self.log_tail()}")
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds of the main (event loop) thread and of all the other threads."""
        assert self.ps is not None
        main = other = 0.0
        for thread in self.ps.threads():
            spent = float(thread.user_time + thread.system_time)
            if thread.id == self.ps.pid:
                main += spent
            else:
                other += spent
        return {"main": main, "other": other}

    def thread_cpu_since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.thread_cpu()
        return {key: round(now[key] - before.get(key, 0.0), 2) for key in now}

    def counts(self) -> dict[str, int]:
        response = httpx.get(f"{self.url}/api/health", timeout=30)
        response.raise_for_status()
        counts: dict[str, int] = response.json()["tasks"]
        return counts

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def problems(self) -> list[str]:
        """Warnings, errors and tracebacks the server logged (it runs with --log-level warning)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        marks = ("WARNING", "ERROR", "Traceback")
        return [line for line in text.splitlines() if any(m in line for m in marks)][:10]

    def stop(self) -> int | None:
        """SIGTERM, wait for the exit (SIGKILL after 30 s); the exit code."""
        code: int | None = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        elif self.process is not None:
            code = self.process.returncode
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


@contextlib.contextmanager
def running_server(figure: Figure, workers: int | None = None) -> Iterator[Server]:
    server = Server(workers)
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
        figure.details["server_exit_code"] = code
        # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop.
        if code not in (0, -signal.SIGTERM, None):
            figure.notes.append(f"the server exited with code {code} on SIGTERM")
        if problems:
            figure.details["server_log_warnings"] = problems
            figure.notes.append(f"the server logged {len(problems)} warning/error line(s)")


def task_body(name: str, command: str = "true") -> dict[str, Any]:
    return {"name": name, "command": command}


# ------------------------------------------------------------------------------ 1. single


WRK_SCRIPT = """
wrk.method = "POST"
wrk.path = "/api/tasks"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"bench-single","command":"true"}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  created = 0
  other = 0
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  io.write(string.format(
    "BENCH created=%d other=%d duration_us=%d requests=%d connect_err=%d read_err=%d"
      .. " write_err=%d status_err=%d timeout_err=%d p50_us=%d p99_us=%d\\n",
    c, o, summary.duration, summary.requests, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def ensure_wrk() -> str | None:
    """The wrk binary, installing the Debian package if it is missing and we may."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        say("  note: wrk is not installed and cannot be installed here (no apt-get or not root)")
        return None
    say("  wrk is not installed: apt-get install -y wrk ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    ok = subprocess.run(install, env=env, capture_output=True).returncode == 0
    if not ok:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        say("  note: installing wrk failed")
    return found


def run_wrk(wrk: str, url: str, seconds: int, connections: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        wrk,
        f"-c{connections}",
        "-t1",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^BENCH (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    stats = {k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    stats["generator"] = "wrk -t1"
    return stats


def _asyncio_loadgen(port: int, seconds: float, connections: int) -> dict[str, Any]:
    """The fallback load generator, run in its own process: asyncio streams, keep-alive.

    Plain HTTP/1.1 over ``asyncio.open_connection`` rather than httpx: on this machine an httpx
    AsyncClient spends about 2.5 ms of CPU per request, so with 50 connections it saturates its
    own core at a few hundred requests/s and would measure itself, not the server.
    """
    body = json.dumps(task_body("bench-single")).encode()
    request = (
        f"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    created = other = errors = 0
    latencies: list[int] = []

    async def one_client(deadline: float) -> None:
        nonlocal created, other, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter_ns()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = int(lines[0].split()[1])
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in lines[1:]
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is None:
                    errors += 1  # the server always sends Content-Length; stop this client
                    return
                await reader.readexactly(length)
                latencies.append((time.perf_counter_ns() - t0) // 1000)
                if status == 201:
                    created += 1
                else:
                    other += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
        finally:
            writer.close()

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(one_client(start + seconds) for _ in range(connections)))
        return time.perf_counter() - start

    duration = asyncio.run(main())
    latencies.sort()
    return {
        "created": created,
        "other": other,
        "errors": errors,
        "duration_us": int(duration * 1e6),
        "p50_us": latencies[len(latencies) // 2] if latencies else 0,
        "p99_us": latencies[int(len(latencies) * 0.99)] if latencies else 0,
        "generator": "asyncio streams (separate process)",
    }


def fig_single_enqueue(quick: bool) -> Figure:
    seconds = 3 if quick else 10
    connections = 50
    figure = Figure(
        "single_enqueue",
        "single-task enqueue over HTTP (50 clients)",
        None,
        "tasks/s",
        6200,
        ">=",
    )
    wrk = None if os.environ.get("BENCH_NO_WRK") else ensure_wrk()
    with running_server(figure, workers=0) as server:
        cpu0, threads0 = server.cpu_seconds(), server.thread_cpu()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if wrk is not None:
            stats = run_wrk(wrk, server.url, seconds, connections, server.dir)
        else:
            figure.notes.append(
                "wrk unavailable: load from an asyncio generator in its own process"
            )
            say("  note: wrk unavailable; using an asyncio generator in a separate process")
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                stats = pool.submit(_asyncio_loadgen, server.port, seconds, connections).result()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        generator_cpu = (children.ru_utime - children0.ru_utime) + (
            children.ru_stime - children0.ru_stime
        )
        cpu = server.cpu_seconds() - cpu0
        figure.details["server_cpu_seconds_by_thread"] = server.thread_cpu_since(threads0)
        time.sleep(0.2)  # let requests still in flight when the generator stopped commit
        stored = server.counts().get("Pending", 0)
    duration = stats["duration_us"] / 1e6
    figure.value = stats["created"] / duration
    figure.details.update(stats)
    figure.details.update(
        {
            "connections": connections,
            "seconds": duration,
            "stored": stored,
            "server_cpu_seconds": round(cpu, 2),
            "server_cpu_percent": round(100 * cpu / duration, 1),
            "generator_cpu_percent": round(100 * generator_cpu / duration, 1),
        }
    )
    extra = stored - stats["created"]
    if extra == 0:
        figure.details["verified"] = "stored == 201 responses"
    elif 0 < extra <= connections:
        figure.details["verified"] = (
            f"stored == 201 responses + {extra} (requests in flight when the generator stopped)"
        )
    else:
        figure.details["verified"] = "MISMATCH"
        figure.notes.append(f"stored {stored} tasks but counted {stats['created']} 201 responses")
    if stats.get("other"):
        figure.notes.append(f"{stats['other']} responses were not 201")
    return figure


# ------------------------------------------------------------------------------ 2. batch


def fig_batch_enqueue(quick: bool) -> Figure:
    clients, requests_each, per_request = (2, 5, 1000) if quick else (4, 25, 1000)
    figure = Figure(
        "batch_enqueue",
        f"batch enqueue over HTTP ({clients} clients x {per_request:,}/request)",
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
            # One warm-up request per connection is not counted: it opens the connections.
            warm = [
                client.post("/api/tasks/batch", content=body, headers=JSON_HEADERS)
                for _ in range(clients)
            ]
            for response in await asyncio.gather(*warm):
                statuses.append(response.status_code)

            async def one_client() -> None:
                for _ in range(requests_each):
                    t0 = time.perf_counter()
                    response = await client.post(
                        "/api/tasks/batch", content=body, headers=JSON_HEADERS
                    )
                    latencies.append(time.perf_counter() - t0)
                    statuses.append(response.status_code)

            start = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(clients)))
            return time.perf_counter() - start

    with running_server(figure, workers=0) as server:
        cpu0, threads0 = server.cpu_seconds(), server.thread_cpu()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        elapsed = asyncio.run(load(server.url))
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
        cpu = server.cpu_seconds() - cpu0
        figure.details["server_cpu_seconds_by_thread"] = server.thread_cpu_since(threads0)
        stored = server.counts().get("Pending", 0)
    timed_tasks = clients * requests_each * per_request
    expected = timed_tasks + clients * per_request
    figure.value = timed_tasks / elapsed
    bad = [s for s in statuses if s != 201]
    figure.details.update(
        {
            "clients": clients,
            "requests_per_client": requests_each,
            "tasks_per_request": per_request,
            "body_bytes": len(body),
            "seconds": round(elapsed, 3),
            "request_p50_ms": round(1000 * percentile(latencies, 50), 1),
            "request_max_ms": round(1000 * max(latencies), 1),
            "stored": stored,
            "expected_stored": expected,
            "server_cpu_seconds": round(cpu, 2),
            "client_cpu_seconds": round(client_cpu, 2),
            "warmup": f"{clients} untimed requests (one per connection) before the timed ones",
        }
    )
    if bad:
        figure.notes.append(f"{len(bad)} responses were not 201: {sorted(set(bad))}")
    if stored != expected:
        figure.notes.append(f"stored {stored} tasks, expected {expected}")
    return figure


# ------------------------------------------------------------------------------ 3. drain


def _run_true(_: int) -> int:
    return subprocess.run(["true"]).returncode


def raw_true_rate(count: int) -> float:
    """How fast a Pool(2) runs ``true``, in runs/s (the pool's start is not timed)."""
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_run_true, range(20))  # warm the workers
        start = time.perf_counter()
        codes = pool.map(_run_true, range(count), chunksize=8)
        elapsed = time.perf_counter() - start
    if any(codes):
        raise RuntimeError("`true` failed")
    return count / elapsed


def fig_drain(quick: bool) -> Figure:
    count = 500 if quick else 2000
    figure = Figure(
        "drain",
        f"drain rate of {count:,} `true` tasks / raw Pool(2) rate",
        None,
        "ratio",
        0.9,
        ">=",
    )
    raw_before = raw_true_rate(count)
    body = json.dumps({"tasks": [task_body(f"bench-drain-{i}") for i in range(count)]}).encode()
    polls = 0
    with running_server(figure) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/api/health")  # open the connection
        cpu0, threads0 = server.cpu_seconds(), server.thread_cpu()
        start = time.perf_counter()
        response = client.post("/api/tasks/batch", content=body, headers=JSON_HEADERS)
        accepted = time.perf_counter() - start
        if response.status_code != 201:
            raise RuntimeError(f"batch enqueue failed: {response.status_code} {response.text}")
        deadline = start + 300
        counts: dict[str, int] = {}
        while True:
            counts = client.get("/api/health").json()["tasks"]
            polls += 1
            done = sum(counts.get(s, 0) for s in ("Completed", "Failed", "Cancelled"))
            if done >= count:
                elapsed = time.perf_counter() - start
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the tasks did not finish in 300 s: {counts}")
            time.sleep(0.02)
        cpu = server.cpu_seconds() - cpu0
        figure.details["server_cpu_seconds_by_thread"] = server.thread_cpu_since(threads0)
    raw_after = raw_true_rate(count)
    raw = (raw_before + raw_after) / 2
    drain = count / elapsed
    figure.value = drain / raw
    figure.details.update(
        {
            "tasks": count,
            "server_tasks_per_s": round(drain, 1),
            "raw_pool2_true_per_s": round(raw, 1),
            "raw_before": round(raw_before, 1),
            "raw_after": round(raw_after, 1),
            "drain_seconds": round(elapsed, 3),
            "batch_accept_seconds": round(accepted, 3),
            "final_counts": counts,
            "health_polls": polls,
            "server_cpu_seconds": round(cpu, 2),
            "server_cpu_percent": round(100 * cpu / elapsed, 1),
            "worker_slots": "the server default",
        }
    )
    if counts.get("Completed", 0) != count:
        figure.notes.append(f"not every task Completed: {counts}")
    return figure


# ------------------------------------------------------------------------------ 4. latency


LATENCY_COMMAND = "echo $(date +%s%N) > $TASKQUEUE_OUTPUT"


def iso_to_ns(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def command_baseline(workdir: Path, runs: int) -> list[float]:
    """ms from just before this process spawns the latency command to the time it writes.

    The same ``/bin/sh -c`` command the server runs, spawned directly: the part of the latency
    that is the shell and ``date`` starting, which no queue can remove.
    """
    out = workdir / "baseline.out"
    env = dict(os.environ, TASKQUEUE_OUTPUT=str(out))
    samples = []
    for _ in range(runs):
        before = time.time_ns()
        subprocess.run(["/bin/sh", "-c", LATENCY_COMMAND], env=env, check=True)
        samples.append((int(out.read_text()) - before) / 1e6)
    return samples


def fig_latency(quick: bool) -> Figure:
    count = 40 if quick else 200
    rate = 20.0
    figure = Figure(
        "latency",
        "enqueue-to-start latency p99 (201 received -> command runs)",
        None,
        "ms",
        3.0,
        "<=",
    )
    sent: list[tuple[str, int, int]] = []  # (id, ns before send, ns after the 201)
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-latency-"))
    try:
        baseline = command_baseline(workdir, 20 if quick else 100)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with running_server(figure) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        # Warm up: one task end to end, so the first measured one pays no cold start.
        warm = client.post(
            "/api/tasks", json=task_body("bench-warm", LATENCY_COMMAND), headers=JSON_HEADERS
        ).json()
        client.get(f"/api/tasks/{warm['id']}/wait", params={"timeout": 30})
        time.sleep(0.5)
        cpu0, threads0 = server.cpu_seconds(), server.thread_cpu()
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            payload = json.dumps(task_body(f"bench-latency-{i}", LATENCY_COMMAND)).encode()
            before = time.time_ns()
            response = client.post("/api/tasks", content=payload, headers=JSON_HEADERS)
            after = time.time_ns()
            if response.status_code != 201:
                raise RuntimeError(f"enqueue failed: {response.status_code} {response.text}")
            sent.append((response.json()["id"], before, after))
        submit_seconds = time.perf_counter() - start
        cpu = server.cpu_seconds() - cpu0
        figure.details["server_cpu_seconds_by_thread"] = server.thread_cpu_since(threads0)
        results = []
        for task_id, before, after in sent:
            task = client.get(f"/api/tasks/{task_id}/wait", params={"timeout": 30}).json()
            attempts = client.get(f"/api/tasks/{task_id}/attempts").json()["attempts"]
            results.append((task, attempts, before, after))
    after_ms: list[float] = []
    before_ms: list[float] = []
    claim_ms: list[float] = []
    failed = 0
    for task, attempts, before, after in results:
        output = (task.get("result") or {}).get("output")
        if task["status"] != "Completed" or not isinstance(output, int):
            failed += 1
            continue
        after_ms.append((output - after) / 1e6)
        before_ms.append((output - before) / 1e6)
        if attempts:
            claim_ms.append((iso_to_ns(attempts[0]["started_at"]) - after) / 1e6)
    if failed:
        figure.notes.append(f"{failed} task(s) did not complete with a timestamp")
    if after_ms:
        figure.value = percentile(after_ms, 99)
        figure.details.update(
            {
                "tasks": count,
                "rate_per_s": rate,
                "submit_seconds": round(submit_seconds, 2),
                "p50_ms": round(percentile(after_ms, 50), 3),
                "p99_ms": round(percentile(after_ms, 99), 3),
                "max_ms": round(max(after_ms), 3),
                "min_ms": round(min(after_ms), 3),
                "before_send_p50_ms": round(percentile(before_ms, 50), 3),
                "before_send_p99_ms": round(percentile(before_ms, 99), 3),
                "claimed_minus_201_p50_ms": round(percentile(claim_ms, 50), 3)
                if claim_ms
                else None,
                "claimed_minus_201_p99_ms": round(percentile(claim_ms, 99), 3)
                if claim_ms
                else None,
                "negative_after_201": sum(1 for v in after_ms if v < 0),
                "command_alone_p50_ms": round(percentile(baseline, 50), 3),
                "command_alone_p99_ms": round(percentile(baseline, 99), 3),
                "server_cpu_percent_while_submitting": round(100 * cpu / submit_seconds, 1),
                "command": LATENCY_COMMAND,
            }
        )
    return figure


# ------------------------------------------------------------------------------ 5. claim


def claim_row_template(now: int) -> dict[str, Any]:
    """The columns and values of a new runnable task, as the store writes them."""
    from taskqueue.engine import RULES, Transition
    from taskqueue.models import TaskCreate
    from taskqueue.store.tasks import new_task_row

    row = new_task_row(TaskCreate(name="bench-claim", command="true"), "", [], 0, now, None)
    row["status"] = RULES[Transition.CREATE].target.value
    return {column: value for column, value in row.items() if value is not None}


def build_claim_db(path: Path, count: int) -> float:
    """A migrated database with ``count`` Pending runnable tasks; seconds spent inserting."""
    from taskqueue.store import Store
    from taskqueue.store.sqlite import connect

    Store(path).migrate()
    conn = connect(path)
    try:
        conn.execute("PRAGMA synchronous=OFF")  # only for the build; the claims run on FULL
        now = time.time_ns() // 1000 - 60_000_000
        template = claim_row_template(now)
        columns = list(template)
        sql = f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        varying = {"id", "name", "created_at", "updated_at", "run_at"}
        fixed = [None if c in varying else template[c] for c in columns]
        slot = {c: columns.index(c) for c in varying}
        start = time.perf_counter()
        chunk = 100_000
        conn.execute("BEGIN")
        for first in range(0, count, chunk):
            size = min(chunk, count - first)
            # Random UUID-shaped ids from one urandom call (uuid4() costs ~6 µs each here).
            hexes = os.urandom(16 * size).hex()
            ids = [
                f"{hexes[k : k + 8]}-{hexes[k + 8 : k + 12]}-4{hexes[k + 13 : k + 16]}"
                f"-a{hexes[k + 17 : k + 20]}-{hexes[k + 20 : k + 32]}"
                for k in range(0, 32 * size, 32)
            ]
            rows = []
            for i in range(first, min(first + chunk, count)):
                row = list(fixed)
                row[slot["id"]] = ids[i - first]
                row[slot["name"]] = f"bench-claim-{i}"
                row[slot["created_at"]] = row[slot["updated_at"]] = row[slot["run_at"]] = now + i
                rows.append(tuple(row))
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return elapsed


def time_claims(path: Path, iterations: int) -> dict[str, Any]:
    from taskqueue.store.pipeline import Effects
    from taskqueue.store.sqlite import connect
    from taskqueue.store.transitions import claim

    conn = connect(path)
    try:
        (pending,) = conn.execute("SELECT count(*) FROM tasks WHERE status = 'Pending'").fetchone()
        samples: list[float] = []
        for i in range(iterations + 50):
            now = time.time_ns() // 1000
            conn.execute("BEGIN IMMEDIATE")
            try:
                t0 = time.perf_counter_ns()
                claimed = claim(conn, Effects(), "bench", ["default"], 1, 30_000_000, now)
                t1 = time.perf_counter_ns()
            finally:
                conn.execute("ROLLBACK")
            if len(claimed) != 1:
                raise RuntimeError(f"claim returned {len(claimed)} tasks")
            if i >= 50:  # the first few warm the page cache and the statement cache
                samples.append((t1 - t0) / 1000)
        (after,) = conn.execute("SELECT count(*) FROM tasks WHERE status = 'Pending'").fetchone()
        if after != pending:
            raise RuntimeError("the rolled-back claims changed the table")
        plan = [
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT seq FROM tasks WHERE status = 'Pending'"
                " AND waiting_on = 0 AND queue IN (?) AND run_at <= ?"
                " ORDER BY priority_rank DESC, run_at, seq LIMIT ?",
                ("default", time.time_ns() // 1000, 1),
            )
        ]
    finally:
        conn.close()
    return {
        "median_us": statistics.median(samples),
        "p90_us": percentile(samples, 90),
        "min_us": min(samples),
        "iterations": len(samples),
        "pending": pending,
        "plan": plan,
    }


def fig_claim_cost(quick: bool) -> Figure:
    small, large = (1000, 100_000) if quick else (1000, 1_000_000)
    iterations = 1000 if quick else 3000
    figure = Figure(
        "claim_cost",
        f"claim cost, {large:,} / {small:,} queued tasks",
        None,
        "ratio",
        1.5,
        "<=",
    )
    if quick:
        figure.notes.append("quick run: 100,000 rows instead of 1,000,000")
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-claim-"))
    try:
        results = {}
        for count in (small, large):
            path = workdir / f"claim-{count}.db"
            build = build_claim_db(path, count)
            say(f"  built {count:,} tasks in {build:.1f} s; timing {iterations:,} claims")
            timing = time_claims(path, iterations)
            timing["build_seconds"] = round(build, 2)
            timing["db_mb"] = round(path.stat().st_size / 1e6, 1)
            results[count] = timing
            path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figure.value = results[large]["median_us"] / results[small]["median_us"]
    figure.details.update(
        {
            f"median_us_{small}": round(results[small]["median_us"], 1),
            f"median_us_{large}": round(results[large]["median_us"], 1),
            "runs": {
                str(k): {key: (round(v, 1) if isinstance(v, float) else v) for key, v in r.items()}
                for k, r in results.items()
            },
        }
    )
    return figure


# ------------------------------------------------------------------------------ main


FIGURES: dict[str, Callable[[bool], Figure]] = {
    "single_enqueue": fig_single_enqueue,
    "batch_enqueue": fig_batch_enqueue,
    "drain": fig_drain,
    "latency": fig_latency,
    "claim_cost": fig_claim_cost,
}


#: Title, unit, goal and comparison of each figure, for the table when one fails to run.
GOALS: dict[str, tuple[str, str, float, str]] = {
    "single_enqueue": ("single-task enqueue over HTTP (50 clients)", "tasks/s", 6200, ">="),
    "batch_enqueue": ("batch enqueue over HTTP", "tasks/s", 50_000, ">="),
    "drain": ("drain rate / raw Pool(2) rate", "ratio", 0.9, ">="),
    "latency": ("enqueue-to-start latency p99", "ms", 3.0, "<="),
    "claim_cost": ("claim cost, many / 1,000 queued tasks", "ratio", 1.5, "<="),
}


def describe(figure: Figure) -> list[str]:
    """The extra lines printed under a figure."""
    d = figure.details
    lines: list[str] = []
    if figure.name == "single_enqueue" and "created" in d:
        lines.append(
            f"{d['created']:,} x 201 in {d['seconds']:.2f} s via {d['generator']}"
            f" (c={d['connections']}); stored {d['stored']:,}: {d['verified']};"
            f" request p50 {d['p50_us'] / 1000:.1f} ms, p99 {d['p99_us'] / 1000:.1f} ms;"
            f" CPU (% of one core): server {d['server_cpu_percent']:.0f}%,"
            f" load generator {d['generator_cpu_percent']:.0f}%"
        )
    elif figure.name == "batch_enqueue" and "stored" in d:
        lines.append(
            f"{d['clients']} clients x {d['requests_per_client']} requests x"
            f" {d['tasks_per_request']:,} tasks in {d['seconds']:.2f} s;"
            f" request p50 {d['request_p50_ms']:.0f} ms, max {d['request_max_ms']:.0f} ms;"
            f" stored {d['stored']:,} of {d['expected_stored']:,} sent;"
            f" CPU seconds: server {d['server_cpu_seconds']:.2f}, client (httpx, this process)"
            f" {d['client_cpu_seconds']:.2f}"
        )
    elif figure.name == "drain" and "server_tasks_per_s" in d:
        lines.append(
            f"server drains {d['server_tasks_per_s']:,.0f} tasks/s ({d['tasks']:,} in"
            f" {d['drain_seconds']:.2f} s, server CPU {d['server_cpu_percent']:.0f}% of one core);"
            f" raw Pool(2) `true` {d['raw_pool2_true_per_s']:,.0f}/s"
            f" (before {d['raw_before']:,.0f}, after {d['raw_after']:,.0f})"
        )
    elif figure.name == "latency" and "p50_ms" in d:
        lines.append(
            f"after 201: p50 {d['p50_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms,"
            f" max {d['max_ms']:.2f} ms; before send: p50 {d['before_send_p50_ms']:.2f} ms,"
            f" p99 {d['before_send_p99_ms']:.2f} ms"
        )
        lines.append(
            f"the command alone (spawned directly, spawn -> date): p50"
            f" {d['command_alone_p50_ms']:.2f} ms, p99 {d['command_alone_p99_ms']:.2f} ms"
        )
        if d.get("claimed_minus_201_p50_ms") is not None:
            lines.append(
                f"claim (attempt started_at) after 201: p50 {d['claimed_minus_201_p50_ms']:.2f}"
                f" ms, p99 {d['claimed_minus_201_p99_ms']:.2f} ms"
            )
    elif figure.name == "claim_cost" and "runs" in d:
        for count, run in d["runs"].items():
            lines.append(
                f"{int(count):>9,} queued: median {run['median_us']:.1f} µs,"
                f" p90 {run['p90_us']:.1f} µs (build {run['build_seconds']:.1f} s,"
                f" {run['db_mb']} MB)"
            )
    split = d.get("server_cpu_seconds_by_thread")
    if split:
        lines.append(
            f"server CPU seconds: event-loop thread {split['main']:.2f},"
            f" other threads (SQLite writer...) {split['other']:.2f}"
        )
    return lines + [f"note: {note}" for note in figure.notes]


def print_table(figures: list[Figure]) -> None:
    rows = [("figure", "value", "goal", "met")]
    for f in figures:
        rows.append(
            (
                f.title,
                f"{fmt(f.value)} {f.unit}",
                f"{f.goal_op} {fmt(f.goal)} {f.unit}",
                "yes" if f.met else "NO",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    say("")
    for n, row in enumerate(rows):
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            say(line)
    say("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run, smaller sizes")
    parser.add_argument("--only", choices=sorted(FIGURES), help="run one figure")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the asyncio load generator, not wrk"
    )
    args = parser.parse_args(argv)
    if args.no_wrk:
        os.environ["BENCH_NO_WRK"] = "1"
    if not TASKQUEUE.exists():
        parser.error(f"{TASKQUEUE} not found: run with the project's venv python")

    names = [args.only] if args.only else list(FIGURES)
    say(
        f"taskqueue bench ({'quick' if args.quick else 'full'}) on {os.cpu_count()} CPU(s),"
        f" load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    figures: list[Figure] = []
    started = time.perf_counter()
    for name in names:
        say(f"\n== {name}")
        t0 = time.perf_counter()
        try:
            figure = FIGURES[name](args.quick)
        except Exception as exc:
            title, unit, goal, op = GOALS[name]
            text = str(exc).strip() or repr(exc)
            figure = Figure(name, title, None, unit, goal, op, details={"error": text})
            figure.notes.append(f"FAILED: {type(exc).__name__}: {text.splitlines()[-1]}")
        figure.details["wall_seconds"] = round(time.perf_counter() - t0, 1)
        figures.append(figure)
        status = "met" if figure.met else "NOT met"
        say(
            f"  {figure.title}: {fmt(figure.value)} {figure.unit}"
            f"  (goal {figure.goal_op} {fmt(figure.goal)}: {status})"
        )
        for extra in describe(figure):
            say(f"    {extra}")
    total = time.perf_counter() - started
    print_table(figures)
    say(f"total {total:.0f} s; results in {args.output}")
    report = {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "load_average_at_end": os.getloadavg(),
        },
        "total_seconds": round(total, 1),
        "figures": {f.name: f.as_json() for f in figures},
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(f.met for f in figures) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
