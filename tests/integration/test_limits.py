"""Per-task limits, tripped on purpose against a real server and its embedded worker.

Each limit stops a command that goes past it, the task fails with that limit named in its
``failure_reason``, and the same worker runs the next task. Bad limits, and limits over the
operator's maxima, are refused at creation with a 422 naming the field.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, wait_status

pytestmark = pytest.mark.sqlite_only  # the worker applies limits; the database only keeps them

PY = sys.executable
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the process limit binds only a non-root user")


@pytest.fixture
def limited(make_server: Callable[..., ServerProcess]) -> Iterator[httpx.Client]:
    """A server whose embedded worker runs tasks (as root, or as the user running the tests)."""
    server = make_server("--workers", "2", "--max-limit", "memory_bytes=8G")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def run(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Create a task (no retries) and wait for its end."""
    body = {"name": "limited", "retry_attempts": 0, **fields}
    created = api.post("/api/tasks", json=body)
    assert created.status_code == 201, created.text
    return wait_status(api, created.json()["id"], timeout=120)


def output_of(api: httpx.Client, task_id: str) -> str:
    """Everything the task printed, both streams."""
    text, offset = "", 0
    while True:
        page = api.get(f"/api/tasks/{task_id}/logs", params={"offset": offset}).json()
        if not page["chunks"]:
            return text
        text += "".join(chunk["data"] for chunk in page["chunks"])
        offset = page["next_offset"]


def assert_still_works(api: httpx.Client) -> None:
    """The worker that ran the limited task runs the next one."""
    done = run(api, command="echo still here")
    assert done["status"] == "Completed", done


def test_a_cpu_spin_is_stopped_by_its_cpu_limit(limited: httpx.Client) -> None:
    done = run(limited, command="while :; do :; done", limits={"cpu_seconds": 1})
    assert (done["status"], done["failure_reason"]) == ("Failed", "cpu_limit"), done
    assert "CPU limit of 1s" in done["status_reason"]
    assert done["limits"] == {"cpu_seconds": 1}
    assert_still_works(limited)


def test_a_python_spin_is_stopped_by_its_cpu_limit(limited: httpx.Client) -> None:
    done = run(limited, command=f"{PY} -c 'while True: pass'", limits={"cpuSeconds": 1})
    assert (done["status"], done["failure_reason"]) == ("Failed", "cpu_limit"), done
    assert_still_works(limited)


def test_a_big_file_is_stopped_by_the_file_size_limit(limited: httpx.Client) -> None:
    done = run(
        limited,
        command='head -c 1073741824 /dev/zero > "$TMPDIR/big"',
        limits={"file_size_bytes": 1024 * 1024},
    )
    assert (done["status"], done["failure_reason"]) == ("Failed", "file_size_limit"), done
    assert "1048576 bytes" in done["status_reason"]
    assert_still_works(limited)


def test_a_memory_hog_is_stopped_by_the_memory_limit(limited: httpx.Client) -> None:
    hog = f"{PY} -c 'blocks = []\nwhile True: blocks.append(bytearray(16 * 1024 * 1024))'"
    done = run(limited, command=hog, limits={"memory_bytes": 256 * 1024 * 1024})
    assert (done["status"], done["failure_reason"]) == ("Failed", "memory_limit"), done
    assert "MemoryError" in output_of(limited, done["id"])
    assert_still_works(limited)


def test_open_files_past_the_limit_are_named(limited: httpx.Client) -> None:
    opener = f"{PY} -c 'files = [open(\"/dev/null\") for _ in range(100)]'"
    done = run(limited, command=opener, limits={"open_files": 32})
    assert (done["status"], done["failure_reason"]) == ("Failed", "open_files_limit"), done
    assert_still_works(limited)


def test_limits_within_bounds_let_a_command_complete(limited: httpx.Client) -> None:
    limits = {"cpu_seconds": 60, "memory_bytes": 2**30, "file_size_bytes": 2**20, "open_files": 64}
    done = run(limited, command="ulimit -t; ulimit -v; ulimit -f; ulimit -n", limits=limits)
    assert done["status"] == "Completed", done
    assert output_of(limited, done["id"]).split() == ["60", "1048576", "2048", "64"]
    assert done["limits"] == limits


def test_each_attempt_has_a_private_temp_dir_removed_afterwards(limited: httpx.Client) -> None:
    done = run(limited, command='echo "$TMPDIR"; touch "$TMPDIR/left"; ls -ld "$TMPDIR"')
    assert done["status"] == "Completed", done
    lines = output_of(limited, done["id"]).splitlines()
    tmpdir = lines[0]
    assert tmpdir.startswith("/")
    assert tmpdir != "/tmp"
    assert lines[1].startswith("drwx------")
    assert not Path(tmpdir).exists()
    again = run(limited, command='echo "$TMPDIR"')
    assert output_of(limited, again["id"]).strip() != tmpdir


def test_a_command_inherits_no_descriptor_beyond_0_1_2(limited: httpx.Client) -> None:
    done = run(limited, command="ls /proc/self/fd")  # ls itself opens one for the listing
    assert done["status"] == "Completed", done
    fds = sorted(int(fd) for fd in output_of(limited, done["id"]).split())
    assert fds == [0, 1, 2, 3]


@needs_root
def test_a_fork_bomb_is_stopped_by_the_process_limit(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server("--workers", "2", "--run-as", "nobody")
    bomb = (
        "import os, sys, time\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as exc:\n"
        "        sys.exit(f'fork failed: {exc}')\n"
        "    if pid == 0:\n"
        "        time.sleep(600)\n"
        "        os._exit(0)\n"
    )
    with httpx.Client(base_url=server.url, timeout=30) as api:
        done = run(api, language="python3", code=bomb, limits={"processes": 30})
        assert (done["status"], done["failure_reason"]) == ("Failed", "process_limit"), done
        assert "Resource temporarily unavailable" in output_of(api, done["id"])
        assert_still_works(api)
        # Above the hard limit the worker was started with, nobody may not raise it: the
        # command does not run without its limit.
        done = run(api, command="echo ran", limits={"open_files": 1_048_576})
        assert (done["status"], done["result"]["exit_code"]) == ("Failed", 126), done
        output = output_of(api, done["id"])
        assert "limits cannot be applied" in output
        assert "ran" not in output.split()


@pytest.mark.skipif(not ROOT or shutil.which("unshare") is None, reason="needs root + unshare")
def test_network_false_runs_without_the_network(limited: httpx.Client) -> None:
    port = limited.base_url.port
    connect = f"{PY} -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)'"
    allowed = run(limited, command=connect)
    assert allowed["status"] == "Completed", allowed
    refused = run(limited, command=connect, limits={"network": False})
    assert (refused["status"], refused["failure_reason"]) == ("Failed", "exit_code"), refused
    assert "Network is unreachable" in output_of(limited, refused["id"])
    assert refused["limits"] == {"network": False}
    assert_still_works(limited)


@pytest.mark.skipif(not ROOT or shutil.which("unshare") is None, reason="needs root + unshare")
def test_network_false_under_run_as_runs_as_the_user(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server("--workers", "1", "--run-as", "nobody")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        command = 'id -un; touch "$TMPDIR/mine" && echo tmp-ok'
        done = run(api, command=command, limits={"network": False})
        assert done["status"] == "Completed", done
        assert output_of(api, done["id"]).split() == ["nobody", "tmp-ok"]


def test_network_false_is_refused_by_a_worker_that_cannot_isolate(
    make_server: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no unshare to be found
    server = make_server("--workers", "1")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        done = run(api, command="echo ran", limits={"network": False})
        assert (done["status"], done["failure_reason"]) == ("Failed", "isolation_unavailable")
        assert "network: false needs util-linux's unshare" in done["status_reason"]
        assert output_of(api, done["id"]) == ""  # it never ran
        assert_still_works(api)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"cpu_seconds": 0}, "cpu_seconds"),
        ({"cpu_seconds": 1.5}, "cpu_seconds"),
        ({"cpu_seconds": "10"}, "cpu_seconds"),
        ({"cpu_seconds": True}, "cpu_seconds"),
        ({"memory_bytes": 1024}, "memory_bytes"),
        ({"file_size_bytes": -1}, "file_size_bytes"),
        ({"processes": 0}, "processes"),
        ({"open_files": 2**40}, "open_files"),
        ({"network": "no"}, "network"),
        ({"disk": 1}, "disk"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(
    limited: httpx.Client, limits: dict[str, Any], field: str
) -> None:
    response = limited.post("/api/tasks", json={"name": "bad", "command": "true", "limits": limits})
    assert response.status_code == 422, response.text
    locs = [detail["loc"] for detail in response.json()["error"]["details"]]
    assert any(loc[-2:] == ["limits", field] for loc in locs), locs


def test_limits_over_the_operators_maximum_are_refused(limited: httpx.Client) -> None:
    body = {"name": "big", "command": "true", "limits": {"memory_bytes": 16 * 2**30}}
    response = limited.post("/api/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["limits", "memory_bytes"]
    assert "maximum of 8589934592" in response.json()["error"]["details"][0]["msg"]
    batch = limited.post("/api/tasks/batch", json={"tasks": [{"name": "ok", "command": "true"},
                                                             body]})  # fmt: skip
    assert batch.status_code == 422, batch.text
    assert batch.json()["error"]["details"][0]["loc"] == ["tasks", 1, "limits", "memory_bytes"]
    assert limited.get("/api/tasks", params={"limit": 1000}).json()["total"] == 0


def test_the_operators_defaults_apply_to_tasks_that_leave_limits_out(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server(
        "--workers",
        "1",
        "--default-limit",
        "cpu_seconds=30",
        "--max-limit",
        "cpu_seconds=40",
        "--max-limit",
        "open_files=100",
    )
    with httpx.Client(base_url=server.url, timeout=30) as api:
        done = run(api, command="ulimit -t; ulimit -n")
        assert output_of(api, done["id"]).split() == ["30", "100"]
        done = run(api, command="ulimit -t", limits={"cpu_seconds": 35})
        assert output_of(api, done["id"]).split() == ["35"]
