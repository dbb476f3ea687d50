"""A task's limits are kept and served as asked, on every backend, and cannot be updated."""

from __future__ import annotations

import httpx

from tests.conftest import wait_status


def test_limits_are_stored_served_and_not_updatable(api: httpx.Client) -> None:
    limits = {"cpu_seconds": 30, "memory_bytes": 2**30, "processes": 50, "network": False}
    created = api.post(
        "/api/tasks",
        json={"name": "kept", "command": "true", "queue": "parked", "limits": limits},
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert created.json()["limits"] == limits
    assert api.get(f"/api/tasks/{task_id}").json()["limits"] == limits
    listed = api.get("/api/tasks", params={"queue": "parked"}).json()["tasks"]
    assert [t["limits"] for t in listed] == [limits]
    update = api.put(f"/api/tasks/{task_id}", json={"limits": {"cpu_seconds": 1}})
    assert update.status_code == 422, update.text
    assert api.get(f"/api/tasks/{task_id}").json()["limits"] == limits
    plain = api.post("/api/tasks", json={"name": "plain", "command": "true"}).json()
    assert plain["limits"] is None
    assert wait_status(api, plain["id"])["status"] == "Completed"
