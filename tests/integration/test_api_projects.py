"""The project endpoints as a user depends on them, against a real server process.

The test of listing and totals gets a fresh server through the ``api`` fixture; the others
share one module-scoped server and use names and ids of their own.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from taskqueue.models import Project, ProjectList, Task
from tests.conftest import wait_status, wait_until


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


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


def named(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    """Every project called ``name`` (at most one, names being unique)."""
    body = list_projects(api, limit=1000)
    assert body["total"] <= 1000
    return [p for p in body["projects"] if p["name"] == name]


# ---------------------------------------------------------------------------------- create/get


def test_create_with_defaults(shared: httpx.Client) -> None:
    name = unique("etl")
    response = shared.post("/api/projects", json={"name": name})
    assert response.status_code == 201, response.text
    project = valid_project(response.json())
    assert uuid.UUID(project["id"])
    assert project["name"] == name
    assert project["description"] is None
    assert project["status"] == "Planning"
    assert project["due_date"] is None
    assert project["tags"] == []
    assert project["metadata"] == {}
    assert project["created_at"] == project["updated_at"]
    assert get_project(shared, project["id"]) == project


def test_create_with_every_field(shared: httpx.Client) -> None:
    due = datetime(2030, 5, 17, 12, 30, tzinfo=timezone.utc)
    response = shared.post(
        "/api/projects",
        json={
            "name": unique("full"),
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
    assert get_project(shared, project["id"]) == project


def test_duplicate_name_conflicts(shared: httpx.Client) -> None:
    name = unique("dup")
    first = create_project(shared, name=name)
    response = shared.post("/api/projects", json={"name": name, "description": "again"})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["type"] == "conflict"
    assert [p["id"] for p in named(shared, name)] == [first["id"]]
    assert get_project(shared, first["id"])["description"] is None


def test_get_unknown_project_is_404(shared: httpx.Client) -> None:
    response = shared.get(f"/api/projects/{uuid.uuid4()}")
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


def test_update_is_partial(shared: httpx.Client) -> None:
    name = unique("before")
    project = create_project(
        shared, name=name, description="old", tags=["a"], metadata={"k": 1}, status="Planning"
    )
    time.sleep(0.002)
    response = shared.put(f"/api/projects/{project['id']}", json={"description": "new"})
    assert response.status_code == 200, response.text
    updated = valid_project(response.json())
    assert updated["description"] == "new"
    assert updated["name"] == name
    assert updated["tags"] == ["a"]
    assert updated["metadata"] == {"k": 1}
    assert updated["status"] == "Planning"
    assert updated["due_date"] is None
    assert updated["created_at"] == project["created_at"]
    assert ts(updated["updated_at"]) > ts(project["updated_at"])
    assert get_project(shared, project["id"]) == updated

    due = datetime(2031, 1, 2, tzinfo=timezone.utc)
    new_name = unique("after")
    response = shared.put(
        f"/api/projects/{project['id']}",
        json={
            "name": new_name,
            "status": "Done",
            "tags": [],
            "metadata": {"k": 2},
            "dueDate": due.isoformat(),
        },
    )
    assert response.status_code == 200, response.text
    updated = valid_project(response.json())
    assert updated["name"] == new_name
    assert updated["status"] == "Done"
    assert updated["tags"] == []
    assert updated["metadata"] == {"k": 2}
    assert ts(updated["due_date"]) == due
    assert updated["description"] == "new"
    assert get_project(shared, project["id"]) == updated


def test_rename_onto_existing_name_conflicts(shared: httpx.Client) -> None:
    taken_name, mine_name, free_name = unique("taken"), unique("mine"), unique("free")
    taken = create_project(shared, name=taken_name)
    project = create_project(shared, name=mine_name, description="mine")
    response = shared.put(
        f"/api/projects/{project['id']}", json={"name": taken_name, "description": "changed"}
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["type"] == "conflict"
    unchanged = get_project(shared, project["id"])
    assert unchanged["name"] == mine_name
    assert unchanged["description"] == "mine"  # the refused update changed nothing
    assert get_project(shared, taken["id"])["name"] == taken_name
    # Keeping its own name is not a conflict.
    same = shared.put(f"/api/projects/{project['id']}", json={"name": mine_name})
    assert same.status_code == 200, same.text
    # A freed name can be taken.
    freed = shared.put(f"/api/projects/{taken['id']}", json={"name": free_name})
    assert freed.status_code == 200, freed.text
    moved = shared.put(f"/api/projects/{project['id']}", json={"name": taken_name})
    assert moved.status_code == 200, moved.text
    assert moved.json()["name"] == taken_name


def test_update_unknown_project_is_404(shared: httpx.Client) -> None:
    response = shared.put(f"/api/projects/{uuid.uuid4()}", json={"name": unique("x")})
    assert response.status_code == 404


# ---------------------------------------------------------------------------------- delete


def test_delete_empty_project(shared: httpx.Client) -> None:
    project = create_project(shared)
    response = shared.delete(f"/api/projects/{project['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert shared.get(f"/api/projects/{project['id']}").status_code == 404
    assert shared.delete(f"/api/projects/{project['id']}").status_code == 404
    assert named(shared, project["name"]) == []
    # Its name is free again.
    create_project(shared, name=project["name"])


def test_delete_with_tasks_needs_cascade(shared: httpx.Client) -> None:
    project = create_project(shared)
    keep = create_project(shared)
    parked = create_task(shared, project_id=project["id"], queue="parked")
    ran = create_task(shared, project_id=project["id"], command="true")
    other = create_task(shared, project_id=keep["id"], queue="parked")
    assert wait_status(shared, ran["id"])["status"] == "Completed"

    refused = shared.delete(f"/api/projects/{project['id']}")
    assert refused.status_code == 409, refused.text
    assert "cascade" in refused.json()["error"]["message"]
    assert get_project(shared, project["id"])["id"] == project["id"]
    assert shared.get(f"/api/tasks/{parked['id']}").status_code == 200

    cascaded = shared.delete(f"/api/projects/{project['id']}", params={"cascade": "true"})
    assert cascaded.status_code == 204, cascaded.text
    assert shared.get(f"/api/projects/{project['id']}").status_code == 404
    for task in (parked, ran):
        assert shared.get(f"/api/tasks/{task['id']}").status_code == 404
    gone = shared.get("/api/tasks", params={"project_id": project["id"]}).json()
    assert gone["tasks"] == []
    assert gone["total"] == 0
    # The other project and its task are untouched.
    assert get_project(shared, keep["id"])["id"] == keep["id"]
    assert shared.get(f"/api/tasks/{other['id']}").status_code == 200


def test_cascade_delete_refused_while_a_task_runs(shared: httpx.Client, tmp_path: Path) -> None:
    project = create_project(shared)
    started = tmp_path / "started"
    task = create_task(
        shared, project_id=project["id"], command=f"touch '{started}'; sleep 30", retry_attempts=0
    )
    try:
        wait_until(started.exists, 20, "the task to start")
        refused = shared.delete(f"/api/projects/{project['id']}", params={"cascade": "true"})
        assert refused.status_code == 409, refused.text
        assert shared.get(f"/api/tasks/{task['id']}").json()["status"] == "Running"
        assert get_project(shared, project["id"])["id"] == project["id"]
    finally:
        shared.post(f"/api/tasks/{task['id']}/cancel")
    assert wait_status(shared, task["id"])["status"] == "Cancelled"
    deleted = shared.delete(f"/api/projects/{project['id']}", params={"cascade": "true"})
    assert deleted.status_code == 204, deleted.text
    assert shared.get(f"/api/tasks/{task['id']}").status_code == 404


def test_cascade_delete_does_not_strand_a_dependent_in_another_project(
    shared: httpx.Client,
) -> None:
    """A task of another project that waits on a deleted task must not wait forever.

    ``DELETE /api/tasks/{id}`` refuses (409) while an unfinished task depends on the task; a
    cascading project delete must either refuse the same way or settle the dependent (cancel
    it), never leave it Pending on a task that no longer exists.
    """
    doomed = create_project(shared)
    other = create_project(shared)
    dependency = create_task(shared, project_id=doomed["id"], queue="parked")
    dependent = create_task(
        shared, project_id=other["id"], command="echo ran", dependencies=[dependency["id"]]
    )
    response = shared.delete(f"/api/projects/{doomed['id']}", params={"cascade": "true"})
    assert response.status_code in (204, 409), response.text
    if response.status_code == 409:
        assert shared.get(f"/api/tasks/{dependency['id']}").status_code == 200
        assert shared.get(f"/api/tasks/{dependent['id']}").json()["status"] == "Pending"
        return
    assert shared.get(f"/api/tasks/{dependency['id']}").status_code == 404
    after = shared.get(f"/api/tasks/{dependent['id']}/wait", params={"timeout": 3}).json()
    assert after["status"] in ("Cancelled", "Completed", "Failed"), (
        f"the dependent is left {after['status']} on the deleted task {dependency['id']}"
    )


def test_cascade_false_is_the_default(shared: httpx.Client) -> None:
    project = create_project(shared)
    task = create_task(shared, project_id=project["id"], queue="parked")
    refused = shared.delete(f"/api/projects/{project['id']}", params={"cascade": "false"})
    assert refused.status_code == 409
    assert get_project(shared, project["id"])["id"] == project["id"]
    assert shared.get(f"/api/tasks/{task['id']}").status_code == 200


# ---------------------------------------------------------------------------------- tasks


def test_tasks_belong_to_a_project(shared: httpx.Client) -> None:
    project = create_project(shared)
    other = create_project(shared)
    mine = [create_task(shared, project_id=project["id"], queue="parked") for _ in range(3)]
    create_task(shared, project_id=other["id"], queue="parked")
    create_task(shared, queue="parked")
    camel = create_task(shared, projectId=project["id"], queue="parked")
    mine.append(camel)
    assert all(t["project_id"] == project["id"] for t in mine)
    listed = shared.get("/api/tasks", params={"project_id": project["id"]}).json()
    assert [t["id"] for t in listed["tasks"]] == [t["id"] for t in mine]
    assert listed["total"] == 4


def test_task_of_unknown_project_is_refused(shared: httpx.Client) -> None:
    queue = unique("q")
    response = shared.post(
        "/api/tasks",
        json={"name": "t", "command": "true", "project_id": str(uuid.uuid4()), "queue": queue},
    )
    assert response.status_code == 409, response.text
    assert shared.get("/api/tasks", params={"queue": queue}).json()["total"] == 0


# ---------------------------------------------------------------------------------- idempotency


def test_idempotent_project_create(shared: httpx.Client) -> None:
    headers = {"Idempotency-Key": unique("create-etl")}
    name = unique("etl")
    body = {"name": name, "tags": ["x"]}
    first = shared.post("/api/projects", json=body, headers=headers)
    second = shared.post("/api/projects", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["name"] == name
    valid_project(second.json())
    before = list_projects(shared, limit=1000)["total"]
    assert [p["id"] for p in named(shared, name)] == [first.json()["id"]]

    other_name = unique("etl")
    changed = shared.post("/api/projects", json={"name": other_name}, headers=headers)
    assert changed.status_code == 409, changed.text
    assert named(shared, other_name) == []
    assert list_projects(shared, limit=1000)["total"] == before

    # Without the key, the same body is a new request: the name is taken.
    assert shared.post("/api/projects", json=body).status_code == 409
    # Another key is another request.
    other = shared.post(
        "/api/projects", json={"name": other_name}, headers={"Idempotency-Key": unique("k")}
    )
    assert other.status_code == 201
    assert list_projects(shared, limit=1000)["total"] == before + 1


def test_project_responses_carry_request_ids(shared: httpx.Client) -> None:
    name = unique("rid")
    created = shared.post("/api/projects", json={"name": name}, headers={"X-Request-ID": "abc-123"})
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "abc-123"
    project_id = created.json()["id"]
    responses = [
        shared.get(f"/api/projects/{project_id}"),
        shared.get("/api/projects"),
        shared.put(f"/api/projects/{project_id}", json={"description": "d"}),
        shared.post("/api/projects", json={"name": name}),
        shared.delete(f"/api/projects/{project_id}"),
        shared.get(f"/api/projects/{project_id}"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 409, 204, 404]
    for response in responses:
        assert response.headers.get("x-request-id"), response
    refused = shared.get("/api/projects", headers={"Host": "evil.example"})
    assert refused.status_code == 403
    assert refused.headers.get("x-request-id")
