"""The output benchmark: how fast command output is stored and read back, on SQLite and PostgreSQL.

Run from the repository root::

    .venv/bin/python -m bench.output            # full run (about a minute)
    .venv/bin/python -m bench.output --quick    # smoke run with small sizes
    .venv/bin/python -m bench.output --sqlite-only

Figures, each on a fresh SQLite file and on a fresh database of a throwaway PostgreSQL cluster
(``tests/pg_cluster.py``, ``fsync=on``):

``write_bulk``    ``Store.append_output`` of 64 KiB chunks (what a worker flushes for a command
                  printing fast), queued as a worker queues them, MB/s until all are committed
``write_lines``   ``Store.append_output`` of one 80-byte line each (a command printing a line
                  now and then), writes/s
``read_bulk``     ``Store.read_logs`` pages of 1,000 chunks over the bulk chunks, MB/s
``read_lines``    the same over the line chunks, chunks/s
``end_to_end``    tasks each printing 1 MiB, run by a ``taskqueue server`` subprocess (its
                  embedded worker): MB of stored output per second from the batch's 201 to the
                  last task finished, and reading all of it back through ``GET /logs``, MB/s

The results are also written to ``bench/results-output.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.pg import DbServer
from bench.run import fmt, say

RESULTS = Path(__file__).resolve().parent / "results-output.json"
MB = 1_000_000
CHUNK = 64 * 1024
LINE = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ok\n"


@dataclass
class Sizes:
    """How much each figure writes."""

    bulk_chunks: int = 1000
    line_writes: int = 5000
    e2e_tasks: int = 20
    e2e_bytes: int = 1024 * 1024
    repeats: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        return cls(bulk_chunks=200, line_writes=1000, e2e_tasks=5, repeats=1)


def chunk_payload(data: bytes) -> Any:
    """A chunk's data as ``Store.append_output`` takes it."""
    return data


# ------------------------------------------------------------------------------ in process


async def _running_task(store: Any) -> tuple[str, str, int]:
    """A task claimed by this process: (id, lease token, attempt)."""
    from taskqueue.models import TaskCreate

    queue = f"bench-{time.monotonic_ns()}"
    (task,) = await store.create_tasks([TaskCreate(name="bench", command="true", queue=queue)])
    (claimed,) = await store.claim("bench-worker", [queue], 1, 600.0)
    assert claimed.id == task["id"]
    return claimed.id, claimed.lease_token, claimed.attempt


async def _write(store: Any, pieces: list[bytes], per_write: int) -> tuple[str, float]:
    """Queue ``pieces`` as a worker does (``per_write`` chunks a write); the task and seconds."""
    task_id, token, attempt = await _running_task(store)
    payload = [("stdout", chunk_payload(p)) for p in pieces]
    start = time.perf_counter()
    futures = [
        store.append_output(task_id, token, attempt, payload[i : i + per_write])
        for i in range(0, len(payload), per_write)
    ]
    assert all(await asyncio.gather(*futures))
    return task_id, time.perf_counter() - start


async def _read(store: Any, task_id: str) -> tuple[int, int, float]:
    """Read every chunk of the task, 1,000 a page: (chunks, characters, seconds)."""
    offset, count, chars = 0, 0, 0
    start = time.perf_counter()
    while True:
        chunks, offset, _ = await store.read_logs(task_id, offset, 1000)
        if not chunks:
            return count, chars, time.perf_counter() - start
        count += len(chunks)
        chars += sum(len(c["data"]) for c in chunks)


def store_figures(db: str, sizes: Sizes) -> dict[str, float]:
    """The four in-process figures on one database (the best of ``sizes.repeats``)."""
    from taskqueue.store import Store

    async def main() -> dict[str, list[float]]:
        store = Store(db)
        store.start()
        seen: dict[str, list[float]] = {}
        try:
            bulk = [bytes([65 + i % 26]) * CHUNK for i in range(sizes.bulk_chunks)]
            lines = [LINE] * sizes.line_writes
            for _ in range(sizes.repeats):
                bulk_id, spent = await _write(store, bulk, 1)
                seen.setdefault("write_bulk", []).append(len(bulk) * CHUNK / MB / spent)
                lines_id, spent = await _write(store, lines, 1)
                seen.setdefault("write_lines", []).append(len(lines) / spent)
                count, chars, spent = await _read(store, bulk_id)
                assert count == len(bulk)
                assert chars == len(bulk) * CHUNK
                seen.setdefault("read_bulk", []).append(chars / MB / spent)
                count, chars, spent = await _read(store, lines_id)
                assert count == len(lines)
                seen.setdefault("read_lines", []).append(count / spent)
        finally:
            await store.close()
        return seen

    return {name: max(values) for name, values in asyncio.run(main()).items()}


# ------------------------------------------------------------------------------ end to end


def end_to_end(db: str, sizes: Sizes) -> dict[str, float]:
    """Tasks printing ``sizes.e2e_bytes`` each through a server: stored MB/s, read MB/s."""
    command = f"yes '{LINE.decode().strip()}' | head -c {sizes.e2e_bytes}"
    body = {"tasks": [{"name": f"out-{i}", "command": command} for i in range(sizes.e2e_tasks)]}
    server = DbServer(db, None)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            start = time.perf_counter()
            created = client.post("/api/tasks/batch", json=body)
            created.raise_for_status()
            ids = [t["id"] for t in created.json()["tasks"]]
            for task_id in ids:
                done = client.get(f"/api/tasks/{task_id}/wait", params={"timeout": 120}).json()
                assert done["status"] == "Completed", done
            ran = time.perf_counter() - start
            start = time.perf_counter()
            chars = sum(_read_all(client, task_id) for task_id in ids)
            read = time.perf_counter() - start
    finally:
        server.stop()
    return {"e2e_store_mb_s": chars / MB / ran, "e2e_read_mb_s": chars / MB / read}


def _read_all(client: httpx.Client, task_id: str) -> int:
    offset, chars = 0, 0
    while True:
        page = client.get(f"/api/tasks/{task_id}/logs", params={"offset": offset, "limit": 1000})
        page.raise_for_status()
        body = page.json()
        chars += sum(len(c["data"]) for c in body["chunks"])
        if not body["chunks"]:
            return chars
        offset = body["next_offset"]


# ------------------------------------------------------------------------------ main


@contextlib.contextmanager
def databases(sqlite_only: bool) -> Iterator[Callable[[str], list[tuple[str, str]]]]:
    """``fresh(label)``: a new database on each backend, as (backend, SQLite path or URL)."""
    base = Path(tempfile.mkdtemp(prefix="taskqueue-bench-output-"))
    base.chmod(0o755)  # the cluster's owner (nobody, when we are root) must reach it
    cluster = None
    made = 0
    try:
        if not sqlite_only:
            from tests.pg_cluster import start_cluster

            cluster = start_cluster(base / "cluster")

        def fresh(label: str) -> list[tuple[str, str]]:
            nonlocal made
            made += 1
            found = [("sqlite", str(base / f"{label}_{made}.db"))]
            if cluster is not None:
                found.append(("postgresql", cluster.create_database(f"bench_{label}_{made}")))
            return found

        yield fresh
    finally:
        if cluster is not None:
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


UNITS = {
    "write_bulk": "MB/s",
    "write_lines": "writes/s",
    "read_bulk": "MB/s",
    "read_lines": "chunks/s",
    "e2e_store_mb_s": "MB/s",
    "e2e_read_mb_s": "MB/s",
}


def main() -> None:
    """Run every figure on each backend and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run, smaller sizes")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes()
    report: dict[str, dict[str, float]] = {}
    with databases(args.sqlite_only) as fresh:
        for backend, db in fresh("store"):
            say(f"== store, {backend}")
            report[backend] = store_figures(db, sizes)
        for backend, db in fresh("e2e"):
            say(f"== end to end, {backend}")
            runs = [end_to_end(db, sizes) for _ in range(sizes.repeats)]
            report[backend].update({k: statistics.median(r[k] for r in runs) for k in runs[0]})
    say("")
    backends = list(report)
    say(f"{'figure':<16}" + "".join(f"{b:>14}" for b in backends) + "  unit")
    for name, unit in UNITS.items():
        say(f"{name:<16}" + "".join(f"{fmt(report[b][name]):>14}" for b in backends) + f"  {unit}")
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
