"""The outbox as readers see it: positions that only grow, cursors, filters, pruning."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from taskqueue.models import ProjectCreate, TaskCreate
from taskqueue.store import Outcome, Store
from tests.conftest import run_store


def test_events_after_a_position_in_order_with_filters(db_url: str) -> None:
    async def body(store: Store) -> None:
        project = await store.create_project(ProjectCreate(name="etl"))
        made = await store.create_tasks(
            [
                TaskCreate(name="a", command="true", project_id=project["id"], queue="q1"),
                TaskCreate(name="b", command="true"),
            ]
        )
        [claimed] = await store.claim("w", ["q1"], 1, 30)
        await store.finish(claimed.id, claimed.lease_token, Outcome(True, exit_code=0))
        events = await store.events.read(0, 100)
        ids = [e["id"] for e in events]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        types = [e["type"] for e in events]
        assert types == [
            "project.created",
            "task.created",
            "task.created",
            "task.started",
            "task.completed",
        ]
        done = events[-1]
        assert done["task_id"] == made[0]["id"]
        assert done["project_id"] == project["id"]
        assert done["data"]["exit_code"] == 0
        assert done["time"].endswith("Z")
        # Resuming after a position gives exactly what follows it.
        assert await store.events.read(ids[2], 100) == events[3:]
        # Filters: project, task, types (exact and family), queue, visibility.
        mine = await store.events.read(0, 100, project_id=project["id"])
        assert [e["type"] for e in mine] == [
            "project.created",
            "task.created",
            "task.started",
            "task.completed",
        ]
        assert await store.events.read(0, 100, task_id=made[1]["id"]) == [events[2]]
        ends = await store.events.read(0, 100, types=["task.completed", "project.*"])
        assert [e["type"] for e in ends] == ["project.created", "task.completed"]
        on_q1 = await store.events.read(0, 100, queue="q1")
        assert {e["task_id"] for e in on_q1} == {made[0]["id"]}
        assert await store.events.read(0, 100, projects=frozenset()) == []
        limited = await store.events.read(0, 100, projects=frozenset({project["id"]}))
        assert limited == mine
        assert await store.events.bounds() == (ids[0], ids[-1])

    run_store(db_url, body)


def test_cursors_survive_and_never_move_back(db_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.events.cursor("nats") is None
        await store.events.set_cursor("nats", 7)
        await store.events.set_cursor("nats", 5)  # an older reader catching up
        assert await store.events.cursor("nats") == 7

    run_store(db_url, body)
    assert run_store(db_url, lambda store: store.events.cursor("nats")) == 7


def test_a_commit_with_events_wakes_readers(db_url: str) -> None:
    async def body(store: Store) -> None:
        signal = store.events.signal()
        try:
            assert await signal.wait(0.05) is False
            await store.create_tasks([TaskCreate(name="a", command="true")])
            assert await signal.wait(5) is True
        finally:
            signal.close()

    run_store(db_url, body)


def test_prune_keeps_the_newest_event(db_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_tasks([TaskCreate(name=f"t{i}", command="true") for i in range(3)])
        before = await store.events.read(0, 100)
        await asyncio.sleep(0.01)
        await store.prune(0.001)
        after = await store.events.read(0, 100)
        assert after == before[-1:]
        await store.create_tasks([TaskCreate(name="next", command="true")])
        [new] = await store.events.read(before[-1]["id"], 100)
        assert new["id"] > before[-1]["id"]

    run_store(db_url, body)


@pytest.mark.postgres_only
def test_an_event_committed_late_is_read_after_the_others(db_url: str) -> None:
    """PostgreSQL: a transaction that took a lower id but commits last is not skipped."""

    async def body(store: Store) -> None:
        await store.create_tasks([TaskCreate(name="first", command="true")])
        [first] = await store.events.read(0, 10)
        with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as slow:
            slow.execute(
                "INSERT INTO events (type, time, data) VALUES ('task.updated', 1, '{}')"
            )  # takes the next id, commits last
            await store.create_tasks([TaskCreate(name="second", command="true")])
            [second] = await store.events.read(first["id"], 10)
            slow.commit()
        [late] = await store.events.read(second["id"], 10)
        assert late["type"] == "task.updated"
        assert late["id"] == second["id"] + 1

    run_store(db_url, body)
