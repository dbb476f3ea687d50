"""The Scheduled task benchmark: what firing 10,000 schedules at once costs, and how late.

Run from the repository root::

    .venv/bin/python -m bench.schedules                  # 10,000 schedules (about 50 s)
    .venv/bin/python -m bench.schedules --quick          # 1,000 schedules (under 30 s)
    .venv/bin/python -m bench.schedules --same-priority  # children Normal, like the drain's tasks

Everything runs on one ``taskqueue server`` subprocess (the default worker slots, as
``bench.run``'s drain) on a fresh SQLite file, sharing the machine's cores with this script.

- **Scheduler cost**: the drain of ``bench.run`` (2,000 ``true`` tasks, quick 500, made by
  ``POST /api/tasks/batch`` and timed until all of them ended; the raw ``Pool(2)`` rate of
  ``true`` from ``bench.run.raw_true_rate`` before and after), measured once with no schedule,
  then again while N interval schedules (60 s, ``overlap_policy`` allow, command ``true``, all
  with the same ``start_at`` a few seconds ahead) fire their first slot: the second drain is
  queued half a second before the slot. The figure is the ratio of the two drain rates (goal:
  at least 0.9). A drain task is counted as ended from the database file (``tasks.name``), since
  ``/api/health`` also counts the schedules' children. By default the schedules are
  ``priority`` Low, so their children wait behind the drain and the ratio is the cost of the
  firing itself (the scheduler's transactions through the single writer); with
  ``--same-priority`` the children are Normal, but their ``run_at`` is later than the drain's
  tasks, so only a few dozen of them start before the drain ends (printed).
- **Firing lateness**: for the slot fired, ``created_at - slot`` of every run, read from
  ``schedule_runs`` in the database file (p50/p99/max ms). A thread also polls the number of
  committed runs of the slot every 20 ms, which gives when the first and the last run were
  visible: ``created_at`` is the scheduler's clock when it began a round of firing, not the
  commit of each run. A sample of runs is also read through ``GET /api/tasks/{id}/runs`` and
  checked against the file.

- **Over a minute** (``--minute``): "10,000 schedules due each minute" as a rate: a drain long
  enough to last about a minute (sized from the first drain's rate), measured once alone and
  once with the slot of N schedules half-way through it; the ratio of the two rates is the
  scheduler's share of a minute. The burst figure above is the worst case within it.

No threshold is asserted; the figures are printed beside their goal.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.run import JSON_HEADERS, Server, fmt, percentile, raw_true_rate, say, task_body

DRAIN_GOAL = 0.9
BATCH_LIMIT = 5000  # items of one POST /api/tasks/batch
ENDED = ("Completed", "Failed", "Cancelled", "TimedOut")
INTERVAL = 60


def _check(response: httpx.Response, expected: int, what: str) -> Any:
    if response.status_code != expected:
        raise RuntimeError(
            f"{what}: {response.request.method} {response.request.url} answered "
            f"{response.status_code}, expected {expected}: {response.text[:500]}"
        )
    return response.json()


def _reader(db: Path) -> sqlite3.Connection:
    """A read-only connection to the server's SQLite file (WAL: it never blocks the writer)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA query_only = 1")
    return conn


def _post_batch(api: httpx.Client, tasks: list[dict[str, Any]], what: str) -> list[str]:
    ids: list[str] = []
    for first in range(0, len(tasks), BATCH_LIMIT):
        body = json.dumps({"tasks": tasks[first : first + BATCH_LIMIT]}).encode()
        made = _check(api.post("/api/tasks/batch", content=body, headers=JSON_HEADERS), 201, what)
        ids += [task["id"] for task in made["tasks"]]
    return ids


def drain(server: Server, api: httpx.Client, count: int, label: str) -> dict[str, Any]:
    """``bench.run``'s drain on a running server: ``count`` ``true`` tasks, until all ended."""
    reader = _reader(server.db)
    marks = ",".join("?" for _ in ENDED)
    sql = f"SELECT count(*) FROM tasks WHERE name LIKE ? AND status IN ({marks})"
    args = (f"{label}-%", *ENDED)
    try:
        tasks = [task_body(f"{label}-{i}") for i in range(count)]
        cpu0 = server.cpu_seconds()
        began_wall = time.time()
        began = time.perf_counter()
        _post_batch(api, tasks, f"queue the drain {label}")
        accepted = time.perf_counter() - began
        deadline = began + 300
        while True:
            (done,) = reader.execute(sql, args).fetchone()
            if done >= count:
                elapsed = time.perf_counter() - began
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the drain {label} did not end in 300 s ({done} of {count})")
            time.sleep(0.02)
        (completed,) = reader.execute(
            "SELECT count(*) FROM tasks WHERE name LIKE ? AND status = 'Completed'", args[:1]
        ).fetchone()
    finally:
        reader.close()
    cpu = server.cpu_seconds() - cpu0
    return {
        "tasks": count,
        "seconds": elapsed,
        "rate": count / elapsed,
        "accept_seconds": accepted,
        "completed": completed,
        "server_cpu_percent": 100 * cpu / elapsed,
        "began": began_wall,
        "ended": began_wall + elapsed,
    }


class RunWatcher(threading.Thread):
    """Polls the committed runs of one slot every 20 ms: when the first and the last appeared."""

    def __init__(self, db: Path, slot_us: int, expected: int, timeout: float) -> None:
        super().__init__(daemon=True)
        self.db, self.slot_us, self.expected, self.timeout = db, slot_us, expected, timeout
        self.first: float | None = None
        self.last: float | None = None
        self.seen = 0
        self.samples: list[tuple[float, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            reader = _reader(self.db)
            try:
                deadline = time.monotonic() + self.timeout
                sql = "SELECT count(*) FROM schedule_runs WHERE slot = ?"
                while time.monotonic() < deadline:
                    (seen,) = reader.execute(sql, (self.slot_us,)).fetchone()
                    now = time.time()
                    if seen != self.seen:
                        self.samples.append((now, seen))
                    self.seen = seen
                    if seen and self.first is None:
                        self.first = now
                    if seen >= self.expected:
                        self.last = now
                        return
                    time.sleep(0.02)
            finally:
                reader.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def create_schedules(
    api: httpx.Client, count: int, start_at: float, priority: str
) -> tuple[list[str], float]:
    """``count`` interval schedules all starting at ``start_at`` (epoch s); ids, seconds."""
    iso = datetime.fromtimestamp(start_at, timezone.utc).isoformat()
    tasks = [
        {
            "name": f"bench-schedule-{i}",
            "task_type": "Scheduled",
            "command": "true",
            "priority": priority,
            "schedule": {"interval_seconds": INTERVAL, "start_at": iso, "overlap_policy": "allow"},
        }
        for i in range(count)
    ]
    began = time.perf_counter()
    ids = _post_batch(api, tasks, "create the schedules")
    return ids, time.perf_counter() - began


def check_runs_api(api: httpx.Client, db: Path, ids: list[str], slot_us: int) -> list[str]:
    """Compare ``GET /api/tasks/{id}/runs`` of a sample of schedules with the file; problems."""
    problems: list[str] = []
    reader = _reader(db)
    try:
        step = max(1, len(ids) // 20)
        for task_id in ids[::step]:
            runs = _check(api.get(f"/api/tasks/{task_id}/runs"), 200, "read the runs")["runs"]
            row = reader.execute(
                "SELECT child_id, created_at FROM schedule_runs WHERE task_id = ? AND slot = ?",
                (task_id, slot_us),
            ).fetchone()
            if len(runs) != 1 or row is None:
                problems.append(f"{task_id}: {len(runs)} run(s) over HTTP, file row {row}")
                continue
            run = runs[0]
            slot = datetime.fromisoformat(run["slot"]).timestamp()
            if round(slot * 1e6) != slot_us or run["task_id"] != row[0]:
                problems.append(f"{task_id}: HTTP run {run} != file row {row}")
    finally:
        reader.close()
    return problems


def without_rate(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The drain rate without schedules: the mean of the one before and the one after."""
    return float((before["rate"] + after["rate"]) / 2)


def wait_children(db: Path, expected: int, timeout: float = 600) -> float:
    """Wait until ``expected`` children of the schedules have ended; the time (epoch s)."""
    marks = ",".join("?" for _ in ENDED)
    sql = (
        "SELECT count(*) FROM tasks WHERE parent_id IN (SELECT task_id FROM schedules)"
        f" AND status IN ({marks})"
    )
    reader = _reader(db)
    try:
        deadline = time.monotonic() + timeout
        while True:
            (done,) = reader.execute(sql, ENDED).fetchone()
            if done >= expected:
                return time.time()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done} of {expected} children ended in {timeout} s")
            time.sleep(0.05)
    finally:
        reader.close()


def in_window(db: Path, label: str, began: float, ended: float) -> tuple[int, int]:
    """Tasks of a drain that ended, and children that started, between two times (epoch s)."""
    window = (int(began * 1e6), int(ended * 1e6))
    reader = _reader(db)
    try:
        (drained,) = reader.execute(
            "SELECT count(*) FROM tasks WHERE name LIKE ? AND finished_at BETWEEN ? AND ?",
            (f"{label}-%", *window),
        ).fetchone()
        (children,) = reader.execute(
            "SELECT count(*) FROM tasks WHERE parent_id IN (SELECT task_id FROM schedules)"
            " AND started_at BETWEEN ? AND ?",
            window,
        ).fetchone()
    finally:
        reader.close()
    return drained, children


def lateness(db: Path, slot_us: int) -> dict[str, Any]:
    reader = _reader(db)
    try:
        rows = reader.execute(
            "SELECT created_at - slot, child_id IS NOT NULL, skipped, kind"
            " FROM schedule_runs WHERE slot = ?",
            (slot_us,),
        ).fetchall()
        (children,) = reader.execute(
            "SELECT count(*) FROM tasks WHERE parent_id IN (SELECT task_id FROM schedules)"
        ).fetchone()
    finally:
        reader.close()
    late_ms = [row[0] / 1000 for row in rows]
    return {
        "runs": len(rows),
        "with_child": sum(1 for row in rows if row[1]),
        "skipped": sum(1 for row in rows if row[2]),
        "kinds": sorted({row[3] for row in rows}),
        "children": children,
        "p50_ms": percentile(late_ms, 50) if late_ms else None,
        "p99_ms": percentile(late_ms, 99) if late_ms else None,
        "max_ms": max(late_ms) if late_ms else None,
        "min_ms": min(late_ms) if late_ms else None,
        "distinct_created_at": len({row[0] for row in rows}),
    }


def minute_figure(server: Server, api: httpx.Client, schedules: int, rate: float) -> float:
    """A drain of about a minute alone, then one with ``schedules`` firing half-way: the ratio."""
    count = max(1000, int(rate * 60))
    alone = drain(server, api, count, "bench-minute-base")
    say(f"  a minute's drain ({count:,} tasks) without schedules: {fmt(alone['rate'])} tasks/s"
        f" ({alone['seconds']:.1f} s)")  # fmt: skip
    lead = 3 + schedules / 2000  # their creation
    start_at = float(math.ceil(time.time() + lead + alone["accept_seconds"] + alone["seconds"] / 2))
    ids, _ = create_schedules(api, schedules, start_at, "Low")
    with_slot = drain(server, api, count, "bench-minute-fire")
    inside = with_slot["began"] < start_at < with_slot["ended"]
    ratio = float(with_slot["rate"] / alone["rate"])
    into = start_at - with_slot["began"]
    where = "" if inside else " (note: outside the drain)"
    say(f"  the same drain with {len(ids):,} schedules firing {into:+.1f} s into it{where}:"
        f" {fmt(with_slot['rate'])} tasks/s ({with_slot['seconds']:.1f} s)")  # fmt: skip
    verdict = "meets" if ratio >= DRAIN_GOAL else "misses"
    say(f"  ratio over the minute {ratio:.3f} ({verdict} the goal >= {DRAIN_GOAL})")
    _, children = in_window(server.db, "bench-minute-fire", with_slot["began"], with_slot["ended"])
    say(f"  children started during that drain: {children:,}")
    for label, run in (("alone", alone), ("with the slot", with_slot)):
        rates = ended_per_bucket(server.db, f"bench-minute-{'base' if run is alone else 'fire'}",
                                 run["began"], start_at if run is with_slot else None)  # fmt: skip
        say(f"  tasks/s per 10 s of the drain {label}: {rates}")
    return ratio


def ended_per_bucket(db: Path, label: str, began: float, slot: float | None) -> str:
    """The drain's rate in each 10 s from its start (the slot's bucket marked with ``*``)."""
    reader = _reader(db)
    try:
        rows = reader.execute(
            "SELECT (finished_at - ?) / 10000000 AS bucket, count(*) FROM tasks"
            " WHERE name LIKE ? GROUP BY bucket ORDER BY bucket",
            (int(began * 1e6), f"{label}-%"),
        ).fetchall()
    finally:
        reader.close()
    mark = None if slot is None else int((slot - began) // 10)
    return " ".join(f"{count / 10:.0f}{'*' if bucket == mark else ''}" for bucket, count in rows)


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (1,000 schedules)")
    parser.add_argument("--schedules", type=int, default=10_000, help="schedules to fire")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks of each drain")
    parser.add_argument(
        "--minute",
        action="store_true",
        help="also the cost over a minute: a drain of about a minute with the slot inside it",
    )
    parser.add_argument(
        "--same-priority",
        action="store_true",
        help="children Normal (they share the workers with the drain), not Low",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.schedules, args.tasks = 1000, 500
    priority = "Normal" if args.same_priority else "Low"
    say(f"== scheduler cost: drain of {args.tasks:,} `true` tasks without schedules, then while"
        f" {args.schedules:,} interval schedules fire (children priority {priority})")  # fmt: skip
    raw_before = raw_true_rate(args.tasks)
    server = Server()
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=120) as api:
            drain(server, api, min(200, args.tasks), "bench-warm")  # the first spawns, caches
            before = drain(server, api, args.tasks, "bench-base")
            say(f"  without schedules, before: {fmt(before['rate'])} tasks/s"
                f" ({before['seconds']:.2f} s, server CPU {before['server_cpu_percent']:.0f}%"
                " of one core)")  # fmt: skip

            # The slot: a whole second far enough ahead for the creation (~7,000/s here).
            lead = 8 + args.schedules / 2000
            start_at = float(math.ceil(time.time() + lead))
            slot_us = int(start_at) * 1_000_000
            ids, made_in = create_schedules(api, args.schedules, start_at, priority)
            ahead = start_at - time.time()
            say(f"  created {len(ids):,} schedules in {made_in:.2f} s"
                f" ({len(ids) / made_in:,.0f}/s); the slot is {ahead:.1f} s ahead")  # fmt: skip
            if ahead < 1:
                raise RuntimeError("the schedules were created too late for their slot")
            watcher = RunWatcher(server.db, slot_us, len(ids), timeout=ahead + 180)
            watcher.start()
            time.sleep(max(0.0, start_at - 0.5 - time.time()))
            during = drain(server, api, args.tasks, "bench-fire")
            say(f"  while they fire:           {fmt(during['rate'])} tasks/s"
                f" ({during['seconds']:.2f} s, server CPU {during['server_cpu_percent']:.0f}%"
                " of one core)")  # fmt: skip
            watcher.join()
            if watcher.error is not None:
                raise watcher.error
            children_ended = wait_children(server.db, len(ids)) - start_at
            after = drain(server, api, args.tasks, "bench-after")
            say(f"  without schedules, after:  {fmt(after['rate'])} tasks/s"
                f" ({after['seconds']:.2f} s, server CPU {after['server_cpu_percent']:.0f}%"
                " of one core; the children had all ended)")  # fmt: skip
            late = lateness(server.db, slot_us)
            fire_window: tuple[int, int] | None = None
            if watcher.first is not None and watcher.last is not None:
                fire_window = in_window(server.db, "bench-fire", watcher.first, watcher.last)
            _, children_in_drain = in_window(
                server.db, "bench-fire", during["began"], during["ended"]
            )
            problems = check_runs_api(api, server.db, ids, slot_us)
            if args.minute:
                say(f"== scheduler cost over a minute: {args.schedules:,} schedules due once in it")
                minute_figure(server, api, args.schedules, without_rate(before, after))
    finally:
        log_problems = server.problems()
        code = server.stop()
    raw_after = raw_true_rate(args.tasks)
    raw = (raw_before + raw_after) / 2
    without = without_rate(before, after)
    ratio = during["rate"] / without
    verdict = "meets" if ratio >= DRAIN_GOAL else "misses"
    say(f"  ratio with / without (mean of before and after) {ratio:.3f}"
        f" ({verdict} the goal >= {DRAIN_GOAL})")  # fmt: skip
    say(f"  drain / raw Pool(2): {without / raw:.3f} without, {during['rate'] / raw:.3f} with"
        f" (raw {fmt(raw)}/s: before {fmt(raw_before)}, after {fmt(raw_after)})")  # fmt: skip
    if watcher.first is not None and watcher.last is not None:
        fire_began, fire_ended = watcher.first, watcher.last
        overlap = max(0.0, min(fire_ended, during["ended"]) - max(fire_began, during["began"]))
        say(f"  the drain ran from slot {during['began'] - start_at:+.2f} s to"
            f" {during['ended'] - start_at:+.2f} s; the runs were committed from"
            f" {fire_began - start_at:+.2f} s to {fire_ended - start_at:+.2f} s"
            f" ({overlap:.2f} s of it during the drain)")  # fmt: skip
        if fire_window is not None and fire_ended > fire_began:
            window_rate = fire_window[0] / (fire_ended - fire_began)
            say(f"  while the runs were being committed the drain ended {fire_window[0]:,} tasks:"
                f" {fmt(window_rate)} tasks/s, {window_rate / without:.3f} of the rate without;"
                f" {fire_window[1]:,} children started then")  # fmt: skip
    else:
        say(f"  note: only {watcher.seen:,} of {len(ids):,} runs were committed")
    say(f"  children started during the drain: {children_in_drain:,}")

    say(f"== firing lateness of {args.schedules:,} schedules sharing one slot")
    if late["p50_ms"] is not None:
        say(f"  created_at - slot: p50 {late['p50_ms']:.1f} ms, p99 {late['p99_ms']:.1f} ms,"
            f" max {late['max_ms']:.1f} ms (min {late['min_ms']:.1f} ms;"
            f" {late['distinct_created_at']} distinct created_at)")  # fmt: skip
        say(f"  the firing of all took {late['max_ms'] / 1000:.2f} s by created_at (max - slot)")
    if watcher.last is not None and watcher.first is not None:
        first_ms, last_ms = 1000 * (watcher.first - start_at), 1000 * (watcher.last - start_at)
        say(f"  committed (polled every 20 ms): the first run visible {first_ms:.0f} ms after"
            f" the slot, the last {last_ms:.0f} ms after")  # fmt: skip
        steps = watcher.samples
        if len(steps) > 1:
            rate = (steps[-1][1] - steps[0][1]) / max(1e-9, steps[-1][0] - steps[0][0])
            say(f"  {len(steps)} polls saw the count change; {fmt(rate)} runs/s between the first"
                f" and the last")  # fmt: skip
    say(f"  {late['runs']:,} runs for the slot ({late['with_child']:,} with a child,"
        f" {late['skipped']} skipped, kinds {late['kinds']}); {late['children']:,} children"
        f" made, all ended {children_ended:.1f} s after the slot")  # fmt: skip
    for line in problems:
        say(f"  note: runs over HTTP: {line}")
    if late["runs"] != len(ids) or late["with_child"] != len(ids):
        say(f"  note: expected {len(ids):,} runs, each with a child")
    if (
        during["completed"] != args.tasks
        or before["completed"] != args.tasks
        or after["completed"] != args.tasks
    ):
        say("  note: not every drain task Completed")
    if code not in (0, -15, None):
        say(f"  note: the server exited with code {code} on SIGTERM")
    for line in log_problems:
        say(f"  server log: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
