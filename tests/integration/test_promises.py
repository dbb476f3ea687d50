"""The contract promises of DESIGN section 4, each proven against real processes.

Every test here runs a real ``taskqueue server`` (and, where it says so, a standalone
``taskqueue worker``) on a real SQLite file, and kills them the way production would.
"""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import BIN, ServerProcess, wait_status, wait_until

MakeServer = Callable[..., ServerProcess]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start standalone ``taskqueue worker`` processes; all are killed after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(db: Path, *args: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                [str(BIN), "worker", "--db", str(db), *args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_wait_until = wait_until


def _counts(api: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = api.get("/api/health").json()["tasks"]
    return counts


# ----------------------------------------------------------------------------- promise 1


def test_kill9_of_the_server_loses_no_acknowledged_task(make_server: MakeServer) -> None:
    server = make_server("--workers", "8", "--lease-seconds", "2")
    acked: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as api:
        for chunk in range(4):
            batch = [
                {"name": f"b{chunk}-{i}", "command": "sleep 0.05", "retry_delay": 0}
                for i in range(100)
            ]
            response = api.post("/api/tasks/batch", json={"tasks": batch})
            assert response.status_code == 201
            acked.extend(t["id"] for t in response.json()["tasks"])

        def one(i: int) -> str:
            reply = api.post(
                "/api/tasks", json={"name": f"s{i}", "command": "sleep 0.05", "retry_delay": 0}
            )
            assert reply.status_code == 201
            return str(reply.json()["id"])

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            acked.extend(pool.map(one, range(100)))
        _wait_until(lambda: _counts(api).get("Completed", 0) >= 20, 30, "some tasks to finish")
        assert _counts(api).get("Running", 0) > 0
    server.kill9()

    restarted = make_server("--workers", "8", "--lease-seconds", "2", db=server.db)
    with httpx.Client(base_url=restarted.url, timeout=30) as api:
        _wait_until(
            lambda: _counts(api).get("Completed", 0) == 500,
            120,
            "every task to complete after the restart",
        )
        assert _counts(api) == {"Completed": 500}
        stored = set()
        for offset in range(0, 500, 250):
            page = api.get("/api/tasks", params={"limit": 250, "offset": offset}).json()
            stored.update(t["id"] for t in page["tasks"])
        assert stored == set(acked)


def test_kill9_of_a_worker_mid_task_is_retried_by_another(
    make_server: MakeServer,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server = make_server("--workers", "0")
    pids = tmp_path / "pids"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task = api.post(
            "/api/tasks",
            json={
                "name": "survivor",
                "retry_delay": 0,
                "command": f"echo $$ >> {pids}; sleep 300 & echo $! >> {pids};"
                ' [ "$TASKQUEUE_ATTEMPT" = 1 ] && wait; true',
            },
        ).json()
        first = start_worker(server.db, "--lease-seconds", "2")
        _wait_until(
            lambda: pids.exists() and len(pids.read_text().split()) == 2,
            15,
            "the first worker to start the command",
        )
        first.kill()
        first.wait()
        start_worker(server.db, "--lease-seconds", "2")
        done = wait_status(api, task["id"], timeout=30)
        assert done["status"] == "Completed"
        attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
        assert [a["number"] for a in attempts] == [1, 2]
        assert attempts[0]["status"] == "Failed"
        assert "lease expired" in attempts[0]["error"]
        assert attempts[1]["status"] == "Completed"
        assert attempts[0]["worker_id"] != attempts[1]["worker_id"]
    # The dead worker's command and its background sleep were found and killed by the other
    # worker (the second attempt's own sleep died with its shell's group).
    orphans = [int(p) for p in pids.read_text().split()]
    assert len(orphans) == 4
    _wait_until(
        lambda: not any(_alive(pid) for pid in orphans), 10, "the orphaned commands to be killed"
    )


# ----------------------------------------------------------------------------- promise 2


def test_a_lease_that_expires_counts_as_a_failed_attempt_and_then_fails(
    make_server: MakeServer, start_worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    server = make_server("--workers", "0")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task = api.post(
            "/api/tasks", json={"name": "doomed", "command": "sleep 30", "retry_attempts": 0}
        ).json()
        worker = start_worker(server.db, "--lease-seconds", "2")
        _wait_until(
            lambda: api.get(f"/api/tasks/{task['id']}").json()["status"] == "Running",
            15,
            "the task to start",
        )
        worker.kill()
        worker.wait()
        start_worker(server.db, "--lease-seconds", "2")
        done = wait_status(api, task["id"], timeout=30)
        assert done["status"] == "Failed"
        assert "lease expired" in done["status_reason"]


# ----------------------------------------------------------------------------- promise 3


def test_priority_order_then_first_in_first_out(
    make_server: MakeServer,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server = make_server("--workers", "0")
    order = tmp_path / "order.txt"
    plan = [
        ("l1", "Low"),
        ("n1", "Normal"),
        ("c1", "Critical"),
        ("h1", "High"),
        ("n2", "Normal"),
        ("l2", "Low"),
        ("c2", "Critical"),
        ("h2", "High"),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as api:
        ids = []
        for name, priority in plan:
            created = api.post(
                "/api/tasks",
                json={"name": name, "priority": priority, "command": f"echo {name} >> {order}"},
            )
            ids.append(created.json()["id"])
        start_worker(server.db, "--concurrency", "1")
        for task_id in ids:
            assert wait_status(api, task_id)["status"] == "Completed"
    assert order.read_text().split() == ["c1", "c2", "h1", "h2", "n1", "n2", "l1", "l2"]


# ----------------------------------------------------------------------------- promise 4


def test_dependencies_run_in_order_and_failures_cancel_dependents(
    api: httpx.Client, tmp_path: Path
) -> None:
    log = tmp_path / "deps.txt"
    batch = {
        "tasks": [
            {"ref": "c", "name": "c", "command": f"sleep 0.2; echo c >> {log}", "dependencies": []},
            {"ref": "b", "name": "b", "command": f"echo b >> {log}", "dependencies": ["c"]},
            {"ref": "a", "name": "a", "command": f"echo a >> {log}", "dependencies": ["b", "c"]},
            {"ref": "bad", "name": "bad", "command": "exit 4", "retry_attempts": 0},
            {"ref": "child", "name": "child", "command": "true", "dependencies": ["bad"]},
            {
                "ref": "grandchild",
                "name": "grandchild",
                "command": "true",
                "dependencies": [{"ref": "child"}, {"ref": "a"}],
            },
        ]
    }
    created = api.post("/api/tasks/batch", json=batch)
    assert created.status_code == 201, created.text
    tasks = {t["name"]: t for t in created.json()["tasks"]}
    done = {name: wait_status(api, t["id"]) for name, t in tasks.items()}
    assert log.read_text().split() == ["c", "b", "a"]
    assert done["b"]["started_at"] >= done["c"]["finished_at"]
    assert done["a"]["started_at"] >= done["b"]["finished_at"]
    assert done["bad"]["status"] == "Failed"
    assert done["child"]["status"] == "Cancelled"
    assert tasks["bad"]["id"] in done["child"]["status_reason"]
    assert "Failed" in done["child"]["status_reason"]
    assert done["grandchild"]["status"] == "Cancelled"
    assert tasks["child"]["id"] in done["grandchild"]["status_reason"]
    assert done["child"]["attempt"] == 0  # never ran


def test_a_dependency_on_a_failed_task_is_refused(api: httpx.Client) -> None:
    bad = api.post(
        "/api/tasks", json={"name": "bad", "command": "exit 1", "retry_attempts": 0}
    ).json()
    assert wait_status(api, bad["id"])["status"] == "Failed"
    before = api.get("/api/tasks").json()["total"]
    refused = api.post(
        "/api/tasks", json={"name": "late", "command": "true", "dependencies": [bad["id"]]}
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["details"][0]["loc"] == ["dependencies", 0]
    assert api.get("/api/tasks").json()["total"] == before


# ----------------------------------------------------------------------------- promise 5


def test_timeout_kills_the_whole_process_tree(api: httpx.Client, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    task = api.post(
        "/api/tasks",
        json={
            "name": "tree",
            "timeout": 1,
            "retry_attempts": 0,
            "command": f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; sleep 300",
        },
    ).json()
    done = wait_status(api, task["id"])
    assert done["status"] == "Failed"
    assert done["result"]["error"] == "timed out after 1s"
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 2
    _wait_until(
        lambda: not any(_alive(pid) for pid in recorded),
        10,
        "the shell and its background sleep to die",
    )


@pytest.mark.parametrize("where", ["embedded", "standalone"])
def test_cancel_of_a_running_task_stops_it_promptly(
    where: str,
    make_server: MakeServer,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server = make_server("--workers", "4" if where == "embedded" else "0")
    if where == "standalone":
        start_worker(server.db)
    pidfile = tmp_path / "pid"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task = api.post(
            "/api/tasks",
            json={
                "name": "long",
                "command": f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 300 & wait",
            },
        ).json()
        _wait_until(pidfile.exists, 15, "the task to start")
        pid = int(pidfile.read_text())
        reply = api.post(f"/api/tasks/{task['id']}/cancel")
        assert reply.status_code == 200
        assert reply.json()["status"] == "Cancelled"
        # "Within about a second": the process (sleeping 300 s) must be gone within a few.
        _wait_until(lambda: not _alive(pid), 5, "the cancelled process to die")
        attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
        assert attempts[-1]["status"] == "Cancelled"
        assert api.get(f"/api/tasks/{task['id']}").json()["status"] == "Cancelled"
    if where == "embedded":
        # The log says a cancel happened, not that a lease was lost.
        said = f"task {task['id']}: cancelled while running; its command was stopped"
        _wait_until(lambda: said in server.log.read_text(), 10, "the cancel to be logged")
        assert "lease lost" not in server.log.read_text()


# ----------------------------------------------------------------------------- promise 6


def test_huge_output_keeps_memory_flat_and_kept_output_bounded(
    api: httpx.Client, server: ServerProcess
) -> None:
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    warm = api.post("/api/tasks", json={"name": "warm", "command": "seq 1 20000"}).json()
    wait_status(api, warm["id"])
    baseline = process.memory_info().rss
    task = api.post(
        "/api/tasks",
        json={
            "name": "flood",
            "retry_attempts": 0,
            "command": "head -c 209715200 /dev/zero | tr '\\0' x; echo; echo tail-marker",
        },
    ).json()
    peak = baseline

    def ended_sampling_memory() -> bool:
        nonlocal peak
        peak = max(peak, process.memory_info().rss)
        return api.get(f"/api/tasks/{task['id']}").json()["status"] not in ("Pending", "Running")

    wait_until(ended_sampling_memory, 120, "the flood to finish")
    done = wait_status(api, task["id"])
    assert done["status"] == "Completed"
    growth = peak - baseline
    assert growth < 64 * 1024 * 1024, f"server grew by {growth / 2**20:.1f} MiB"
    chunks = []
    offset = 0
    while True:
        page = api.get(
            f"/api/tasks/{task['id']}/logs", params={"offset": offset, "limit": 10000}
        ).json()
        chunks.extend(page["chunks"])
        if not page["chunks"]:
            break
        offset = page["next_offset"]
    kept = "".join(c["data"] for c in chunks if c["stream"] == "stdout")
    assert len(kept.encode()) <= 1024 * 1024 + 200
    assert "bytes truncated ..." in kept
    assert kept.rstrip().endswith("tail-marker")
    assert done["result"]["stdout_tail"].rstrip().endswith("tail-marker")


# ----------------------------------------------------------------------------- promise 7


def test_concurrent_repeats_of_one_idempotency_key_create_one_task(api: httpx.Client) -> None:
    body = {"name": "once", "command": "true", "queue": "parked"}

    def post(_: int) -> tuple[int, str]:
        reply = api.post("/api/tasks", json=body, headers={"Idempotency-Key": "k-42"})
        return reply.status_code, reply.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(post, range(32)))
    assert {status for status, _ in results} == {201}
    assert len({task_id for _, task_id in results}) == 1
    assert api.get("/api/tasks", params={"queue": "parked"}).json()["total"] == 1


# ----------------------------------------------------------------------------- promise 8


def test_sigterm_lets_running_tasks_finish(make_server: MakeServer) -> None:
    server = make_server("--drain-timeout", "20")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task = api.post(
            "/api/tasks", json={"name": "finisher", "command": "sleep 1; echo finished"}
        ).json()
        _wait_until(
            lambda: api.get(f"/api/tasks/{task['id']}").json()["status"] == "Running",
            15,
            "the task to start",
        )
    assert server.terminate(timeout=30) == 0
    # Shutdown says what it did, not only that it began to drain.
    assert "stopped: 1 task(s) finished while draining, 0 handed back" in server.log.read_text()
    restarted = make_server("--workers", "0", db=server.db)
    with httpx.Client(base_url=restarted.url, timeout=30) as api:
        done = api.get(f"/api/tasks/{task['id']}").json()
        assert done["status"] == "Completed"
        assert done["result"]["stdout_tail"] == "finished\n"


def test_sigterm_hands_back_what_outlives_the_drain_timeout(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server("--drain-timeout", "0.5")
    pidfile = tmp_path / "pid"
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task = api.post(
            "/api/tasks",
            json={
                "name": "slow",
                "command": f'[ "$TASKQUEUE_ATTEMPT" = 1 ] && echo $$ > {pidfile} && sleep 300;'
                ' echo "ran $TASKQUEUE_ATTEMPT"',
            },
        ).json()
        _wait_until(
            lambda: api.get(f"/api/tasks/{task['id']}").json()["status"] == "Running",
            15,
            "the task to start",
        )
    assert server.terminate(timeout=30) == 0
    assert "stopped: 0 task(s) finished while draining, 1 handed back" in server.log.read_text()
    restarted = make_server(db=server.db)
    with httpx.Client(base_url=restarted.url, timeout=30) as api:
        done = wait_status(api, task["id"])
        assert done["status"] == "Completed"
        assert done["result"]["stdout_tail"] == "ran 2\n"
        attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
        assert "handed back" in attempts[0]["error"]
        assert done["retry_attempts"] == 3  # a hand-back spends no retry
    assert not _alive(int(pidfile.read_text()))
