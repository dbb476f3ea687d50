"""Bad input and failures: one clear line on stderr, the documented exit code, nothing created."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import (
    MISSING,
    assert_one_clear_error,
    cli,
    make_task,
    project_count,
    sub_env,
    task_count,
    tq,
)
from tests.conftest import ServerProcess, free_port, wait_status


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus", "tasks", "list"], "No such option '--bogus'"),
        (["tasks", "list", "--bogus"], "No such option '--bogus'"),
        (["tasks", "create", "x", "true", "--nope"], "No such option '--nope'"),
        (["tasks", "frobnicate"], "No such command 'frobnicate'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["--format", "xml", "tasks", "list"], "'xml' is not one of"),
        (["tasks", "list", "-o", "xml"], "'xml' is not one of"),
        (["tasks", "list", "--status", "Sleeping"], "'Sleeping' is not one of"),
        (["tasks", "list", "--status", "Reviewing"], "'Reviewing' is not one of"),
        (["tasks", "list", "--type", "Workflow"], "No such option '--type'"),
        (["tasks", "create", "x", "true", "--priority", "Urgent"], "'Urgent' is not one of"),
        (["tasks", "create", "x", "true", "--timeout", "0"], "--timeout"),
        (["tasks", "create", "x", "true", "--retry-attempts", "101"], "--retry-attempts"),
        (["tasks", "create", "x", "true", "--env", "NOEQUALS"], "'NOEQUALS' is not KEY=VALUE"),
        (["tasks", "create", "x", "true", "--env", "=v"], "is not KEY=VALUE"),
        (["tasks", "create", "x", "true", "--metadata", "{bad"], "--metadata"),
        (["tasks", "create", "x", "true", "--input", "[1,"], "--input"),
        (["tasks", "list", "--limit", "0"], "--limit"),
        (["tasks", "get"], "Missing argument 'TASK_ID'"),
        (["tasks", "update", MISSING, "--metadata", "{bad"], "--metadata"),
        (["run", "--env", "NOEQUALS", "--", "true"], "'NOEQUALS' is not KEY=VALUE"),
        (["run", "--priority", "Urgent", "--", "true"], "'Urgent' is not one of"),
        (["projects", "create"], "Missing argument 'NAME'"),
    ],
)
def test_usage_errors_exit_2_and_create_nothing(
    live: ServerProcess, api: httpx.Client, args: list[str], expected: str
) -> None:
    tasks, projects = task_count(api), project_count(api)
    result = cli(live.url, *args)
    assert result.exit_code == 2, result.output
    assert_one_clear_error(result.stderr, expected)
    assert result.stdout == ""
    assert task_count(api) == tasks
    assert project_count(api) == projects


def test_usage_errors_in_a_real_process(live: ServerProcess, api: httpx.Client) -> None:
    before = task_count(api)
    for args in (
        ["tasks", "create", "x", "true", "--env", "NOEQUALS"],
        ["tasks", "create", "x", "true", "--metadata", "{bad"],
        ["tasks", "list", "--bogus"],
    ):
        result = tq(*args, url=live.url)
        assert result.returncode == 2, (args, result.stderr)
        line = assert_one_clear_error(result.stderr)
        assert line.startswith("Error: ")
    assert task_count(api) == before


def test_metadata_error_says_what_is_wrong(live: ServerProcess) -> None:
    result = cli(live.url, "tasks", "create", "x", "true", "--metadata", "{bad")
    assert result.exit_code == 2
    assert_one_clear_error(result.stderr, "--metadata", "not valid JSON", "line 1 column 2")


def test_an_unreachable_server_exits_4() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = tq("tasks", "list", url=url)
    assert result.returncode == 4
    line = assert_one_clear_error(result.stderr, "cannot reach", url)
    assert line.startswith("error: ")
    assert "hint:" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["tasks", "get", MISSING],
        ["tasks", "update", MISSING, "--name", "x"],
        ["tasks", "cancel", MISSING],
        ["tasks", "retry", MISSING],
        ["tasks", "delete", "-y", MISSING],
        ["tasks", "wait", MISSING, "--timeout", "1"],
        ["tasks", "logs", MISSING],
        ["tasks", "logs", "--follow", MISSING],
        ["tasks", "attempts", MISSING],
        ["projects", "get", MISSING],
        ["projects", "update", MISSING, "--name", "x"],
        ["projects", "delete", "-y", MISSING],
    ],
    ids=lambda args: "-".join(a for a in args if a != MISSING and not a.startswith("-")),
)
def test_unknown_ids_exit_3(live: ServerProcess, args: list[str]) -> None:
    result = cli(live.url, *args)
    assert result.exit_code == 3, result.output
    assert_one_clear_error(result.stderr, MISSING, "not found")
    assert result.stdout == ""


def test_unknown_dependency_is_refused(live: ServerProcess, api: httpx.Client) -> None:
    before = task_count(api)
    result = cli(live.url, "tasks", "create", "x", "true", "--depends-on", MISSING)
    assert result.exit_code == 5, result.output
    assert_one_clear_error(result.stderr, MISSING, "does not exist")
    assert task_count(api) == before


def test_a_malformed_id_is_a_bad_argument(live: ServerProcess) -> None:
    result = cli(live.url, "tasks", "get", "not-an-id")
    assert result.exit_code == 2
    assert_one_clear_error(result.stderr, "'not-an-id' is not a task id", "at least 4 characters")


def test_a_field_the_server_refuses_exits_5(live: ServerProcess, api: httpx.Client) -> None:
    before = task_count(api)
    queue = cli(live.url, "tasks", "create", "x", "true", "--queue", "bad queue")
    assert queue.exit_code == 5, queue.output
    assert_one_clear_error(queue.stderr, "queue")
    cwd = cli(live.url, "tasks", "create", "x", "true", "--cwd", "")
    assert cwd.exit_code == 5, cwd.output
    assert_one_clear_error(cwd.stderr, "working_directory")
    env = cli(live.url, "tasks", "create", "x", "true", "--env", "1BAD=v")
    assert env.exit_code == 5, env.output
    assert_one_clear_error(env.stderr, "1BAD")
    assert task_count(api) == before


def test_an_invalid_priority_from_the_server_side(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    task = make_task(api, "err-priority")
    # The CLI's own choice list stops a bad --priority; a file goes to the server as written.
    path = tmp_path / "p.yaml"
    path.write_text("- {name: err-p, command: 'true', priority: Urgent}\n", encoding="utf-8")
    before = task_count(api)
    result = tq("submit", str(path), url=live.url)
    assert result.returncode == 5, result.stderr
    assert_one_clear_error(result.stderr, "priority", "'Low', 'Normal', 'High' or 'Critical'")
    assert task_count(api) == before
    assert api.get(f"/api/tasks/{task['id']}").json()["priority"] == "Normal"


def test_conflicts_exit_5(live: ServerProcess, api: httpx.Client) -> None:
    api.post("/api/projects", json={"name": "err-dup"}).raise_for_status()
    projects = project_count(api)
    dup = tq("projects", "create", "err-dup", url=live.url)
    assert dup.returncode == 5
    assert_one_clear_error(dup.stderr, "err-dup", "already exists")
    assert project_count(api) == projects

    done = wait_status(api, make_task(api, "err-done", queue="default")["id"])
    assert done["status"] == "Completed"
    cancel = tq("tasks", "cancel", done["id"], url=live.url)
    assert cancel.returncode == 5
    assert_one_clear_error(cancel.stderr, "Completed", "cannot become Cancelled")
    retry = cli(live.url, "tasks", "retry", done["id"])
    assert retry.exit_code == 5
    assert_one_clear_error(retry.stderr, "Completed")
    update = cli(live.url, "tasks", "update", done["id"], "--command", "echo no")
    assert update.exit_code == 5
    assert_one_clear_error(update.stderr, "command", "Pending")
    assert api.get(f"/api/tasks/{done['id']}").json() == done


def test_no_traceback_without_verbose_and_one_with_it(live: ServerProcess) -> None:
    quiet = tq("tasks", "get", MISSING, url=live.url)
    assert quiet.returncode == 3
    assert "Traceback" not in quiet.stderr

    loud = tq("--verbose", "tasks", "get", MISSING, url=live.url)
    assert loud.returncode == 3
    assert "Traceback (most recent call last)" in loud.stderr
    assert "TaskNotFoundError" in loud.stderr
    assert f"error: task {MISSING} not found" in loud.stderr

    short = tq("-v", "tasks", "list", url=f"http://127.0.0.1:{free_port()}")
    assert short.returncode == 4
    assert "Traceback (most recent call last)" in short.stderr
    assert "cannot reach" in short.stderr


class _FailingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request as a server that broke: 500 with the API's error body."""

    #: ``METHOD path`` of every request answered.
    seen: list[str] = []

    def _fail(self) -> None:
        self.seen.append(f"{self.command} {self.path.split('?')[0]}")
        body = json.dumps({"error": {"type": "internal_error", "message": "boom", "details": []}})
        data = body.encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_failing_server_exits_6() -> None:
    """A 5xx (after the client's retries) is exit 6; a real server does not fail on demand."""
    _FailingHandler.seen.clear()
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FailingHandler)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{stub.server_port}"
        listing = tq("tasks", "list", url=url)
        created = tq("projects", "create", "never", url=url)
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(5)
    for result in (listing, created):
        assert result.returncode == 6, result.stderr
        assert_one_clear_error(result.stderr, "boom")
        assert "hint: the server failed" in result.stderr
    # Each was tried once and retried three times (a create is safe to repeat: it carries an
    # idempotency key).
    assert _FailingHandler.seen == ["GET /api/tasks"] * 4 + ["POST /api/projects"] * 4


class _OtherServerHandler(http.server.BaseHTTPRequestHandler):
    """Some other web server: 404 with an HTML page for everything."""

    def do_GET(self) -> None:
        data = b"<html><body>Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_taskqueue_is_named_as_such() -> None:
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherServerHandler)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{stub.server_port}"
        result = tq("tasks", "get", MISSING, url=url)
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(5)
    assert result.returncode == 5, result.stderr
    assert_one_clear_error(result.stderr, "does not look like a taskqueue server", url)
    assert "not found" not in result.stderr.lower().replace("404 not found", "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("localhost:8080", "for example http://localhost:8080"),
        ("ftp://host/", "needs http:// or https://"),
        ("http://", "needs http:// or https:// and a host"),
        ("http://host:99999", "bad port"),
    ],
)
def test_a_base_url_that_is_not_a_url_is_a_usage_error(url: str, expected: str) -> None:
    result = tq("tasks", "list", url=url)
    assert result.returncode == 2, result.stderr
    assert_one_clear_error(result.stderr, expected, repr(url))
    assert "is the server running" not in result.stderr


def test_a_bad_base_url_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "taskqueue").mkdir(parents=True)
    config = xdg / "taskqueue" / "config.toml"
    config.write_text('[default]\nbase_url = "not a url"\n')
    env = {**sub_env(), "XDG_CONFIG_HOME": str(xdg)}
    env.pop("TASKQUEUE_URL", None)
    result = tq("tasks", "list", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_clear_error(result.stderr, str(config), "not a server URL")
