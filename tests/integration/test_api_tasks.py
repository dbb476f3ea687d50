"""The task endpoints as a user depends on them, against a real server process.

Tests that look at global state (lists, totals, health counts) get a fresh server each through
the ``api`` fixture; the rest share one module-scoped server and keep to their own tasks (a
queue of their own, or ids they created). A task in the queue ``parked`` (or any queue other
than ``default``) is never claimed by the embedded worker, so it stays Pending.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskqueue.models import Attempt, LogPage, Task, TaskList
from tests.conftest import wait_status, wait_until

PARKED = "parked"


# ---------------------------------------------------------------------------------- helpers


def valid_task(data: Any) -> dict[str, Any]:
    """The task JSON, after checking it parses as the wire model."""
    Task.model_validate(data)
    assert isinstance(data, dict)
    return data


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Create one task (``name`` and ``command`` have defaults) and return it."""
    body = {"name": "t", "command": "true", **fields}
    response = api.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    return valid_task(response.json())


def get(api: httpx.Client, task_id: str) -> dict[str, Any]:
    response = api.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return valid_task(response.json())


def finished(api: httpx.Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The task once terminal."""
    return valid_task(wait_status(api, task_id, timeout))


def wait_running(api: httpx.Client, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The task once a worker runs it, failing the test if it ends first or never starts."""
    seen: dict[str, Any] = {}

    def running() -> bool:
        seen.update(get(api, task_id))
        assert seen["status"] in ("Pending", "Running"), seen
        return seen["status"] == "Running"

    wait_until(running, timeout, f"task {task_id} to start")
    return seen


def wait_file(path: Path, timeout: float = 20.0) -> str:
    """The content of ``path`` once it exists and is not empty."""
    wait_until(
        lambda: path.exists() and bool(path.read_text().strip()), timeout, f"{path} to be written"
    )
    return path.read_text()


def attempts(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/tasks/{task_id}/attempts")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task_id"] == task_id
    for attempt in body["attempts"]:
        Attempt.model_validate(attempt)
    return list(body["attempts"])


def logs(api: httpx.Client, task_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/api/tasks/{task_id}/logs", params=params)
    assert response.status_code == 200, response.text
    LogPage.model_validate(response.json())
    return dict(response.json())


def listing(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/tasks", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    TaskList.model_validate(body)
    for task in body["tasks"]:
        valid_task(task)
    return dict(body)


def own_queue() -> str:
    """A queue no worker serves and no other test uses."""
    return f"parked-{uuid.uuid4().hex[:12]}"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused id of another user's group
        return True
    return True


# ---------------------------------------------------------------------------------- create/get


def test_create_applies_defaults(shared: httpx.Client) -> None:
    response = shared.post("/api/tasks", json={"name": "defaults", "command": "true"})
    assert response.status_code == 201, response.text
    task = valid_task(response.json())
    assert uuid.UUID(task["id"])
    assert task["name"] == "defaults"
    assert task["command"] == "true"
    assert task["status"] == "Pending"
    assert task["priority"] == "Normal"
    assert task["task_type"] == "Simple"
    assert task["retry_attempts"] == 3
    assert task["retry_delay"] == 30
    assert task["queue"] == "default"
    assert task["dependencies"] == []
    assert task["environment"] == {}
    assert task["metadata"] == {}
    assert task["description"] == ""
    assert task["project_id"] is None
    assert task["working_directory"] is None
    assert task["timeout"] is None
    assert task["input"] is None
    assert task["result"] is None
    assert task["attempt"] == 0
    assert task["started_at"] is None
    assert task["finished_at"] is None
    assert task["created_at"] == task["updated_at"]
    # It runs: the default queue is the embedded worker's.
    done = finished(shared, task["id"])
    assert done["status"] == "Completed"
    assert done["attempt"] == 1
    assert done["result"]["exit_code"] == 0


def test_create_accepts_camel_case_and_answers_snake_case(
    shared: httpx.Client, tmp_path: Path
) -> None:
    response = shared.post(
        "/api/tasks",
        json={
            "name": "camel",
            "command": "true",
            "retryAttempts": 1,
            "retryDelay": 0.5,
            "workingDirectory": str(tmp_path),
            "technicalSpecs": "specs",
            "acceptanceCriteria": ["a", "b"],
            "taskType": "Simple",
            "aiReviewsRequired": 1,
            "queue": PARKED,
        },
    )
    assert response.status_code == 201, response.text
    task = valid_task(response.json())
    assert task["retry_attempts"] == 1
    assert task["retry_delay"] == 0.5
    assert task["working_directory"] == str(tmp_path)
    assert task["technical_specs"] == "specs"
    assert task["acceptance_criteria"] == ["a", "b"]
    assert task["ai_reviews_required"] == 1
    assert "retryAttempts" not in task
    # What was stored reads back the same.
    assert get(shared, task["id"]) == task


def test_create_keeps_every_given_field(shared: httpx.Client) -> None:
    run_at = datetime.now(timezone.utc) + timedelta(hours=1)
    task = create(
        shared,
        name="full",
        command="echo hi",
        description="does things",
        priority="Critical",
        timeout=60,
        retry_attempts=0,
        retry_delay=2,
        environment={"A": "1"},
        metadata={"owner": "me", "n": [1, 2]},
        queue=PARKED,
        run_at=run_at.isoformat(),
        input={"k": "v"},
    )
    assert task["description"] == "does things"
    assert task["priority"] == "Critical"
    assert task["timeout"] == 60
    assert task["retry_attempts"] == 0
    assert task["retry_delay"] == 2
    assert task["environment"] == {"A": "1"}
    assert task["metadata"] == {"owner": "me", "n": [1, 2]}
    assert task["queue"] == PARKED
    assert abs(ts(task["run_at"]) - run_at) < timedelta(milliseconds=1)
    assert task["input"] == {"k": "v"}
    assert get(shared, task["id"]) == task


def test_get_unknown_task_is_404(shared: httpx.Client) -> None:
    response = shared.get(f"/api/tasks/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


# ---------------------------------------------------------------------------------- list


def test_list_filters(api: httpx.Client) -> None:
    project = api.post("/api/projects", json={"name": "p1"}).json()
    other = api.post("/api/projects", json={"name": "p2"}).json()
    first = create(api, name="first", queue=PARKED, project_id=project["id"], priority="High")
    time.sleep(0.05)
    boundary = datetime.now(timezone.utc)
    time.sleep(0.05)
    second = create(api, name="second", queue="q2", project_id=other["id"], priority="Low")
    third = create(api, name="third", queue=PARKED, project_id=project["id"])
    ran = create(api, name="ran", command="true")
    assert finished(api, ran["id"])["status"] == "Completed"
    cancelled = create(api, name="cancelled", queue=PARKED)
    assert api.post(f"/api/tasks/{cancelled['id']}/cancel").status_code == 200

    def names(**params: Any) -> list[str]:
        body = listing(api, **params)
        assert body["total"] == len(body["tasks"])
        return [t["name"] for t in body["tasks"]]

    assert names() == ["first", "second", "third", "ran", "cancelled"]
    assert names(status="Pending") == ["first", "second", "third"]
    assert names(status="Completed") == ["ran"]
    assert names(status="Cancelled") == ["cancelled"]
    assert names(status="Failed") == []
    assert names(project_id=project["id"]) == ["first", "third"]
    assert names(project_id=other["id"]) == ["second"]
    assert names(priority="High") == ["first"]
    assert names(priority="Low") == ["second"]
    assert names(priority="Normal") == ["third", "ran", "cancelled"]
    assert names(task_type="Simple") == ["first", "second", "third", "ran", "cancelled"]
    assert names(task_type="Workflow") == []
    assert names(queue=PARKED) == ["first", "third", "cancelled"]
    assert names(queue="q2") == ["second"]
    assert names(queue="default") == ["ran"]
    assert names(created_after=boundary.isoformat()) == ["second", "third", "ran", "cancelled"]
    assert names(created_before=boundary.isoformat()) == ["first"]
    assert names(created_after=(boundary - timedelta(days=1)).isoformat()) == [
        "first",
        "second",
        "third",
        "ran",
        "cancelled",
    ]
    assert names(created_before=(boundary - timedelta(days=1)).isoformat()) == []
    # Filters combine.
    assert names(project_id=project["id"], priority="Normal") == ["third"]
    assert names(queue=PARKED, status="Pending", created_after=boundary.isoformat()) == ["third"]
    assert {first["id"], second["id"], third["id"]} <= {t["id"] for t in listing(api)["tasks"]}


def test_list_pages_with_limit_offset_and_total(api: httpx.Client) -> None:
    ids = [create(api, name=f"task-{i}", queue=PARKED)["id"] for i in range(7)]
    body = listing(api)
    assert body["total"] == 7
    assert body["limit"] == 100
    assert body["offset"] == 0
    assert [t["id"] for t in body["tasks"]] == ids

    pages: list[str] = []
    for offset in (0, 3, 6):
        page = listing(api, limit=3, offset=offset)
        assert page["total"] == 7
        assert page["limit"] == 3
        assert page["offset"] == offset
        pages.extend(t["id"] for t in page["tasks"])
    assert pages == ids

    past_end = listing(api, limit=3, offset=7)
    assert past_end["tasks"] == []
    assert past_end["total"] == 7

    filtered = listing(api, queue=PARKED, limit=2, offset=1)
    assert [t["id"] for t in filtered["tasks"]] == ids[1:3]
    assert filtered["total"] == 7


def test_list_newest_first(api: httpx.Client) -> None:
    ids = [create(api, name=f"sorted-{i}", queue=PARKED)["id"] for i in range(5)]
    newest = listing(api, sort="-created_at", limit=3)
    assert [t["id"] for t in newest["tasks"]] == ids[::-1][:3]
    assert newest["total"] == 5
    second = listing(api, sort="-created_at", limit=3, offset=3)
    assert [t["id"] for t in second["tasks"]] == ids[::-1][3:]
    assert [t["id"] for t in listing(api, sort="created_at")["tasks"]] == ids
    refused = api.get("/api/tasks", params={"sort": "name"})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"] == ["query", "sort"]


def test_list_by_a_part_of_the_id(api: httpx.Client) -> None:
    made = [create(api, name=f"part-{i}", queue=PARKED)["id"] for i in range(3)]
    target = made[1]
    for part in (target[-12:], target[-4:], target[:13], target.upper()[-12:], target):
        found = listing(api, id_part=part)
        assert target in [t["id"] for t in found["tasks"]], part
    # Ids made in the same millisecond share their start; their ends tell them apart.
    assert [t["id"] for t in listing(api, id_part=target[-12:])["tasks"]] == [target]
    for bad in ("abc", "xyz-1234", "%%%%", "a" * 37):
        refused = api.get("/api/tasks", params={"id_part": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["details"][0]["loc"] == ["query", "id_part"]


# ---------------------------------------------------------------------------------- update


def test_update_pending_task_changes_run_fields(shared: httpx.Client) -> None:
    task = create(shared, name="before", command="exit 1", queue=PARKED)
    response = shared.put(
        f"/api/tasks/{task['id']}",
        json={
            "name": "after",
            "command": "echo changed",
            "priority": "High",
            "retryAttempts": 0,
            "retry_delay": 0,
            "environment": {"X": "y"},
            "timeout": 30,
            "description": "new",
            "metadata": {"m": 1},
        },
    )
    assert response.status_code == 200, response.text
    updated = valid_task(response.json())
    assert updated["name"] == "after"
    assert updated["command"] == "echo changed"
    assert updated["priority"] == "High"
    assert updated["retry_attempts"] == 0
    assert updated["retry_delay"] == 0
    assert updated["environment"] == {"X": "y"}
    assert updated["timeout"] == 30
    assert updated["description"] == "new"
    assert updated["metadata"] == {"m": 1}
    assert updated["status"] == "Pending"
    assert ts(updated["updated_at"]) > ts(task["updated_at"])
    assert updated["created_at"] == task["created_at"]
    assert get(shared, task["id"]) == updated

    # Fields not given stay as they were.
    again = shared.put(f"/api/tasks/{task['id']}", json={"description": "only this"})
    assert again.status_code == 200, again.text
    assert again.json()["command"] == "echo changed"
    assert again.json()["description"] == "only this"

    # Moving it to a served queue runs the new command.
    moved = shared.put(f"/api/tasks/{task['id']}", json={"queue": "default"})
    assert moved.status_code == 200, moved.text
    done = finished(shared, task["id"])
    assert done["status"] == "Completed"
    assert done["result"]["stdout_tail"] == "changed\n"


def test_update_finished_task_descriptive_fields_only(shared: httpx.Client) -> None:
    task = create(shared, name="ran", command="true")
    assert finished(shared, task["id"])["status"] == "Completed"

    response = shared.put(
        f"/api/tasks/{task['id']}",
        json={
            "name": "renamed",
            "description": "described later",
            "technical_specs": "specs",
            "acceptance_criteria": ["works"],
            "metadata": {"reviewed": True},
        },
    )
    assert response.status_code == 200, response.text
    updated = valid_task(response.json())
    assert updated["name"] == "renamed"
    assert updated["description"] == "described later"
    assert updated["technical_specs"] == "specs"
    assert updated["acceptance_criteria"] == ["works"]
    assert updated["metadata"] == {"reviewed": True}
    assert updated["status"] == "Completed"

    for change in (
        {"command": "echo no"},
        {"priority": "High"},
        {"retry_attempts": 5},
        {"environment": {"A": "b"}},
        {"queue": "other"},
        {"name": "and-this", "command": "echo no"},
    ):
        refused = shared.put(f"/api/tasks/{task['id']}", json=change)
        assert refused.status_code == 409, (change, refused.text)
        assert refused.json()["error"]["type"] == "conflict"
    after = get(shared, task["id"])
    assert after["command"] == "true"
    assert after["priority"] == "Normal"
    assert after["name"] == "renamed"  # the refused update changed nothing


def test_update_running_task_run_fields_conflict(shared: httpx.Client) -> None:
    task = create(shared, command="sleep 30", retry_attempts=0)
    try:
        wait_running(shared, task["id"])
        refused = shared.put(f"/api/tasks/{task['id']}", json={"command": "true"})
        assert refused.status_code == 409, refused.text
        allowed = shared.put(f"/api/tasks/{task['id']}", json={"description": "while running"})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["description"] == "while running"
        assert allowed.json()["status"] == "Running"
    finally:
        shared.post(f"/api/tasks/{task['id']}/cancel")


def test_update_unknown_task_is_404(shared: httpx.Client) -> None:
    response = shared.put(f"/api/tasks/{uuid.uuid4()}", json={"name": "x"})
    assert response.status_code == 404


# ---------------------------------------------------------------------------------- delete


def test_delete_then_404(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    response = shared.delete(f"/api/tasks/{task['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert shared.get(f"/api/tasks/{task['id']}").status_code == 404
    assert shared.delete(f"/api/tasks/{task['id']}").status_code == 404
    assert shared.get(f"/api/tasks/{task['id']}/logs").status_code == 404
    assert shared.get(f"/api/tasks/{task['id']}/attempts").status_code == 404


def test_delete_finished_task(shared: httpx.Client) -> None:
    task = create(shared, command="echo bye")
    assert finished(shared, task["id"])["status"] == "Completed"
    assert shared.delete(f"/api/tasks/{task['id']}").status_code == 204
    assert shared.get(f"/api/tasks/{task['id']}").status_code == 404


def test_delete_running_task_conflicts(shared: httpx.Client) -> None:
    task = create(shared, command="sleep 30", retry_attempts=0)
    try:
        wait_running(shared, task["id"])
        refused = shared.delete(f"/api/tasks/{task['id']}")
        assert refused.status_code == 409, refused.text
        assert get(shared, task["id"])["status"] == "Running"
    finally:
        shared.post(f"/api/tasks/{task['id']}/cancel")
    assert shared.delete(f"/api/tasks/{task['id']}").status_code == 204


def test_delete_task_with_unfinished_dependent_conflicts(shared: httpx.Client) -> None:
    parent = create(shared, name="parent", queue=PARKED)
    child = create(shared, name="child", queue=PARKED, dependencies=[parent["id"]])
    assert child["dependencies"] == [parent["id"]]
    refused = shared.delete(f"/api/tasks/{parent['id']}")
    assert refused.status_code == 409, refused.text
    assert get(shared, parent["id"])["status"] == "Pending"
    # Once the dependent is gone, so may the parent be.
    assert shared.delete(f"/api/tasks/{child['id']}").status_code == 204
    assert shared.delete(f"/api/tasks/{parent['id']}").status_code == 204


# ---------------------------------------------------------------------------------- cancel


def test_cancel_pending_task(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    response = shared.post(f"/api/tasks/{task['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = valid_task(response.json())
    assert cancelled["status"] == "Cancelled"
    assert cancelled["status_reason"]
    assert cancelled["finished_at"] is not None
    assert get(shared, task["id"])["status"] == "Cancelled"
    assert attempts(shared, task["id"]) == []
    # Cancelling again is fine and changes nothing.
    again = shared.post(f"/api/tasks/{task['id']}/cancel")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "Cancelled"
    assert again.json()["finished_at"] == cancelled["finished_at"]


def test_cancel_cancels_pending_dependents(shared: httpx.Client) -> None:
    parent = create(shared, name="parent", queue=PARKED)
    child = create(shared, name="child", dependencies=[parent["id"]])
    grandchild = create(shared, name="grandchild", dependencies=[child["id"]])
    assert shared.post(f"/api/tasks/{parent['id']}/cancel").status_code == 200
    for task in (child, grandchild):
        after = get(shared, task["id"])
        assert after["status"] == "Cancelled"
        assert after["status_reason"]
        assert attempts(shared, task["id"]) == []


def test_cancel_running_task_stops_its_process(shared: httpx.Client, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    marker = tmp_path / "survived"
    task = create(
        shared,
        command=f"echo $$ > '{pid_file}'; sleep 20; touch '{marker}'",
        retry_attempts=0,
    )
    pgid = int(wait_file(pid_file))
    running = get(shared, task["id"])
    assert running["status"] == "Running"
    assert group_alive(pgid)

    response = shared.post(f"/api/tasks/{task['id']}/cancel")
    assert response.status_code == 200, response.text
    assert valid_task(response.json())["status"] == "Cancelled"

    wait_until(lambda: not group_alive(pgid), 20, "the cancelled command to die")
    assert not marker.exists()

    # The worker's end of the killed attempt does not overwrite the cancel.
    time.sleep(0.3)
    after = get(shared, task["id"])
    assert after["status"] == "Cancelled"
    tries = attempts(shared, task["id"])
    assert len(tries) == 1
    assert tries[0]["status"] == "Cancelled"
    assert tries[0]["finished_at"] is not None
    again = shared.post(f"/api/tasks/{task['id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "Cancelled"


def test_cancel_completed_task_conflicts(shared: httpx.Client) -> None:
    task = create(shared, command="true")
    assert finished(shared, task["id"])["status"] == "Completed"
    response = shared.post(f"/api/tasks/{task['id']}/cancel")
    assert response.status_code == 409, response.text
    assert get(shared, task["id"])["status"] == "Completed"


def test_cancel_unknown_task_is_404(shared: httpx.Client) -> None:
    assert shared.post(f"/api/tasks/{uuid.uuid4()}/cancel").status_code == 404


# ---------------------------------------------------------------------------------- retry


def test_retry_failed_task_runs_again(shared: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    task = create(
        shared,
        command=f"if [ -e '{marker}' ]; then echo second; else touch '{marker}'; exit 1; fi",
        retry_attempts=0,
    )
    failed = finished(shared, task["id"])
    assert failed["status"] == "Failed"
    assert failed["result"]["exit_code"] == 1

    response = shared.post(f"/api/tasks/{task['id']}/retry")
    assert response.status_code == 200, response.text
    requeued = valid_task(response.json())
    assert requeued["status"] == "Pending"
    assert requeued["finished_at"] is None
    assert requeued["status_reason"] is None

    done = finished(shared, task["id"])
    assert done["status"] == "Completed"
    assert done["result"]["exit_code"] == 0
    assert done["result"]["stdout_tail"] == "second\n"
    assert done["attempt"] == 2
    tries = attempts(shared, task["id"])
    assert [(a["number"], a["status"]) for a in tries] == [(1, "Failed"), (2, "Completed")]


def test_retry_cancelled_task_requeues_it(shared: httpx.Client) -> None:
    task = create(shared, command="echo again", queue=PARKED)
    assert shared.post(f"/api/tasks/{task['id']}/cancel").status_code == 200
    response = shared.post(f"/api/tasks/{task['id']}/retry")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Pending"
    assert get(shared, task["id"])["status"] == "Pending"
    # Pending again, it may be changed and then runs.
    assert shared.put(f"/api/tasks/{task['id']}", json={"queue": "default"}).status_code == 200
    done = finished(shared, task["id"])
    assert done["status"] == "Completed"
    assert done["result"]["stdout_tail"] == "again\n"


def test_retry_completed_or_pending_conflicts(shared: httpx.Client) -> None:
    done = create(shared, command="true")
    assert finished(shared, done["id"])["status"] == "Completed"
    refused = shared.post(f"/api/tasks/{done['id']}/retry")
    assert refused.status_code == 409, refused.text
    assert get(shared, done["id"])["status"] == "Completed"

    pending = create(shared, queue=PARKED)
    refused = shared.post(f"/api/tasks/{pending['id']}/retry")
    assert refused.status_code == 409, refused.text
    assert get(shared, pending["id"])["status"] == "Pending"
    assert shared.post(f"/api/tasks/{uuid.uuid4()}/retry").status_code == 404


# ---------------------------------------------------------------------------------- wait


def test_wait_returns_when_terminal(shared: httpx.Client) -> None:
    task = create(shared, command="sleep 0.3; echo done")
    response = shared.get(f"/api/tasks/{task['id']}/wait", params={"timeout": 30})
    assert response.status_code == 200, response.text
    done = valid_task(response.json())
    assert done["status"] == "Completed"
    assert done["result"]["stdout_tail"] == "done\n"
    # Waiting on a task that already ended answers at once with it.
    again = shared.get(f"/api/tasks/{task['id']}/wait", params={"timeout": 30})
    assert again.json()["status"] == "Completed"


def test_wait_times_out_on_a_parked_task(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    response = shared.get(f"/api/tasks/{task['id']}/wait", params={"timeout": 1})
    assert response.status_code == 200, response.text
    assert valid_task(response.json())["status"] == "Pending"


def test_a_wait_in_progress_answers_with_the_change_that_ends_it(shared: httpx.Client) -> None:
    """The long-poll holds the request: a wait sent before the cancel answers Cancelled."""
    task = create(shared, queue=PARKED)
    sent = threading.Event()
    answers: list[httpx.Response] = []

    def wait() -> None:
        with httpx.Client(base_url=str(shared.base_url), timeout=60) as waiter:
            sent.set()
            answers.append(waiter.get(f"/api/tasks/{task['id']}/wait", params={"timeout": 60}))

    thread = threading.Thread(target=wait)
    thread.start()
    assert sent.wait(30)
    assert shared.get(f"/api/tasks/{task['id']}").json()["status"] == "Pending"
    assert shared.post(f"/api/tasks/{task['id']}/cancel").status_code == 200
    thread.join(60)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert valid_task(answer.json())["status"] == "Cancelled"


def test_wait_sees_a_cancel(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    with httpx.Client(base_url=str(shared.base_url), timeout=30) as other:
        assert other.post(f"/api/tasks/{task['id']}/cancel").status_code == 200
    response = shared.get(f"/api/tasks/{task['id']}/wait", params={"timeout": 10})
    assert response.json()["status"] == "Cancelled"


def test_wait_unknown_task_is_404(shared: httpx.Client) -> None:
    response = shared.get(f"/api/tasks/{uuid.uuid4()}/wait", params={"timeout": 1})
    assert response.status_code == 404


# ---------------------------------------------------------------------------------- logs


def test_logs_in_order_with_offset_and_stream(shared: httpx.Client) -> None:
    task = create(
        shared,
        command="echo one; sleep 0.25; echo two >&2; sleep 0.25; echo three",
    )
    assert finished(shared, task["id"])["status"] == "Completed"

    page = logs(shared, task["id"])
    assert page["task_id"] == task["id"]
    chunks = page["chunks"]
    assert [(c["stream"], c["data"]) for c in chunks] == [
        ("stdout", "one\n"),
        ("stderr", "two\n"),
        ("stdout", "three\n"),
    ]
    seqs = [c["seq"] for c in chunks]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    assert all(c["attempt"] == 1 for c in chunks)
    assert page["next_offset"] == seqs[-1] + 1
    assert page["complete"] is True

    # Continue from an offset.
    rest = logs(shared, task["id"], offset=seqs[1])
    assert [c["data"] for c in rest["chunks"]] == ["two\n", "three\n"]
    # Page one chunk at a time.
    first = logs(shared, task["id"], limit=1)
    assert [c["data"] for c in first["chunks"]] == ["one\n"]
    assert first["complete"] is False
    second = logs(shared, task["id"], limit=1, offset=first["next_offset"])
    assert [c["data"] for c in second["chunks"]] == ["two\n"]
    # Nothing after the end.
    end = logs(shared, task["id"], offset=page["next_offset"])
    assert end["chunks"] == []
    assert end["next_offset"] == page["next_offset"]
    assert end["complete"] is True

    only_err = logs(shared, task["id"], stream="stderr")
    assert [(c["stream"], c["data"]) for c in only_err["chunks"]] == [("stderr", "two\n")]
    only_out = logs(shared, task["id"], stream="stdout")
    assert [c["data"] for c in only_out["chunks"]] == ["one\n", "three\n"]


def test_logs_keep_every_attempt(shared: httpx.Client) -> None:
    task = create(
        shared, command='echo "try $TASKQUEUE_ATTEMPT"; exit 1', retry_attempts=1, retry_delay=0
    )
    assert finished(shared, task["id"])["status"] == "Failed"
    page = logs(shared, task["id"])
    assert [(c["attempt"], c["data"]) for c in page["chunks"]] == [
        (1, "try 1\n"),
        (2, "try 2\n"),
    ]
    second = logs(shared, task["id"], attempt=2)
    assert [c["data"] for c in second["chunks"]] == ["try 2\n"]


def test_logs_of_a_task_not_run_yet(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    page = logs(shared, task["id"])
    assert page["chunks"] == []
    assert page["next_offset"] == 0
    assert page["complete"] is False


def test_logs_follow_streams_while_running(shared: httpx.Client) -> None:
    task = create(
        shared,
        command="echo first; sleep 1.5; echo second; sleep 0.3; echo third >&2",
    )
    events: list[dict[str, Any]] = []
    status_at_first_line = None
    with shared.stream(
        "GET", f"/api/tasks/{task['id']}/logs", params={"follow": "true"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert response.headers.get("x-request-id")
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("event") == "status":
                # The task started after the follow began (Pending, then Running).
                assert event["status"] == "Running", event
                continue
            if not events:
                # The first output came while the command was still running.
                status_at_first_line = get(shared, task["id"])["status"]
            events.append(event)
    assert status_at_first_line == "Running"
    *chunks, end = events
    assert [(c["stream"], c["data"]) for c in chunks] == [
        ("stdout", "first\n"),
        ("stdout", "second\n"),
        ("stderr", "third\n"),
    ]
    assert [c["seq"] for c in chunks] == sorted(c["seq"] for c in chunks)
    assert end["event"] == "end"
    assert end["status"] == "Completed"
    assert end["next_offset"] == chunks[-1]["seq"] + 1
    assert get(shared, task["id"])["status"] == "Completed"


def test_logs_follow_of_finished_task_ends_at_once(shared: httpx.Client) -> None:
    task = create(shared, command="echo a; sleep 0.2; echo b >&2")
    assert finished(shared, task["id"])["status"] == "Completed"
    with shared.stream(
        "GET",
        f"/api/tasks/{task['id']}/logs",
        params={"follow": "true", "stream": "stderr"},
    ) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert [line.get("data") for line in lines[:-1]] == ["b\n"]
    assert lines[-1]["event"] == "end"
    assert lines[-1]["status"] == "Completed"


def test_logs_follow_times_out_on_a_parked_task(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    with shared.stream(
        "GET",
        f"/api/tasks/{task['id']}/logs",
        params={"follow": "true", "timeout": 0.5},
    ) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert lines == [{"event": "timeout", "status": "Pending", "next_offset": 0}]


# ---------------------------------------------------------------------------------- attempts


def test_attempts_record_every_try(shared: httpx.Client) -> None:
    task = create(shared, command="echo failing >&2; exit 3", retry_attempts=2, retry_delay=0)
    done = finished(shared, task["id"])
    assert done["status"] == "Failed"
    assert done["attempt"] == 3
    assert done["result"]["exit_code"] == 3
    assert done["result"]["error"]
    assert "3" in done["result"]["error"]
    assert done["result"]["stderr_tail"] == "failing\n"
    assert done["status_reason"]

    tries = attempts(shared, task["id"])
    assert [a["number"] for a in tries] == [1, 2, 3]
    for attempt in tries:
        assert attempt["status"] == "Failed"
        assert attempt["exit_code"] == 3
        assert attempt["error"]
        assert "3" in attempt["error"]
        assert attempt["worker_id"]
        assert attempt["finished_at"] is not None
        assert ts(attempt["finished_at"]) >= ts(attempt["started_at"])
        assert attempt["duration_ms"] is not None
    starts = [ts(a["started_at"]) for a in tries]
    assert starts == sorted(starts)


def test_attempts_of_a_success(shared: httpx.Client) -> None:
    task = create(shared, command="true")
    assert finished(shared, task["id"])["status"] == "Completed"
    tries = attempts(shared, task["id"])
    assert len(tries) == 1
    assert tries[0]["number"] == 1
    assert tries[0]["status"] == "Completed"
    assert tries[0]["exit_code"] == 0
    assert tries[0]["error"] is None
    assert attempts(shared, create(shared, queue=PARKED)["id"]) == []
    assert shared.get(f"/api/tasks/{uuid.uuid4()}/attempts").status_code == 404


# ---------------------------------------------------------------------------------- env and I/O


def test_command_environment(shared: httpx.Client) -> None:
    task = create(
        shared,
        command=(
            'printf \'{"id": "%s", "attempt": "%s", "greeting": "%s", '
            '"home": "%s", "has_path": "%s", "input_file": "%s", "output_set": "%s"}\' '
            '"$TASKQUEUE_TASK_ID" "$TASKQUEUE_ATTEMPT" "$GREETING" "$HOME" '
            '"${PATH:+yes}" "$(test -f "$TASKQUEUE_INPUT" && echo yes)" '
            '"${TASKQUEUE_OUTPUT:+yes}" > "$TASKQUEUE_OUTPUT"'
        ),
        environment={"GREETING": "hello world", "HOME": "/custom/home"},
    )
    done = finished(shared, task["id"])
    assert done["status"] == "Completed", done
    assert done["result"]["output"] == {
        "id": task["id"],
        "attempt": "1",
        "greeting": "hello world",
        "home": "/custom/home",
        "has_path": "yes",
        "input_file": "yes",
        "output_set": "yes",
    }


def test_attempt_number_in_environment_counts_retries(shared: httpx.Client) -> None:
    task = create(
        shared,
        command='[ "$TASKQUEUE_ATTEMPT" = 3 ] || exit 1; echo "$TASKQUEUE_ATTEMPT"',
        retry_attempts=2,
        retry_delay=0,
    )
    done = finished(shared, task["id"])
    assert done["status"] == "Completed"
    assert done["result"]["stdout_tail"] == "3\n"


def test_working_directory_is_the_cwd(shared: httpx.Client, tmp_path: Path) -> None:
    task = create(
        shared,
        command='pwd; echo made > made.txt; printf \'"%s"\' "$(pwd)" > "$TASKQUEUE_OUTPUT"',
        working_directory=str(tmp_path),
    )
    done = finished(shared, task["id"])
    assert done["status"] == "Completed", done
    assert Path(done["result"]["output"]).resolve() == tmp_path.resolve()
    assert (tmp_path / "made.txt").read_text() == "made\n"


def test_missing_working_directory_fails_with_clear_error(
    shared: httpx.Client, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir"
    task = create(shared, command="echo ran", working_directory=str(missing), retry_attempts=0)
    done = finished(shared, task["id"])
    assert done["status"] == "Failed"
    error = done["result"]["error"]
    assert "working_directory" in error
    assert str(missing) in error
    assert "not a directory" in error
    tries = attempts(shared, task["id"])
    assert len(tries) == 1
    assert "working_directory" in tries[0]["error"]
    assert logs(shared, task["id"])["chunks"] == []


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2], "s": "x é"}, [1, "two", None], "just a string", 42],
    ids=["object", "list", "string", "number"],
)
def test_input_on_stdin_and_in_file(shared: httpx.Client, value: Any) -> None:
    from_stdin = create(shared, command='cat > "$TASKQUEUE_OUTPUT"', input=value)
    from_file = create(shared, command='cat "$TASKQUEUE_INPUT" > "$TASKQUEUE_OUTPUT"', input=value)
    for task in (from_stdin, from_file):
        done = finished(shared, task["id"])
        assert done["status"] == "Completed", done
        assert done["result"]["output"] == value
        assert done["input"] == value


def test_no_input_gives_empty_stdin(shared: httpx.Client) -> None:
    task = create(shared, command='printf "[%s]" "$(cat)"')
    done = finished(shared, task["id"])
    assert done["status"] == "Completed"
    assert done["result"]["stdout_tail"] == "[]"
    assert done["result"]["output"] is None


def test_invalid_output_json_fails_the_attempt(shared: httpx.Client) -> None:
    task = create(shared, command='echo "not json" > "$TASKQUEUE_OUTPUT"', retry_attempts=0)
    done = finished(shared, task["id"])
    assert done["status"] == "Failed"
    assert done["result"]["exit_code"] == 0
    assert "TASKQUEUE_OUTPUT" in done["result"]["error"]
    tries = attempts(shared, task["id"])
    assert len(tries) == 1
    assert tries[0]["status"] == "Failed"
    assert "TASKQUEUE_OUTPUT" in tries[0]["error"]


# ---------------------------------------------------------------------------------- batch


def test_batch_with_dependencies(shared: httpx.Client, tmp_path: Path) -> None:
    existing = create(
        shared,
        name="existing",
        command="sleep 0.3; touch ext.done",
        working_directory=str(tmp_path),
    )
    response = shared.post(
        "/api/tasks/batch",
        json={
            "tasks": [
                {
                    "name": "a",
                    "ref": "a",
                    "command": "sleep 0.3; touch a.done",
                    "working_directory": str(tmp_path),
                },
                {
                    "name": "b",
                    "ref": "b",
                    "command": "test -f a.done && touch b.done",
                    "dependencies": ["a"],
                    "working_directory": str(tmp_path),
                },
                {
                    "name": "c",
                    "command": "test -f b.done && test -f ext.done",
                    "dependencies": [{"ref": "b"}, {"task_id": existing["id"]}],
                    "workingDirectory": str(tmp_path),
                },
            ]
        },
    )
    assert response.status_code == 201, response.text
    tasks = response.json()["tasks"]
    assert [t["name"] for t in tasks] == ["a", "b", "c"]
    for task in tasks:
        valid_task(task)
        assert task["status"] == "Pending"
        stored = get(shared, task["id"])
        for name in ("name", "command", "dependencies", "working_directory", "created_at"):
            assert stored[name] == task[name]
    a, b, c = tasks
    assert a["dependencies"] == []
    assert b["dependencies"] == [a["id"]]
    assert c["dependencies"] == [b["id"], existing["id"]]

    done = {t["id"]: finished(shared, t["id"]) for t in (existing, a, b, c)}
    for task in done.values():
        assert task["status"] == "Completed", task
    assert ts(done[b["id"]]["started_at"]) >= ts(done[a["id"]]["finished_at"])
    assert ts(done[c["id"]]["started_at"]) >= ts(done[b["id"]]["finished_at"])
    assert ts(done[c["id"]]["started_at"]) >= ts(done[existing["id"]]["finished_at"])


def test_batch_dependent_of_a_failure_never_runs(shared: httpx.Client) -> None:
    response = shared.post(
        "/api/tasks/batch",
        json={
            "tasks": [
                {"name": "bad", "ref": "bad", "command": "exit 1", "retry_attempts": 0},
                {"name": "after", "command": "echo ran", "dependencies": ["bad"]},
            ]
        },
    )
    assert response.status_code == 201, response.text
    bad, after = response.json()["tasks"]
    assert finished(shared, bad["id"])["status"] == "Failed"
    blocked = finished(shared, after["id"])
    assert blocked["status"] == "Cancelled"
    assert bad["id"] in blocked["status_reason"]
    assert attempts(shared, after["id"]) == []


def test_batch_of_1000_tasks(shared: httpx.Client) -> None:
    queue = own_queue()
    items = [
        {
            "name": f"item-{i}",
            "command": f"echo {i}",
            "queue": queue,
            "ref": f"r{i}",
            **({"dependencies": [f"r{i - 1}"]} if i else {}),
        }
        for i in range(1000)
    ]
    response = shared.post("/api/tasks/batch", json={"tasks": items})
    assert response.status_code == 201, response.text[:2000]
    tasks = response.json()["tasks"]
    assert [t["name"] for t in tasks] == [f"item-{i}" for i in range(1000)]
    assert len({t["id"] for t in tasks}) == 1000
    for previous, task in itertools.pairwise(tasks):
        assert task["dependencies"] == [previous["id"]]
    valid_task(tasks[0])
    valid_task(tasks[-1])
    body = listing(shared, queue=queue, limit=1000)
    assert body["total"] == 1000
    assert [t["id"] for t in body["tasks"]] == [t["id"] for t in tasks]


# ---------------------------------------------------------------------------------- idempotency


def test_idempotent_task_create(shared: httpx.Client) -> None:
    queue = own_queue()
    body = {"name": "once", "command": "true", "queue": queue}
    headers = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = shared.post("/api/tasks", json=body, headers=headers)
    second = shared.post("/api/tasks", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"]
    valid_task(second.json())
    assert listing(shared, queue=queue)["total"] == 1

    changed = shared.post("/api/tasks", json={**body, "name": "twice"}, headers=headers)
    assert changed.status_code == 409, changed.text
    assert listing(shared, queue=queue)["total"] == 1

    # Another key makes another task.
    other = shared.post("/api/tasks", json=body, headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]
    assert listing(shared, queue=queue)["total"] == 2


def test_idempotent_batch_create(shared: httpx.Client) -> None:
    queue = own_queue()
    body = {
        "tasks": [
            {"name": "x", "command": "true", "queue": queue, "ref": "x"},
            {"name": "y", "command": "true", "queue": queue, "dependencies": ["x"]},
        ]
    }
    headers = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    first = shared.post("/api/tasks/batch", json=body, headers=headers)
    second = shared.post("/api/tasks/batch", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert [t["id"] for t in second.json()["tasks"]] == [t["id"] for t in first.json()["tasks"]]
    assert listing(shared, queue=queue)["total"] == 2

    body["tasks"][1]["name"] = "z"
    changed = shared.post("/api/tasks/batch", json=body, headers=headers)
    assert changed.status_code == 409, changed.text
    assert listing(shared, queue=queue)["total"] == 2


def test_idempotency_key_is_per_endpoint(shared: httpx.Client) -> None:
    queue = own_queue()
    key = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    task = shared.post(
        "/api/tasks", json={"name": "one", "command": "true", "queue": queue}, headers=key
    )
    batch = shared.post(
        "/api/tasks/batch",
        json={"tasks": [{"name": "two", "command": "true", "queue": queue}]},
        headers=key,
    )
    assert task.status_code == 201, task.text
    assert batch.status_code == 201, batch.text
    assert batch.json()["tasks"][0]["id"] != task.json()["id"]
    assert listing(shared, queue=queue)["total"] == 2


# ---------------------------------------------------------------------------------- server-wide


def test_health_counts_tasks_by_status(api: httpx.Client, backend: str) -> None:
    empty = api.get("/api/health")
    assert empty.status_code == 200
    body = empty.json()
    assert body["status"] == "ok"
    assert body["database"] == backend
    assert body["workers"] == 1
    assert body["version"]
    assert body["tasks"] == {}

    create(api, queue=PARKED)
    create(api, queue=PARKED)
    cancelled = create(api, queue=PARKED)
    api.post(f"/api/tasks/{cancelled['id']}/cancel")
    ran = create(api, command="true")
    assert finished(api, ran["id"])["status"] == "Completed"
    failed = create(api, command="exit 1", retry_attempts=0)
    assert finished(api, failed["id"])["status"] == "Failed"

    counts = api.get("/api/health").json()["tasks"]
    assert counts == {"Pending": 2, "Cancelled": 1, "Completed": 1, "Failed": 1}


def test_openapi_document_describes_every_api_path(shared: httpx.Client) -> None:
    from taskqueue.server.routes import routes

    response = shared.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"]
    assert doc["info"]["version"]

    expected: dict[str, set[str]] = {}
    for route in routes:
        path = getattr(route, "path", "")
        if path.startswith("/api"):
            methods = {m.lower() for m in (route.methods or ()) if m != "HEAD"}
            expected.setdefault(path, set()).update(methods)
    assert set(expected) <= set(doc["paths"])
    for path, methods in expected.items():
        assert methods <= set(doc["paths"][path]), path

    schemas = doc["components"]["schemas"]
    http_methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    for path, item in doc["paths"].items():
        template_params = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, operation in item.items():
            assert method in http_methods, (path, method)
            assert operation["responses"], (path, method)
            for status in operation["responses"]:
                assert status.isdigit()
                assert 100 <= int(status) < 600
            params = operation.get("parameters", [])
            for param in params:
                assert param["in"] in ("query", "header", "path", "cookie")
                assert "schema" in param
                if param["in"] == "path":
                    assert param["required"] is True
            path_params = {p["name"] for p in params if p["in"] == "path"}
            assert path_params == template_params, (path, method)

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    all_refs = list(refs(doc))
    assert all_refs
    prefix = "#/components/schemas/"
    dangling = sorted({r for r in all_refs if r.removeprefix(prefix) not in schemas})
    assert dangling == [], f"$refs that resolve to nothing in the document: {dangling}"
    assert {"Task", "TaskCreate", "Project", "ErrorBody"} <= set(schemas)


def test_every_response_has_a_request_id(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    responses = [
        shared.get("/api/health"),
        shared.get("/openapi.json"),
        shared.get(f"/api/tasks/{task['id']}"),
        shared.post("/api/tasks", json={"name": "x", "command": "true", "queue": PARKED}),
        shared.get(f"/api/tasks/{uuid.uuid4()}"),
        shared.post(f"/api/tasks/{task['id']}/retry"),
        shared.delete(f"/api/tasks/{task['id']}"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 201, 404, 409, 204]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)
    # An error body carries the same id as its header.
    missing = responses[4]
    assert missing.json()["error"]["request_id"] == missing.headers["x-request-id"]


def test_request_id_is_echoed(shared: httpx.Client) -> None:
    response = shared.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123"
    error = shared.get(f"/api/tasks/{uuid.uuid4()}", headers={"X-Request-ID": "abc-123"})
    assert error.status_code == 404
    assert error.headers["x-request-id"] == "abc-123"
    assert error.json()["error"]["request_id"] == "abc-123"


def test_foreign_host_is_refused(shared: httpx.Client) -> None:
    response = shared.get("/api/health", headers={"Host": "evil.example"})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "authorization_error"
    assert response.headers.get("x-request-id")
    created = shared.post(
        "/api/tasks",
        json={"name": "x", "command": "true", "queue": PARKED},
        headers={"Host": "evil.example:8080"},
    )
    assert created.status_code == 403
    # Loopback names are served.
    assert shared.get("/api/health", headers={"Host": "localhost"}).status_code == 200
