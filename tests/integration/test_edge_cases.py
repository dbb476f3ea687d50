"""Edge cases that once broke a promise: each is a real server and a real command."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, wait_status

MakeServer = Callable[..., ServerProcess]


def test_fast_retries_never_lose_their_lease_to_the_previous_attempt(
    make_server: MakeServer,
) -> None:
    # A retry re-claimed while the previous attempt's end is still being synced must keep its
    # heartbeats: with 2 s leases, any lost one shows up as a "lease expired" attempt.
    server = make_server("--lease-seconds", "2")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        ids = [
            api.post(
                "/api/tasks",
                json={
                    "name": f"flaky{i}",
                    "command": "sleep 2.5; exit 1",
                    "retry_attempts": 2,
                    "retry_delay": 0,
                },
            ).json()["id"]
            for i in range(4)
        ]
        for task_id in ids:
            assert wait_status(api, task_id, timeout=60)["status"] == "Failed"
            errors = [
                a["error"] for a in api.get(f"/api/tasks/{task_id}/attempts").json()["attempts"]
            ]
            assert errors == ["exit code 1"] * 3


def test_commands_get_sigpipe_back(api: httpx.Client) -> None:
    task = api.post(
        "/api/tasks",
        json={
            "name": "pipe",
            "timeout": 20,
            "retry_attempts": 0,
            "command": "yes | head -1; grep SigIgn /proc/self/status",
        },
    ).json()
    done = wait_status(api, task["id"])
    assert done["status"] == "Completed"
    ignored = int(done["result"]["stdout_tail"].split()[-1], 16)
    assert not ignored & (1 << (13 - 1))  # SIGPIPE is not ignored


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ('mkfifo "$TASKQUEUE_OUTPUT"', "not a regular file"),
        ('ln -s /dev/zero "$TASKQUEUE_OUTPUT"', "write a regular file"),
        ('echo \'{"n": 123456789012345678901234567890}\' > "$TASKQUEUE_OUTPUT"', "64 bits"),
        ('echo "[NaN]" > "$TASKQUEUE_OUTPUT"', "not valid JSON"),
        ("python3 -c \"print('['*300 + ']'*300)\" > \"$TASKQUEUE_OUTPUT\"", "nests deeper"),
    ],
)
def test_a_hostile_result_file_fails_the_attempt_cleanly(
    api: httpx.Client, command: str, error: str
) -> None:
    task = api.post(
        "/api/tasks",
        json={"name": "hostile-output", "command": command, "retry_attempts": 0, "timeout": 30},
    ).json()
    done = wait_status(api, task["id"])
    assert done["status"] == "Failed"
    assert error in done["result"]["error"]
    assert api.get("/api/tasks").status_code == 200  # the list still serialises


def test_retrying_a_task_whose_dependency_was_deleted_is_refused(api: httpx.Client) -> None:
    first, second = api.post(
        "/api/tasks/batch",
        json={
            "tasks": [
                {"ref": "a", "name": "a", "command": "true"},
                {"name": "b", "command": "exit 1", "retry_attempts": 0, "dependencies": ["a"]},
            ]
        },
    ).json()["tasks"]
    assert wait_status(api, second["id"])["status"] == "Failed"
    assert api.delete(f"/api/tasks/{first['id']}").status_code == 204
    refused = api.post(f"/api/tasks/{second['id']}/retry")
    assert refused.status_code == 409
    assert "no longer exists" in refused.json()["error"]["message"]
    assert api.get(f"/api/tasks/{second['id']}").json()["status"] == "Failed"


def test_one_request_cannot_add_unbounded_dependency_edges(api: httpx.Client) -> None:
    roots = [
        {"ref": f"r{i}", "name": f"r{i}", "command": "true", "queue": "parked"} for i in range(1000)
    ]
    fans = [
        {
            "name": f"fan{i}",
            "command": "true",
            "queue": "parked",
            "dependencies": [f"r{j}" for j in range(1000)],
        }
        for i in range(51)
    ]
    before = api.get("/api/tasks").json()["total"]
    refused = api.post("/api/tasks/batch", json={"tasks": roots + fans})
    assert refused.status_code == 409
    assert "limit is 50000" in refused.json()["error"]["message"]
    assert api.get("/api/tasks").json()["total"] == before


@pytest.mark.sqlite_only
def test_a_symlinked_database_file_still_acknowledges_durably(
    make_server: MakeServer, tmp_path: Path
) -> None:
    real = tmp_path / "data" / "real.db"
    real.parent.mkdir()
    link = tmp_path / "link.db"
    os.symlink(real, link)
    server = make_server(db=link)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        created = api.post("/api/tasks", json={"name": "via-link", "command": "true"})
        assert created.status_code == 201
        assert wait_status(api, created.json()["id"])["status"] == "Completed"
    assert Path(f"{real}-wal").exists()
