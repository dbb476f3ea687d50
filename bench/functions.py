"""The Function definition benchmark: an execute round trip, and a batch, against plain tasks.

Run from the repository root::

    .venv/bin/python -m bench.functions            # 200 round trips each, batches of 1,000
    .venv/bin/python -m bench.functions --quick    # a smoke run (30 round trips, 200 items)

Both figures run on one ``taskqueue server`` subprocess (``--workers 16``) on a fresh SQLite
file, sharing the machine's cores with this script; each is printed beside a baseline of plain
tasks measured in the same run on the same server.

- **Execute round trip**: a trivial definition (command ``true``, input schema
  ``{"type": "object"}``, no output schema) is executed one at a time with
  ``POST /api/tasks/{id}/execute`` (answered once the execution ended); the baseline is a
  plain ``POST /api/tasks`` of ``true`` followed by ``GET /api/tasks/{id}/wait``. The two
  alternate in rounds of 10, so a noisy neighbour hits both alike. p50 and p99 of each, and the
  ratio execute / create+wait (the goal: at most 1.2).
- **Batch throughput**: ``POST /api/tasks/{id}/batch-execute`` of N trivial inputs with
  ``max_concurrency`` 16, timed until the batch is ``Completed`` (the request is held until
  then; a 202 is followed up with ``GET /api/batches/{id}``); the baseline is the drain of N
  plain ``true`` tasks made by one ``POST /api/tasks/batch``, timed until ``/api/health``
  counts N more ended tasks. Rounds alternate which goes first; items/s of each and the ratio
  batch / drain (median of the round-by-round ratios).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

from bench.run import Server, fmt, percentile, say

ROUND_TRIP_GOAL = 1.2
ROUND = 10  # round trips of one kind before switching to the other
WORKERS = 16
CONCURRENCY = 16
ENDED = ("Completed", "Failed", "Cancelled", "TimedOut")


def _check(response: httpx.Response, expected: int, what: str) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(
            f"{what}: {response.request.method} {response.request.url} answered "
            f"{response.status_code}, expected {expected}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def make_definition(api: httpx.Client) -> str:
    """A trivial Function definition: ``true``, any object in, no output checked."""
    body = {
        "name": "bench-fn",
        "task_type": "Function",
        "command": "true",
        "input_schema": {"type": "object"},
        "output_schema": None,
        "retry_attempts": 0,
    }
    made = _check(api.post("/api/tasks", json=body), 201, "create the definition")
    return str(made["id"])


def execute_once(api: httpx.Client, definition: str, n: int) -> float:
    """Milliseconds of one ``POST /execute`` answered 200 with a Completed execution."""
    began = time.perf_counter()
    response = api.post(
        f"/api/tasks/{definition}/execute", json={"input": {"n": n}, "timeout_ms": 30000}
    )
    elapsed = (time.perf_counter() - began) * 1000
    result = _check(response, 200, "execute")
    if result["status"] != "Completed":
        raise RuntimeError(f"execute ended {result['status']}: {result}")
    return elapsed


def create_and_wait(api: httpx.Client, n: int) -> float:
    """Milliseconds of one ``POST /api/tasks`` of ``true`` and its ``GET /wait``."""
    began = time.perf_counter()
    made = _check(
        api.post("/api/tasks", json={"name": f"rt{n}", "command": "true", "retry_attempts": 0}),
        201,
        "create a task",
    )
    waited = api.get(f"/api/tasks/{made['id']}/wait", params={"timeout": 30})
    elapsed = (time.perf_counter() - began) * 1000
    task = _check(waited, 200, "wait for the task")
    if task["status"] != "Completed":
        raise RuntimeError(f"the plain task ended {task['status']}: {task}")
    return elapsed


def round_trips(api: httpx.Client, definition: str, count: int) -> tuple[list[float], list[float]]:
    """(execute ms, create+wait ms), ``count`` of each, alternating in rounds of ``ROUND``."""
    for n in range(3):  # warm both paths (connections, caches, the first spawn)
        execute_once(api, definition, -n)
        create_and_wait(api, -n)
    executes: list[float] = []
    plain: list[float] = []
    rounds = 0
    while len(executes) < count or len(plain) < count:
        first_execute = rounds % 2 == 0
        for kind in (True, False) if first_execute else (False, True):
            done = executes if kind else plain
            for _ in range(min(ROUND, count - len(done))):
                n = len(done)
                done.append(execute_once(api, definition, n) if kind else create_and_wait(api, n))
        rounds += 1
    return executes, plain


def _ended(api: httpx.Client) -> int:
    counts = _check(api.get("/api/health"), 200, "health")["tasks"]
    return sum(int(counts.get(status, 0)) for status in ENDED)


def batch_rate(api: httpx.Client, definition: str, items: int) -> float:
    """Items per second of one batch-execute of ``items`` inputs, until Completed."""
    body = {
        "inputs": [{"n": n} for n in range(items)],
        "max_concurrency": CONCURRENCY,
        "timeout_ms": 300000,
    }
    began = time.perf_counter()
    response = api.post(f"/api/tasks/{definition}/batch-execute", json=body)
    if response.status_code not in (200, 202):
        _check(response, 200, "batch-execute")
    batch: dict[str, Any] = response.json()
    while batch["status"] != "Completed":
        polled = api.get(f"/api/batches/{batch['batch_id']}", params={"timeout_ms": 60000})
        batch = _check(polled, 200, "poll the batch")
    elapsed = time.perf_counter() - began
    if batch["success_count"] != items:
        raise RuntimeError(
            f"the batch ended with {batch['success_count']} of {items} items succeeded "
            f"({batch['failure_count']} failed, {batch['skipped_count']} skipped)"
        )
    return items / elapsed


def drain_rate(api: httpx.Client, items: int, label: str) -> float:
    """Tasks per second of ``items`` plain ``true`` tasks, created at once, until all ended."""
    before = _ended(api)
    tasks = [{"name": f"{label}-{n}", "command": "true", "retry_attempts": 0} for n in range(items)]
    began = time.perf_counter()
    _check(api.post("/api/tasks/batch", json={"tasks": tasks}), 201, "create the tasks")
    deadline = began + 300
    while _ended(api) < before + items:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{items} plain tasks did not all end in 300 s")
        time.sleep(0.02)
    return items / (time.perf_counter() - began)


def _server() -> Server:
    server = Server(workers=WORKERS)
    server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--count", type=int, default=200, help="round trips of each kind")
    parser.add_argument("--items", type=int, default=1000, help="items of each batch")
    parser.add_argument("--rounds", type=int, default=3, help="batch rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.items, args.rounds = 30, 200, 1
    server = _server()
    try:
        with httpx.Client(base_url=server.url, timeout=330) as api:
            definition = make_definition(api)

            say(f"== execute round trip vs create + wait ({args.count} each, one at a time)")
            executes, plain = round_trips(api, definition, args.count)
            e50, e99 = percentile(executes, 50), percentile(executes, 99)
            p50, p99 = percentile(plain, 50), percentile(plain, 99)
            say(f"  execute:       p50 {e50:.2f} ms, p99 {e99:.2f} ms")
            say(f"  create + wait: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            verdict = "meets" if e50 / p50 <= ROUND_TRIP_GOAL else "misses"
            say(f"  ratio p50 {e50 / p50:.2f} ({verdict} the goal <= {ROUND_TRIP_GOAL}), "
                f"p99 {e99 / p99:.2f}")  # fmt: skip

            say(f"== batch-execute of {args.items} items (max_concurrency {CONCURRENCY}) "
                f"vs drain of {args.items} plain tasks, --workers {WORKERS}")  # fmt: skip
            pairs: list[tuple[float, float]] = []
            for n in range(args.rounds):
                rates: dict[str, float] = {}
                for kind in ("batch", "drain") if n % 2 == 0 else ("drain", "batch"):
                    if kind == "batch":
                        rates[kind] = batch_rate(api, definition, args.items)
                    else:
                        rates[kind] = drain_rate(api, args.items, f"d{n}")
                pairs.append((rates["batch"], rates["drain"]))
                say(f"  round {n + 1}: batch {fmt(rates['batch'])} items/s, "
                    f"drain {fmt(rates['drain'])} tasks/s, "
                    f"ratio {rates['batch'] / rates['drain']:.2f}")  # fmt: skip
            ratio = statistics.median(batch / drain for batch, drain in pairs)
            say(f"  batch / drain (median of {args.rounds} round(s)) {ratio:.2f}")
    finally:
        problems = server.problems()
        code = server.stop()
        if code not in (0, -15, None):
            say(f"  note: the server exited with code {code} on SIGTERM")
        for line in problems:
            say(f"  server log: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
