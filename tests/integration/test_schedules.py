"""Scheduled tasks against real servers, with the scheduler's clock driven by a file.

Servers run with ``--scheduler-clock FILE``: their schedulers fire by the time written there,
so each slot comes when the test says. The child tasks are made at the real time, and with
``--workers 0`` they stay Pending (unfinished, as a long run would be).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, query_db, wait_until

MINUTE = 60


class Clock:
    """The scheduler's time, in a file every server under test reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = float(int(time.time()) // MINUTE * MINUTE + MINUTE)  # a whole minute ahead
        self.set(self.start)

    def set(self, seconds: float) -> None:
        self.path.write_text(f"{seconds:.6f}")

    def at(self, offset: float) -> None:
        self.set(self.start + offset)

    def iso(self, offset: float) -> str:
        return datetime.fromtimestamp(self.start + offset, timezone.utc).isoformat()


@pytest.fixture
def clock(tmp_path: Path) -> Clock:
    return Clock(tmp_path / "clock")


def _schedule(api: httpx.Client, clock: Clock, **schedule: Any) -> dict[str, Any]:
    body = {
        "name": "tick",
        "task_type": "Scheduled",
        "command": "true",
        "schedule": {"interval_seconds": MINUTE, "start_at": clock.iso(MINUTE), **schedule},
    }
    response = api.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _runs(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/api/tasks/{task_id}/runs", params={"limit": 1000}).json()
    return list(reversed(page["runs"]))  # oldest first


def _slots(runs: list[dict[str, Any]]) -> list[float]:
    return [datetime.fromisoformat(r["slot"]).timestamp() for r in runs]


def _children(server: ServerProcess, task_id: str) -> int:
    return int(
        query_db(server.db, f"SELECT count(*) FROM tasks WHERE parent_id = '{task_id}'")[0][0]
    )


def _wait_runs(api: httpx.Client, task_id: str, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(_runs(api, task_id)) >= count, 30, f"{count} run(s)")
    return _runs(api, task_id)


def test_each_slot_fires_once_with_three_servers_racing(
    make_server: Callable[..., ServerProcess], clock: Clock
) -> None:
    args = ("--workers", "0", "--scheduler-clock", str(clock.path))
    first = make_server(*args)
    others = [make_server(*args, db=first.db) for _ in range(2)]
    with httpx.Client(base_url=first.url, timeout=30) as api:
        made = _schedule(api, clock, overlap_policy="allow")
        for slot in range(1, 11):
            clock.at(slot * MINUTE + 0.5)
            runs = _wait_runs(api, made["id"], slot)
        time.sleep(1.5)  # every scheduler has looked again since the last slot
        runs = _runs(api, made["id"])
        assert _slots(runs) == [clock.start + n * MINUTE for n in range(1, 11)]
        assert {r["kind"] for r in runs} == {"scheduled"}
        assert all(r["task_id"] for r in runs)
        assert _children(first, made["id"]) == 10
    assert all(server.process and server.process.poll() is None for server in others)


def test_skip_and_cancel_previous_while_a_run_has_not_ended(
    make_server: Callable[..., ServerProcess], clock: Clock
) -> None:
    server = make_server("--workers", "0", "--scheduler-clock", str(clock.path))
    with httpx.Client(base_url=server.url, timeout=30) as api:
        skip = _schedule(api, clock)
        cancel = _schedule(api, clock, overlap_policy="cancel_previous")
        clock.at(MINUTE + 0.5)
        _wait_runs(api, skip["id"], 1)
        _wait_runs(api, cancel["id"], 1)
        clock.at(2 * MINUTE + 0.5)
        skipped = _wait_runs(api, skip["id"], 2)
        assert [r["skipped"] for r in skipped] == [None, "overlap"]
        assert skipped[1]["task_id"] is None
        assert _children(server, skip["id"]) == 1
        replaced = _wait_runs(api, cancel["id"], 2)
        assert [r["skipped"] for r in replaced] == [None, None]
        earlier = api.get(f"/api/tasks/{replaced[0]['task_id']}").json()
        assert earlier["status"] == "Cancelled"
        assert "next run of its schedule" in earlier["status_reason"]
        assert api.get(f"/api/tasks/{replaced[1]['task_id']}").json()["status"] == "Pending"


def test_buffer_one_keeps_the_latest_slot_until_the_run_ends(
    make_server: Callable[..., ServerProcess], clock: Clock
) -> None:
    server = make_server("--workers", "0", "--scheduler-clock", str(clock.path))
    with httpx.Client(base_url=server.url, timeout=30) as api:
        made = _schedule(api, clock, overlap_policy="buffer_one")
        for slot in (1, 2, 3):
            clock.at(slot * MINUTE + 0.5)
            runs = _wait_runs(api, made["id"], slot)
        assert [r["skipped"] for r in runs] == [None, "overlap", "buffered"]
        api.post(f"/api/tasks/{runs[0]['task_id']}/cancel")
        wait_until(
            lambda: _runs(api, made["id"])[2]["task_id"] is not None, 30, "the buffered slot"
        )
        runs = _runs(api, made["id"])
        assert [r["skipped"] for r in runs] == [None, "overlap", None]
        assert _children(server, made["id"]) == 2


def test_catchup_after_four_missed_slots_follows_each_policy(
    make_server: Callable[..., ServerProcess], clock: Clock
) -> None:
    args = ("--workers", "0", "--scheduler-clock", str(clock.path))
    server = make_server(*args)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        made = {
            policy: _schedule(api, clock, catchup=policy, overlap_policy="allow")
            for policy in ("none", "latest", "all")
        }
        clock.at(MINUTE + 0.5)
        for task in made.values():
            _wait_runs(api, task["id"], 1)
    server.kill9()
    # Down across the slots at 2, 3, 4 and 5 minutes; back 45 s after the last.
    clock.at(5 * MINUTE + 45)
    restarted = make_server(*args, db=server.db)
    with httpx.Client(base_url=restarted.url, timeout=30) as api:
        latest = _wait_runs(api, made["latest"]["id"], 2)
        every = _wait_runs(api, made["all"]["id"], 5)
        time.sleep(1.5)  # the scheduler has looked again: nothing more comes
        none = _runs(api, made["none"]["id"])
        assert _slots(none) == [clock.start + MINUTE]
        assert _slots(_runs(api, made["latest"]["id"])) == _slots(latest)
        assert _slots(latest) == [clock.start + MINUTE, clock.start + 5 * MINUTE]
        assert latest[1]["kind"] == "catchup"
        assert _slots(every) == [clock.start + n * MINUTE for n in range(1, 6)]
        assert [r["kind"] for r in every] == ["scheduled"] + ["catchup"] * 4
        for task in made.values():  # the next slot is the one after now, whatever the policy
            schedule = api.get(f"/api/tasks/{task['id']}").json()["schedule"]
            assert schedule["next_run_at"] == clock.iso(6 * MINUTE).replace("+00:00", "Z")


def test_pause_fires_nothing_and_resume_starts_after_now(
    make_server: Callable[..., ServerProcess], clock: Clock
) -> None:
    server = make_server("--workers", "0", "--scheduler-clock", str(clock.path))
    with httpx.Client(base_url=server.url, timeout=30) as api:
        made = _schedule(api, clock, overlap_policy="allow")
        paused = api.post(f"/api/tasks/{made['id']}/pause").json()
        assert paused["schedule"]["paused"] is True
        clock.at(3 * MINUTE + 0.5)
        time.sleep(1.5)
        assert _runs(api, made["id"]) == []
        resumed = api.post(f"/api/tasks/{made['id']}/resume").json()
        assert resumed["schedule"]["paused"] is False
        upcoming = api.get(f"/api/tasks/{made['id']}/next", params={"count": 3}).json()
        assert upcoming["paused"] is False
        assert len(upcoming["slots"]) == 3
        assert _children(server, made["id"]) == 0


def test_trigger_runs_the_template_now(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        body = {
            "name": "nightly",
            "task_type": "Scheduled",
            "command": 'echo \'{"ran": true}\' > "$TASKQUEUE_OUTPUT"',
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        }
        made = api.post("/api/tasks", json=body).json()
        assert made["schedule"]["cron"] == "0 3 * * *"
        upcoming = api.get(f"/api/tasks/{made['id']}/next", params={"count": 2}).json()
        first, second = (datetime.fromisoformat(s) for s in upcoming["slots"])
        assert (second - first).total_seconds() in (23 * 3600, 24 * 3600, 25 * 3600)
        assert first.astimezone(_berlin()).hour == 3
        run = api.post(f"/api/tasks/{made['id']}/trigger")
        assert run.status_code == 201, run.text
        child = run.json()["task_id"]
        assert run.json()["kind"] == "manual"
        wait_until(
            lambda: api.get(f"/api/tasks/{child}").json()["status"] == "Completed", 30, "the run"
        )
        done = api.get(f"/api/tasks/{child}").json()
        assert (done["parent_id"], done["result"]["output"]) == (made["id"], {"ran": True})
        assert _runs(api, made["id"])[0]["status"] == "Completed"


def _berlin() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("schedule", "loc"),
    [
        pytest.param({"cron": "61 * * * *"}, ["schedule", "cron"], id="minute-61"),
        pytest.param({"cron": "* * *"}, ["schedule", "cron"], id="three-fields"),
        pytest.param({"cron": "0 0 30 2 *"}, ["schedule", "cron"], id="february-30"),
        pytest.param(
            {"cron": "@hourly", "timezone": "Mars/Olympus"}, ["schedule", "timezone"], id="tz"
        ),
        pytest.param({"interval_seconds": 0}, ["schedule", "interval_seconds"], id="interval-0"),
        pytest.param({}, ["schedule", "cron"], id="neither"),
        pytest.param({"cron": "@daily", "interval_seconds": 5}, ["schedule", "cron"], id="both"),
    ],
)
def test_a_schedule_that_cannot_be_used_is_refused(
    server: ServerProcess, schedule: dict[str, Any], loc: list[str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        body = {"name": "s", "task_type": "Scheduled", "command": "true", "schedule": schedule}
        response = api.post("/api/tasks", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["loc"] == loc
        assert api.get("/api/tasks", params={"task_type": "Scheduled"}).json()["total"] == 0


def test_a_scheduled_task_is_a_template(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        plain = api.post("/api/tasks", json={"name": "p", "command": "true"}).json()
        assert plain["schedule"] is None
        for path in ("runs", "next"):
            assert api.get(f"/api/tasks/{plain['id']}/{path}").status_code == 409
        for path in ("pause", "resume", "trigger"):
            assert api.post(f"/api/tasks/{plain['id']}/{path}").status_code == 409
        refused = api.post(
            "/api/tasks", json={"name": "p", "command": "true", "schedule": {"cron": "@daily"}}
        )
        assert refused.status_code == 422
        missing = api.post(
            "/api/tasks", json={"name": "s", "task_type": "Scheduled", "command": "true"}
        )
        assert missing.status_code == 422
        made = api.post(
            "/api/tasks",
            json={"name": "s", "task_type": "Scheduled", "command": "true",
                  "schedule": {"cron": "@yearly"}},
        ).json()  # fmt: skip
        assert api.post(f"/api/tasks/{made['id']}/cancel").status_code == 409
        after = api.post(
            "/api/tasks", json={"name": "a", "command": "true", "dependencies": [made["id"]]}
        )
        assert after.status_code == 409, after.text
        assert "Scheduled" in after.json()["error"]["details"][0]["msg"]
        counts = api.get("/api/health").json()["tasks"]
        assert counts.get("Pending", 0) == 0  # the template is not work
