"""Events on PostgreSQL with many writers: an API-only server and two standalone workers write
events at once, and the stream still gives every one, in position order, with no gap."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import ServerProcess
from tests.pg.conftest import StartWorker
from tests.sse import read_stream

TASKS = 40


def test_events_written_by_other_processes_stream_without_gap(
    make_server: Callable[..., ServerProcess], start_worker: StartWorker, db_url: str
) -> None:
    server = make_server("--workers", "0")
    for _ in range(2):
        start_worker(db_url, "--concurrency", "4").wait_up()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        start = api.get("/api/events", params={"format": "json", "limit": 1}).json()["last_id"]
        start = start or 0
        made = api.post(
            "/api/tasks/batch",
            json={"tasks": [{"name": f"t{i}", "command": "true"} for i in range(TASKS)]},
        )
        assert made.status_code == 201, made.text
        ids = {t["id"] for t in made.json()["tasks"]}

        def done(events: list[dict[str, object]]) -> bool:
            return sum(e["type"] == "task.completed" for e in events) >= TASKS

        # The workers' events reach the API's stream by NOTIFY, not by its polling.
        events, _ = read_stream(api, {"after": start}, until=done, timeout=60)
        page = api.get(
            "/api/events", params={"format": "json", "after": start, "limit": 1000}
        ).json()
    positions = [e["id"] for e in events]
    # Positions are given after commit, one transaction at a time: no gap, no repeat, in order.
    assert positions == list(range(start + 1, start + 1 + len(positions)))
    assert page["items"][: len(events)] == events
    for task_id in ids:
        assert [e["type"] for e in events if e["task_id"] == task_id] == [
            "task.created",
            "task.started",
            "task.completed",
        ]
    # The API runs no worker: every start was written by another process.
    assert all(e["data"]["worker_id"] for e in events if e["type"] == "task.started")
