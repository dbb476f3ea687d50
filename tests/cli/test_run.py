"""``taskqueue run`` as a real process: live output, and the task's own exit code."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli.helpers import (
    assert_one_clear_error,
    cli,
    get,
    make_project,
    sub_env,
    task_count,
    tq,
)
from tests.conftest import BIN, ServerProcess, wait_status

UUID_LINE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$")


def newest(api: httpx.Client, name: str) -> dict:
    """The last task created with ``name``."""
    tasks = get(api, "/api/tasks", {"limit": 1000})["tasks"]
    found = [t for t in tasks if t["name"] == name]
    assert found, f"no task named {name!r}"
    return dict(found[-1])


def test_output_and_exit_code_are_the_commands(live: ServerProcess, api: httpx.Client) -> None:
    script = "echo out; echo err >&2; exit 3"
    result = tq("run", "--name", "run-exit3", "--", "sh", "-c", script, url=live.url)
    assert result.stdout == "out\n"
    assert "err" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == 3
    task = newest(api, "run-exit3")
    assert task["status"] == "Failed"
    assert task["result"]["exit_code"] == 3
    assert task["command"] == "sh -c 'echo out; echo err >&2; exit 3'"
    assert task["retry_attempts"] == 0


def test_a_successful_command_exits_0(live: ServerProcess, api: httpx.Client) -> None:
    result = tq("run", "--", "printf", "%s|", "a b", "c", url=live.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a b|c|"
    task = newest(api, "printf '%s|' 'a b' c")
    assert task["status"] == "Completed"
    # stdout is the command's alone; stderr names the task, for a later `tasks get`.
    assert result.stderr == f"task {task['id']} Completed\n"


def test_each_failed_attempt_is_reported_before_its_retry(
    live: ServerProcess, api: httpx.Client
) -> None:
    result = tq(
        "run", "--name", "run-retries", "--retry-attempts", "2", "--retry-delay", "0.2",
        "--", "sh", "-c", "echo try; exit 3", url=live.url,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout == "try\n" * 3
    lines = result.stderr.splitlines()
    task = newest(api, "run-retries")
    assert lines[0] == "attempt 1/3 failed (exit 3), retrying in 0s"
    assert lines[1:4] == [
        "attempt 2/3 started",
        "attempt 2/3 failed (exit 3), retrying in 0s",
        "attempt 3/3 started",
    ]
    assert lines[4] == f"task {task['id']} Failed: exit code 3"
    assert task["retry_delay"] == 0.2


def test_one_argument_is_a_shell_line(live: ServerProcess) -> None:
    result = tq("run", "echo abc | tr a-c x-z; exit 0", url=live.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "xyz\n"


def test_output_is_streamed_as_it_comes(live: ServerProcess, api: httpx.Client) -> None:
    process = subprocess.Popen(
        [
            str(BIN),
            "--base-url",
            live.url,
            "run",
            "--name",
            "run-stream",
            "--",
            "sh",
            "-c",
            "echo first; sleep 2; echo second",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sub_env(),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first == "first\n"
        assert process.poll() is None, "`first` arrived only once the command had ended"
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert rest == "second\n"
    assert process.returncode == 0, err
    assert newest(api, "run-stream")["status"] == "Completed"


def test_detach_prints_only_the_id(live: ServerProcess, api: httpx.Client) -> None:
    result = tq("run", "--detach", "--", "sh", "-c", "sleep 1; echo later", url=live.url)
    assert result.returncode == 0, result.stderr
    assert UUID_LINE.match(result.stdout), repr(result.stdout)
    assert result.stderr == ""
    task_id = result.stdout.strip()
    task = get(api, f"/api/tasks/{task_id}")
    assert task["command"] == "sh -c 'sleep 1; echo later'"
    assert task["status"] in ("Pending", "Running")
    assert wait_status(api, task_id)["status"] == "Completed"

    as_json_out = cli(live.url, "run", "-d", "-o", "json", "--queue", "parked", "--", "true")
    assert as_json_out.exit_code == 0, as_json_out.output
    printed = json.loads(as_json_out.stdout)
    assert printed == get(api, f"/api/tasks/{printed['id']}")


def test_a_timed_out_task_exits_124(live: ServerProcess, api: httpx.Client) -> None:
    result = tq("run", "--name", "run-timeout", "--timeout", "1", "--", "sleep", "30", url=live.url)
    assert result.returncode == 124, result.stderr
    assert "timed out" in result.stderr
    assert "Traceback" not in result.stderr
    task = newest(api, "run-timeout")
    assert task["status"] == "Failed"
    assert task["timeout"] == 1


def test_a_task_killed_by_a_signal_exits_128_plus_n(live: ServerProcess, api: httpx.Client) -> None:
    term = tq("run", "--name", "run-sigterm", "kill -TERM $$", url=live.url)
    assert term.returncode == 128 + 15, term.stderr
    assert "signal 15" in term.stderr
    assert newest(api, "run-sigterm")["result"]["exit_code"] == -15

    kill = tq("run", "--name", "run-sigkill", "kill -KILL $$", url=live.url)
    assert kill.returncode == 128 + 9, kill.stderr
    assert newest(api, "run-sigkill")["result"]["exit_code"] == -9


def test_a_large_exit_code_is_kept(live: ServerProcess) -> None:
    result = tq("run", "exit 200", url=live.url)
    assert result.returncode == 200


def test_options_reach_the_task(live: ServerProcess, api: httpx.Client, tmp_path: Path) -> None:
    project = make_project(api, "run-proj")
    result = tq(
        "run",
        "--name",
        "run-options",
        "--project",
        "run-proj",
        "--priority",
        "critical",
        "--timeout",
        "60",
        "--retry-attempts",
        "2",
        "--env",
        "GREETING=hello there",
        "--cwd",
        str(tmp_path),
        "--",
        "sh",
        "-c",
        'echo "$GREETING"; pwd',
        url=live.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hello there\n{tmp_path.resolve()}\n"
    task = newest(api, "run-options")
    assert task["project_id"] == project["id"]
    assert task["priority"] == "Critical"
    assert task["timeout"] == 60
    assert task["retry_attempts"] == 2
    assert task["environment"] == {"GREETING": "hello there"}
    assert task["working_directory"] == str(tmp_path)


def test_json_and_yaml_print_the_finished_task(live: ServerProcess, api: httpx.Client) -> None:
    result = cli(live.url, "-o", "json", "run", "--", "sh", "-c", "echo x; exit 5")
    assert result.exit_code == 5
    text = result.stdout
    assert text.startswith("x\n")  # the task's own output comes first
    printed = json.loads(text[2:])
    assert printed == get(api, f"/api/tasks/{printed['id']}")
    assert printed["status"] == "Failed"

    as_yaml = cli(live.url, "run", "--format", "yaml", "--", "true")
    assert as_yaml.exit_code == 0
    loaded = yaml.safe_load(as_yaml.stdout)
    assert loaded == get(api, f"/api/tasks/{loaded['id']}")
    assert loaded["status"] == "Completed"


def test_run_needs_a_command(live: ServerProcess, api: httpx.Client) -> None:
    before = task_count(api)
    result = tq("run", url=live.url)
    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "COMMAND")
    bad_env = tq("run", "--env", "NOEQUALS", "--", "true", url=live.url)
    assert bad_env.returncode == 2
    assert_one_clear_error(bad_env.stderr, "NOEQUALS", "KEY=VALUE")
    assert task_count(api) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_or_a_stop_signal_cancels_the_task(
    live: ServerProcess, api: httpx.Client, signum: signal.Signals
) -> None:
    process = subprocess.Popen(
        [str(BIN), "--base-url", live.url, "run", "--name", f"run-{signum.name}", "--", "sh", "-c",
         "echo started; sleep 30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sub_env(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "started\n"
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signum, err
    assert f"{signum.name}: cancelled task" in err
    assert "Traceback" not in err
    task = newest(api, f"run-{signum.name}")
    assert wait_status(api, task["id"], timeout=15)["status"] == "Cancelled"


def test_limits_reach_the_task_and_a_cpu_spin_is_stopped(
    live: ServerProcess, api: httpx.Client
) -> None:
    result = tq(
        "run", "--name", "run-limited", "--limit", "cpu_seconds=1", "--limit",
        "memory_bytes=1G", "--", "sh", "-c", "while :; do :; done", url=live.url,
    )  # fmt: skip
    task = newest(api, "run-limited")
    assert task["limits"] == {"cpu_seconds": 1, "memory_bytes": 2**30}
    assert task["failure_reason"] == "cpu_limit"
    assert "CPU limit of 1s" in result.stderr, result.stderr
    assert result.returncode != 0
    refused = tq("run", "--limit", "disk=1", "--", "true", url=live.url)
    assert refused.returncode == 2
    assert "--limit" in refused.stderr
