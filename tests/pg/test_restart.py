"""PostgreSQL restarted in the middle of a run: no task is lost, and the API says 503, not 500.

A server with an embedded worker and a standalone worker run a few hundred tasks; PostgreSQL is
stopped (a fast shutdown, or an immediate one, which is a crash that WAL recovery repairs) while
tasks run, and started again. While it is down, the API answers 503 with ``Retry-After`` (a
request that fails there writes nothing), never a 500. Once it is back, the server and both
workers carry on by themselves (and LISTEN for notifications again): every task created before
the restart and after it completes, and none is lost. An attempt running through the outage
records its end once the database is back, or, its lease reaped, ends as a failed attempt and
is retried: either way each task's lease windows stay disjoint and exactly one completes.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import PgDatabases, ServerProcess, query_db, wait_until
from tests.pg.conftest import StartWorker, require_cluster
from tests.pg_cluster import PgCluster

MakeServer = Callable[..., ServerProcess]

BEFORE = 300
AFTER = 50
LEASE = "3"


def _batch(prefix: str, count: int) -> dict[str, list[dict[str, object]]]:
    return {
        "tasks": [
            {
                "name": f"{prefix}-{i}",
                "command": f"sleep 0.0{i % 10}; echo {prefix}-{i}",
                "retry_attempts": 10,
                "retry_delay": 0,
            }
            for i in range(count)
        ]
    }


def _counts(api: httpx.Client) -> dict[str, int]:
    reply = api.get("/api/health")
    if reply.status_code != 200:
        return {}
    counts: dict[str, int] = reply.json()["tasks"]
    return counts


def _listening(db_url: str) -> int:
    rows = query_db(
        db_url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query ILIKE 'LISTEN %'",
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def _ensure_running(cluster: PgCluster) -> None:
    """Start the session's cluster again, unless it never stopped."""
    try:
        cluster.wait_ready(timeout=1)
    except psycopg.OperationalError:
        cluster.start()


def _assert_unavailable(reply: httpx.Response, what: str) -> None:
    assert reply.status_code == 503, f"{what} answered {reply.status_code}: {reply.text}"
    assert reply.headers.get("retry-after"), f"{what}: a 503 without Retry-After"
    assert reply.json()["error"]["message"], what


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restart_mid_run_loses_no_task(
    mode: str,
    pg: PgDatabases,
    make_server: MakeServer,
    start_worker: StartWorker,
    db_url: str,
    tmp_path: Path,
) -> None:
    cluster = require_cluster(pg)
    server = make_server("--workers", "4", "--lease-seconds", LEASE)
    standalone = start_worker(db_url, "--concurrency", "4", "--lease-seconds", LEASE)
    standalone_id = standalone.wait_up()
    with httpx.Client(base_url=server.url, timeout=60) as api:
        before: list[str] = []
        for part in range(3):
            reply = api.post("/api/tasks/batch", json=_batch(f"before{part}", BEFORE // 3))
            assert reply.status_code == 201, reply.text
            before.extend(t["id"] for t in reply.json()["tasks"])
        wait_until(
            lambda: _counts(api).get("Completed", 0) >= BEFORE // 5,
            120,
            "a fifth of the tasks to complete",
        )
        assert _counts(api).get("Pending", 0) > 0, "the run ended before the restart"

        outage_started = time.time_ns() // 1000
        try:
            cluster.stop(mode)
            # While the database is down, every kind of request answers 503 (asked at once:
            # a read waits a few seconds for a connection before it gives up).
            some = before[-1]
            probes: dict[str, Callable[[], httpx.Response]] = {
                "GET /api/tasks/{id}": lambda: api.get(f"/api/tasks/{some}"),
                "GET /api/tasks": lambda: api.get("/api/tasks"),
                "GET /api/health": lambda: api.get("/api/health"),
                "GET .../wait": lambda: api.get(f"/api/tasks/{some}/wait", params={"timeout": 1}),
                "GET .../attempts": lambda: api.get(f"/api/tasks/{some}/attempts"),
                "GET .../logs": lambda: api.get(f"/api/tasks/{some}/logs"),
                "POST /api/tasks": lambda: api.post(
                    "/api/tasks", json={"name": "during-outage", "command": "true"}
                ),
                "POST /api/tasks/batch": lambda: api.post(
                    "/api/tasks/batch", json=_batch("outage", 3)
                ),
                "POST .../cancel": lambda: api.post(f"/api/tasks/{some}/cancel"),
            }
            with concurrent.futures.ThreadPoolExecutor(len(probes)) as pool:
                replies = {what: pool.submit(probe) for what, probe in probes.items()}
                for what, reply in replies.items():
                    _assert_unavailable(reply.result(), what)
        finally:
            _ensure_running(cluster)
        outage_ended = time.time_ns() // 1000

        # The server recovers by itself, and both processes listen for notifications again.
        wait_until(lambda: api.get("/api/health").status_code == 200, 60, "the API to recover")
        wait_until(lambda: _listening(db_url) == 2, 60, "the server and the worker to LISTEN again")
        reply = api.post("/api/tasks/batch", json=_batch("after", AFTER))
        assert reply.status_code == 201, reply.text
        after = [t["id"] for t in reply.json()["tasks"]]
        wait_until(
            lambda: _counts(api).get("Completed", 0) == BEFORE + AFTER,
            180,
            "every task to complete after the restart",
        )
        assert _counts(api) == {"Completed": BEFORE + AFTER}
        stored = set()
        for offset in range(0, BEFORE + AFTER, 200):
            page = api.get("/api/tasks", params={"limit": 200, "offset": offset}).json()
            stored.update(t["id"] for t in page["tasks"])
        assert stored == set(before) | set(after)
        # Requests that failed while the database was down wrote nothing.
        names = {str(r[0]) for r in query_db(db_url, "SELECT name FROM tasks")}
        assert not {n for n in names if n == "during-outage" or n.startswith("outage-")}

    # Each task: attempts 1..n with disjoint lease windows, the last Completed.
    attempts: dict[str, list[tuple[int, str, str, int, int]]] = defaultdict(list)
    for task_id, number, worker_id, status, started, finished in query_db(
        db_url,
        "SELECT task_id, number, worker_id, status, started_at, finished_at"
        " FROM attempts ORDER BY task_id, number",
    ):
        attempts[str(task_id)].append(
            (int(number), str(worker_id), str(status), int(started), int(finished))  # type: ignore[call-overload]
        )
    assert set(attempts) == set(before) | set(after)
    for task_id, rows in attempts.items():
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), rows
        assert [r[2] for r in rows][-1] == "Completed", (task_id, rows)
        assert all(r[2] == "Failed" for r in rows[:-1]), (task_id, rows)
        for earlier, later in itertools.pairwise(rows):
            assert earlier[4] <= later[3], f"lease windows of {task_id} overlap: {rows}"
    # Both workers went on working after the outage.
    after_outage = {r[1] for rows in attempts.values() for r in rows if r[3] > outage_ended}
    assert standalone_id in after_outage, "the standalone worker did not resume"
    assert after_outage - {standalone_id}, "the server's embedded worker did not resume"
    assert standalone.process.poll() is None, standalone.output()
    assert server.log is not None
    crashed = re.findall(r"request \S+ (?:failed|: database error).*", server.log.read_text())
    assert not crashed, f"requests answered 500: {crashed}"
    print(
        f"\n{mode}: outage of {(outage_ended - outage_started) / 1e6:.1f}s; "
        f"{sum(len(r) for r in attempts.values()) - len(attempts)} attempt(s) retried"
    )
