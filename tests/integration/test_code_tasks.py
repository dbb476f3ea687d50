"""Code tasks: code in a language instead of a command, routed to workers that offer it.

Every language this machine has (probed, as the workers probe) runs a program printing its
version; a worker offering only some languages never claims a task of another, and one that
offers it does; a language no live worker offers, or none of the table, is refused with a
422 naming those available. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskqueue.models import TaskCreate
from taskqueue.store import Store
from taskqueue.worker.toolchains import probe_languages
from tests.conftest import BIN, ServerProcess, run_store, wait_status, wait_until

#: A program printing its toolchain's version, per language of the table.
VERSION_PROGRAMS: dict[str, str] = {
    "python3": "import sys; print(sys.version)",
    "bash": 'echo "$BASH_VERSION"',
    "sh": "echo sh ok",
    "node": "console.log(process.version)",
    "ruby": "puts RUBY_VERSION",
    "perl": 'print "$^V\\n";',
    "php": "<?php echo PHP_VERSION, PHP_EOL;",
    "go": 'package main\nimport ("fmt"; "runtime")\n'
    "func main() { fmt.Println(runtime.Version()) }\n",
    "rust": 'fn main() { println!("rust ok"); }\n',
    "lua": "print(_VERSION)",
    "r": "cat(R.version.string, '\\n')",
    "awk": 'BEGIN { print "awk ok" }',
}
INSTALLED = sorted(probe_languages())


def _languages(api: httpx.Client) -> dict[str, dict[str, Any]]:
    response = api.get("/api/languages")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["languages"])
    return {entry["name"]: entry for entry in body["languages"]}


def test_every_installed_language_runs_and_prints_its_version(
    make_server: Callable[..., ServerProcess],
) -> None:
    assert {"python3", "bash", "sh", "perl", "awk"} <= set(INSTALLED)
    server = make_server("--workers", "4")
    with httpx.Client(base_url=server.url, timeout=60) as api:
        offered = _languages(api)
        assert sorted(n for n, e in offered.items() if e["workers"] == 1) == INSTALLED
        assert all(offered[name]["versions"] for name in INSTALLED)
        ids = {}
        for name in INSTALLED:
            body = {"name": f"version-{name}", "language": name, "code": VERSION_PROGRAMS[name]}
            made = api.post("/api/tasks", json=body)
            assert made.status_code == 201, made.text
            assert made.json()["language"] == name
            ids[name] = made.json()["id"]
        for name, task_id in ids.items():
            task = wait_status(api, task_id, timeout=120)
            assert task["status"] == "Completed", (name, task)
            assert task["result"]["stdout_tail"].strip(), (name, task)


def test_code_reads_its_input_and_writes_its_output_as_commands_do(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server("--workers", "1", "--languages", "py")
    code = (
        "import json, os, sys\n"
        "data = json.load(sys.stdin)\n"
        "same = json.load(open(os.environ['TASKQUEUE_INPUT']))\n"
        "json.dump({'sum': data['a'] + same['b'], 'file': __file__},"
        " open(os.environ['TASKQUEUE_OUTPUT'], 'w'))\n"
    )
    with httpx.Client(base_url=server.url, timeout=60) as api:
        body = {"name": "io", "language": "python", "code": code, "input": {"a": 1, "b": 2}}
        made = api.post("/api/tasks", json=body)
        assert made.status_code == 201, made.text
        task = wait_status(api, made.json()["id"])
        assert task["status"] == "Completed", task
        output = task["result"]["output"]
        assert output["sum"] == 3
        # The code's private file and directory are gone once the attempt is over.
        assert not Path(output["file"]).exists()
        assert not Path(output["file"]).parent.exists()


def test_a_language_no_live_worker_offers_is_refused_naming_those_available(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server("--workers", "1", "--languages", "bash,sh")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        refused = api.post("/api/tasks", json={"name": "p", "language": "python3", "code": "1"})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert "python3" in error["message"]
        assert "bash, sh" in error["message"]
        assert error["details"][0]["loc"] == ["language"]
        batch = {"tasks": [{"name": "a", "command": "true"},
                           {"name": "b", "language": "python3", "code": "1"}]}  # fmt: skip
        refused = api.post("/api/tasks/batch", json=batch)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["loc"] == ["tasks", 1, "language"]
        unknown = api.post("/api/tasks", json={"name": "c", "language": "cobol", "code": "x"})
        assert unknown.status_code == 422, unknown.text
        assert "cobol" in unknown.text
        assert "python3" in unknown.text
        # On a queue no worker serves, so that it stays Pending (editable).
        body = {"name": "ok", "language": "sh", "code": "true", "queue": "nobody"}
        made = api.post("/api/tasks", json=body)
        assert made.status_code == 201, made.text
        changed = api.put(f"/api/tasks/{made.json()['id']}", json={"command": "true"})
        assert changed.status_code == 409, changed.text  # a conflict with what is stored
        assert changed.json()["error"]["details"][0]["loc"] == ["command"]
        assert _languages(api)["python3"]["workers"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "n"}, "command"),
        ({"name": "n", "command": "true", "language": "sh", "code": "true"}, "command"),
        ({"name": "n", "language": "sh"}, "code"),
        ({"name": "n", "code": "true"}, "language"),
    ],
)
def test_a_task_has_a_command_or_code_never_both_nor_neither(
    server: ServerProcess, body: dict[str, Any], field: str
) -> None:
    response = httpx.post(f"{server.url}/api/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"][-1] == field


def test_the_claim_takes_code_tasks_only_in_the_languages_offered(db_url: str) -> None:
    async def body(store: Store) -> None:
        items = [
            TaskCreate(name="code", language="python3", code="print(1)"),
            TaskCreate(name="cmd", command="true"),
        ]
        await store.create_tasks(items)
        taken = await store.claim("w-bash", ["default"], 10, 30.0, ["bash"])
        assert [t.name for t in taken] == ["cmd"]
        assert not await store.has_runnable(["default"], ["bash"])
        assert not await store.claim("w-none", ["default"], 10, 30.0, [])
        assert await store.has_runnable(["default"], ["python3"])
        [code] = await store.claim("w-py", ["default"], 10, 30.0, ["python3", "bash"])
        assert (code.language, code.code, code.command) == ("python3", "print(1)", "")

    run_store(db_url, body)


@contextlib.contextmanager
def _bash_server_and_python3_worker(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> Iterator[tuple[httpx.Client, str]]:
    """A server whose workers offer only bash, and a worker offering only python3: the API
    and the python3 worker's id, once it is seen."""
    server = make_server("--workers", "4", "--languages", "bash")
    log = (tmp_path / "worker.log").open("ab")
    worker = subprocess.Popen(
        [str(BIN), "worker", "--db", str(server.db), "--languages", "python3",
         "--concurrency", "1", "--presence-interval", "0.2"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            wait_until(lambda: _languages(api)["python3"]["workers"] == 1, 30, "python3 worker")
            workers = {w["pid"]: w["id"] for w in api.get("/api/workers").json()["workers"]}
            yield api, workers[worker.pid]
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()


def test_a_worker_without_the_language_never_claims_it_and_one_with_it_does(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    with _bash_server_and_python3_worker(make_server, tmp_path) as (api, python3_worker):
        code = {"language": "python3", "code": "print('routed')"}
        ids = [api.post("/api/tasks", json={"name": f"py{i}", **code}).json()["id"]
               for i in range(5)]  # fmt: skip
        for task_id in ids:
            task = wait_status(api, task_id)
            assert task["status"] == "Completed", task
            attempts = api.get(f"/api/tasks/{task_id}/attempts").json()["attempts"]
            assert [a["worker_id"] for a in attempts] == [python3_worker]


def test_each_phase_of_a_workflow_goes_to_a_worker_with_its_language(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    with _bash_server_and_python3_worker(make_server, tmp_path) as (api, python3_worker):
        phases = [
            {"name": "first", "language": "bash", "code": "echo one"},
            {"name": "second", "language": "python3", "code": "print('two')"},
            {"name": "third", "language": "bash", "code": "echo three"},
        ]
        made = api.post("/api/tasks", json={"name": "wf", "task_type": "Workflow",
                                            "phases": phases})  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["language"] == "bash"
        task = wait_status(api, made.json()["id"])
        assert task["status"] == "Completed", task
        attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
        by_phase = {a["phase"]: a["worker_id"] for a in attempts}
        assert by_phase["second"] == python3_worker, attempts
        assert by_phase["first"] != python3_worker, attempts
        assert by_phase["third"] != python3_worker, attempts
        assert [p["status"] for p in task["phases"]] == ["Completed"] * 3
