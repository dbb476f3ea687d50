"""Workflow tasks on a real server and its workers: phases, review gates, links and cancel.

Each test runs on SQLite and on PostgreSQL, against one server per module (the tests keep to
their own tasks). Phase commands are real shell commands that record what they saw in files.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, execute_db, wait_status, wait_until

#: A phase command that records its phase, round and input, and outputs its phase's name.
RECORD = (
    'echo "$TASKQUEUE_PHASE" >> {dir}/phases; '
    'cp "$TASKQUEUE_INPUT" {dir}/input-$TASKQUEUE_PHASE-$TASKQUEUE_ROUND.json; '
    'printf \'{{"phase": "%s"}}\' "$TASKQUEUE_PHASE" > "$TASKQUEUE_OUTPUT"'
)


def _get(api: httpx.Client, task_id: str) -> dict[str, Any]:
    response = api.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _at_gate(api: httpx.Client, task_id: str, round_number: int = 1) -> dict[str, Any]:
    """Wait until the workflow waits at a gate in ``round_number``; its pending review."""
    seen: dict[str, Any] = {}

    def waiting() -> bool:
        found = api.get(f"/api/tasks/{task_id}/reviews").json()
        seen.update(found)
        pending = found["pending"]
        return pending is not None and pending["round"] == round_number

    wait_until(waiting, 60, f"task {task_id} to wait at a gate in round {round_number}")
    return dict(seen["pending"])


def _review(api: httpx.Client, task_id: str, verdict: str, reviewer: str, comment: str = "") -> Any:
    body = {"verdict": verdict, "reviewer": reviewer, "comment": comment}
    return api.post(f"/api/tasks/{task_id}/reviews", json=body)


def _events(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    page = api.get("/api/events", params={"format": "json", "task_id": task_id, "limit": 1000})
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def _workflow(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/tasks", json={"task_type": "Workflow", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_six_phases_end_to_end_with_three_approvals(shared: httpx.Client, tmp_path: Path) -> None:
    task = _workflow(shared, name="six", command=RECORD.format(dir=tmp_path), retry_delay=0)
    assert (task["status"], task["current_phase"]) == ("Planning", "Planning")
    assert [p["name"] for p in task["phases"]] == [
        "Planning",
        "Implementation",
        "TestCreation",
        "Testing",
        "AIReview",
        "Finalized",
    ]
    pending = _at_gate(shared, task["id"])
    assert pending == {
        "phase": "AIReview",
        "round": 1,
        "reviews_required": 3,
        "approvals": 0,
        "reviewers": [],
    }
    waiting = _get(shared, task["id"])
    assert (waiting["status"], waiting["current_phase"]) == ("AIReview", "AIReview")
    assert [p["status"] for p in waiting["phases"]] == ["Completed"] * 4 + ["Running", "Pending"]
    listed = shared.get("/api/tasks", params={"status": "AIReview", "limit": 1000}).json()
    assert task["id"] in {t["id"] for t in listed["tasks"]}

    assert _review(shared, task["id"], "approve", "alice").status_code == 201
    again = _review(shared, task["id"], "approve", "alice")
    assert again.status_code == 409, again.text
    assert "once per round" in again.json()["error"]["message"]
    assert _get(shared, task["id"])["ai_reviews_completed"] == 1
    assert _review(shared, task["id"], "approve", "bob", "fine").status_code == 201
    assert _get(shared, task["id"])["status"] == "AIReview"
    assert _review(shared, task["id"], "approve", "carol").status_code == 201

    done = wait_status(shared, task["id"])
    assert done["status"] == "Completed", done
    assert done["ai_reviews_completed"] == 3
    assert {p["status"] for p in done["phases"]} == {"Completed"}
    assert done["result"]["output"] == {"phase": "Finalized"}
    ran = (tmp_path / "phases").read_text().split()
    assert ran == ["Planning", "Implementation", "TestCreation", "Testing", "Finalized"]
    attempts = shared.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
    assert [a["phase"] for a in attempts] == ran
    reviews = shared.get(f"/api/tasks/{task['id']}/reviews").json()
    assert [(r["reviewer"], r["verdict"], r["round"]) for r in reviews["reviews"]] == [
        ("alice", "approve", 1),
        ("bob", "approve", 1),
        ("carol", "approve", 1),
    ]
    assert reviews["pending"] is None

    kinds = [e["type"] for e in _events(shared, task["id"])]
    assert kinds[-2:] == ["task.phase_completed", "task.completed"]
    assert kinds.count("task.phase_started") == 6
    assert kinds.count("task.phase_completed") == 6
    assert kinds.count("task.review_requested") == 1
    assert kinds.count("task.reviewed") == 3
    assert kinds.index("task.review_requested") < kinds.index("task.reviewed")


def test_a_rejection_loops_back_with_the_comments_and_rounds_run_out(
    shared: httpx.Client, tmp_path: Path
) -> None:
    command = RECORD.format(dir=tmp_path)
    task = _workflow(
        shared,
        name="loop",
        command=command,
        ai_reviews_required=1,
        max_review_rounds=1,
        retry_delay=0,
        input={"ticket": 7},
    )
    _at_gate(shared, task["id"], 1)
    rejected = _review(shared, task["id"], "reject", "alice", "needs tests")
    assert rejected.status_code == 201, rejected.text
    assert rejected.json()["round"] == 1

    _at_gate(shared, task["id"], 2)
    again = _get(shared, task["id"])
    assert again["review_rounds"] == 1
    assert again["status"] == "AIReview"
    given = json.loads((tmp_path / "input-Implementation-2.json").read_text())
    assert given["input"] == {"ticket": 7}
    assert (given["phase"], given["round"]) == ("Implementation", 2)
    assert given["reviews"] == [
        {
            "phase": "AIReview",
            "round": 1,
            "reviewer": "alice",
            "verdict": "reject",
            "comment": "needs tests",
        }
    ]
    assert set(given["phases"]) == {"Planning"}  # Implementation onwards run again
    first = json.loads((tmp_path / "input-Implementation-1.json").read_text())
    assert first["reviews"] == []
    ran = (tmp_path / "phases").read_text().split()
    again_ran = ["Implementation", "TestCreation", "Testing"]
    assert ran == ["Planning", *again_ran, *again_ran]

    # The second rejection finds no round left: Failed, with the reason.
    assert _review(shared, task["id"], "reject", "bob", "still no").status_code == 201
    failed = wait_status(shared, task["id"])
    assert failed["status"] == "Failed"
    assert failed["failure_reason"] == "review_rejected"
    assert "still no" in failed["status_reason"]
    assert [p["status"] for p in failed["phases"]][4:] == ["Failed", "Pending"]
    assert not (tmp_path / "input-Finalized-2.json").exists()


def test_an_approval_link_shows_then_decides_once(shared: httpx.Client, tmp_path: Path) -> None:
    task = _workflow(
        shared,
        name="link-me",
        description="Ship the <b>thing</b>",
        acceptance_criteria=["it builds"],
        phases=[
            {"name": "build", "command": "echo '{\"ok\": 1}' > $TASKQUEUE_OUTPUT"},
            {"name": "signoff", "review": True, "reviews_required": 2},
        ],
    )
    _at_gate(shared, task["id"])
    made = shared.post(
        f"/api/tasks/{task['id']}/review-links",
        json={"reviewer": "dana@example.com", "expires_in": 3600},
    )
    assert made.status_code == 201, made.text
    link = made.json()
    assert (link["phase"], link["round"], link["reviewer"]) == ("signoff", 1, "dana@example.com")
    url = link["url"]
    assert url.startswith(f"{shared.base_url}/reviews/".replace("//reviews", "/reviews"))
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 40

    page = httpx.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    for shown in ("link-me", "it builds", "dana@example.com", "&lt;b&gt;thing&lt;/b&gt;"):
        assert shown in page.text
    assert "<b>thing</b>" not in page.text
    assert '<form method="post">' in page.text
    # Opening it changed nothing.
    assert shared.get(f"/api/tasks/{task['id']}/reviews").json()["reviews"] == []

    decided = httpx.post(url, data={"verdict": "approve", "comment": "ok by me"})
    assert decided.status_code == 200, decided.text
    reviews = shared.get(f"/api/tasks/{task['id']}/reviews").json()
    assert [(r["reviewer"], r["via"], r["comment"]) for r in reviews["reviews"]] == [
        ("dana@example.com", "link", "ok by me")
    ]
    assert reviews["pending"]["approvals"] == 1
    for method in ("GET", "POST"):
        second = httpx.request(
            method, url, data={"verdict": "reject"} if method == "POST" else None
        )
        assert second.status_code == 410, (method, second.text)
        assert "used" in second.text
    assert len(shared.get(f"/api/tasks/{task['id']}/reviews").json()["reviews"]) == 1

    unknown = httpx.get(f"{shared.base_url}/reviews/{'x' * 43}")
    assert unknown.status_code == 404
    for hostile in ("%00", "%C3%A9" * 60, "a" * 5000):
        assert httpx.get(f"{shared.base_url}/reviews/{hostile}").status_code in (404, 414, 431)


def test_an_expired_link_and_a_link_whose_round_is_over_are_gone(
    live: ServerProcess, shared: httpx.Client
) -> None:
    task = _workflow(
        shared,
        name="expiring",
        ai_reviews_required=1,
        phases=[{"name": "build", "command": "true"}, {"name": "gate", "review": True}],
    )
    _at_gate(shared, task["id"])
    links = [
        shared.post(
            f"/api/tasks/{task['id']}/review-links", json={"reviewer": who, "expires_in": 60}
        ).json()["url"]
        for who in ("erin", "frank")
    ]
    token = links[0].rsplit("/", 1)[1]
    digest = hashlib.sha256(token.encode()).hexdigest()
    past = int((time.time() - 1) * 1_000_000)
    changed = execute_db(
        live.db, f"UPDATE review_links SET expires_at = {past} WHERE token_hash = '{digest}'"
    )
    assert changed == 1
    expired = httpx.post(links[0], data={"verdict": "approve"})
    assert expired.status_code == 410
    assert "expired" in expired.text
    assert shared.get(f"/api/tasks/{task['id']}/reviews").json()["reviews"] == []
    # An approval through the API ends the round: frank's link is over.
    assert _review(shared, task["id"], "approve", "gina").status_code == 201
    assert wait_status(shared, task["id"])["status"] == "Completed"
    over = httpx.get(links[1])
    assert over.status_code == 410
    assert "over" in over.text


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_cancel_during_a_phase_kills_its_process_group(
    shared: httpx.Client, tmp_path: Path
) -> None:
    command = (
        f"sleep 300 & echo $! > {tmp_path}/child.pid; echo $$ > {tmp_path}/shell.pid; sleep 300"
    )
    task = _workflow(
        shared,
        name="cancel-me",
        phases=[
            {"name": "Planning", "command": "true"},
            {"name": "Implementation", "command": command},
        ],
    )
    wait_until(
        lambda: (
            (tmp_path / "child.pid").exists()
            and (tmp_path / "shell.pid").exists()
            and (tmp_path / "shell.pid").read_text().strip() != ""
        ),
        60,
        "the phase to start its child",
    )
    running = _get(shared, task["id"])
    assert (running["status"], running["current_phase"]) == ("Implementation", "Implementation")
    pids = [int((tmp_path / f"{n}.pid").read_text()) for n in ("child", "shell")]
    cancelled = shared.post(f"/api/tasks/{task['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    wait_until(lambda: all(_gone(pid) for pid in pids), 30, "the phase's processes to die")
    done = wait_status(shared, task["id"])
    assert done["status"] == "Cancelled"
    assert [p["status"] for p in done["phases"]] == ["Completed", "Cancelled"]


def test_a_phase_without_retries_left_fails_the_workflow_and_retry_resumes_it(
    shared: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    flaky = f"test -e {marker}"
    task = _workflow(
        shared,
        name="flaky",
        phases=[
            {"name": "build", "command": "true"},
            {"name": "test", "command": flaky, "retry_attempts": 1, "retry_delay": 0},
            {"name": "ship", "command": "true"},
        ],
    )
    failed = wait_status(shared, task["id"])
    assert failed["status"] == "Failed"
    assert [(p["status"], p["attempts"]) for p in failed["phases"]] == [
        ("Completed", 1),
        ("Failed", 2),
        ("Pending", 0),
    ]
    marker.write_text("")
    retried = shared.post(f"/api/tasks/{task['id']}/retry")
    assert retried.status_code == 200, retried.text
    done = wait_status(shared, task["id"])
    assert done["status"] == "Completed", done
    assert [p["attempts"] for p in done["phases"]] == [1, 3, 1]
    phases = [
        a["phase"] for a in shared.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
    ]
    assert phases == ["build", "test", "test", "test", "ship"]


def test_a_dependent_waits_for_the_whole_workflow(shared: httpx.Client) -> None:
    flow = _workflow(
        shared,
        name="upstream",
        ai_reviews_required=1,
        phases=[
            {"name": "a", "command": "true"},
            {"name": "gate", "review": True},
            {"name": "b", "command": "true"},
        ],
    )
    after = shared.post(
        "/api/tasks", json={"name": "downstream", "command": "true", "dependencies": [flow["id"]]}
    )
    assert after.status_code == 201, after.text
    _at_gate(shared, flow["id"])
    assert _get(shared, after.json()["id"])["status"] == "Pending"
    assert _review(shared, flow["id"], "approve", "hank").status_code == 201
    assert wait_status(shared, flow["id"])["status"] == "Completed"
    assert wait_status(shared, after.json()["id"])["status"] == "Completed"


def test_project_workflows_are_versioned_and_copied_by_tasks(shared: httpx.Client) -> None:
    project = shared.post("/api/projects", json={"name": f"wf-{time.time_ns()}"}).json()["id"]
    base = f"/api/projects/{project}/workflows"
    one = shared.post(base, json={"name": "release", "phases": [{"name": "v1", "command": "true"}]})
    two = shared.post(
        base,
        json={
            "name": "release",
            "max_review_rounds": 5,
            "phases": [{"name": "v2", "command": "true"}],
        },
    )
    assert (one.status_code, two.status_code) == (201, 201), (one.text, two.text)
    assert (one.json()["version"], two.json()["version"]) == (1, 2)
    listed = shared.get(base).json()
    assert [(w["name"], w["version"]) for w in listed["workflows"]] == [("release", 2)]
    assert shared.get(f"{base}/release", params={"version": 1}).json()["phases"][0]["name"] == "v1"

    latest = _workflow(shared, name="t", project_id=project, workflow="release")
    assert [p["name"] for p in latest["phases"]] == ["v2"]
    assert latest["development_workflow"]["version"] == 2
    assert latest["max_review_rounds"] == 5
    pinned = _workflow(shared, name="t", project_id=project, workflow="release", workflow_version=1)
    assert [p["name"] for p in pinned["phases"]] == ["v1"]
    assert wait_status(shared, pinned["id"])["status"] == "Completed"

    before = shared.get("/api/tasks", params={"limit": 1}).json()["total"]
    missing = shared.post(
        "/api/tasks",
        json={"name": "t", "task_type": "Workflow", "project_id": project, "workflow": "nope"},
    )
    assert missing.status_code == 409
    assert missing.json()["error"]["details"][0]["loc"] == ["workflow"]
    assert "no workflow nope" in missing.json()["error"]["message"]
    assert shared.get("/api/tasks", params={"limit": 1}).json()["total"] == before
    assert shared.delete(f"{base}/release").status_code == 204
    assert shared.get(f"{base}/release").status_code == 404
    assert _get(shared, latest["id"])["phases"][0]["name"] == "v2"  # the task kept its copy


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (
            {"phases": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]},
            ["phases", 1, "name"],
        ),
        ({"phases": [{"name": "r", "review": True}]}, ["phases", 0, "review"]),
        (
            {
                "phases": [
                    {"name": "a", "command": "x"},
                    {"name": "r", "review": True, "on_reject": "z"},
                ]
            },
            ["phases", 1, "on_reject"],
        ),
        ({"phases": [{"name": "a"}]}, ["command"]),
    ],
)
def test_phases_that_cannot_run_are_refused_and_nothing_is_stored(
    shared: httpx.Client, body: dict[str, Any], loc: list[Any]
) -> None:
    before = shared.get("/api/tasks", params={"limit": 1}).json()["total"]
    refused = shared.post("/api/tasks", json={"name": "bad", "task_type": "Workflow", **body})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["loc"][-len(loc) :] == loc
    assert shared.get("/api/tasks", params={"limit": 1}).json()["total"] == before


def test_reviews_are_refused_where_no_gate_waits(shared: httpx.Client) -> None:
    simple = shared.post("/api/tasks", json={"name": "plain", "command": "true"}).json()
    refused = _review(shared, simple["id"], "approve", "ivy")
    assert refused.status_code == 409
    assert "only Workflow tasks" in refused.json()["error"]["message"]
    flow = _workflow(shared, name="no-gate", phases=[{"name": "a", "command": "sleep 30"}])
    wait_until(
        lambda: _get(shared, flow["id"])["phases"][0]["status"] == "Running", 60, "the phase to run"
    )
    refused = _review(shared, flow["id"], "approve", "ivy")
    assert refused.status_code == 409
    assert re.search(r"not waiting for a review: it is Running", refused.json()["error"]["message"])
    link = shared.post(f"/api/tasks/{flow['id']}/review-links", json={"reviewer": "ivy"})
    assert link.status_code == 409
    nobody = shared.post(f"/api/tasks/{flow['id']}/reviews", json={"verdict": "approve"})
    assert nobody.status_code == 422
    assert nobody.json()["error"]["details"][0]["loc"] == ["body", "reviewer"]
    assert shared.get(f"/api/tasks/{flow['id']}/reviews").json()["reviews"] == []
    shared.post(f"/api/tasks/{flow['id']}/cancel")


def test_the_body_of_a_task_with_phases_cannot_change(shared: httpx.Client) -> None:
    flow = _workflow(shared, name="fixed", run_at="2999-01-01T00:00:00Z",
                     phases=[{"name": "a", "command": "echo a"}, {"name": "b"}],
                     command="echo fallback")  # fmt: skip
    for field, value in (("command", "echo other"), ("code", "print(1)")):
        refused = shared.put(f"/api/tasks/{flow['id']}", json={field: value})
        assert refused.status_code == 409, refused.text
        detail = refused.json()["error"]["details"][0]
        assert detail["loc"] == [field]
        assert "runs phases" in detail["msg"]
    after = _get(shared, flow["id"])
    assert after["command"] == "echo fallback"
    assert [p["command"] for p in after["phases"]] == ["echo a", "echo fallback"]
    assert after["updated_at"] == flow["updated_at"]
    renamed = shared.put(f"/api/tasks/{flow['id']}", json={"name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    shared.delete(f"/api/tasks/{flow['id']}")
