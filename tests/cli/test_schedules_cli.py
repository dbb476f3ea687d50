"""``taskqueue schedules ...`` against a real server: output, exit codes, what is stored."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.cli.helpers import as_json, assert_one_clear_error, cli, make_task, task_count
from tests.conftest import ServerProcess, wait_until


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(live: ServerProcess, *args: str) -> dict[str, Any]:
    """``schedules create ... --json``: the API's JSON of the Scheduled task."""
    result = cli(live.url, "schedules", "create", "--json", *args)
    assert result.exit_code == 0, result.output
    return as_json(result)


def test_create_with_a_cron_and_a_command_after_the_separator(live: ServerProcess) -> None:
    name = unique("sync")
    task = create(live, "*/5 * * * *", "--tz", "Europe/Berlin", "--name", name, "--", "echo", "a b")
    assert task["task_type"] == "Scheduled"
    assert task["name"] == name
    assert task["command"] == "echo 'a b'"
    assert task["schedule"]["cron"] == "*/5 * * * *"
    assert task["schedule"]["timezone"] == "Europe/Berlin"
    assert task["schedule"]["next_run_at"] is not None


def test_create_every_seconds_names_it_after_the_commands_first_word(live: ServerProcess) -> None:
    task = create(live, "--every", "3600", "--paused", "--", "/bin/echo", "alive")
    assert task["name"] == "echo"
    assert task["schedule"]["interval_seconds"] == 3600
    assert task["schedule"]["paused"]


def test_list_get_next_and_runs(live: ServerProcess) -> None:
    name = unique("tbl")
    task = create(live, "@daily", "--name", name, "--", "true")
    listed = cli(live.url, "schedules", "list")
    assert listed.exit_code == 0
    assert name in listed.output
    assert "@daily" in listed.output
    got = cli(live.url, "schedules", "get", task["id"])
    assert got.exit_code == 0, got.output
    assert "next run" in got.output, got.output
    nxt = cli(live.url, "schedules", "next", task["id"], "--count", "3", "--json")
    assert nxt.exit_code == 0, nxt.output
    slots = [item["slot"] for item in as_json(nxt)]
    assert len(slots) == 3
    assert slots == sorted(slots)
    runs = cli(live.url, "schedules", "runs", task["id"])
    assert runs.exit_code == 0
    assert "no runs yet" in runs.output


def test_pause_resume_and_trigger(live: ServerProcess, api: httpx.Client) -> None:
    task = create(live, "--every", "3600", "--name", unique("trig"), "--", "echo", "hi")
    paused = cli(live.url, "schedules", "pause", task["id"], "--json")
    assert paused.exit_code == 0
    assert as_json(paused)["schedule"]["paused"]
    resumed = cli(live.url, "schedules", "resume", task["id"], "--json")
    assert resumed.exit_code == 0
    assert not as_json(resumed)["schedule"]["paused"]
    triggered = cli(live.url, "schedules", "trigger", task["id"], "--json")
    assert triggered.exit_code == 0, triggered.output
    run = as_json(triggered)
    assert run["kind"] == "manual"
    child = run["task_id"]
    wait_until(
        lambda: api.get(f"/api/tasks/{child}").json()["status"] == "Completed",
        60,
        "the child to complete",
    )
    runs = cli(live.url, "schedules", "runs", task["id"])
    assert runs.exit_code == 0
    assert "manual" in runs.output


def test_bad_input_is_a_usage_error_and_creates_nothing(
    live: ServerProcess, api: httpx.Client
) -> None:
    before = task_count(api)
    for args in ([], ["@daily"], ["--every", "5"], ["--every", "0", "--", "true"]):
        result = cli(live.url, "schedules", "create", *args)
        assert result.exit_code == 2, (args, result.output)
    assert task_count(api) == before


def test_a_bad_cron_from_the_server_is_one_clear_error(live: ServerProcess) -> None:
    result = cli(live.url, "schedules", "create", "not a cron", "--", "true")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "cron" in result.output


def test_a_task_that_is_not_scheduled_is_refused(live: ServerProcess, api: httpx.Client) -> None:
    plain = make_task(api, unique("plain"))
    result = cli(live.url, "schedules", "pause", plain["id"])
    assert result.exit_code != 0
    assert_one_clear_error(result.stderr)
