"""The walk-through of the README, against a real server process."""

from __future__ import annotations

import httpx

from tests.conftest import wait_status


def test_create_run_and_read_output(api: httpx.Client) -> None:
    project = api.post("/api/projects", json={"name": "etl"})
    assert project.status_code == 201
    created = api.post(
        "/api/tasks",
        json={
            "name": "hello",
            "command": "echo out; echo err >&2; echo '{\"n\": 3}' > $TASKQUEUE_OUTPUT",
            "project_id": project.json()["id"],
            "priority": "High",
        },
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["status"] == "Pending"
    assert task["priority"] == "High"
    done = wait_status(api, task["id"])
    assert done["status"] == "Completed"
    assert done["result"]["exit_code"] == 0
    assert done["result"]["output"] == {"n": 3}
    logs = api.get(f"/api/tasks/{task['id']}/logs").json()
    assert [(c["stream"], c["data"]) for c in logs["chunks"]] == [
        ("stdout", "out\n"),
        ("stderr", "err\n"),
    ]
    assert logs["complete"] is True
