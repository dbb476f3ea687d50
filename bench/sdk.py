"""The SDK benchmark: the Python client's overhead, memory and installed size, beside goals.

Run from the repository root::

    .venv/bin/python -m bench.sdk            # full run (about 1.5 minutes)
    .venv/bin/python -m bench.sdk --quick    # smoke run with short rounds (under 30 s)

One ``taskqueue server --workers 0`` subprocess on a fresh SQLite file serves every figure; one
task is created on the queue ``parked`` (nothing runs it) and read back again and again.

``async``    ``AsyncTaskQueueClient.get_task`` from 100 coroutines (one client,
             ``max_connections=100``) vs a bare ``httpx.AsyncClient`` with the same limits doing
             ``GET /api/tasks/{id}`` + ``response.json()``; req/s and the ratio SDK / bare
``threads``  the same with ``TaskQueueClient`` vs a bare ``httpx.Client``, each shared by 16
             threads
``rss``      resident memory of a fresh process after ``import taskqueue``, a
             ``TaskQueueClient`` and one ``get_health()`` (VmRSS from ``/proc/self/status``)
``size``     a wheel of this tree installed (no extras) into a new venv: the ``taskqueue``
             package directory, and site-packages without pip/setuptools

SDK and bare rounds alternate (SDK, bare, bare, SDK, ...) and each side's median round is used,
because the machine is shared and noisy. MB means 10^6 bytes. The results are also written to
``bench/sdk_results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.abc
import importlib.util
import inspect
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import ROOT, TASKQUEUE, VENV_BIN, Figure, Server, fmt, running_server, say
from taskqueue import AsyncTaskQueueClient, Task, TaskQueueClient
from taskqueue.client._base import parse_model

RESULTS = Path(__file__).resolve().parent / "sdk_results.json"
COROUTINES = 100
THREADS = 16
MAX_CONNECTIONS = 100
MB = 1e6
#: Top-level names in site-packages that are the installer, not the SDK.
INSTALLER_NAMES = ("pip", "setuptools", "_distutils_hack", "pkg_resources")
#: Modules that only the server needs: none of them should be loaded by ``import taskqueue``.
SERVER_MODULES = (
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "uvloop",
    "orjson",
    "taskqueue.server",
    "taskqueue.store",
    "taskqueue.engine",
    "taskqueue.worker",
)


@dataclass
class SdkFigure(Figure):
    """A figure whose goal may be strict (``<``) or absent (``goal_op == "info"``)."""

    @property
    def met(self) -> bool:
        if self.value is None or self.goal_op == "info":
            return False
        if self.goal_op == ">=":
            return self.value >= self.goal
        if self.goal_op == "<":
            return self.value < self.goal
        return self.value <= self.goal

    def as_json(self) -> dict[str, Any]:
        data = super().as_json()
        if self.goal_op == "info":
            data["goal"] = data["goal_op"] = data["met"] = None
        return data


def make_figures() -> dict[str, SdkFigure]:
    def info(name: str, title: str, unit: str) -> SdkFigure:
        return SdkFigure(name, title, None, unit, 0.0, "info")

    c, t = COROUTINES, THREADS
    return {
        f.name: f
        for f in (
            info("async_sdk", f"get_task, {c} coroutines: AsyncTaskQueueClient", "req/s"),
            info("async_bare", f"get_task, {c} coroutines: bare httpx.AsyncClient", "req/s"),
            SdkFigure(
                "async_ratio", f"get_task, {c} coroutines: SDK / bare", None, "ratio", 0.9, ">="
            ),
            info("threads_sdk", f"get_task, {t} threads: TaskQueueClient", "req/s"),
            info("threads_bare", f"get_task, {t} threads: bare httpx.Client", "req/s"),
            SdkFigure(
                "threads_ratio", f"get_task, {t} threads: SDK / bare", None, "ratio", 0.9, ">="
            ),
            SdkFigure(
                "rss",
                "RSS: import taskqueue + TaskQueueClient + get_health()",
                None,
                "MB",
                50,
                "<",
            ),
            SdkFigure(
                "sdk_size",
                "installed taskqueue package (server modules included)",
                None,
                "MB",
                5,
                "<",
            ),
            info("site_packages", "site-packages without pip/setuptools (no extras)", "MB"),
        )
    }


# ------------------------------------------------------------------------------ rounds


def sides(i: int) -> tuple[str, str]:
    """The order of round ``i``: SDK, bare, then bare, SDK, and so on."""
    return ("sdk", "bare") if i % 2 == 0 else ("bare", "sdk")


def round_line(i: int, side: str, result: dict[str, float]) -> str:
    return (
        f"    round {i + 1} {side:>4}: {result['rate']:7.1f} req/s"
        f" ({result['requests']:,.0f} in {result['seconds']:.2f} s, +"
        f"{result['requests_with_tail'] - result['requests']:,.0f} after; client CPU"
        f" {result['cpu_us_per_request']:,.0f} µs/req; server CPU"
        f" {result['server_cpu_percent']:.0f}% of one core)"
    )


def summarize(
    results: dict[str, list[dict[str, float]]], sdk: SdkFigure, bare: SdkFigure, ratio: SdkFigure
) -> None:
    for side, figure in (("sdk", sdk), ("bare", bare)):
        rows = results[side]
        figure.value = statistics.median(r["rate"] for r in rows)
        figure.details.update(
            {
                "rounds_req_per_s": [round(r["rate"], 1) for r in rows],
                "rounds_requests": [int(r["requests"]) for r in rows],
                "median_client_cpu_us_per_request": round(
                    statistics.median(r["cpu_us_per_request"] for r in rows), 1
                ),
                "median_server_cpu_percent": round(
                    statistics.median(r["server_cpu_percent"] for r in rows), 1
                ),
            }
        )
    assert sdk.value is not None
    assert bare.value is not None
    ratio.value = sdk.value / bare.value
    pairs = [
        one["rate"] / other["rate"]
        for one, other in zip(results["sdk"], results["bare"], strict=True)
    ]
    cpu_sdk = sdk.details["median_client_cpu_us_per_request"]
    cpu_bare = bare.details["median_client_cpu_us_per_request"]
    ratio.details.update(
        {
            "sdk_req_per_s": round(sdk.value, 1),
            "bare_req_per_s": round(bare.value, 1),
            "client_cpu_us_per_request": {"sdk": cpu_sdk, "bare": cpu_bare},
            "client_cpu_ratio_bare_over_sdk": round(cpu_bare / cpu_sdk, 3),
            "round_pair_ratios": [round(r, 3) for r in pairs],
            "median_round_pair_ratio": round(statistics.median(pairs), 3),
        }
    )
    say(
        f"  median: SDK {sdk.value:.1f} req/s, bare {bare.value:.1f} req/s,"
        f" SDK / bare {ratio.value:.3f}; client CPU per request: SDK {cpu_sdk:,.0f} µs,"
        f" bare {cpu_bare:,.0f} µs (SDK costs {cpu_sdk - cpu_bare:+,.0f} µs); median of the"
        f" round-by-round ratios {statistics.median(pairs):.3f}"
    )


class ImportCounter(importlib.abc.MetaPathFinder):
    """Counts the module look-ups that reach the import system (failed imports are not cached)."""

    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        self.names[fullname] += 1


@contextlib.contextmanager
def counting_imports() -> Iterator[ImportCounter]:
    counter = ImportCounter()
    sys.meta_path.insert(0, counter)
    try:
        yield counter
    finally:
        sys.meta_path.remove(counter)


def failed_import_us() -> float:
    """µs one failing ``import sniffio``-style look-up costs here."""
    name = "bench_sdk_no_such_module"
    start = time.perf_counter()
    for _ in range(200):
        with contextlib.suppress(ImportError):
            __import__(name)
    return (time.perf_counter() - start) / 200 * 1e6


def bare_limits() -> httpx.Limits:
    """The limits the SDK gives httpx with ``max_connections=100`` (the keep-alive default)."""
    keepalive = inspect.signature(AsyncTaskQueueClient).parameters["max_keepalive_connections"]
    return httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=keepalive.default
    )


# ------------------------------------------------------------------------------ 1. async


def round_result(
    in_window: int, total: int, seconds: float, elapsed: float, cpu: float, server_cpu: float
) -> dict[str, float]:
    """Rate from the answers that came back inside the window; CPU over every request sent."""
    return {
        "requests": in_window,
        "seconds": seconds,
        "rate": in_window / seconds,
        "requests_with_tail": total,
        "seconds_with_tail": elapsed,
        "cpu_us_per_request": cpu / max(total, 1) * 1e6,
        "server_cpu_percent": 100 * server_cpu / elapsed,
    }


async def async_round(
    get: Callable[[], Awaitable[Any]], seconds: float, server: Server
) -> dict[str, float]:
    in_window = total = 0

    async def worker(deadline: float) -> None:
        nonlocal in_window, total
        while time.perf_counter() < deadline:
            await get()
            total += 1
            if time.perf_counter() <= deadline:
                in_window += 1

    server0, cpu0, start = server.cpu_seconds(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(start + seconds) for _ in range(COROUTINES)))
    elapsed = time.perf_counter() - start
    cpu, server_cpu = time.process_time() - cpu0, server.cpu_seconds() - server0
    return round_result(in_window, total, seconds, elapsed, cpu, server_cpu)


def step_async(server: Server, task_id: str, quick: bool, figs: dict[str, SdkFigure]) -> None:
    rounds, seconds = (3, 0.6) if quick else (5, 3.0)
    limits = bare_limits()
    say(
        f"  {rounds} rounds of {seconds:g} s per side, {COROUTINES} coroutines; limits:"
        f" max_connections={limits.max_connections},"
        f" max_keepalive_connections={limits.max_keepalive_connections} (the SDK default)"
    )
    path = f"/api/tasks/{task_id}"

    async def main() -> dict[str, list[dict[str, float]]]:
        sdk = AsyncTaskQueueClient(server.url, max_connections=MAX_CONNECTIONS)
        bare = httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30.0)
        try:

            async def get_sdk() -> Task:
                return await sdk.get_task(task_id)

            async def get_bare() -> Any:
                response = await bare.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code}")
                return response.json()

            gets: dict[str, Callable[[], Awaitable[Any]]] = {"sdk": get_sdk, "bare": get_bare}
            task, data = await get_sdk(), await get_bare()
            if str(task.id) != task_id or data["id"] != task_id or task.status.value != "Pending":
                raise RuntimeError(f"unexpected answers: {task!r} / {data!r}")

            # Per-request costs outside the network: model parsing, and the import look-ups
            # that reach the import system (failed imports are never cached in sys.modules).
            n = 2000
            start = time.perf_counter()
            for _ in range(n):
                parse_model(Task, data)
            figs["async_sdk"].details["parse_task_us"] = round(
                (time.perf_counter() - start) / n * 1e6, 1
            )
            with counting_imports() as counter:
                for _ in range(20):
                    await get_sdk()
            figs["async_sdk"].details["import_lookups_per_request"] = {
                k: v / 20 for k, v in counter.names.items()
            }

            for get in gets.values():  # warm-up, not counted: opens the connections
                await async_round(get, 0.3, server)

            results: dict[str, list[dict[str, float]]] = {"sdk": [], "bare": []}
            for i in range(rounds):
                for side in sides(i):
                    result = await async_round(gets[side], seconds, server)
                    results[side].append(result)
                    say(round_line(i, side, result))
            return results
        finally:
            await sdk.close()
            await bare.aclose()

    results = asyncio.run(main())
    summarize(results, figs["async_sdk"], figs["async_bare"], figs["async_ratio"])
    figs["async_ratio"].details.update(
        {"rounds": rounds, "seconds_per_round": seconds, "coroutines": COROUTINES}
    )

    details = figs["async_sdk"].details
    lookups = details["import_lookups_per_request"]
    if lookups:
        each = failed_import_us()
        details["failed_import_us"] = round(each, 1)
        say(
            f"  note: each AsyncTaskQueueClient request looks modules up in the import system"
            f" ({', '.join(f'{k} x{v:g}' for k, v in lookups.items())}): a module that is not"
            f" installed is never cached, so every look-up searches sys.path again"
            f" (~{each:.0f} µs each here, ~{each * sum(lookups.values()):.0f} µs per request)"
        )
    say(f"  parsing one Task answer (parse_model): {details['parse_task_us']:.0f} µs")


# ------------------------------------------------------------------------------ 2. threads


def thread_round(get: Callable[[], Any], seconds: float, server: Server) -> dict[str, float]:
    counts = [(0, 0)] * THREADS
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS + 1)
    deadline = [0.0]

    def worker(slot: int) -> None:
        barrier.wait()
        in_window = total = 0
        try:
            while time.perf_counter() < deadline[0]:
                get()
                total += 1
                if time.perf_counter() <= deadline[0]:
                    in_window += 1
        except Exception as exc:
            errors.append(exc)
        counts[slot] = (in_window, total)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    server0, cpu0, start = server.cpu_seconds(), time.process_time(), time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu, server_cpu = time.process_time() - cpu0, server.cpu_seconds() - server0
    if errors:
        raise RuntimeError(f"{len(errors)} thread(s) failed: {errors[0]!r}") from errors[0]
    in_window, total = (sum(c[0] for c in counts), sum(c[1] for c in counts))
    return round_result(in_window, total, seconds, elapsed, cpu, server_cpu)


def step_threads(server: Server, task_id: str, quick: bool, figs: dict[str, SdkFigure]) -> None:
    rounds, seconds = (3, 0.6) if quick else (5, 3.0)
    limits = bare_limits()
    say(
        f"  {rounds} rounds of {seconds:g} s per side, {THREADS} threads sharing one client;"
        f" limits: max_connections={limits.max_connections},"
        f" max_keepalive_connections={limits.max_keepalive_connections}"
    )
    path = f"/api/tasks/{task_id}"
    sdk = TaskQueueClient(server.url, max_connections=MAX_CONNECTIONS)
    bare = httpx.Client(base_url=server.url, limits=limits, timeout=30.0)
    try:

        def get_bare() -> Any:
            response = bare.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")
            return response.json()

        gets: dict[str, Callable[[], Any]] = {
            "sdk": lambda: sdk.get_task(task_id),
            "bare": get_bare,
        }
        with counting_imports() as counter:
            for _ in range(20):
                gets["sdk"]()
        lookups = {k: v / 20 for k, v in counter.names.items()}
        figs["threads_sdk"].details["import_lookups_per_request"] = lookups
        for get in gets.values():  # warm-up, not counted: opens the connections
            thread_round(get, 0.3, server)
        results: dict[str, list[dict[str, float]]] = {"sdk": [], "bare": []}
        for i in range(rounds):
            for side in sides(i):
                result = thread_round(gets[side], seconds, server)
                results[side].append(result)
                say(round_line(i, side, result))
    finally:
        sdk.close()
        bare.close()
    summarize(results, figs["threads_sdk"], figs["threads_bare"], figs["threads_ratio"])
    figs["threads_ratio"].details.update(
        {"rounds": rounds, "seconds_per_round": seconds, "threads": THREADS}
    )
    if lookups:
        say(f"  note: import look-ups per TaskQueueClient request: {lookups}")


# ------------------------------------------------------------------------------ 3. memory


RSS_SCRIPT = r"""
import json, sys, time
if sys.argv[3] == "block-httpx-cli":
    sys.modules["httpx._main"] = None  # what `import httpx` costs without its CLI module

def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields

before = status()["VmRSS"]
t0 = time.perf_counter()
import taskqueue
t1 = time.perf_counter()
after_import = status()["VmRSS"]
client = taskqueue.TaskQueueClient(sys.argv[1])
health = client.get_health()
t2 = time.perf_counter()
end = status()
client.close()
server_modules = sorted(
    name for name in sys.modules if any(
        name == m or name.startswith(m + ".") for m in sys.argv[2].split(",")
    )
)
stdlib = set(sys.stdlib_module_names) | {"__main__", "_distutils_hack"}
print(json.dumps({
    "rss_start": before,
    "rss_after_import": after_import,
    "rss_end": end["VmRSS"],
    "hwm_end": end["VmHWM"],
    "import_s": t1 - t0,
    "client_and_health_s": t2 - t1,
    "health_status": getattr(health, "status", None),
    "modules": len(sys.modules),
    "third_party": sorted({n.split(".")[0] for n in sys.modules} - stdlib - {"taskqueue"}),
    "server_modules_loaded": server_modules,
    "httpx_cli_loaded": "httpx._main" in sys.modules,
}))
"""


def measure_rss(python: Path, url: str, block_httpx_cli: bool = False) -> dict[str, Any]:
    """Run RSS_SCRIPT in a fresh ``python`` (cwd and environment free of taskqueue settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQUEUE_")}
    with tempfile.TemporaryDirectory(prefix="taskqueue-bench-rss-") as cwd:
        result = subprocess.run(
            [
                str(python),
                "-c",
                RSS_SCRIPT,
                url,
                ",".join(SERVER_MODULES),
                "block-httpx-cli" if block_httpx_cli else "-",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd,
            env=env,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{python} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def describe_rss(label: str, data: dict[str, Any]) -> str:
    return (
        f"  {label}: {data['rss_end'] / MB:.1f} MB at the end (peak {data['hwm_end'] / MB:.1f};"
        f" interpreter alone {data['rss_start'] / MB:.1f}, after import"
        f" {data['rss_after_import'] / MB:.1f}); import {1000 * data['import_s']:.0f} ms,"
        f" client + get_health() {1000 * data['client_and_health_s']:.0f} ms;"
        f" {data['modules']} modules; third-party: {', '.join(data['third_party'])};"
        f" server modules loaded: {', '.join(data['server_modules_loaded']) or 'none'}"
    )


def step_rss(server: Server, quick: bool, figs: dict[str, SdkFigure]) -> None:
    figure = figs["rss"]
    python = VENV_BIN / "python"
    runs = [measure_rss(python, server.url) for _ in range(1 if quick else 3)]
    data = sorted(runs, key=lambda r: r["rss_end"])[len(runs) // 2]
    figure.value = data["rss_end"] / MB
    figure.details.update(
        {
            "python": str(python),
            "runs_mb": [round(r["rss_end"] / MB, 1) for r in runs],
            "rss_start_mb": round(data["rss_start"] / MB, 1),
            "rss_after_import_mb": round(data["rss_after_import"] / MB, 1),
            "peak_mb": round(data["hwm_end"] / MB, 1),
            "import_ms": round(1000 * data["import_s"], 1),
            "client_and_health_ms": round(1000 * data["client_and_health_s"], 1),
            "modules": data["modules"],
            "third_party": data["third_party"],
            "server_modules_loaded": data["server_modules_loaded"],
        }
    )
    say(describe_rss(f"project venv, median of {len(runs)}", data))
    if data["httpx_cli_loaded"]:
        # httpx/__init__ imports its command-line tool when click, rich and pygments are
        # importable, which they are: the SDK depends on click and rich for its own CLI.
        blocked = measure_rss(python, server.url, block_httpx_cli=True)
        saved = (data["rss_end"] - blocked["rss_end"]) / MB
        slower = 1000 * (data["import_s"] - blocked["import_s"])
        figure.details.update(
            {
                "httpx_cli_loaded": True,
                "rss_without_httpx_cli_mb": round(blocked["rss_end"] / MB, 1),
                "import_ms_without_httpx_cli": round(1000 * blocked["import_s"], 1),
            }
        )
        say(
            f"  note: `import httpx` also imports httpx._main (its CLI: click, rich, pygments),"
            f" because the SDK's own dependencies make them importable; without it:"
            f" {blocked['rss_end'] / MB:.1f} MB ({saved:+.1f} MB saved),"
            f" import {1000 * blocked['import_s']:.0f} ms ({slower:+.0f} ms saved)"
        )
    if data["server_modules_loaded"]:
        figure.notes.append(
            f"import taskqueue loaded server modules: {data['server_modules_loaded']}"
        )


# ------------------------------------------------------------------------------ 4. size


def tree_bytes(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def is_installer(name: str) -> bool:
    base = name.split("-")[0].lower()
    return base in INSTALLER_NAMES or name == "distutils-precedence.pth"


def run_checked(command: Sequence[str], what: str, timeout: float = 300) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def step_size(server: Server, quick: bool, figs: dict[str, SdkFigure]) -> None:
    figure, total = figs["sdk_size"], figs["site_packages"]
    python = str(VENV_BIN / "python")
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-size-"))
    try:
        wheels, venv = workdir / "wheel", workdir / "venv"
        build = [python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
        isolated = importlib.util.find_spec("hatchling") is None
        if not isolated:
            build.insert(4, "--no-build-isolation")  # hatchling is in this venv: no download
        t0 = time.perf_counter()
        run_checked(build, "pip wheel")
        (wheel,) = wheels.glob("taskqueue_sdk-*.whl")
        wheel_bytes = wheel.stat().st_size
        t1 = time.perf_counter()
        # A venv without pip; this venv's pip installs into it (pip --python), which is faster
        # than bootstrapping pip there and leaves only what the SDK needs in site-packages.
        run_checked([python, "-m", "venv", "--without-pip", str(venv)], "python -m venv")
        target = venv / "bin" / "python"
        run_checked(
            [python, "-m", "pip", "--python", str(target), "install", "-q", str(wheel)],
            "pip install",
        )
        t2 = time.perf_counter()
        (site,) = venv.glob("lib/python*/site-packages")
        package = tree_bytes(site / "taskqueue")
        entries = {p.name: tree_bytes(p) for p in site.iterdir()}
        kept = {k: v for k, v in entries.items() if not is_installer(k)}
        by_dist: Counter[str] = Counter()
        for name, size in kept.items():
            by_dist[name.split("-")[0].removesuffix(".py")] += size
        parts = {
            p.name: tree_bytes(p) for p in sorted((site / "taskqueue").iterdir()) if p.is_dir()
        }
        dists = sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))
        server_import = subprocess.run(
            [str(target), "-c", "import taskqueue.server"], capture_output=True, text=True
        )
        clean_rss = measure_rss(target, server.url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figure.value = package / MB
    total.value = sum(kept.values()) / MB
    server_parts = ("server", "store", "engine", "worker")
    figure.details.update(
        {
            "wheel": wheel.name,
            "wheel_kb": round(wheel_bytes / 1000, 1),
            "package_bytes": package,
            "subpackages_kb": {k: round(v / 1000, 1) for k, v in parts.items()},
            "server_subpackages_kb": round(
                sum(v for k, v in parts.items() if k in server_parts) / 1000, 1
            ),
            "includes_pyc": True,
            "build_isolation": isolated,
            "build_seconds": round(t1 - t0, 1),
            "venv_and_install_seconds": round(t2 - t1, 1),
            "server_import": "ok"
            if server_import.returncode == 0
            else (server_import.stderr.strip().splitlines() or ["failed"])[-1],
        }
    )
    total.details.update(
        {
            "site_packages_bytes": sum(kept.values()),
            "excluded": sorted(k for k in entries if is_installer(k)),
            "largest_mb": {k: round(v / MB, 2) for k, v in by_dist.most_common(8)},
            "distributions": dists,
            "sniffio_installed": any(d.lower().startswith("sniffio-") for d in dists),
            "rss_sdk_only_venv_mb": round(clean_rss["rss_end"] / MB, 1),
            "rss_sdk_only_venv": clean_rss,
        }
    )
    say(
        f"  wheel {wheel.name} built in {t1 - t0:.1f} s"
        f" ({'isolated' if isolated else 'no build isolation: hatchling from this venv'});"
        f" new venv + pip install (no extras) in {t2 - t1:.1f} s"
    )
    say(
        f"  taskqueue package: {package / MB:.2f} MB (.py and .pyc), of which server-side"
        f" subpackages ({', '.join(server_parts)}):"
        f" {figure.details['server_subpackages_kb']:.0f} kB; by subpackage (kB):"
        f" {figure.details['subpackages_kb']}"
    )
    say(
        "  note: the server modules ship inside the same package (importable only with the"
        " [server] extra), so the package size counts them;"
        f" `import taskqueue.server` without the extra: {figure.details['server_import']}"
    )
    say(
        f"  site-packages without pip/setuptools: {total.value:.1f} MB; largest (MB):"
        f" {total.details['largest_mb']}"
    )
    say(f"  installed: {', '.join(dists)}")
    say(describe_rss("RSS in that SDK-only venv", clean_rss))
    if not total.details["sniffio_installed"]:
        total.notes.append(
            "sniffio is not installed with the SDK: httpcore tries `import sniffio` on every"
            " async request (a failed import is never cached)"
        )


# ------------------------------------------------------------------------------ main


def print_table(figures: Sequence[SdkFigure]) -> None:
    rows = [("figure", "value", "goal", "met")]
    for f in figures:
        if f.goal_op == "info":
            goal, met = "(information)", "-"
        else:
            goal, met = f"{f.goal_op} {fmt(f.goal)} {f.unit}", "yes" if f.met else "NO"
        rows.append((f.title, f"{fmt(f.value)} {f.unit}", goal, met))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    say("")
    for n, row in enumerate(rows):
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            say("  ".join("-" * w for w in widths))
    say("")


STEPS: list[tuple[str, str, Callable[..., None], bool]] = [
    # (name, the figure a failure is noted on, function, whether it needs the task id)
    ("async", "async_ratio", step_async, True),
    ("threads", "threads_ratio", step_threads, True),
    ("rss", "rss", step_rss, False),
    ("size", "sdk_size", step_size, False),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (under 30 s)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    if not TASKQUEUE.exists():
        parser.error(f"{TASKQUEUE} not found: run with the project's venv python")
    say(
        f"taskqueue SDK bench ({'quick' if args.quick else 'full'}) on {os.cpu_count()} CPU(s),"
        f" load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    figs = make_figures()
    session = Figure("server", "server", None, "", 0, ">=")
    printed: set[tuple[str, str]] = set()
    started = time.perf_counter()
    with running_server(session, workers=0) as server:
        with TaskQueueClient(server.url) as client:
            task = client.create_task("bench-sdk-get", "true", queue="parked")
        task_id = str(task.id)
        say(f"server {server.url} (--workers 0); task {task_id} on queue 'parked'")
        for name, owner, step, needs_task in STEPS:
            say(f"\n== {name}")
            t0 = time.perf_counter()
            try:
                if needs_task:
                    step(server, task_id, args.quick, figs)
                else:
                    step(server, args.quick, figs)
            except Exception as exc:
                text = str(exc).strip() or repr(exc)
                figs[owner].details["error"] = text
                figs[owner].notes.append(f"FAILED: {type(exc).__name__}: {text.splitlines()[-1]}")
            figs[owner].details["wall_seconds"] = round(time.perf_counter() - t0, 1)
            for figure in figs.values():
                for note in figure.notes:
                    if (figure.name, note) not in printed:
                        printed.add((figure.name, note))
                        say(f"  note: {note}")
        status = server.counts()
    if status.get("Pending") != 1 or len(status) != 1:
        figs["async_ratio"].notes.append(f"the server's task counts changed: {status}")
    total = time.perf_counter() - started
    print_table(list(figs.values()))
    say(f"total {total:.0f} s; results in {args.output}")
    report = {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "httpx": httpx.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "total_seconds": round(total, 1),
        "server": session.details | {"notes": session.notes},
        "figures": {f.name: f.as_json() for f in figs.values()},
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(f.met for f in figs.values() if f.goal_op != "info") else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
