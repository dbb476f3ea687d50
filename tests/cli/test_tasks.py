"""``taskqueue tasks ...`` against a real server: output, exit codes and the state it leaves."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime

import httpx
import pytest
import yaml

from tests.cli.helpers import (
    answer_on_a_terminal,
    as_json,
    assert_one_clear_error,
    cli,
    get,
    make_project,
    make_task,
    names_in,
    sub_env,
    table_rows,
    task_count,
    tq,
)
from tests.conftest import BIN, ServerProcess, wait_status, wait_until


def finished_task(api: httpx.Client, name: str, command: str, **fields: object) -> dict:
    """A task run by the server's worker, once it has ended."""
    task = make_task(api, name, command, queue="default", retry_attempts=0, **fields)
    return wait_status(api, task["id"])


def detail(text: str) -> dict[str, str]:
    """The ``field  value`` rows ``tasks get`` prints."""
    rows = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition("  ")
        if key:
            rows[key.strip()] = value.strip()
    return rows


# ------------------------------------------------------------------------------ create


def test_create_stores_every_option(live: ServerProcess, api: httpx.Client) -> None:
    result = cli(
        live.url,
        "tasks",
        "create",
        "create-all",
        "echo hi",
        "--description",
        "every option",
        "--priority",
        "high",
        "--timeout",
        "30",
        "--retry-attempts",
        "1",
        "--retry-delay",
        "0.5",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--cwd",
        "/tmp",
        "--queue",
        "q-create",
        "--metadata",
        '{"k": [1, 2]}',
        "--input",
        '{"n": 2}',
    )
    assert result.exit_code == 0, result.output
    shown = detail(result.stdout)
    assert shown["name"] == "create-all"
    assert shown["command"] == "echo hi"
    assert shown["status"] == "Pending"
    assert shown["priority"] == "High"
    assert shown["queue"] == "q-create"
    assert shown["timeout"] == "30s"
    assert shown["attempt"] == "0 (retries allowed: 1)"

    stored = get(api, f"/api/tasks/{shown['id']}")
    assert stored["name"] == "create-all"
    assert stored["command"] == "echo hi"
    assert stored["description"] == "every option"
    assert stored["priority"] == "High"
    assert stored["timeout"] == 30
    assert stored["retry_attempts"] == 1
    assert stored["retry_delay"] == 0.5
    assert stored["environment"] == {"A": "1", "B": "x=y"}
    assert stored["working_directory"] == "/tmp"
    assert stored["queue"] == "q-create"
    assert stored["metadata"] == {"k": [1, 2]}
    assert stored["input"] == {"n": 2}
    assert stored["status"] == "Pending"


def test_create_with_a_project_name_and_a_dependency(
    live: ServerProcess, api: httpx.Client
) -> None:
    project = make_project(api, "create-proj")
    first = make_task(api, "create-first")
    result = cli(
        live.url,
        "tasks",
        "create",
        "create-second",
        "true",
        "--project",
        "create-proj",
        "--depends-on",
        first["id"],
        "--queue",
        "parked",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    printed = as_json(result)
    stored = get(api, f"/api/tasks/{printed['id']}")
    assert printed == stored
    assert stored["project_id"] == project["id"]
    assert stored["dependencies"] == [first["id"]]

    by_id = cli(
        live.url, "tasks", "create", "create-third", "true", "--project-id", project["id"],
        "--queue", "parked", "-o", "json",
    )  # fmt: skip
    assert by_id.exit_code == 0, by_id.output
    assert get(api, f"/api/tasks/{as_json(by_id)['id']}")["project_id"] == project["id"]


def test_create_without_a_command_is_a_usage_error(live: ServerProcess, api: httpx.Client) -> None:
    before = task_count(api)
    result = tq("tasks", "create", "only-a-name", url=live.url)
    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "give NAME and COMMAND")
    assert task_count(api) == before


@pytest.mark.parametrize("where", ["global", "command"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_create_output_is_the_api_object(
    live: ServerProcess, api: httpx.Client, fmt: str, where: str
) -> None:
    args = ["tasks", "create", f"create-{fmt}-{where}", "true", "--queue", "parked"]
    full = ["-o", fmt, *args] if where == "global" else [*args, "--format", fmt]
    result = cli(live.url, *full)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout)
    assert printed == get(api, f"/api/tasks/{printed['id']}")


# ------------------------------------------------------------------------------ interactive


def test_create_interactive_uses_the_answers(live: ServerProcess, api: httpx.Client) -> None:
    result = cli(
        live.url,
        "tasks",
        "create",
        "--interactive",
        "-o",
        "json",
        input="interactive-task\necho from prompts\n\nHigh\n0\n2\n",
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout[result.stdout.index("{") :])
    stored = get(api, f"/api/tasks/{created['id']}")
    assert stored["name"] == "interactive-task"
    assert stored["command"] == "echo from prompts"
    assert stored["project_id"] is None
    assert stored["priority"] == "High"
    assert stored["timeout"] is None
    assert stored["retry_attempts"] == 2


def test_create_interactive_in_a_real_process(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "interactive-proj")
    result = tq(
        "tasks",
        "create",
        "-i",
        "--queue",
        "parked",
        url=live.url,
        input="interactive-sub\nsleep 1\ninteractive-proj\nlow\n45\n0\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Name" in result.stdout
    assert "Priority" in result.stdout
    found = re.search(r"\bid\s+([0-9a-f-]{36})", result.stdout)
    assert found is not None, result.stdout
    task_id = found.group(1)
    stored = get(api, f"/api/tasks/{task_id}")
    assert stored["name"] == "interactive-sub"
    assert stored["command"] == "sleep 1"
    assert stored["project_id"] == project["id"]
    assert stored["priority"] == "Low"
    assert stored["timeout"] == 45
    assert stored["retry_attempts"] == 0
    assert stored["queue"] == "parked"


def test_create_interactive_reprompts_a_bad_priority(
    live: ServerProcess, api: httpx.Client
) -> None:
    result = cli(
        live.url,
        "tasks",
        "create",
        "-i",
        "--queue",
        "parked",
        "-o",
        "json",
        input="reprompt\ntrue\n\nUrgent\ncritical\n\n\n",
    )
    assert result.exit_code == 0, result.output
    assert "Urgent" in result.output  # said what was wrong, then asked again
    created = json.loads(result.stdout[result.stdout.index("{") :])
    stored = get(api, f"/api/tasks/{created['id']}")
    assert stored["priority"] == "Critical"
    assert stored["timeout"] is None
    assert stored["retry_attempts"] == 3  # the prompt's default


# ------------------------------------------------------------------------------ list / get


def test_list_filters_and_formats(live: ServerProcess, api: httpx.Client) -> None:
    project = make_project(api, "list-proj")
    made = [
        make_task(api, "list-a", queue="q-list", priority="High"),
        make_task(api, "list-b", queue="q-list", priority="Low", project_id=project["id"]),
        make_task(api, "list-c", queue="q-list", priority="High"),
    ]
    table = cli(live.url, "tasks", "list", "--queue", "q-list")
    assert table.exit_code == 0, table.output
    assert names_in(table.stdout) == ["list-c", "list-b", "list-a"]  # newest first
    assert names_in(table.stdout, "STATUS") == ["Pending"] * 3
    assert names_in(table.stdout, "PRIORITY") == ["High", "Low", "High"]
    assert names_in(table.stdout, "ID") == [t["id"][-12:] for t in reversed(made)]

    high = cli(live.url, "tasks", "list", "--queue", "q-list", "--priority", "high")
    assert names_in(high.stdout) == ["list-c", "list-a"]
    in_project = cli(live.url, "tasks", "list", "--project", "list-proj")
    assert names_in(in_project.stdout) == ["list-b"]
    pending = cli(live.url, "tasks", "list", "--queue", "q-list", "--status", "pending")
    assert names_in(pending.stdout) == ["list-c", "list-b", "list-a"]
    page = cli(live.url, "tasks", "list", "--queue", "q-list", "--limit", "1", "--offset", "1")
    assert names_in(page.stdout) == ["list-b"]
    every = cli(live.url, "tasks", "list", "--queue", "q-list", "--all")
    assert names_in(every.stdout) == ["list-c", "list-b", "list-a"]
    none = cli(live.url, "tasks", "list", "--queue", "q-list", "--status", "Failed")
    assert none.exit_code == 0
    assert none.stdout.strip() == "no tasks"

    expected = get(api, "/api/tasks", {"queue": "q-list", "sort": "-created_at"})["tasks"]
    as_list = cli(live.url, "tasks", "list", "--queue", "q-list", "--format", "json")
    assert as_list.exit_code == 0
    assert json.loads(as_list.stdout) == expected
    as_yaml = cli(live.url, "-o", "yaml", "tasks", "list", "--queue", "q-list")
    assert yaml.safe_load(as_yaml.stdout) == expected
    filtered = cli(
        live.url, "tasks", "list", "--queue", "q-list", "--priority", "High", "-o", "json"
    )
    assert (
        json.loads(filtered.stdout)
        == get(api, "/api/tasks", {"queue": "q-list", "priority": "High", "sort": "-created_at"})[
            "tasks"
        ]
    )


def test_get_table_json_and_yaml(live: ServerProcess, api: httpx.Client) -> None:
    task = finished_task(api, "get-me", "echo hello; exit 4")
    table = cli(live.url, "tasks", "get", task["id"])
    assert table.exit_code == 0, table.output
    shown = detail(table.stdout)
    assert shown["id"] == task["id"]
    assert shown["name"] == "get-me"
    assert shown["status"].startswith("Failed")
    assert shown["exit code"] == "4"

    expected = get(api, f"/api/tasks/{task['id']}")
    for args in (
        ["-o", "json", "tasks", "get", task["id"]],
        ["tasks", "get", task["id"], "-o", "json"],
    ):
        result = cli(live.url, *args)
        assert result.exit_code == 0
        assert json.loads(result.stdout) == expected
    as_yaml = cli(live.url, "tasks", "get", task["id"], "--format", "yaml")
    assert as_yaml.exit_code == 0
    assert yaml.safe_load(as_yaml.stdout) == expected


def test_a_task_waiting_to_retry_says_when_instead_of_an_exit_code(
    live: ServerProcess, api: httpx.Client
) -> None:
    task = make_task(
        api, "retry-later", "exit 3", queue="default", retry_attempts=3, retry_delay=3600
    )
    wait_until(
        lambda: (
            get(api, f"/api/tasks/{task['id']}")["attempt"] == 1
            and get(api, f"/api/tasks/{task['id']}")["status"] == "Pending"
        ),
        15,
        "the first attempt to fail",
    )
    now = get(api, f"/api/tasks/{task['id']}")
    when = datetime.fromisoformat(now["run_at"]).astimezone().strftime("%H:%M:%S")
    listed = cli(live.url, "tasks", "list", "--queue", "default", "--status", "Pending")
    row = next(line for line in listed.stdout.splitlines() if "retry-later" in line)
    assert f"Pending, retrying at {when} (attempt 2/4)" in row
    assert row.split()[-1] == "-"  # no exit code for a task that has not ended
    shown = detail(cli(live.url, "tasks", "get", task["id"]).stdout)
    assert shown["status"] == f"Pending, retrying at {when} (attempt 2/4)"
    api.post(f"/api/tasks/{task['id']}/cancel")


# ------------------------------------------------------------------------------ update


def test_update_changes_the_fields(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "update-me")
    result = cli(
        live.url,
        "tasks",
        "update",
        task["id"],
        "--name",
        "updated",
        "--description",
        "new words",
        "--command",
        "echo changed",
        "--priority",
        "critical",
        "--timeout",
        "9",
        "--retry-attempts",
        "5",
        "--queue",
        "q-updated",
        "--metadata",
        '{"owner": "me"}',
    )
    assert result.exit_code == 0, result.output
    assert detail(result.stdout)["name"] == "updated"
    stored = get(api, f"/api/tasks/{task['id']}")
    assert stored["name"] == "updated"
    assert stored["description"] == "new words"
    assert stored["command"] == "echo changed"
    assert stored["priority"] == "Critical"
    assert stored["timeout"] == 9
    assert stored["retry_attempts"] == 5
    assert stored["queue"] == "q-updated"
    assert stored["metadata"] == {"owner": "me"}

    as_json_out = cli(live.url, "tasks", "update", task["id"], "--name", "again", "-o", "json")
    assert as_json_out.exit_code == 0
    assert json.loads(as_json_out.stdout) == get(api, f"/api/tasks/{task['id']}")


def test_update_with_nothing_to_change_is_a_usage_error(
    live: ServerProcess, api: httpx.Client
) -> None:
    task = make_task(api, "update-nothing")
    result = cli(live.url, "tasks", "update", task["id"])
    assert result.exit_code == 2
    assert_one_clear_error(result.stderr, "nothing to change")
    assert get(api, f"/api/tasks/{task['id']}") == task


# ------------------------------------------------------------------ cancel / retry / delete


def test_cancel_then_retry(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "cancel-me")
    dependent = make_task(api, "cancel-dependent", dependencies=[task["id"]])
    cancelled = cli(live.url, "tasks", "cancel", task["id"])
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.strip() == f"cancelled {task['id']}"
    assert get(api, f"/api/tasks/{task['id']}")["status"] == "Cancelled"
    assert get(api, f"/api/tasks/{dependent['id']}")["status"] == "Cancelled"

    retried = cli(live.url, "tasks", "retry", task["id"])
    assert retried.exit_code == 0, retried.output
    assert retried.stdout.strip() == f"re-queued {task['id']}"
    assert get(api, f"/api/tasks/{task['id']}")["status"] == "Pending"

    again = cli(live.url, "tasks", "cancel", task["id"], "-o", "json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == get(api, f"/api/tasks/{task['id']}")
    assert json.loads(again.stdout)["status"] == "Cancelled"
    retry_yaml = cli(live.url, "tasks", "retry", task["id"], "-o", "yaml")
    assert retry_yaml.exit_code == 0
    assert yaml.safe_load(retry_yaml.stdout) == get(api, f"/api/tasks/{task['id']}")


def test_cancel_kills_a_running_task(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "cancel-running", "sleep 30", queue="default")
    wait_until(
        lambda: get(api, f"/api/tasks/{task['id']}")["status"] == "Running", 10, "the task to start"
    )
    result = cli(live.url, "tasks", "cancel", task["id"])
    assert result.exit_code == 0, result.output
    assert wait_status(api, task["id"], timeout=15)["status"] == "Cancelled"


def test_delete_asks_unless_yes(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "delete-me")
    args = ["--base-url", live.url, "tasks", "delete", task["id"]]
    code, _, err = answer_on_a_terminal(args, "n\n")
    assert code == 1
    assert "Aborted" in err
    assert api.get(f"/api/tasks/{task['id']}").status_code == 200

    # Without a terminal to ask on, it explains and changes nothing.
    unasked = cli(live.url, "tasks", "delete", task["id"], input="y\n")
    assert unasked.exit_code == 2, unasked.output
    assert_one_clear_error(unasked.stderr, "needs confirmation", "no terminal")
    assert "hint: pass --yes" in unasked.stderr
    assert api.get(f"/api/tasks/{task['id']}").status_code == 200

    code, out, err = answer_on_a_terminal(args, "y\n")
    assert code == 0, err
    assert f"deleted {task['id']}" in out
    assert api.get(f"/api/tasks/{task['id']}").status_code == 404

    other = make_task(api, "delete-yes")
    quiet = cli(live.url, "tasks", "delete", "-y", other["id"], "-o", "json")
    assert quiet.exit_code == 0
    assert json.loads(quiet.stdout) == {"deleted": other["id"]}
    assert api.get(f"/api/tasks/{other['id']}").status_code == 404


# ------------------------------------------------------------------------------ wait


def test_wait_for_a_task_that_completes(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "wait-ok", "sleep 0.5; echo done", queue="default")
    result = cli(live.url, "tasks", "wait", task["id"])
    assert result.exit_code == 0, result.output
    assert detail(result.stdout)["status"] == "Completed"
    as_json_out = cli(live.url, "tasks", "wait", task["id"], "-o", "json")
    assert as_json_out.exit_code == 0
    assert json.loads(as_json_out.stdout) == get(api, f"/api/tasks/{task['id']}")


def test_wait_for_a_task_that_fails_exits_1(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "wait-bad", "exit 2", queue="default", retry_attempts=0)
    result = cli(live.url, "tasks", "wait", task["id"])
    assert result.exit_code == 1, result.output
    assert detail(result.stdout)["status"].startswith("Failed")
    assert get(api, f"/api/tasks/{task['id']}")["status"] == "Failed"


def test_wait_for_a_cancelled_task_exits_1(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "wait-cancelled")
    api.post(f"/api/tasks/{task['id']}/cancel").raise_for_status()
    result = cli(live.url, "tasks", "wait", task["id"], "-o", "yaml")
    assert result.exit_code == 1
    assert yaml.safe_load(result.stdout)["status"] == "Cancelled"


def test_wait_that_runs_out_of_time_says_so(live: ServerProcess, api: httpx.Client) -> None:
    """The server answered: the task just did not complete, which `wait` reports with exit 1."""
    task = make_task(api, "wait-forever")
    result = cli(live.url, "tasks", "wait", task["id"], "--timeout", "0.5")
    assert "still Pending" in result.stderr
    assert "is the server running" not in result.stderr, result.stderr
    assert result.exit_code == 1, result.stderr


# ------------------------------------------------------------------------------ logs


def test_logs_split_stdout_and_stderr(live: ServerProcess, api: httpx.Client) -> None:
    task = finished_task(api, "logs-me", "echo out1; echo err1 >&2; echo out2")
    both = tq("tasks", "logs", task["id"], url=live.url)
    assert both.returncode == 0, both.stderr
    assert both.stdout == "out1\nout2\n"
    assert both.stderr == "err1\n"

    only_err = tq("tasks", "logs", task["id"], "--stream", "stderr", url=live.url)
    assert only_err.returncode == 0
    assert only_err.stdout == ""
    assert only_err.stderr == "err1\n"

    expected = get(api, f"/api/tasks/{task['id']}/logs")["chunks"]
    as_json_out = cli(live.url, "tasks", "logs", task["id"], "-o", "json")
    assert as_json_out.exit_code == 0
    assert json.loads(as_json_out.stdout) == expected
    as_yaml = cli(live.url, "-o", "yaml", "tasks", "logs", task["id"])
    assert yaml.safe_load(as_yaml.stdout) == expected
    stdout_only = cli(live.url, "tasks", "logs", task["id"], "--stream", "stdout", "-o", "json")
    assert (
        json.loads(stdout_only.stdout)
        == get(api, f"/api/tasks/{task['id']}/logs", {"stream": "stdout"})["chunks"]
    )


def test_logs_of_a_task_without_output(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "logs-none")
    result = cli(live.url, "tasks", "logs", task["id"])
    assert result.exit_code == 0
    assert result.stdout == ""
    as_json_out = cli(live.url, "tasks", "logs", task["id"], "-o", "json")
    assert json.loads(as_json_out.stdout) == []


def test_logs_follow_streams_until_the_end(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "logs-follow", "echo first; sleep 2; echo second", queue="default")
    process = subprocess.Popen(
        [str(BIN), "--base-url", live.url, "tasks", "logs", "--follow", task["id"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sub_env(),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first == "first\n"
        assert process.poll() is None, "the first line came only once the command had ended"
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert rest == "second\n"
    assert get(api, f"/api/tasks/{task['id']}")["status"] == "Completed"


# ------------------------------------------------------------------------------ attempts


def test_attempts_table_and_json(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "attempts-me", "exit 7", queue="default", retry_attempts=1, retry_delay=0)
    assert wait_status(api, task["id"])["status"] == "Failed"
    table = cli(live.url, "tasks", "attempts", task["id"])
    assert table.exit_code == 0, table.output
    rows = table_rows(table.stdout)
    assert [row[0] for row in rows] == ["1", "2"]
    assert names_in(table.stdout, "STATUS") == ["Failed", "Failed"]
    assert names_in(table.stdout, "EXIT") == ["7", "7"]

    expected = get(api, f"/api/tasks/{task['id']}/attempts")["attempts"]
    as_json_out = cli(live.url, "tasks", "attempts", task["id"], "-o", "json")
    assert json.loads(as_json_out.stdout) == expected
    assert len(expected) == 2
    as_yaml = cli(live.url, "tasks", "attempts", task["id"], "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout) == expected


def test_attempts_of_a_task_not_run_yet(live: ServerProcess, api: httpx.Client) -> None:
    task = make_task(api, "attempts-none")
    result = cli(live.url, "tasks", "attempts", task["id"])
    assert result.exit_code == 0
    assert result.stdout.strip() == "no attempts yet"
    assert json.loads(cli(live.url, "tasks", "attempts", task["id"], "-o", "json").stdout) == []


# ------------------------------------------------------------------------------ short ids


def test_tables_show_ids_that_differ_and_commands_take_them(
    live: ServerProcess, api: httpx.Client
) -> None:
    made = [make_task(api, f"short-{i}", queue="q-short") for i in range(6)]
    listed = cli(live.url, "tasks", "list", "--queue", "q-short")
    shown = names_in(listed.stdout, "ID")
    # Made within one second, their whole ids share their start; the shown ends all differ.
    assert len(set(shown)) == 6
    assert shown == [t["id"][-12:] for t in reversed(made)]  # newest first
    for task, short in zip(reversed(made), shown, strict=True):
        got = cli(live.url, "-o", "json", "tasks", "get", short)
        assert got.exit_code == 0, got.output
        assert json.loads(got.stdout)["id"] == task["id"]
    # Any unambiguous start works too, and so does the whole id in capitals.
    first = made[0]["id"]
    start = next(
        first[:n] for n in range(4, 37) if sum(t["id"].startswith(first[:n]) for t in made) == 1
    )
    assert json.loads(cli(live.url, "-o", "json", "tasks", "get", start).stdout)["id"] == first
    upper = cli(live.url, "-o", "json", "tasks", "get", first.upper())
    assert json.loads(upper.stdout)["id"] == first
    cancelled = cli(live.url, "tasks", "cancel", shown[0])
    assert cancelled.exit_code == 0, cancelled.output
    assert get(api, f"/api/tasks/{made[-1]['id']}")["status"] == "Cancelled"


def test_an_ambiguous_or_unknown_part_says_so(live: ServerProcess, api: httpx.Client) -> None:
    made = [make_task(api, f"ambiguous-{i}", queue="q-ambiguous") for i in range(3)]
    shared = made[0]["id"][:4]  # the time part: shared by tasks made together
    assert all(t["id"].startswith(shared) for t in made)
    result = cli(live.url, "tasks", "get", shared)
    assert result.exit_code == 2, result.output
    line = assert_one_clear_error(result.stderr, f"'{shared}' matches", "give more of the id")
    assert int(line.split(" matches ")[1].split()[0]) >= 3
    unknown = cli(live.url, "tasks", "get", "0000000f")
    assert unknown.exit_code == 3, unknown.output
    assert_one_clear_error(unknown.stderr, "no task id starts or ends with '0000000f'")


def test_list_is_newest_first_and_says_when_it_shows_part(
    live: ServerProcess, api: httpx.Client
) -> None:
    made = [make_task(api, f"paged-{i}", queue="q-paged") for i in range(5)]
    newest = cli(live.url, "tasks", "list", "--queue", "q-paged", "--limit", "2")
    assert names_in(newest.stdout) == ["paged-4", "paged-3"]
    assert "showing 2 of 5, newest first (use --all, --limit or --offset)" in newest.stderr
    oldest = cli(live.url, "tasks", "list", "--queue", "q-paged", "--limit", "2", "--reverse")
    assert names_in(oldest.stdout) == ["paged-0", "paged-1"]
    assert "showing 2 of 5, oldest first" in oldest.stderr
    every = cli(live.url, "tasks", "list", "--queue", "q-paged", "--all")
    assert names_in(every.stdout) == [f"paged-{i}" for i in range(4, -1, -1)]
    assert "showing" not in every.stderr
    as_json = cli(live.url, "-o", "json", "tasks", "list", "--queue", "q-paged", "--limit", "2")
    assert [t["id"] for t in json.loads(as_json.stdout)] == [made[4]["id"], made[3]["id"]]
    assert "showing" not in as_json.stderr  # a program reading JSON gets no footer
