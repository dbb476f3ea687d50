"""``taskqueue tasks review ...`` and ``taskqueue workflows ...`` against a real server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.cli.helpers import as_json, assert_one_clear_error, cli, get, task_count
from tests.conftest import ServerProcess, wait_until


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _at_gate(api: httpx.Client, task_id: str, round_number: int = 1) -> None:
    def waiting() -> bool:
        pending = get(api, f"/api/tasks/{task_id}/reviews")["pending"]
        return pending is not None and pending["round"] == round_number

    wait_until(waiting, 60, "the workflow to wait at its gate")


def _create(live: ServerProcess, *args: str) -> dict[str, Any]:
    result = cli(live.url, "tasks", "create", *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return dict(as_json(result))


def test_a_default_workflow_is_reviewed_from_the_cli_and_get_shows_its_phases(
    live: ServerProcess, api: httpx.Client
) -> None:
    task = _create(
        live,
        unique("feat"),
        "echo $TASKQUEUE_PHASE",
        "--type",
        "workflow",
        "--reviews-required",
        "1",
    )
    assert task["task_type"] == "Workflow"
    assert task["ai_reviews_required"] == 1
    assert task["status"] == "Planning"
    _at_gate(api, task["id"])
    shown = cli(live.url, "tasks", "get", task["id"])
    assert shown.exit_code == 0, shown.output
    assert "phase AIReview, approvals 0/1" in shown.output
    for phase in ("Planning", "TestCreation", "Testing", "AIReview", "Finalized"):
        assert phase in shown.output
    assert "> AIReview" in shown.output

    approved = cli(
        live.url, "tasks", "review", task["id"], "--approve", "-m", "ship it", "--reviewer", "pat"
    )
    assert approved.exit_code == 0, approved.output
    assert "pat approved AIReview (round 1)" in approved.output
    waited = cli(live.url, "tasks", "wait", task["id"], "--timeout", "60")
    assert waited.exit_code == 0, waited.output
    listed = cli(live.url, "tasks", "reviews", task["id"])
    assert listed.exit_code == 0, listed.output
    assert "pat" in listed.output
    assert "ship it" in listed.output
    reviews = as_json(cli(live.url, "tasks", "reviews", task["id"], "--json"))
    assert [r["comment"] for r in reviews["reviews"]] == ["ship it"]


def test_a_review_without_an_open_gate_is_one_clear_error(
    live: ServerProcess, api: httpx.Client
) -> None:
    plain = _create(live, unique("plain"), "true")
    before = get(api, f"/api/tasks/{plain['id']}/reviews")
    refused = cli(live.url, "tasks", "review", plain["id"], "--approve", "--reviewer", "x")
    assert refused.exit_code != 0
    assert_one_clear_error(refused.stderr, "only Workflow tasks")
    assert get(api, f"/api/tasks/{plain['id']}/reviews") == before
    neither = cli(live.url, "tasks", "review", plain["id"])
    assert neither.exit_code == 2
    assert "give --approve or --reject" in neither.output


def test_review_links_are_printed(live: ServerProcess, api: httpx.Client) -> None:
    task = _create(
        live,
        unique("linked"),
        "--phases",
        '[{"name": "build", "command": "true"}, {"name": "ok", "review": true}]',
    )
    _at_gate(api, task["id"])
    made = cli(live.url, "tasks", "review-link", task["id"], "--reviewer", "quinn")
    assert made.exit_code == 0, made.output
    url = made.output.strip()
    assert url.startswith(f"{live.url}/reviews/")
    page = httpx.get(url)
    assert page.status_code == 200
    assert "quinn" in page.text


def test_workflows_create_from_a_file_list_get_and_delete(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    project = unique("proj")
    assert cli(live.url, "projects", "create", project).exit_code == 0
    phases = tmp_path / "release.json"
    phases.write_text(
        json.dumps(
            [
                {"name": "build", "command": "make"},
                {"name": "signoff", "review": True, "reviews_required": 2},
                {"name": "publish", "command": "make publish"},
            ]
        )
    )
    made = cli(
        live.url, "workflows", "create", project, "release", "--phases", f"@{phases}", "--json"
    )
    assert made.exit_code == 0, made.output
    assert as_json(made)["version"] == 1
    again = cli(
        live.url,
        "workflows",
        "create",
        project,
        "release",
        "--phases",
        '[{"name": "only", "command": "true"}]',
    )
    assert again.exit_code == 0, again.output
    assert "release v2" in again.output
    listed = cli(live.url, "workflows", "list", project)
    assert listed.exit_code == 0
    assert "release" in listed.output
    assert "only" in listed.output
    old = cli(live.url, "workflows", "get", project, "release", "--version", "1")
    assert old.exit_code == 0
    assert "signoff" in old.output
    assert "needs 2 approvals" in old.output

    task = _create(live, unique("t"), "--project", project, "--workflow", "release")
    assert [p["name"] for p in task["phases"]] == ["only"]
    assert task["development_workflow"]["version"] == 2

    count = task_count(api)
    bad = cli(live.url, "workflows", "create", project, "broken", "--phases", "[1, 2")
    assert bad.exit_code == 2
    assert task_count(api) == count
    assert cli(live.url, "workflows", "delete", project, "release").exit_code == 0
    gone = cli(live.url, "workflows", "get", project, "release")
    assert gone.exit_code != 0
