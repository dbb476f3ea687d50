"""What a person at a terminal sees: colour, help, version, health, shell completion."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping

import httpx
import pytest
import yaml

from taskqueue import __version__
from taskqueue.models import TaskStatus
from tests.cli.helpers import ANSI, cli, get, make_task, on_a_pty, sub_env, tq
from tests.conftest import BIN, ServerProcess, wait_status

#: SGR sequences that set a colour (foreground or background), as opposed to bold and such.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def on_a_terminal(args: list[str], env: Mapping[str, str]) -> tuple[int, str]:
    """Run the CLI with stdout on a pseudo-terminal; its exit code and what it showed."""
    code, _, shown = on_a_pty(args, env, timeout=30)
    return code, shown


def colour_env(no_color: bool) -> dict[str, str]:
    env = sub_env({"TERM": "xterm-256color"})
    if not no_color:
        env.pop("NO_COLOR")
    return env


@pytest.fixture(scope="module")
def some_tasks(live: ServerProcess, api: httpx.Client) -> list[dict]:
    """A Completed, a Failed and a Pending task to show in tables."""
    done = make_task(api, "term-done", "echo ok", queue="default")
    failed = make_task(api, "term-failed", "exit 1", queue="default", retry_attempts=0)
    pending = make_task(api, "term-pending")
    return [wait_status(api, done["id"]), wait_status(api, failed["id"]), pending]


# ------------------------------------------------------------------------------ colour


def test_a_terminal_gets_colour(live: ServerProcess, some_tasks: list[dict]) -> None:
    """The control for the tests below: on a terminal, without NO_COLOR, statuses are coloured."""
    code, text = on_a_terminal(["--base-url", live.url, "tasks", "list"], colour_env(False))
    assert code == 0
    assert COLOUR.search(text), repr(text[:300])
    assert "Completed" in ANSI.sub("", text)


@pytest.mark.parametrize(
    "args",
    [["tasks", "list"], ["tasks", "get", "{id}"], ["health"], ["projects", "list"]],
    ids=["tasks-list", "tasks-get", "health", "projects-list"],
)
def test_no_color_on_a_terminal_has_no_colour(
    live: ServerProcess, some_tasks: list[dict], args: list[str]
) -> None:
    full = ["--base-url", live.url, *(a.format(id=some_tasks[0]["id"]) for a in args)]
    code, text = on_a_terminal(full, colour_env(True))
    assert code == 0
    assert not COLOUR.search(text), repr(text[:300])


@pytest.mark.parametrize(
    "args",
    [["tasks", "list"], ["tasks", "get", "{id}"], ["health"]],
    ids=["tasks-list", "tasks-get", "health"],
)
def test_no_color_on_a_terminal_has_no_escape_codes(
    live: ServerProcess, some_tasks: list[dict], args: list[str]
) -> None:
    """NO_COLOR: plain text, not even bold headers (no ANSI escape code at all)."""
    full = ["--base-url", live.url, *(a.format(id=some_tasks[0]["id"]) for a in args)]
    code, text = on_a_terminal(full, colour_env(True))
    assert code == 0
    assert not ANSI.search(text), repr(text[:300])


@pytest.mark.parametrize(
    "args",
    [
        ["tasks", "list"],
        ["tasks", "get", "{id}"],
        ["tasks", "attempts", "{id}"],
        ["health"],
        ["projects", "list"],
        ["config", "show"],
        ["run", "--", "sh", "-c", "echo hi; exit 1"],
        ["tasks", "get", "00000000-0000-0000-0000-000000000000"],
    ],
    ids=["tasks-list", "tasks-get", "attempts", "health", "projects", "config", "run", "error"],
)
def test_a_pipe_gets_no_escape_codes(
    live: ServerProcess, some_tasks: list[dict], args: list[str]
) -> None:
    env = colour_env(False)  # NO_COLOR unset: only the pipe turns colour off
    full = [a.format(id=some_tasks[1]["id"]) for a in args]
    result = tq(*full, url=live.url, env=env)
    assert result.stdout or result.stderr
    assert not ANSI.search(result.stdout), repr(result.stdout[:300])
    assert not ANSI.search(result.stderr), repr(result.stderr[:300])


def test_no_color_in_process(live: ServerProcess, some_tasks: list[dict]) -> None:
    for env in ({"NO_COLOR": "1"}, {"NO_COLOR": None}):
        result = cli(live.url, "tasks", "list", env=env)
        assert result.exit_code == 0
        assert not ANSI.search(result.output)


# ------------------------------------------------------------------ health, help, version


def test_health(live: ServerProcess, api: httpx.Client, some_tasks: list[dict]) -> None:
    table = cli(live.url, "health")
    assert table.exit_code == 0, table.output
    assert "ok" in table.stdout
    assert __version__ in table.stdout
    assert "sqlite" in table.stdout
    assert "Completed 1" in table.stdout
    assert "Pending 1" in table.stdout
    expected = get(api, "/api/health")
    as_json_out = cli(live.url, "health", "-o", "json")
    assert json.loads(as_json_out.stdout) == expected
    as_yaml = cli(live.url, "-o", "yaml", "health")
    assert yaml.safe_load(as_yaml.stdout) == expected


def test_workers(live: ServerProcess, api: httpx.Client) -> None:
    expected = get(api, "/api/workers")
    [embedded] = expected["workers"]
    table = cli(live.url, "workers")
    assert table.exit_code == 0, table.output
    assert str(live.process.pid) in table.stdout  # type: ignore[union-attr]
    assert "active" in table.stdout
    assert "default" in table.stdout
    assert f"0/{embedded['concurrency']}" in table.stdout
    as_json_out = cli(live.url, "workers", "-o", "json")
    assert as_json_out.exit_code == 0, as_json_out.output
    listed = json.loads(as_json_out.stdout)
    assert [w["id"] for w in listed["workers"]] == [embedded["id"]]
    assert listed["workers"][0]["queues"] == ["default"]


def test_version() -> None:
    result = cli(None, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"taskqueue, version {__version__}"
    assert cli(None, "-V").stdout == result.stdout


COMMANDS = [
    [],
    ["tasks"],
    ["tasks", "create"],
    ["tasks", "list"],
    ["tasks", "get"],
    ["tasks", "update"],
    ["tasks", "cancel"],
    ["tasks", "retry"],
    ["tasks", "delete"],
    ["tasks", "wait"],
    ["tasks", "logs"],
    ["tasks", "attempts"],
    ["projects"],
    ["projects", "create"],
    ["projects", "list"],
    ["projects", "get"],
    ["projects", "update"],
    ["projects", "delete"],
    ["run"],
    ["submit"],
    ["health"],
    ["workers"],
    ["config"],
    ["config", "show"],
    ["config", "set"],
    ["config", "profiles"],
    ["server"],
    ["worker"],
    ["db"],
    ["db", "upgrade"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c) or "main")
def test_every_command_has_help(command: list[str]) -> None:
    for flag in ("--help", "-h"):
        result = cli(None, *command, flag)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: taskqueue")
    client_side = command[:1] in (["tasks"], ["projects"], ["run"], ["submit"], ["health"])
    leaf = len(command) == 2 or command in (["run"], ["submit"], ["health"])
    if client_side and leaf:
        assert "--format" in cli(None, *command, "--help").stdout


def test_main_help_lists_the_commands() -> None:
    text = cli(None, "--help").stdout
    for name in ("tasks", "projects", "run", "submit", "health", "config", "server", "worker"):
        assert re.search(rf"^\s+{name}\s", text, re.MULTILINE), name
    for option in ("--base-url", "--api-key", "--profile", "--format", "--verbose"):
        assert option in text


# ------------------------------------------------------------------------------ completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    result = subprocess.run(
        [str(BIN)],
        capture_output=True,
        text=True,
        env=sub_env({"_TASKQUEUE_COMPLETE": f"{shell}_source"}),
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "_TASKQUEUE_COMPLETE" in result.stdout
    if shell == "bash":
        assert "complete -o nosort -F _taskqueue_completion taskqueue" in result.stdout
    assert result.stderr == ""


def complete(words: str) -> list[str]:
    """What bash completion offers for the command line ``words`` (cursor at its end)."""
    parts = words.split(" ")
    result = subprocess.run(
        [str(BIN)],
        capture_output=True,
        text=True,
        env=sub_env(
            {
                "_TASKQUEUE_COMPLETE": "bash_complete",
                "COMP_WORDS": words,
                "COMP_CWORD": str(len(parts) - 1),
            }
        ),
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


def test_completion_offers_commands_and_choices() -> None:
    assert "tasks" in complete("taskqueue ta")
    assert set(complete("taskqueue tasks c")) == {"create", "cancel"}
    offered = {c.lower() for c in complete("taskqueue tasks list --status P")}
    assert offered == {"pending", "planning"}  # Planning: a workflow's first phase
    every = {c.lower() for c in complete("taskqueue tasks list --status ")}
    assert every == {s.value.lower() for s in TaskStatus}  # the queue's and the workflow phases
    assert set(complete("taskqueue -o ")) == {"table", "json", "yaml"}
    assert "--format" in complete("taskqueue tasks get --f")
