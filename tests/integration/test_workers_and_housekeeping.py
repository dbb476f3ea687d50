"""The worker registry (``GET /api/workers``) and housekeeping (pruning), on either backend.

Workers register themselves, beat while alive and leave when stopped; a worker killed with
SIGKILL stays listed as stale. Housekeeping deletes finished tasks (with their attempts, output
and edges), old events and old idempotency keys, and never a finished task that an unfinished
task still depends on.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskqueue.models import TaskCreate
from taskqueue.store import Outcome, Store, WorkerInfo
from tests.conftest import (
    BIN,
    ServerProcess,
    execute_db,
    query_db,
    run_store,
    wait_status,
    wait_until,
)


def workers_of(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/api/workers")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["workers"])
    return list(body["workers"])


def test_workers_register_beat_and_leave(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = make_server("--workers", "4")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        [embedded] = workers_of(api)
        assert embedded["concurrency"] == 4
        assert embedded["queues"] == ["default"]
        assert embedded["status"] == "active"
        assert embedded["pid"] == server.process.pid  # type: ignore[union-attr]

        log = (tmp_path / "worker.log").open("ab")
        # A short presence beat, so that the running count below shows without a 5 s wait.
        worker = subprocess.Popen(
            [
                *(str(BIN), "worker", "--db", str(server.db)),
                *("--queue", "a", "--queue", "b", "--presence-interval", "0.1"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: len(workers_of(api)) == 2, 30, "the worker to register")
            [standalone] = [w for w in workers_of(api) if w["pid"] == worker.pid]
            assert standalone["queues"] == ["a", "b"]
            assert standalone["concurrency"] == 16
            assert standalone["id"].split(":")[1] == str(worker.pid)

            # Busy: the beat reports the tasks it runs.
            task = api.post(
                "/api/tasks", json={"name": "busy", "command": "sleep 30", "queue": "a"}
            ).json()
            wait_until(
                lambda: any(w["running"] == 1 for w in workers_of(api) if w["pid"] == worker.pid),
                30,
                "the presence beat to count the running task",
            )
            api.post(f"/api/tasks/{task['id']}/cancel").raise_for_status()

            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0
            assert [w["pid"] for w in workers_of(api)] == [server.process.pid]  # type: ignore[union-attr]
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            log.close()


def health_workers(api: httpx.Client) -> int:
    response = api.get("/api/health")
    assert response.status_code == 200, response.text
    count = response.json()["workers"]
    assert isinstance(count, int)
    return count


def test_health_counts_the_live_workers_of_the_whole_deployment(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = make_server("--workers", "0")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert health_workers(api) == 0
        assert workers_of(api) == []

        def start_worker(name: str) -> subprocess.Popen[bytes]:
            with (tmp_path / f"{name}.log").open("ab") as log:
                return subprocess.Popen(
                    [str(BIN), "worker", "--db", str(server.db)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        first = start_worker("first")
        second: subprocess.Popen[bytes] | None = None
        try:
            # A worker in another process counts, though this server runs none itself.
            wait_until(lambda: len(workers_of(api)) == 1, 30, "the worker to register")
            assert health_workers(api) == 1
            [listed] = workers_of(api)
            assert listed["pid"] == first.pid
            assert listed["status"] == "active"

            # Killed, it cannot leave the registry: listed until it goes stale, then not counted.
            # Two minutes of silence: past the API's 30 s, short of housekeeping's hour.
            first.kill()
            first.wait()
            assert [w["pid"] for w in workers_of(api)] == [first.pid]
            aged = execute_db(
                server.db,
                f"UPDATE workers SET last_seen = last_seen - 120000000 WHERE pid = {first.pid}",
            )
            assert aged == 1
            [dead] = workers_of(api)
            assert dead["status"] == "stale"
            assert health_workers(api) == 0

            # A live worker beside the stale one is counted; stopped cleanly, it leaves.
            second = start_worker("second")
            wait_until(lambda: len(workers_of(api)) == 2, 30, "the second worker to register")
            assert health_workers(api) == 1
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0
            assert health_workers(api) == 0
            assert [w["pid"] for w in workers_of(api)] == [first.pid]
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()


def test_health_counts_the_embedded_worker_from_the_first_request(
    make_server: Callable[..., ServerProcess],
) -> None:
    # make_server returns at the first health answer: the worker registered before it.
    server = make_server("--workers", "2")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert health_workers(api) == 1
        [embedded] = workers_of(api)
        assert embedded["pid"] == server.process.pid  # type: ignore[union-attr]
        assert embedded["status"] == "active"
    assert server.terminate() == 0


def test_a_killed_worker_stays_listed_as_stale(db_url: str) -> None:
    info = WorkerInfo("ghost:1:abcd", "ghost", 1, 8, ["default"], "0.0.1")

    async def body(store: Store) -> list[dict[str, Any]]:
        await store.register_worker(info)
        await store.touch_worker(info, 3)
        fresh = await store.list_workers(stale_after_s=60)
        await asyncio.sleep(0.05)
        stale = await store.list_workers(stale_after_s=0.01)
        return [fresh[0], stale[0]]

    fresh, stale = run_store(db_url, body)
    assert fresh["status"] == "active"
    assert fresh["running"] == 3
    assert fresh["host"] == "ghost"
    assert stale["status"] == "stale"
    assert stale["id"] == info.id


def test_housekeeping_prunes_old_finished_tasks_but_not_needed_dependencies(db_url: str) -> None:
    async def body(store: Store) -> dict[str, Any]:
        done, parent = await store.create_tasks(
            [
                TaskCreate(name="done", command="true"),
                TaskCreate(name="parent", command="true"),
            ]
        )
        [child] = await store.create_tasks(
            [
                TaskCreate(
                    name="child",
                    command="true",
                    queue="elsewhere",
                    dependencies=[parent["id"]],
                )
            ]
        )
        for _ in range(2):
            [held] = await store.claim("w", ["default"], 1, 30)
            await store.append_output(held.id, held.lease_token, 1, [("stdout", b"hi\n")])
            await store.finish(held.id, held.lease_token, Outcome(True, exit_code=0))
        [pending] = await store.create_tasks([TaskCreate(name="pending", command="true")])
        kept_young = await store.prune(retention_s=3600)
        await asyncio.sleep(0.01)
        pruned = await store.prune(retention_s=0)
        return {
            "ids": (done["id"], parent["id"], child["id"], pending["id"]),
            "young": kept_young,
            "pruned": pruned,
        }

    result = run_store(db_url, body)
    done_id, parent_id, child_id, pending_id = result["ids"]
    assert result["young"]["tasks"] == 0
    assert result["pruned"]["tasks"] == 1
    remaining = {r[0] for r in query_db(db_url, "SELECT id FROM tasks")}
    # The parent finished, but its child has not run yet: it stays.
    assert remaining == {parent_id, child_id, pending_id}
    assert query_db(db_url, f"SELECT count(*) FROM attempts WHERE task_id = '{done_id}'") == [(0,)]
    output = f"SELECT count(*) FROM output_chunks WHERE task_id = '{done_id}'"
    assert query_db(db_url, output) == [(0,)]
    assert result["pruned"]["events"] >= 6
    # The newest event stays: readers resume after the ids they saw.
    assert query_db(db_url, "SELECT count(*) FROM events") == [(1,)]


def test_idempotency_keys_are_kept_for_a_day(db_url: str) -> None:
    from taskqueue.store import IdempotencyRequest

    async def body(store: Store) -> tuple[dict[str, int], str, str]:
        idem = IdempotencyRequest("key-1", "hash-1")
        [first] = await store.create_tasks([TaskCreate(name="once", command="true")], idem)
        pruned = await store.prune(retention_s=None)
        [again] = await store.create_tasks([TaskCreate(name="once", command="true")], idem)
        return pruned, first["id"], again["id"]

    pruned, first, again = run_store(db_url, body)
    assert pruned["idempotency_keys"] == 0
    assert "tasks" not in pruned  # no retention: finished tasks are kept forever
    assert first == again


def test_a_server_prunes_on_its_own(make_server: Callable[..., ServerProcess]) -> None:
    # Housekeeping runs at start, then every --housekeeping-interval (a minute by default).
    server = make_server("--retention-hours", "0.0001", "--housekeeping-interval", "0.1")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        created = api.post("/api/tasks", json={"name": "short-lived", "command": "true"}).json()
        assert wait_status(api, created["id"])["status"] == "Completed"
        # Retention 0.36 s: a later run of housekeeping prunes it, without a restart.
        wait_until(
            lambda: api.get(f"/api/tasks/{created['id']}").status_code == 404,
            30,
            "the finished task to be pruned",
        )


def test_commands_do_not_inherit_the_database_url(
    make_server: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQUEUE_DATABASE_URL", "postgresql://u:hunter2@nowhere/db")
    monkeypatch.setenv("TASKQUEUE_API_KEY", "key-hunter2")
    monkeypatch.setenv("PGPASSWORD", "pg-hunter2")
    monkeypatch.setenv("TASKQUEUE_WEBHOOK_TOKEN", "token-hunter2")
    monkeypatch.setenv("SOME_SETTING", "kept")
    server = make_server()  # --db wins over the variable
    with httpx.Client(base_url=server.url, timeout=30) as api:
        created = api.post("/api/tasks", json={"name": "env", "command": "env"}).json()
        done = wait_status(api, created["id"])
        assert done["status"] == "Completed"
        output = "".join(
            c["data"] for c in api.get(f"/api/tasks/{created['id']}/logs").json()["chunks"]
        )
    assert "SOME_SETTING=kept" in output
    assert "TASKQUEUE_WORKER_ID=" in output
    assert "hunter2" not in output


def test_a_reused_pid_is_not_taken_for_the_worker_that_died() -> None:
    from taskqueue.worker.orphans import AttemptProcess, process_start

    me, started = os.getpid(), process_start(os.getpid())
    assert started is not None
    assert AttemptProcess(1, 1, "t", 1, me, started).worker_alive()
    # Same pid, another start time: the worker died and something else got its pid.
    assert not AttemptProcess(1, 1, "t", 1, me, started + 1).worker_alive()
    assert not AttemptProcess(1, 1, "t", 1, me, None).worker_alive()
    assert not AttemptProcess(1, 1, "t", 1, None, started).worker_alive()


def test_the_orphan_sweep_kills_only_what_this_deployment_provably_started(
    make_server: Callable[..., ServerProcess],
) -> None:
    # A finished attempt, recorded under the embedded worker of a server that then stops: a
    # command that names it, its worker and this deployment is an orphan of ours.
    first = make_server("--workers", "1")
    with httpx.Client(base_url=first.url, timeout=30) as api:
        done = api.post("/api/tasks", json={"name": "recorded", "command": "true"}).json()
        assert wait_status(api, done["id"])["status"] == "Completed"
        [attempt] = api.get(f"/api/tasks/{done['id']}/attempts").json()["attempts"]
    assert first.terminate() == 0
    [(deployment,)] = query_db(first.db, "SELECT value FROM meta WHERE key = 'deployment_id'")
    ours, forged = forgeries(done["id"], attempt["worker_id"], str(deployment))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKQUEUE_")}

    def decoy(variables: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["sleep", "300"], env={**clean, **variables}, start_new_session=True
        )

    decoys = {name: decoy(variables) for name, variables in forged.items()}
    orphan = decoy(ours)
    try:
        second = make_server("--workers", "1", db=first.db)  # its worker sweeps as it starts
        wait_until(lambda: orphan.poll() is not None, 30, "the sweep to kill the real orphan")
        assert orphan.returncode == -signal.SIGKILL
        # The server says which groups it killed: the orphan's alone. (A taskqueue of an
        # older version running on the same host would kill the orphan and the decoys too:
        # its sweep is what this test is about.)
        assert second.log is not None
        log = second.log

        def killed() -> list[str]:
            return re.findall(r"killed process group (\d+)", log.read_text())

        # The kill comes first and its log line a moment after: wait for the line.
        wait_until(lambda: bool(killed()), 30, "the server to say what it killed")
        assert killed() == [str(orphan.pid)], "the orphan was killed, but not by this server"
        dead = {name for name, process in decoys.items() if process.poll() is not None}
        assert not dead, f"decoys killed, though not by this server: {sorted(dead)}"
    finally:
        for process in [*decoys.values(), orphan]:
            if process.poll() is None:
                process.kill()
            process.wait()


def forgeries(
    task_id: str, worker_id: str, deployment: str
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The variables of a real orphan of attempt 1 of ``task_id``, and decoys, each off in one
    way (or, the first, in every way) from what proves a process ours."""
    host, pid, suffix = worker_id.rsplit(":", 2)
    ours = {
        "TASKQUEUE_TASK_ID": task_id,
        "TASKQUEUE_ATTEMPT": "1",
        "TASKQUEUE_WORKER_ID": worker_id,
        "TASKQUEUE_WORKER_START": "1",
        "TASKQUEUE_DEPLOYMENT": deployment,
    }
    forged = {
        # The decoy of the report: another host, a dead worker, a task of nobody's database.
        "another host": {
            "TASKQUEUE_TASK_ID": "0199aaaa-0000-7000-8000-000000000001",
            "TASKQUEUE_ATTEMPT": "1",
            "TASKQUEUE_WORKER_ID": "elsewhere.example:4242:beef",
        },
        "ours, but another host": {**ours, "TASKQUEUE_WORKER_ID": f"elsewhere:{pid}:beef"},
        "no deployment": {k: v for k, v in ours.items() if k != "TASKQUEUE_DEPLOYMENT"},
        "another deployment": {**ours, "TASKQUEUE_DEPLOYMENT": "0" * 32},
        "a task not in this database": {
            **ours,
            "TASKQUEUE_TASK_ID": "0199aaaa-0000-7000-8000-000000000002",
        },
        "an attempt never made": {**ours, "TASKQUEUE_ATTEMPT": "2"},
        "a worker the attempt was not run by": {
            **ours,
            "TASKQUEUE_WORKER_ID": f"{host}:{pid}:{'eeee' if suffix == 'ffff' else 'ffff'}",
        },
    }
    return ours, forged
