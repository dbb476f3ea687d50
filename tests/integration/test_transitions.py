"""The named transitions in process, on a real database: each change commits with its event
or not at all, a typed reason rides beside each failure message, and time comes from the
store's clock (driven here, never slept through)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from taskqueue.models import BatchTaskItem, FailureReason, TaskCreate
from taskqueue.store import Outcome, Store
from tests.conftest import query_db, run_store

_SQLITE_REFUSE = (
    "CREATE TRIGGER refuse_events BEFORE INSERT ON events"
    " BEGIN SELECT RAISE(ABORT, 'events refused'); END"
)
_PG_REFUSE = (
    "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'events refused'; END $$;"
    " CREATE TRIGGER refuse_events BEFORE INSERT ON events"
    " FOR EACH ROW EXECUTE FUNCTION refuse_events()"
)


def _execute(db: str, statement: str) -> None:
    if "://" in db:
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]
        return
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute(statement)


def _refuse_events(db: str) -> None:
    _execute(db, _PG_REFUSE if "://" in db else _SQLITE_REFUSE)


def _accept_events(db: str) -> None:
    if "://" in db:
        _execute(db, "DROP TRIGGER refuse_events ON events; DROP FUNCTION refuse_events()")
    else:
        _execute(db, "DROP TRIGGER refuse_events")


def _snapshot(db: str) -> list[tuple[Any, ...]]:
    return sorted(
        query_db(db, "SELECT id, status, attempt, lease_token, failure_reason FROM tasks"),
        key=repr,
    )


def test_a_change_whose_event_cannot_be_written_is_rolled_back(db_url: str) -> None:
    """The outbox promise: no change commits without its event."""

    async def setup(store: Store) -> list[str]:
        made = await store.create_tasks(
            [TaskCreate(name=n, command="true", retry_delay=0) for n in ("a", "b", "c")]
        )
        await store.claim("w", ["default"], 1, 30)
        return [t["id"] for t in made]

    ids = run_store(db_url, setup)
    before = _snapshot(db_url)
    events = query_db(db_url, "SELECT count(*) FROM events")
    _refuse_events(db_url)

    async def attempt_changes(store: Store) -> None:
        [running] = query_db(db_url, "SELECT id, lease_token FROM tasks WHERE status = 'Running'")
        pending = [i for i in ids if i != running[0]]
        for change in (
            store.create_tasks([TaskCreate(name="d", command="true")]),
            store.cancel_task(pending[0]),
            store.claim("w2", ["default"], 5, 30),
            store.finish(running[0], running[1], Outcome(True, exit_code=0)),
            store.finish(
                running[0], running[1], Outcome(False, error="x", reason=FailureReason.EXIT_CODE)
            ),
            store.release(running[0], running[1]),
            store.cancel_task(running[0]),
        ):
            with pytest.raises(Exception, match="events refused"):
                await change

    run_store(db_url, attempt_changes)
    assert _snapshot(db_url) == before
    assert query_db(db_url, "SELECT count(*) FROM events") == events
    _accept_events(db_url)

    async def then_it_works(store: Store) -> None:
        done = await store.cancel_task(ids[2])
        assert done["status"] == "Cancelled"

    run_store(db_url, then_it_works)
    assert query_db(db_url, "SELECT count(*) FROM events")[0][0] == events[0][0] + 1


def test_failures_carry_their_typed_reason(db_url: str) -> None:
    async def body(store: Store) -> None:
        [parent, child] = await store.create_tasks(
            [
                BatchTaskItem(
                    name="parent", command="false", retry_attempts=1, retry_delay=0, ref="p"
                ),
                BatchTaskItem(name="child", command="true", dependencies=["p"]),
            ],
            batch=True,
        )
        [first] = await store.claim("w", ["default"], 5, 30)
        timeout = Outcome(
            False, exit_code=-15, error="timed out after 1s", reason=FailureReason.TIMEOUT
        )
        assert await store.finish(first.id, first.lease_token, timeout) == "Pending"
        retried = await store.get_task(parent["id"])
        assert retried["failure_reason"] == "timeout"
        assert retried["result"]["failure_reason"] == "timeout"
        [second] = await store.claim("w", ["default"], 5, 30)
        failed = Outcome(False, exit_code=1, error="exit code 1", reason=FailureReason.EXIT_CODE)
        assert await store.finish(second.id, second.lease_token, failed) == "Failed"
        ended = await store.get_task(parent["id"])
        assert (ended["status"], ended["failure_reason"]) == ("Failed", "exit_code")
        attempts = await store.list_attempts(parent["id"])
        assert [a["failure_reason"] for a in attempts] == ["timeout", "exit_code"]
        cascaded = await store.get_task(child["id"])
        assert (cascaded["status"], cascaded["failure_reason"]) == (
            "Cancelled",
            "dependency_failed",
        )
        retry = await store.retry_task(parent["id"])
        assert (retry["status"], retry["failure_reason"]) == ("Pending", None)
        cancelled = await store.cancel_task(parent["id"])
        assert cancelled["failure_reason"] == "cancelled"

    run_store(db_url, body)


def _run_clocked(db: str, now: list[int], body: Callable[[Store], Awaitable[None]]) -> None:
    """Run ``body`` on a store whose clock reads ``now[0]`` (microseconds)."""

    async def main() -> None:
        store = Store(db, clock=lambda: now[0])
        store.start()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_lease_expiry_follows_the_store_clock(db_url: str) -> None:
    now = [1_900_000_000_000_000]

    async def body(store: Store) -> None:
        [task] = await store.create_tasks([TaskCreate(name="t", command="true", retry_delay=0)])
        [held] = await store.claim("w", ["default"], 1, lease_s=30)
        now[0] += 29_000_000
        assert not await store.has_expired_leases()
        assert await store.reap_expired() == []
        now[0] += 2_000_000
        assert await store.has_expired_leases()
        assert await store.reap_expired() == [task["id"]]
        again = await store.get_task(task["id"])
        assert (again["status"], again["failure_reason"]) == ("Pending", "lease_expired")
        assert await store.finish(held.id, held.lease_token, Outcome(True)) is None

    _run_clocked(db_url, now, body)


def test_housekeeping_prunes_by_the_store_clock(db_url: str) -> None:
    now = [1_900_000_000_000_000]

    async def body(store: Store) -> None:
        [task] = await store.create_tasks([TaskCreate(name="old", command="true")])
        await store.cancel_task(task["id"])
        assert (await store.prune(3600))["tasks"] == 0
        now[0] += 3601 * 1_000_000
        deleted = await store.prune(3600)
        assert deleted["tasks"] == 1
        assert deleted["events"] >= 1  # the newest is kept
        assert query_db(db, "SELECT count(*) FROM tasks") == [(0,)]

    db = db_url
    _run_clocked(db_url, now, body)
