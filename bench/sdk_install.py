"""What the SDK costs a process and a disk, for ``bench/sdk.py``.

``measure_rss`` runs a fresh interpreter that imports taskqueue and makes 200 concurrent
``get_task`` calls through one ``AsyncTaskQueueClient``; ``sdk_only_venv`` builds a wheel of
this tree and installs it, without extras, into a new venv (what ``pip install taskqueue-sdk``
gives a user), then reports what got installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run import ROOT, VENV_BIN

MB = 1e6
CALLS = 200
#: Distributions only the server needs: none may come with the SDK-only install.
SERVER_DISTRIBUTIONS = (
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "orjson",
    "psycopg",
    "psycopg_pool",
    "psycopg_binary",
    "uvloop",
    "httptools",
    "greenlet",
    "mako",
)
#: Modules only the server needs: none may be loaded by the SDK's process.
SERVER_MODULES = (
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "orjson",
    "taskqueue.server",
    "taskqueue.store",
    "taskqueue.engine",
    "taskqueue.worker",
)
_INSTALLER = ("pip", "setuptools", "_distutils_hack", "pkg_resources")

RSS_SCRIPT = r"""
import asyncio, json, sys, time

def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields

url, task_id, calls, server = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
before = status()["VmRSS"]
t0 = time.perf_counter()
import taskqueue
t1 = time.perf_counter()
after_import = status()["VmRSS"]

async def main():
    async with taskqueue.AsyncTaskQueueClient(url) as client:
        tasks = await asyncio.gather(*(client.get_task(task_id) for _ in range(calls)))
        assert all(str(t.id) == task_id for t in tasks), tasks[:1]
        return status()

end = asyncio.run(main())
stdlib = set(sys.stdlib_module_names) | {"__main__", "_distutils_hack"}
print(json.dumps({
    "rss_start": before,
    "rss_after_import": after_import,
    "rss_end": end["VmRSS"],
    "hwm_end": end["VmHWM"],
    "import_s": t1 - t0,
    "modules": len(sys.modules),
    "third_party": sorted({n.split(".")[0] for n in sys.modules} - stdlib - {"taskqueue"}),
    "server_modules_loaded": sorted(
        n for n in sys.modules if any(n == m or n.startswith(m + ".") for m in server)
    ),
}))
"""


def measure_rss(python: Path, url: str, task_id: str) -> dict[str, Any]:
    """Run RSS_SCRIPT in a fresh ``python`` (cwd and environment free of taskqueue settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQUEUE_")}
    with tempfile.TemporaryDirectory(prefix="taskqueue-bench-rss-") as cwd:
        result = subprocess.run(
            [str(python), "-c", RSS_SCRIPT, url, task_id, str(CALLS), ",".join(SERVER_MODULES)],
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


def median_rss(python: Path, url: str, task_id: str, runs: int) -> dict[str, Any]:
    """The run with the median final RSS of ``runs`` runs, with every run's RSS attached."""
    results = sorted((measure_rss(python, url, task_id) for _ in range(runs)), key=_end)
    middle = results[len(results) // 2]
    middle["runs_mb"] = [round(_end(r) / MB, 1) for r in results]
    return middle


def _end(result: dict[str, Any]) -> int:
    return int(result["rss_end"])


def describe_rss(data: dict[str, Any]) -> str:
    return (
        f"{data['rss_end'] / MB:.1f} MB after {CALLS} concurrent get_task calls (runs:"
        f" {data['runs_mb']}; peak {data['hwm_end'] / MB:.1f}; interpreter alone"
        f" {data['rss_start'] / MB:.1f}, after import {data['rss_after_import'] / MB:.1f});"
        f" import {1000 * data['import_s']:.0f} ms; {data['modules']} modules; third-party:"
        f" {', '.join(data['third_party'])}; server modules loaded:"
        f" {', '.join(data['server_modules_loaded']) or 'none'}"
    )


@dataclass
class Install:
    """The SDK installed without extras into a new venv."""

    python: Path
    wheel: str
    package_bytes: int
    site_packages_bytes: int
    distributions: list[str]
    largest_mb: dict[str, float] = field(default_factory=dict)
    server_import: str = ""

    @property
    def server_distributions(self) -> list[str]:
        return [
            d
            for d in self.distributions
            if d.split("-")[0].lower().replace("-", "_") in SERVER_DISTRIBUTIONS
        ]


def _run(command: Sequence[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def _bytes(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


@contextmanager
def sdk_only_venv() -> Iterator[Install]:
    """A wheel of this tree installed with no extras into a new venv, removed afterwards."""
    python = str(VENV_BIN / "python")
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-sdk-"))
    try:
        wheels, venv = workdir / "wheel", workdir / "venv"
        build = [python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
        if importlib.util.find_spec("hatchling") is not None:
            build.insert(4, "--no-build-isolation")
        _run(build, "pip wheel")
        (wheel,) = wheels.glob("taskqueue_sdk-*.whl")
        # A venv without pip; this venv's pip installs into it (pip --python).
        _run([python, "-m", "venv", "--without-pip", str(venv)], "python -m venv")
        target = venv / "bin" / "python"
        _run([python, "-m", "pip", "--python", str(target), "install", "-q", str(wheel)], "pip")
        (site,) = venv.glob("lib/python*/site-packages")
        kept = {p.name: _bytes(p) for p in site.iterdir() if p.name.split("-")[0] not in _INSTALLER}
        by_dist: Counter[str] = Counter()
        for name, size in kept.items():
            by_dist[name.split("-")[0].removesuffix(".py")] += size
        probe = subprocess.run(
            [str(target), "-c", "import taskqueue.server"], capture_output=True, text=True
        )
        yield Install(
            python=target,
            wheel=wheel.name,
            package_bytes=_bytes(site / "taskqueue"),
            site_packages_bytes=sum(kept.values()),
            distributions=sorted(
                p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info")
            ),
            largest_mb={k: round(v / MB, 2) for k, v in by_dist.most_common(6)},
            server_import="importable"
            if probe.returncode == 0
            else (probe.stderr.strip().splitlines() or ["failed"])[-1],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
