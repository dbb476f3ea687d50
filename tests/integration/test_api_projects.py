"""The project endpoints as a user depends on them, against a real server process.

Each test gets a fresh server through the ``api`` fixture, since names are unique across a
database and lists count every project.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from taskqueue.models import Project, ProjectList, Task
from tests.conftest import wait_status


def valid_project(data: Any) -> dict[str, Any]:
    """The project JSON, after checking it parses as the wire model."""
    Project.model_validate(data)
    assert isinstance(data, dict)
    return data


def create_project(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": f"project-{uuid.uuid4().hex[:8]}", **fields}
    response = api.post("/api/projects", json=body)
    assert response.status_code == 201, response.text
    return valid_project(response.json())


def create_task(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/tasks", json={"name": "t", "command": "true", **fields})
    assert response.status_code == 201, response.text
    Task.model_validate(response.json())
    return dict(response.json())


def get_project(api: httpx.Client, project_id: str) -> dict[str, Any]:
    response = api.get(f"/api/projects/{project_id}")
    assert response.status_code == 200, response.text
    return valid_project(response.json())


def list_projects(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/projects", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    ProjectList.model_validate(body)
    for project in body["projects"]:
        valid_project(project)
    return dict(body)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


# ---------------------------------------------------------------------------------- create/get


def test_create_with_defaults(api: httpx.Client) -> None:
    response = api.post("/api/projects", json={"name": "etl"})
    assert response.status_code == 201, response.text
    project = valid_project(response.json())
    assert uuid.UUID(project["id"])
    assert project["name"] == "etl"
    assert project["description"] is None
    assert project["status"] == "Planning"
    assert project["due_date"] is None
    assert project["tags"] == []
    assert project["metadata"] == {}
    assert project["created_at"] == project["updated_at"]
    assert get_project(api, project["id"]) == project


def test_create_with_every_field(api: httpx.Client) -> None:
    due = datetime(2030, 5, 17, 12, 30, tzinfo=timezone.utc)
    response = api.post(
        "/api/projects",
        json={
            "name": "full",
            "description": "a project with everything",
            "status": "Active",
            "dueDate": due.isoformat(),
            "tags": ["etl", "nightly"],
            "metadata": {"owner": "data-team", "cost": 3.5},
        },
    )
    assert response.status_code == 201, response.text
    project = valid_project(response.json())
    assert project["description"] == "a project with everything"
    assert project["status"] == "Active"
    assert ts(project["due_date"]) == due
    assert project["tags"] == ["etl", "nightly"]
    assert project["metadata"] == {"owner": "data-team", "cost": 3.5}
    assert "dueDate" not in project
    assert get_project(api, project["id"]) == project


def test_duplicate_name_conflicts(api: httpx.Client) -> None:
    first = create_project(api, name="unique")
    response = api.post("/api/projects", json={"name": "unique", "description": "again"})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["type"] == "conflict"
    body = list_projects(api)
    assert body["total"] == 1
    assert [p["id"] for p in body["projects"]] == [first["id"]]


def test_get_unknown_project_is_404(api: httpx.Client) -> None:
    response = api.get(f"/api/projects/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


# ---------------------------------------------------------------------------------- list


def test_list_pages_with_total(api: httpx.Client) -> None:
    empty = list_projects(api)
    assert empty == {"projects": [], "total": 0, "limit": 100, "offset": 0}

    ids = []
    for i in range(5):
        ids.append(create_project(api, name=f"p{i}")["id"])
        time.sleep(0.002)
    body = list_projects(api)
    assert body["total"] == 5
    assert [p["id"] for p in body["projects"]] == ids

    seen: list[str] = []
    for offset in (0, 2, 4):
        page = list_projects(api, limit=2, offset=offset)
        assert page["total"] == 5
        assert page["limit"] == 2
        assert page["offset"] == offset
        seen.extend(p["id"] for p in page["projects"])
    assert seen == ids
    past_end = list_projects(api, limit=2, offset=5)
    assert past_end["projects"] == []
    assert past_end["total"] == 5


# ---------------------------------------------------------------------------------- update


def test_update_is_partial(api: httpx.Client) -> None:
    project = create_project(
        api, name="before", description="old", tags=["a"], metadata={"k": 1}, status="Planning"
    )
    time.sleep(0.002)
    response = api.put(f"/api/projects/{project['id']}", json={"description": "new"})
    assert response.status_code == 200, response.text
    updated = valid_project(response.json())
    assert updated["description"] == "new"
    assert updated["name"] == "before"
    assert updated["tags"] == ["a"]
    assert updated["metadata"] == {"k": 1}
    assert updated["status"] == "Planning"
    assert updated["created_at"] == project["created_at"]
    assert ts(updated["updated_at"]) > ts(project["updated_at"])
    assert get_project(api, project["id"]) == updated

    due = datetime(2031, 1, 2, tzinfo=timezone.utc)
    response = api.put(
        f"/api/projects/{project['id']}",
        json={
            "name": "after",
            "status": "Done",
            "tags": [],
            "metadata": {"k": 2},
            "dueDate": due.isoformat(),
        },
    )
    assert response.status_code == 200, response.text
    updated = valid_project(response.json())
    assert updated["name"] == "after"
    assert updated["status"] == "Done"
    assert updated["tags"] == []
    assert updated["metadata"] == {"k": 2}
    assert ts(updated["due_date"]) == due
    assert updated["description"] == "new"
    assert get_project(api, project["id"]) == updated


def test_rename_onto_existing_name_conflicts(api: httpx.Client) -> None:
    taken = create_project(api, name="taken")
    project = create_project(api, name="mine")
    response = api.put(f"/api/projects/{project['id']}", json={"name": "taken"})
    assert response.status_code == 409, response.text
    assert get_project(api, project["id"])["name"] == "mine"
    assert get_project(api, taken["id"])["name"] == "taken"
    # Keeping its own name is not a conflict.
    same = api.put(f"/api/projects/{project['id']}", json={"name": "mine"})
    assert same.status_code == 200, same.text
    # A freed name can be taken.
    assert api.put(f"/api/projects/{taken['id']}", json={"name": "free"}).status_code == 200
    moved = api.put(f"/api/projects/{project['id']}", json={"name": "taken"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["name"] == "taken"


def test_update_unknown_project_is_404(api: httpx.Client) -> None:
    response = api.put(f"/api/projects/{uuid.uuid4()}", json={"name": "x"})
    assert response.status_code == 404


# ---------------------------------------------------------------------------------- delete


def test_delete_empty_project(api: httpx.Client) -> None:
    project = create_project(api)
    response = api.delete(f"/api/projects/{project['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/api/projects/{project['id']}").status_code == 404
    assert api.delete(f"/api/projects/{project['id']}").status_code == 404
    assert list_projects(api)["total"] == 0
    # Its name is free again.
    create_project(api, name=project["name"])


def test_delete_with_tasks_needs_cascade(api: httpx.Client) -> None:
    project = create_project(api)
    keep = create_project(api)
    parked = create_task(api, project_id=project["id"], queue="parked")
    ran = create_task(api, project_id=project["id"], command="true")
    other = create_task(api, project_id=keep["id"], queue="parked")
    assert wait_status(api, ran["id"])["status"] == "Completed"

    refused = api.delete(f"/api/projects/{project['id']}")
    assert refused.status_code == 409, refused.text
    assert "cascade" in refused.json()["error"]["message"]
    assert get_project(api, project["id"])["id"] == project["id"]
    assert api.get(f"/api/tasks/{parked['id']}").status_code == 200

    cascaded = api.delete(f"/api/projects/{project['id']}", params={"cascade": "true"})
    assert cascaded.status_code == 204, cascaded.text
    assert api.get(f"/api/projects/{project['id']}").status_code == 404
    for task in (parked, ran):
        assert api.get(f"/api/tasks/{task['id']}").status_code == 404
    # The other project and its task are untouched.
    assert get_project(api, keep["id"])["id"] == keep["id"]
    assert api.get(f"/api/tasks/{other['id']}").status_code == 200
    remaining = api.get("/api/tasks").json()
    assert [t["id"] for t in remaining["tasks"]] == [other["id"]]
    assert remaining["total"] == 1


def test_cascade_delete_refused_while_a_task_runs(api: httpx.Client, tmp_path: Path) -> None:
    project = create_project(api)
    started = tmp_path / "started"
    task = create_task(
        api, project_id=project["id"], command=f"touch '{started}'; sleep 30", retry_attempts=0
    )
    try:
        deadline = time.monotonic() + 20
        while not started.exists():
            assert time.monotonic() < deadline, "the task did not start"
            time.sleep(0.05)
        refused = api.delete(f"/api/projects/{project['id']}", params={"cascade": "true"})
        assert refused.status_code == 409, refused.text
        assert api.get(f"/api/tasks/{task['id']}").json()["status"] == "Running"
    finally:
        api.post(f"/api/tasks/{task['id']}/cancel")
    assert wait_status(api, task["id"])["status"] == "Cancelled"
    deleted = api.delete(f"/api/projects/{project['id']}", params={"cascade": "true"})
    assert deleted.status_code == 204, deleted.text


def test_cascade_false_is_the_default(api: httpx.Client) -> None:
    project = create_project(api)
    create_task(api, project_id=project["id"], queue="parked")
    refused = api.delete(f"/api/projects/{project['id']}", params={"cascade": "false"})
    assert refused.status_code == 409
    assert get_project(api, project["id"])["id"] == project["id"]


# ---------------------------------------------------------------------------------- tasks


def test_tasks_belong_to_a_project(api: httpx.Client) -> None:
    project = create_project(api)
    other = create_project(api)
    mine = [create_task(api, project_id=project["id"], queue="parked") for _ in range(3)]
    create_task(api, project_id=other["id"], queue="parked")
    create_task(api, queue="parked")
    camel = create_task(api, projectId=project["id"], queue="parked")
    mine.append(camel)
    assert all(t["project_id"] == project["id"] for t in mine)
    listed = api.get("/api/tasks", params={"project_id": project["id"]}).json()
    assert [t["id"] for t in listed["tasks"]] == [t["id"] for t in mine]
    assert listed["total"] == 4


def test_task_of_unknown_project_is_refused(api: httpx.Client) -> None:
    response = api.post(
        "/api/tasks", json={"name": "t", "command": "true", "project_id": str(uuid.uuid4())}
    )
    assert response.status_code == 422, response.text
    assert api.get("/api/tasks").json()["total"] == 0


# ---------------------------------------------------------------------------------- idempotency


def test_idempotent_project_create(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "create-etl-1"}
    body = {"name": "etl", "tags": ["x"]}
    first = api.post("/api/projects", json=body, headers=headers)
    second = api.post("/api/projects", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"]
    valid_project(second.json())
    assert list_projects(api)["total"] == 1

    changed = api.post("/api/projects", json={"name": "etl2"}, headers=headers)
    assert changed.status_code == 409, changed.text
    assert list_projects(api)["total"] == 1

    # Without the key, the same body is a new request: the name is taken.
    assert api.post("/api/projects", json=body).status_code == 409
    other = api.post("/api/projects", json={"name": "etl3"}, headers={"Idempotency-Key": "k2"})
    assert other.status_code == 201
    assert list_projects(api)["total"] == 2


def test_project_responses_carry_request_ids(api: httpx.Client) -> None:
    created = api.post(
        "/api/projects", json={"name": "rid"}, headers={"X-Request-ID": "abc-123"}
    )
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "abc-123"
    project_id = created.json()["id"]
    for response in (
        api.get(f"/api/projects/{project_id}"),
        api.get("/api/projects"),
        api.put(f"/api/projects/{project_id}", json={"description": "d"}),
        api.post("/api/projects", json={"name": "rid"}),
        api.delete(f"/api/projects/{project_id}"),
        api.get(f"/api/projects/{project_id}"),
    ):
        assert response.headers.get("x-request-id"), response
    refused = api.get("/api/projects", headers={"Host": "evil.example"})
    assert refused.status_code == 403
