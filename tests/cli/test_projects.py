"""``taskqueue projects ...`` against a real server: by id or by name, and what it leaves stored."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from tests.cli.helpers import (
    MISSING,
    answer_on_a_terminal,
    as_json,
    assert_one_clear_error,
    cli,
    get,
    make_project,
    make_task,
    names_in,
    project_count,
    tq,
)
from tests.conftest import ServerProcess


def test_create_shows_the_project_and_stores_it(live: ServerProcess, api: httpx.Client) -> None:
    result = cli(
        live.url,
        "projects",
        "create",
        "pr-create",
        "--description",
        "a project",
        "--status",
        "Active",
        "--tag",
        "etl",
        "--tag",
        "nightly",
    )
    assert result.exit_code == 0, result.output
    assert names_in(result.stdout) == ["pr-create"]
    assert names_in(result.stdout, "STATUS") == ["Active"]
    assert names_in(result.stdout, "TAGS") == ["etl, nightly"]
    stored = [p for p in get(api, "/api/projects")["projects"] if p["name"] == "pr-create"]
    assert len(stored) == 1
    assert stored[0]["description"] == "a project"
    assert stored[0]["status"] == "Active"
    assert stored[0]["tags"] == ["etl", "nightly"]
    assert names_in(result.stdout, "ID") == [stored[0]["id"][-12:]]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_create_prints_the_api_object(live: ServerProcess, api: httpx.Client, fmt: str) -> None:
    result = cli(live.url, "projects", "create", f"pr-create-{fmt}", "--format", fmt)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout)
    assert printed == get(api, f"/api/projects/{printed['id']}")
    assert printed["status"] == "Planning"


def test_list_table_json_yaml_and_paging(live: ServerProcess, api: httpx.Client) -> None:
    for name in ("pr-list-1", "pr-list-2"):
        make_project(api, name, tags=["t"])
    table = cli(live.url, "projects", "list")
    assert table.exit_code == 0, table.output
    listed = get(api, "/api/projects")["projects"]
    assert names_in(table.stdout) == [p["name"] for p in listed]
    assert {"pr-list-1", "pr-list-2"} <= set(names_in(table.stdout))

    as_list = cli(live.url, "projects", "list", "-o", "json")
    assert as_list.exit_code == 0
    assert json.loads(as_list.stdout) == listed
    as_yaml = cli(live.url, "--format", "yaml", "projects", "list")
    assert yaml.safe_load(as_yaml.stdout) == listed

    page = cli(live.url, "projects", "list", "--limit", "1", "--offset", "1", "-o", "json")
    assert (
        json.loads(page.stdout) == get(api, "/api/projects", {"limit": 1, "offset": 1})["projects"]
    )
    assert len(json.loads(page.stdout)) == 1


def test_get_by_id_and_by_name(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "pr-get", description="d", tags=["x"])
    for ref in (project["id"], "pr-get"):
        table = cli(live.url, "projects", "get", ref)
        assert table.exit_code == 0, table.output
        assert names_in(table.stdout) == ["pr-get"]
        as_json_out = cli(live.url, "projects", "get", ref, "-o", "json")
        assert as_json_out.exit_code == 0
        assert json.loads(as_json_out.stdout) == get(api, f"/api/projects/{project['id']}")
        as_yaml = cli(live.url, "-o", "yaml", "projects", "get", ref)
        assert yaml.safe_load(as_yaml.stdout) == get(api, f"/api/projects/{project['id']}")


def test_update_by_name(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "pr-update", tags=["old"])
    result = cli(
        live.url,
        "projects",
        "update",
        "pr-update",
        "--name",
        "pr-updated",
        "--description",
        "changed",
        "--status",
        "Done",
        "--tag",
        "new1",
        "--tag",
        "new2",
    )
    assert result.exit_code == 0, result.output
    assert names_in(result.stdout) == ["pr-updated"]
    stored = get(api, f"/api/projects/{project['id']}")
    assert stored["name"] == "pr-updated"
    assert stored["description"] == "changed"
    assert stored["status"] == "Done"
    assert stored["tags"] == ["new1", "new2"]

    by_id = cli(live.url, "projects", "update", project["id"], "--status", "Again", "-o", "json")
    assert by_id.exit_code == 0
    assert json.loads(by_id.stdout) == get(api, f"/api/projects/{project['id']}")
    assert json.loads(by_id.stdout)["status"] == "Again"


def test_update_with_nothing_to_change(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "pr-update-nothing")
    result = cli(live.url, "projects", "update", "pr-update-nothing")
    assert result.exit_code == 2
    assert_one_clear_error(result.stderr, "nothing to change")
    assert get(api, f"/api/projects/{project['id']}") == project


def test_delete_by_name_asks_unless_yes(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "pr-delete")
    args = ["--base-url", live.url, "projects", "delete", "pr-delete"]
    code, _, err = answer_on_a_terminal(args, "n\n")
    assert code == 1
    assert "Aborted" in err
    assert api.get(f"/api/projects/{project['id']}").status_code == 200

    unasked = cli(live.url, "projects", "delete", "pr-delete")
    assert unasked.exit_code == 2, unasked.output
    assert "pass --yes" in unasked.stderr
    assert api.get(f"/api/projects/{project['id']}").status_code == 200

    code, out, err = answer_on_a_terminal(args, "y\n")
    assert code == 0, err
    assert f"deleted {project['id']}" in out
    assert api.get(f"/api/projects/{project['id']}").status_code == 404


def test_delete_cascade_removes_the_tasks(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "pr-cascade")
    tasks = [make_task(api, f"pr-cascade-{i}", project_id=project["id"]) for i in range(3)]
    other = make_task(api, "pr-cascade-outsider")

    refused = tq("projects", "delete", "pr-cascade", "-y", url=live.url)
    assert refused.returncode == 5
    assert_one_clear_error(refused.stderr, "task")
    assert api.get(f"/api/projects/{project['id']}").status_code == 200

    result = cli(live.url, "projects", "delete", "--cascade", "-y", "pr-cascade", "-o", "json")
    assert result.exit_code == 0, result.output
    assert as_json(result) == {"deleted": project["id"]}
    assert api.get(f"/api/projects/{project['id']}").status_code == 404
    for task in tasks:
        assert api.get(f"/api/tasks/{task['id']}").status_code == 404
    assert api.get(f"/api/tasks/{other['id']}").status_code == 200


def test_duplicate_name_is_refused(live: ServerProcess, api: httpx.Client) -> None:
    make_project(api, "pr-dup")
    before = project_count(api)
    result = tq("projects", "create", "pr-dup", url=live.url)
    assert result.returncode == 5
    assert_one_clear_error(result.stderr, "pr-dup", "already exists")
    assert project_count(api) == before


@pytest.mark.parametrize(
    "args",
    [
        ["projects", "get", MISSING],
        ["projects", "update", MISSING, "--name", "x"],
        ["projects", "delete", "-y", MISSING],
        ["projects", "delete", "-y", "--cascade", MISSING],
    ],
    ids=["get", "update", "delete", "delete-cascade"],
)
def test_unknown_project_id_exits_3(live: ServerProcess, args: list[str]) -> None:
    result = tq(*args, url=live.url)
    assert result.returncode == 3, result.stderr
    assert_one_clear_error(result.stderr, "not found")


@pytest.mark.parametrize(
    "args",
    [
        ["projects", "get", "no-such-project"],
        ["projects", "update", "no-such-project", "--name", "x"],
        ["projects", "delete", "-y", "no-such-project"],
    ],
    ids=["get", "update", "delete"],
)
def test_unknown_project_name_exits_3(
    live: ServerProcess, api: httpx.Client, args: list[str]
) -> None:
    """A name no project has is "not found" (3), not a usage error about an option."""
    before = project_count(api)
    result = tq(*args, url=live.url)
    assert "no-such-project" in result.stderr
    assert "--project" not in result.stderr, result.stderr  # the command has no such option
    assert result.returncode == 3, result.stderr
    assert_one_clear_error(result.stderr, "no-such-project")
    assert project_count(api) == before


def test_a_project_is_found_by_the_short_id_its_table_shows(
    live: ServerProcess, api: httpx.Client
) -> None:
    project = make_project(api, "pr-short")
    short = project["id"][-12:]
    got = cli(live.url, "-o", "json", "projects", "get", short)
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["id"] == project["id"]
    bad = cli(live.url, "projects", "get", "zz-not-a-project")
    assert bad.exit_code == 3
    assert_one_clear_error(bad.stderr, "no project is named 'zz-not-a-project'")
