"""``PUT /api/tasks/batch``: many tasks changed in one request, all or none.

Each item follows the single update's rules (``PUT /api/tasks/{id}``); a refusal of any item
leaves every task as it was and names each refused item. Tasks go on the queue ``parked`` (no
worker claims it), or finish on ``default`` when a test needs a finished one.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import wait_status

PARKED = "parked"
MISSING = "00000000-0000-0000-0000-000000000000"


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/tasks", json={"name": "t", "command": "true", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def put_batch(api: httpx.Client, updates: list[dict[str, Any]]) -> httpx.Response:
    return api.put("/api/tasks/batch", json={"updates": updates})


def test_every_update_applies_and_the_tasks_come_back_in_order(shared: httpx.Client) -> None:
    first, second = create(shared, queue=PARKED), create(shared, queue=PARKED)
    reply = put_batch(
        shared,
        [
            {"task_id": second["id"], "changes": {"priority": "High", "command": "echo 2"}},
            {"task_id": first["id"], "changes": {"description": "one", "metadata": {"k": 1}}},
        ],
    )
    assert reply.status_code == 200, reply.text
    tasks = reply.json()["tasks"]
    assert [t["id"] for t in tasks] == [second["id"], first["id"]]
    assert (tasks[0]["priority"], tasks[0]["command"]) == ("High", "echo 2")
    assert (tasks[1]["description"], tasks[1]["metadata"]) == ("one", {"k": 1})
    stored = shared.get(f"/api/tasks/{second['id']}").json()
    assert stored["priority"] == "High"


def test_one_refused_item_leaves_every_task_as_it_was(shared: httpx.Client) -> None:
    pending = create(shared, queue=PARKED, description="before")
    done = wait_status(shared, create(shared)["id"])
    assert done["status"] == "Completed"
    reply = put_batch(
        shared,
        [
            {"task_id": pending["id"], "changes": {"description": "after"}},
            {"task_id": done["id"], "changes": {"command": "echo late"}},
            {"task_id": MISSING, "changes": {"description": "x"}},
        ],
    )
    assert reply.status_code == 409, reply.text
    error = reply.json()["error"]
    assert error["type"] == "conflict"
    assert error["message"].startswith("2 of 3 updates were refused, so none was applied: ")
    by_loc = {tuple(d["loc"]): d for d in error["details"]}
    assert set(by_loc) == {
        ("updates", 1, "changes"),
        ("updates", 2, "task_id"),
    }
    assert by_loc["updates", 1, "changes"]["type"] == "conflict"
    assert "only while the task is Pending" in by_loc["updates", 1, "changes"]["msg"]
    assert by_loc["updates", 1, "changes"]["task_id"] == done["id"]
    assert by_loc["updates", 2, "task_id"] == {
        "loc": ["updates", 2, "task_id"],
        "msg": f"task {MISSING} not found",
        "type": "not_found",
        "task_id": MISSING,
    }
    # The first item was valid, and it was rolled back with the rest.
    assert shared.get(f"/api/tasks/{pending['id']}").json()["description"] == "before"
    assert shared.get(f"/api/tasks/{done['id']}").json()["command"] == "true"


def test_the_body_is_checked_before_anything_is_tried(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    bad = put_batch(shared, [{"task_id": task["id"], "changes": {"priority": "Urgent"}}])
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["updates", 0, "changes", "priority"]
    unknown = put_batch(shared, [{"task_id": task["id"], "changes": {"nonsense": 1}}])
    assert unknown.status_code == 422
    assert put_batch(shared, []).status_code == 422
    not_uuid = put_batch(shared, [{"task_id": "nope", "changes": {}}])
    assert not_uuid.status_code == 422
    null_name = put_batch(shared, [{"task_id": task["id"], "changes": {"name": None}}])
    assert null_name.status_code == 422
    assert null_name.json()["error"]["details"][0]["loc"] == ["updates", 0, "changes", "name"]
    assert shared.get(f"/api/tasks/{task['id']}").json()["priority"] == "Normal"


def test_camel_case_and_repeats_are_applied_in_order(shared: httpx.Client) -> None:
    task = create(shared, queue=PARKED)
    reply = shared.put(
        "/api/tasks/batch",
        json={
            "updates": [
                {"taskId": task["id"], "changes": {"retryAttempts": 5}},
                {"taskId": task["id"], "changes": {"retryAttempts": 7}},
            ]
        },
    )
    assert reply.status_code == 200, reply.text
    assert [t["retry_attempts"] for t in reply.json()["tasks"]] == [7, 7]


def test_other_methods_on_the_batch_path_say_what_it_takes(shared: httpx.Client) -> None:
    reply = shared.get("/api/tasks/batch")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST, PUT, OPTIONS"
    assert "it takes POST, PUT, OPTIONS" in reply.json()["error"]["message"]


def test_the_openapi_document_describes_the_batch_update(shared: httpx.Client) -> None:
    document = shared.get("/openapi.json").json()
    operation = document["paths"]["/api/tasks/batch"]["put"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BatchTaskUpdate"}
    assert "BatchTaskUpdate" in document["components"]["schemas"]
