"""The programs in ``examples/`` run as a user would run them, against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, url: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` with only ``TASKQUEUE_URL`` pointing it at a server (and
    ``TASKQUEUE_RETRY_BACKOFF``: its client retries as it would, without the waits)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQUEUE_")}
    env["TASKQUEUE_URL"] = url
    env["TASKQUEUE_RETRY_BACKOFF"] = "0.001"
    env["XDG_CONFIG_HOME"] = str(home)  # never the developer's own config
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def project_id(output: str, prefix: str) -> str:
    match = re.search(
        rf"^Created project ({prefix}-[0-9a-f]{{8}}) \(([0-9a-f-]{{36}})\)$", output, re.M
    )
    assert match, output
    return match.group(2)


def project_tasks(api: httpx.Client, pid: str) -> dict[str, dict]:
    response = api.get("/api/tasks", params={"project_id": pid})
    response.raise_for_status()
    return {task["name"]: task for task in response.json()["tasks"]}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_basic_usage(server: ServerProcess, api: httpx.Client, home: Path) -> None:
    output = ok(run_example("basic_usage.py", server.url, home))

    assert f"Server {server.url} is ok" in output
    assert "Task greet finished: Completed, exit code 0" in output
    assert "Output: Hello from taskqueue" in output
    assert "Sync task count finished: Completed" in output
    assert re.search(r"^  greet +High +Completed +0$", output, re.M), output
    assert re.search(r"^  count +Normal +Completed +0$", output, re.M), output
    assert output.rstrip().endswith("Done.")

    pid = project_id(output, "basic-usage")
    assert api.get(f"/api/projects/{pid}").json()["description"] == (
        "Made by examples/basic_usage.py"
    )
    tasks = project_tasks(api, pid)
    assert set(tasks) == {"greet", "count"}
    greet = tasks["greet"]
    assert greet["status"] == "Completed"
    assert greet["priority"] == "High"
    assert greet["timeout"] == 60
    assert greet["retry_attempts"] == 2
    assert greet["result"]["exit_code"] == 0
    logs = api.get(f"/api/tasks/{greet['id']}/logs").json()
    assert [(c["stream"], c["data"]) for c in logs["chunks"]] == [
        ("stdout", "Hello from taskqueue\n")
    ]
    assert tasks["count"]["status"] == "Completed"
    assert tasks["count"]["result"]["stdout_tail"] == "one\ntwo\n"


def test_batch(server: ServerProcess, api: httpx.Client, home: Path) -> None:
    output = ok(run_example("batch.py", server.url, home))

    assert "Created 3 tasks in one batch" in output
    assert re.search(r"^  fetch \(\S+\) runs after nothing$", output, re.M), output
    assert re.search(r"^  transform \(\S+\) runs after fetch$", output, re.M), output
    assert re.search(r"^  load \(\S+\) runs after transform$", output, re.M), output
    followed = output.split("Following the output of load:\n", 1)[1]
    assert followed.startswith("  [stdout] loading 3 rows\n  [stdout] loaded 3 rows\n"), output
    for name in ("fetch", "transform", "load"):
        assert re.search(rf"^{name} +Completed +0 +\d+$", output, re.M), output
    assert "3/3 tasks completed" in output

    tasks = project_tasks(api, project_id(output, "pipeline"))
    assert set(tasks) == {"fetch", "transform", "load"}
    assert all(task["status"] == "Completed" for task in tasks.values())
    assert tasks["fetch"]["dependencies"] == []
    assert tasks["transform"]["dependencies"] == [tasks["fetch"]["id"]]
    assert tasks["load"]["dependencies"] == [tasks["transform"]["id"]]
    assert tasks["load"]["priority"] == "High"
    # The chain ran in order.
    assert tasks["fetch"]["finished_at"] <= tasks["transform"]["started_at"]
    assert tasks["transform"]["finished_at"] <= tasks["load"]["started_at"]


def test_error_handling(server: ServerProcess, api: httpx.Client, home: Path) -> None:
    output = ok(run_example("error_handling.py", server.url, home))

    lines = output.splitlines()
    assert "ValidationError (status None): priority: Input should be" in lines[0]
    assert "  field priority: Input should be 'Low', 'Normal', 'High' or 'Critical'" in lines
    assert (
        "ConflictError (status 409): tasks.0.dependencies.0: "
        "no earlier item of this batch has ref 'x'"
    ) in lines
    assert "  field tasks.0.dependencies.0: no earlier item of this batch has ref 'x'" in lines
    assert re.search(r"^TaskNotFoundError \(status 404\): task \S+ not found$", output, re.M)
    assert re.search(
        r"^ConflictError \(status 409\): a project named .* already exists$", output, re.M
    )
    assert "ConflictError (status 409): a Completed task cannot become Cancelled" in lines
    assert re.search(r"^TaskQueueTimeoutError: task \S+ is still Pending after 0.5s$", output, re.M)
    assert "  status when the wait ended: Pending" in lines
    assert "Task parked is now Cancelled" in lines
    assert re.search(
        r"^TaskQueueConnectionError: cannot reach the taskqueue server at ", output, re.M
    )
    assert lines[-1] == "Every error was caught."

    # One project of that name, despite the second attempt.
    pid = project_id(output, "errors")
    name = api.get(f"/api/projects/{pid}").json()["name"]
    projects = api.get("/api/projects", params={"limit": 1000}).json()["projects"]
    assert [p["id"] for p in projects if p["name"] == name] == [pid]
    assert project_tasks(api, pid)["quick"]["status"] == "Completed"

    tasks = api.get("/api/tasks", params={"limit": 1000}).json()["tasks"]
    assert sorted(t["name"] for t in tasks) == ["parked", "quick"]  # rejected ones were not made
    parked = next(t for t in tasks if t["name"] == "parked")
    assert parked["queue"] == "parked"
    assert parked["status"] == "Cancelled"
    assert parked["attempt"] == 0  # never ran


def test_example_exits_nonzero_without_a_server(home: Path) -> None:
    result = run_example("basic_usage.py", f"http://127.0.0.1:{free_port()}", home)
    assert result.returncode != 0
    assert "TaskQueueConnectionError" in result.stderr
