"""``taskqueue submit FILE``: files of tasks with dependencies by name, followed to the end."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli.helpers import (
    ANSI,
    assert_one_clear_error,
    cli,
    get,
    make_project,
    names_in,
    on_a_pty,
    sub_env,
    task_count,
    tq,
)
from tests.conftest import ServerProcess

CHAIN_YAML = """\
# listed out of order on purpose: c needs b, b needs a
- name: {p}-c
  command: echo c
  dependencies: [{p}-b]
- name: {p}-b
  command: echo b
  dependencies:
    - {p}-a
  priority: High
- name: {p}-a
  command: sleep 0.3; echo a
"""


def project_tasks(api: httpx.Client, project_id: str) -> dict[str, dict]:
    """The tasks of a project, by name."""
    tasks = get(api, "/api/tasks", {"project_id": project_id, "limit": 1000})["tasks"]
    return {t["name"]: t for t in tasks}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_chain_runs_in_dependency_order(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    project = make_project(api, "sub-chain")
    path = write(tmp_path, "chain.yaml", CHAIN_YAML.format(p="chain"))
    result = tq("submit", str(path), "--project", "sub-chain", "--verbose", url=live.url)
    assert result.returncode == 0, result.stderr
    assert "3 of 3 tasks completed" in result.stdout
    assert names_in(result.stdout) == ["chain-a", "chain-b", "chain-c"]
    assert names_in(result.stdout, "STATUS") == ["Completed"] * 3
    assert "Traceback" not in result.stderr

    tasks = project_tasks(api, project["id"])
    a, b, c = tasks["chain-a"], tasks["chain-b"], tasks["chain-c"]
    assert a["dependencies"] == []
    assert b["dependencies"] == [a["id"]]
    assert c["dependencies"] == [b["id"]]
    assert b["priority"] == "High"
    assert all(t["status"] == "Completed" for t in (a, b, c))
    assert a["finished_at"] <= b["started_at"]
    assert b["finished_at"] <= c["started_at"]
    assert names_in(result.stdout, "ID") == [t["id"][-12:] for t in (a, b, c)]


def test_json_lines_file(live: ServerProcess, api: httpx.Client, tmp_path: Path) -> None:
    project = make_project(api, "sub-jsonl")
    lines = [
        {"name": "jl-second", "command": "echo 2", "dependencies": ["jl-first"]},
        {},
        {"name": "jl-first", "command": "echo 1", "retry_attempts": 0},
    ]
    text = "\n".join("" if not item else json.dumps(item) for item in lines) + "\n"
    path = write(tmp_path, "tasks.jsonl", text)
    result = tq("submit", str(path), "--project", project["id"], url=live.url)
    assert result.returncode == 0, result.stderr
    assert "2 of 2 tasks completed" in result.stdout
    tasks = project_tasks(api, project["id"])
    assert set(tasks) == {"jl-first", "jl-second"}
    assert tasks["jl-second"]["dependencies"] == [tasks["jl-first"]["id"]]
    assert tasks["jl-first"]["retry_attempts"] == 0
    assert tasks["jl-first"]["finished_at"] <= tasks["jl-second"]["started_at"]


@pytest.mark.parametrize("shape", ["list", "mapping"])
def test_json_document_and_yaml_mapping(
    live: ServerProcess, api: httpx.Client, tmp_path: Path, shape: str
) -> None:
    project = make_project(api, f"sub-doc-{shape}")
    items = [
        {"name": f"doc-{shape}-x", "command": "true"},
        {"name": f"doc-{shape}-y", "command": "true", "depends_on": f"doc-{shape}-x"},
    ]
    if shape == "list":
        path = write(tmp_path, "tasks.json", json.dumps(items, indent=2))
    else:
        path = write(tmp_path, "tasks.yml", yaml.safe_dump({"tasks": items}))
    result = cli(live.url, "submit", str(path), "--project", project["name"], "-o", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    tasks = project_tasks(api, project["id"])
    assert [t["name"] for t in printed] == [f"doc-{shape}-x", f"doc-{shape}-y"]
    assert printed == [get(api, f"/api/tasks/{t['id']}") for t in printed]
    assert tasks[f"doc-{shape}-y"]["dependencies"] == [tasks[f"doc-{shape}-x"]["id"]]


def test_a_failed_task_cancels_its_dependents_and_exits_1(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    project = make_project(api, "sub-fail")
    text = """\
- name: fail-ok
  command: echo fine
- name: fail-bad
  command: exit 1
  retry_attempts: 0
- name: fail-after
  command: echo never
  dependencies: [fail-bad]
"""
    path = write(tmp_path, "fail.yaml", text)
    result = tq("submit", str(path), "--project", "sub-fail", url=live.url)
    assert result.returncode == 1, result.stderr
    tasks = project_tasks(api, project["id"])
    bad, after = tasks["fail-bad"], tasks["fail-after"]
    # A summary, not a row per task: counts, each failure with its reason, how to list them.
    assert result.stdout.splitlines() == [
        "1 of 3 tasks completed (1 Cancelled, 1 Completed, 1 Failed)",
        f"  Failed {bad['id']} fail-bad: exit code 1",
        f"  Cancelled {after['id']} fail-after: dependency {bad['id']} ended Failed",
        "list them with: taskqueue tasks list --status Cancelled"
        " / taskqueue tasks list --status Failed",
        "every row: taskqueue submit --verbose, or -o json",
    ]
    verbose = tq("submit", str(path), "--project", "sub-fail", "--verbose", url=live.url)
    assert names_in(verbose.stdout) == ["fail-ok", "fail-bad", "fail-after"]
    assert names_in(verbose.stdout, "STATUS") == ["Completed", "Failed", "Cancelled"]
    assert names_in(verbose.stdout, "EXIT") == ["0", "1", "-"]
    tasks = project_tasks(api, project["id"])
    assert tasks["fail-ok"]["status"] == "Completed"
    assert tasks["fail-bad"]["status"] == "Failed"
    assert tasks["fail-after"]["status"] == "Cancelled"
    assert tasks["fail-after"]["started_at"] is None
    assert "Traceback" not in result.stderr


def test_no_wait_returns_at_once(live: ServerProcess, api: httpx.Client, tmp_path: Path) -> None:
    project = make_project(api, "sub-nowait")
    text = "- name: nw-slow\n  command: sleep 5\n- name: nw-next\n  command: 'true'\n"
    text += "  dependencies: [nw-slow]\n"
    path = write(tmp_path, "slow.yaml", text)
    result = cli(live.url, "submit", "--no-wait", str(path), "--project", "sub-nowait")
    try:
        assert result.exit_code == 0, result.output
        # Returned at once: both are still Pending (the first sleeps 5 s once it starts).
        assert "submitted 2 tasks" in result.stdout
        assert names_in(result.stdout) == ["nw-slow", "nw-next"]
        assert names_in(result.stdout, "STATUS") == ["Pending", "Pending"]
        tasks = project_tasks(api, project["id"])
        assert set(tasks) == {"nw-slow", "nw-next"}
        assert tasks["nw-next"]["status"] == "Pending"
        assert tasks["nw-next"]["dependencies"] == [tasks["nw-slow"]["id"]]
    finally:
        for task in project_tasks(api, project["id"]).values():
            api.post(f"/api/tasks/{task['id']}/cancel")

    as_json_out = cli(
        live.url, "submit", "--no-wait", str(path), "--project", "sub-nowait", "-o", "json"
    )
    assert as_json_out.exit_code == 0, as_json_out.output
    printed = json.loads(as_json_out.stdout)
    for task in printed:
        api.post(f"/api/tasks/{task['id']}/cancel")
    assert [t["name"] for t in printed] == ["nw-slow", "nw-next"]
    assert all(t["status"] == "Pending" for t in printed)
    assert printed[1]["dependencies"] == [printed[0]["id"]]


def test_dependency_on_an_existing_task_id(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    project = make_project(api, "sub-existing")
    existing = api.post(
        "/api/tasks", json={"name": "ex-before", "command": "true", "project_id": project["id"]}
    ).json()
    text = f"- name: ex-after\n  command: 'true'\n  dependencies: ['{existing['id']}']\n"
    result = tq(
        "submit", str(write(tmp_path, "e.yaml", text)), "--project", project["id"], url=live.url
    )
    assert result.returncode == 0, result.stderr
    tasks = project_tasks(api, project["id"])
    assert tasks["ex-after"]["dependencies"] == [existing["id"]]


def test_progress_bar_on_a_terminal(live: ServerProcess, api: httpx.Client, tmp_path: Path) -> None:
    """With stderr on a terminal, a progress bar counts the tasks; stdout keeps the summary."""
    text = "- name: bar-1\n  command: sleep 0.5\n- name: bar-2\n  command: sleep 1\n"
    path = write(tmp_path, "bar.yaml", text)
    env = sub_env({"TERM": "xterm-256color"})
    env.pop("NO_COLOR")
    code, stdout, shown = on_a_pty(
        ["--base-url", live.url, "submit", str(path)], env, stream="stderr", timeout=30
    )
    assert code == 0
    bar = ANSI.sub("", shown)
    assert "running" in bar
    assert "0/2" in bar
    assert "0 failed" in bar
    assert "ETA" in bar
    summary = stdout
    assert "2 of 2 tasks completed" in summary
    assert not ANSI.search(summary)  # stdout is a pipe: no colour there


# ------------------------------------------------------------------------------ bad files


BAD_FILES: list[tuple[str, str, list[str]]] = [
    (
        "cycle.yaml",
        "- {name: cy-a, command: 'true', dependencies: [cy-b]}\n"
        "- {name: cy-b, command: 'true', dependencies: [cy-c]}\n"
        "- {name: cy-c, command: 'true', dependencies: [cy-a]}\n",
        ["dependency cycle", "cy-a", "cy-b", "cy-c"],
    ),
    (
        "self.yaml",
        "- {name: self-a, command: 'true', dependencies: [self-a]}\n",
        ["dependency cycle", "self-a"],
    ),
    (
        "dup.yaml",
        "- {name: dup-a, command: 'true'}\n- {name: dup-a, command: 'false'}\n",
        ["two entries are named 'dup-a'"],
    ),
    (
        "bad.yaml",
        "- name: by-a\n  command: 'true'\n- name: [unclosed\n  command: x\n",
        ["invalid YAML", "line 3"],
    ),
    (
        "bad.jsonl",
        '{"name": "bj-a", "command": "true"}\n\n{"name": "bj-b", command}\n',
        ["line 3", "not JSON"],
    ),
    (
        "doc.json",
        '[\n  {"name": "jd-a", "command": "true"},\n  {"name": "jd-b", command: "x"}\n]\n',
        ["line 3"],
    ),
    ("empty.yaml", "", ["expected a list of tasks"]),
    ("scalar.json", "42\n", ["expected a list of tasks"]),
    ("noname.yaml", "- command: 'true'\n", ["entry 1 has no name"]),
    (
        "deps.yaml",
        "- {name: dl-a, command: 'true', dependencies: {x: 1}}\n",
        ["dependencies must be a list"],
    ),
]


@pytest.mark.parametrize(
    ("filename", "text", "expected"), BAD_FILES, ids=[case[0] for case in BAD_FILES]
)
def test_bad_files_are_usage_errors(
    live: ServerProcess,
    api: httpx.Client,
    tmp_path: Path,
    filename: str,
    text: str,
    expected: list[str],
) -> None:
    path = write(tmp_path, filename, text)
    before = task_count(api)
    result = tq("submit", str(path), url=live.url)
    assert result.returncode == 2, result.stderr
    assert_one_clear_error(result.stderr, *expected)
    assert result.stdout == ""
    assert task_count(api) == before


def test_a_missing_file_is_a_usage_error(live: ServerProcess, tmp_path: Path) -> None:
    result = tq("submit", str(tmp_path / "nope.yaml"), url=live.url)
    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "nope.yaml", "does not exist")


def test_an_entry_the_server_refuses_creates_nothing(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    text = (
        "- {name: ref-ok, command: 'true'}\n- {name: ref-bad, command: 'true', priority: Urgent}\n"
    )
    before = task_count(api)
    result = tq("submit", str(write(tmp_path, "refused.yaml", text)), url=live.url)
    assert result.returncode == 5, result.stderr
    assert_one_clear_error(result.stderr, "priority")
    assert task_count(api) == before


def test_a_refused_entry_is_named_as_in_the_file(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    """The entries are reordered before sending; the error must still say which entry is wrong."""
    text = """\
- name: third-entry
  command: 'true'
  dependencies: [second-entry]
- name: second-entry
  command: 'true'
  dependencies: [first-entry]
- name: first-entry
  command: 'true'
  priority: Urgent
"""
    before = task_count(api)
    result = tq("submit", str(write(tmp_path, "order.yaml", text)), url=live.url)
    assert result.returncode == 5, result.stderr
    line = assert_one_clear_error(result.stderr, "priority")
    assert "first-entry" in line or "entry 3" in line, line
    assert task_count(api) == before
