"""A NUL character in what a client sends is either kept exactly or refused, on each backend.

PostgreSQL's text columns cannot hold a NUL byte, so the decision is made per field, the same on
both backends. Fields that are plain text (names, commands, descriptions, paths, environment
values, tags) refuse a NUL with a 422 naming the field: none of them could use one (a command,
a path or an environment value cannot hold a NUL once it reaches the operating system). JSON
fields (metadata, input, a command's result) keep it: they are stored as JSON text, where it is
the escape ``\\u0000``, and come back exactly as sent. Nothing answers 500 and nothing is lost.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, query_db, wait_status

NUL = "a\x00b"
PARKED = "parked"


def task(**fields: Any) -> dict[str, Any]:
    """A valid task body on a queue no worker serves, with ``fields`` changed."""
    return {"name": "nul", "command": "true", "queue": PARKED, **fields}


@pytest.fixture(scope="module")
def ids(shared: httpx.Client) -> dict[str, str]:
    """A parked task and a project to update."""
    made = shared.post("/api/tasks", json=task())
    project = shared.post("/api/projects", json={"name": "nul-target"})
    assert made.status_code == 201, made.text
    assert project.status_code == 201, project.text
    return {"task": made.json()["id"], "project": project.json()["id"]}


#: (method, path, body, where the refusal points): every plain-text field of every request body.
REFUSED = [
    ("POST", "/api/tasks", task(name=NUL), ["name"]),
    ("POST", "/api/tasks", task(command=NUL), ["command"]),
    ("POST", "/api/tasks", task(description=NUL), ["description"]),
    ("POST", "/api/tasks", task(technical_specs=NUL), ["technical_specs"]),
    ("POST", "/api/tasks", task(acceptance_criteria=["ok", NUL]), ["acceptance_criteria", 1]),
    ("POST", "/api/tasks", task(environment={"A": NUL}), ["environment", "A"]),
    ("POST", "/api/tasks", task(working_directory=NUL), ["working_directory"]),
    ("POST", "/api/tasks", task(dependencies=[NUL]), ["dependencies", 0]),
    ("POST", "/api/tasks", task(queue=NUL), ["queue"]),
    ("POST", "/api/tasks/batch", {"tasks": [task(name=NUL)]}, ["tasks", 0, "name"]),
    ("POST", "/api/tasks/batch", {"tasks": [task(ref=NUL)]}, ["tasks", 0, "ref"]),
    ("PUT", "/api/tasks/{task}", {"name": NUL}, ["name"]),
    ("PUT", "/api/tasks/{task}", {"command": NUL}, ["command"]),
    ("PUT", "/api/tasks/{task}", {"description": NUL}, ["description"]),
    ("PUT", "/api/tasks/{task}", {"technical_specs": NUL}, ["technical_specs"]),
    ("PUT", "/api/tasks/{task}", {"acceptance_criteria": [NUL]}, ["acceptance_criteria", 0]),
    ("PUT", "/api/tasks/{task}", {"environment": {"A": NUL}}, ["environment", "A"]),
    ("PUT", "/api/tasks/{task}", {"working_directory": NUL}, ["working_directory"]),
    ("POST", "/api/projects", {"name": NUL}, ["name"]),
    ("POST", "/api/projects", {"name": "p", "description": NUL}, ["description"]),
    ("POST", "/api/projects", {"name": "p", "status": NUL}, ["status"]),
    ("POST", "/api/projects", {"name": "p", "tags": [NUL]}, ["tags", 0]),
    ("PUT", "/api/projects/{project}", {"name": NUL}, ["name"]),
    ("PUT", "/api/projects/{project}", {"description": NUL}, ["description"]),
    ("PUT", "/api/projects/{project}", {"status": NUL}, ["status"]),
    ("PUT", "/api/projects/{project}", {"tags": [NUL]}, ["tags", 0]),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        pytest.param(*case, id=f"{case[0]} {case[1]} {'.'.join(map(str, case[3]))}")
        for case in REFUSED
    ],
)
def test_a_nul_in_a_text_field_is_refused_naming_the_field(
    shared: httpx.Client,
    ids: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    loc: list[Any],
) -> None:
    before = shared.get(f"/api/tasks/{ids['task']}").json()
    response = shared.request(method, path.format(**ids), json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["details"][0]["loc"] == loc
    assert shared.get(f"/api/tasks/{ids['task']}").json() == before


#: A JSON value with NUL characters in keys, values and nested strings.
WITH_NUL = {"k\x00ey": NUL, "nested": [NUL, {"x": "\x00"}], "plain": "ok"}


def test_json_fields_keep_a_nul_exactly(shared: httpx.Client, live: ServerProcess) -> None:
    created = shared.post("/api/tasks", json=task(metadata=WITH_NUL, input=WITH_NUL))
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    fetched = shared.get(f"/api/tasks/{task_id}").json()
    assert fetched["metadata"] == WITH_NUL
    assert fetched["input"] == WITH_NUL
    updated = shared.put(f"/api/tasks/{task_id}", json={"metadata": {"new": NUL}})
    assert updated.status_code == 200, updated.text
    assert shared.get(f"/api/tasks/{task_id}").json()["metadata"] == {"new": NUL}

    project = shared.post("/api/projects", json={"name": "nul-json", "metadata": WITH_NUL})
    assert project.status_code == 201, project.text
    assert shared.get(f"/api/projects/{project.json()['id']}").json()["metadata"] == WITH_NUL

    # Stored as JSON escapes: no column holds the NUL itself.
    (row,) = query_db(live.db, f"SELECT metadata, input FROM tasks WHERE id = '{task_id}'")
    assert "\x00" not in f"{row}"
    assert "\\u0000" in str(row[1])


def test_a_commands_result_and_tails_keep_a_nul(shared: httpx.Client) -> None:
    # The input reaches the command as JSON on stdin; its result comes back through the file.
    command = "cat > \"$TASKQUEUE_OUTPUT\"; printf 'out\\000put'; printf 'err\\000or' >&2"
    created = shared.post(
        "/api/tasks", json={"name": "nul-run", "command": command, "input": WITH_NUL}
    )
    assert created.status_code == 201, created.text
    done = wait_status(shared, created.json()["id"])
    assert done["status"] == "Completed", done
    assert done["result"]["output"] == WITH_NUL
    assert done["result"]["stdout_tail"] == "out\x00put"
    assert done["result"]["stderr_tail"] == "err\x00or"
    logs = shared.get(f"/api/tasks/{done['id']}/logs").json()["chunks"]
    assert sorted((c["stream"], c["data"]) for c in logs) == [
        ("stderr", "err\x00or"),
        ("stdout", "out\x00put"),
    ]
