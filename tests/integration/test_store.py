"""The store on a real SQLite file, in process: lease fencing, reaping, dependency counters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from taskqueue.models import BatchTaskItem, TaskCreate, TaskUpdate
from taskqueue.store import Conflict, NotFound, Outcome, Store
from tests.conftest import query_db, run_store


def test_a_stale_worker_cannot_overwrite_a_newer_attempt(db_url: str) -> None:
    async def body(store: Store) -> None:
        [task] = await store.create_tasks([TaskCreate(name="t", command="true", retry_delay=0)])
        [old] = await store.claim("old", ["default"], 1, lease_s=0.05)
        await asyncio.sleep(0.1)
        assert await store.has_expired_leases()
        assert await store.reap_expired() == [task["id"]]
        [new] = await store.claim("new", ["default"], 1, lease_s=30)
        assert new.attempt == 2
        assert new.lease_token != old.lease_token
        # Every write of the stale attempt finds nothing.
        stale = (old.id, old.lease_token)
        assert await store.heartbeat([stale], 30) == [stale]
        assert await store.lost_leases([stale, (new.id, new.lease_token)]) == [stale]
        assert await store.append_output(old.id, old.lease_token, 1, [("stdout", b"x")]) is False
        assert await store.finish(old.id, old.lease_token, Outcome(True, exit_code=0)) is None
        assert await store.release(old.id, old.lease_token) is False
        assert (await store.get_task(task["id"]))["status"] == "Running"
        assert await store.finish(new.id, new.lease_token, Outcome(True, exit_code=0)) == (
            "Completed"
        )
        attempts = await store.list_attempts(task["id"])
        assert [(a["number"], a["worker_id"], a["status"]) for a in attempts] == [
            (1, "old", "Failed"),
            (2, "new", "Completed"),
        ]

    run_store(db_url, body)


def test_two_claimers_never_get_the_same_task(db_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_tasks([TaskCreate(name=f"t{i}", command="true") for i in range(200)])
        claims = await asyncio.gather(
            *[store.claim(f"w{i}", ["default"], 7, 30) for i in range(40)]
        )
        ids = [c.id for batch in claims for c in batch]
        assert len(ids) == 200
        assert len(set(ids)) == 200

    run_store(db_url, body)


def test_failed_attempts_back_off_and_queue_filter(db_url: str) -> None:
    async def body(store: Store) -> None:
        [task] = await store.create_tasks(
            [TaskCreate(name="t", command="x", retry_delay=60, queue="q1")]
        )
        assert await store.claim("w", ["default"], 1, 30) == []
        [held] = await store.claim("w", ["q1"], 1, 30)
        status = await store.finish(
            held.id, held.lease_token, Outcome(False, exit_code=2, error="exit code 2")
        )
        assert status == "Pending"
        again = await store.get_task(task["id"])
        assert again["status_reason"] == "exit code 2"
        assert again["run_at"] > again["updated_at"]  # 30..60 s from now
        assert not await store.has_runnable(["q1"])
        assert await store.claim("w", ["q1"], 1, 30) == []

    run_store(db_url, body)


def test_completing_a_dependency_releases_its_dependents(db_url: str) -> None:
    async def body(store: Store) -> None:
        _first, _second, both = await store.create_tasks(
            [
                BatchTaskItem(name="a", command="true", ref="a"),
                BatchTaskItem(name="b", command="true", ref="b"),
                BatchTaskItem(name="c", command="true", dependencies=["a", "b"]),
            ]
        )
        claimed = await store.claim("w", ["default"], 10, 30)
        assert sorted(c.name for c in claimed) == ["a", "b"]
        for c in claimed:
            assert await store.claim("w", ["default"], 10, 30) == []
            await store.finish(c.id, c.lease_token, Outcome(True, exit_code=0))
        [last] = await store.claim("w", ["default"], 10, 30)
        assert last.id == both["id"]

    run_store(db_url, body)


def test_cancel_cascades_and_retry_rules(db_url: str) -> None:
    async def body(store: Store) -> None:
        root, mid, leaf = await store.create_tasks(
            [
                BatchTaskItem(name="root", command="true", ref="r", queue="parked"),
                BatchTaskItem(name="mid", command="true", ref="m", dependencies=["r"]),
                BatchTaskItem(name="leaf", command="true", dependencies=["m"]),
            ]
        )
        cancelled = await store.cancel_task(root["id"])
        assert cancelled["status"] == "Cancelled"
        assert (await store.get_task(leaf["id"]))["status"] == "Cancelled"
        assert mid["id"] in (await store.get_task(leaf["id"]))["status_reason"]
        assert (await store.cancel_task(root["id"]))["status"] == "Cancelled"  # idempotent
        with pytest.raises(Conflict, match="retry it first"):
            await store.retry_task(mid["id"])
        retried = await store.retry_task(root["id"])
        assert retried["status"] == "Pending"
        assert (await store.retry_task(mid["id"]))["status"] == "Pending"
        with pytest.raises(Conflict):
            await store.retry_task(mid["id"])  # Pending cannot be retried
        with pytest.raises(Conflict, match="depend on this task"):
            await store.delete_task(root["id"])
        assert (await store.cancel_task(leaf["id"]))["status"] == "Cancelled"
        with pytest.raises(Conflict, match="only while the task is Pending"):
            await store.update_task(leaf["id"], TaskUpdate(command="false"))
        with pytest.raises(NotFound):
            await store.get_task("00000000-0000-0000-0000-000000000000")

    run_store(db_url, body)


def test_every_state_change_writes_its_event_in_the_same_transaction(db_url: str) -> None:
    async def body(store: Store) -> str:
        [task] = await store.create_tasks([TaskCreate(name="t", command="true")])
        [held] = await store.claim("w", ["default"], 1, 30)
        await store.finish(held.id, held.lease_token, Outcome(True, exit_code=0))
        return str(task["id"])

    task_id = run_store(db_url, body)
    types = [
        r[0]
        for r in query_db(
            db_url, f"SELECT type FROM events WHERE task_id = '{task_id}' ORDER BY id"
        )
    ]
    assert types == ["task.created", "task.started", "task.completed"]


def test_a_failing_write_in_a_group_leaves_the_others_committed(db_url: str) -> None:
    async def body(store: Store) -> None:
        def boom(conn: Any, fx: object) -> None:
            conn.execute("INSERT INTO events (type, time, data) VALUES ('x', 1, '{}')")
            raise RuntimeError("boom")

        good = store.create_tasks([TaskCreate(name="ok", command="true")])
        bad = store.db.write(boom)
        results = await asyncio.gather(good, bad, return_exceptions=True)
        assert isinstance(results[1], RuntimeError)
        assert store.list_tasks.__self__ is store
        assert query_db(db_url, "SELECT count(*) FROM events WHERE type = 'x'") == [(0,)]
        assert query_db(db_url, "SELECT count(*) FROM tasks") == [(1,)]

    run_store(db_url, body)


def test_the_database_url_forms(db_url: str) -> None:
    from taskqueue.store import resolve_sqlite_path

    assert resolve_sqlite_path("sqlite:////tmp/x.db") == Path("/tmp/x.db")
    assert resolve_sqlite_path("x.db") == Path("x.db")
    with pytest.raises(ValueError, match="in-memory"):
        resolve_sqlite_path("sqlite://")
    with pytest.raises(ValueError, match="unsupported database"):
        resolve_sqlite_path("mysql://u@h/db")
