"""Function definitions against a real server: schemas, versions, execute and batches.

A definition never runs by itself; executing it validates the input against its schema (a 422
with the JSON path of each error, nothing made), runs a child task and checks its output. A
batch holds its items back in the database so no more than ``max_concurrency`` run at once,
whichever workers claim them, and survives a kill -9 of the server.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BIN, ServerProcess, query_db, run_store, wait_until

#: Reads its input (stdin), writes {"text": upper-cased} to $TASKQUEUE_OUTPUT.
UPPER = (
    "import json, os, sys\n"
    "data = json.load(sys.stdin)\n"
    "json.dump({'text': data['text'].upper()}, open(os.environ['TASKQUEUE_OUTPUT'], 'w'))\n"
)
#: Sleeps for its input's "sleep" seconds, then exits with its "code".
SLEEP_EXIT = (
    "import json, sys, time\n"
    "data = json.load(sys.stdin)\n"
    "time.sleep(data.get('sleep', 0))\n"
    "sys.exit(data.get('code', 0))\n"
)
TEXT_IN = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1}},
    "required": ["text"],
    "additionalProperties": False,
}
TEXT_OUT = {
    "type": "object",
    "properties": {"text": {"type": "string", "maxLength": 5}},
    "required": ["text"],
}


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def define(api: httpx.Client, code: str = UPPER, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "fn",
        "task_type": "Function",
        "language": "python3",
        "code": code,
        "retry_attempts": 0,
        **fields,
    }
    response = api.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def execute(api: httpx.Client, task_id: str, status: int = 200, **body: Any) -> dict[str, Any]:
    response = api.post(f"/api/tasks/{task_id}/execute", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


def count_tasks(server: ServerProcess) -> int:
    return int(query_db(server.db, "SELECT count(*) FROM tasks")[0][0])


# ------------------------------------------------------------------------------ definitions


def test_a_definition_is_version_1_never_runs_and_is_not_counted_as_work(
    api: httpx.Client,
) -> None:
    made = define(api, input_schema=TEXT_IN, output_schema=TEXT_OUT)
    assert (made["task_type"], made["version"]) == ("Function", 1)
    assert (made["input_schema"], made["output_schema"]) == (TEXT_IN, TEXT_OUT)
    time.sleep(1.0)  # a worker had every chance to take it
    again = api.get(f"/api/tasks/{made['id']}").json()
    assert (again["status"], again["attempt"]) == ("Pending", 0)
    assert api.get(f"/api/tasks/{made['id']}/attempts").json()["attempts"] == []
    assert api.get("/api/health").json()["tasks"].get("Pending", 0) == 0
    listed = api.get("/api/tasks", params={"task_type": "Function"}).json()
    assert [t["id"] for t in listed["tasks"]] == [made["id"]]


def test_a_definition_cannot_be_cancelled_nor_depended_on(
    api: httpx.Client, server: ServerProcess
) -> None:
    made = define(api)
    cancel = api.post(f"/api/tasks/{made['id']}/cancel")
    assert cancel.status_code == 409, cancel.text
    assert "Function definition" in cancel.json()["error"]["message"]
    before = count_tasks(server)
    dependent = api.post(
        "/api/tasks", json={"name": "after", "command": "true", "dependencies": [made["id"]]}
    )
    assert dependent.status_code == 409, dependent.text
    assert dependent.json()["error"]["details"][0]["loc"] == ["dependencies", 0]
    batch = api.post(
        "/api/tasks/batch",
        json={
            "tasks": [
                {"name": "f", "ref": "f", "task_type": "Function", "command": "true"},
                {"name": "g", "command": "true", "dependencies": ["f"]},
            ]
        },
    )
    assert batch.status_code == 409, batch.text
    assert batch.json()["error"]["details"][0]["loc"] == ["tasks", 1, "dependencies", 0]
    assert count_tasks(server) == before


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        pytest.param({"type": "nope"}, "not a valid JSON Schema at $.type", id="bad-type"),
        pytest.param({"minLength": -1}, "not a valid JSON Schema", id="negative"),
        pytest.param({"$ref": "http://127.0.0.1:9/x.json"}, "outside the schema", id="remote"),
        pytest.param(
            {"$schema": "http://json-schema.org/draft-07/schema#"}, "draft 2020-12", id="draft7"
        ),
    ],
)
def test_a_schema_that_cannot_be_used_is_refused_and_nothing_is_made(
    api: httpx.Client, server: ServerProcess, schema: dict[str, Any], says: str
) -> None:
    before = count_tasks(server)
    for field in ("input_schema", "output_schema"):
        body = {"name": "f", "task_type": "Function", "command": "true", field: schema}
        response = api.post("/api/tasks", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["details"][0]["loc"] == [field]
        assert says in error["details"][0]["msg"], error
    made = define(api, input_schema=TEXT_IN)
    refused = api.put(f"/api/tasks/{made['id']}", json={"input_schema": schema})
    assert refused.status_code == 422, refused.text
    assert api.get(f"/api/tasks/{made['id']}").json()["input_schema"] == TEXT_IN
    assert count_tasks(server) == before + 1


def test_schemas_belong_to_definitions(api: httpx.Client) -> None:
    simple = {"name": "s", "command": "true", "output_schema": {"type": "object"}}
    response = api.post("/api/tasks", json=simple)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["output_schema"]
    task = api.post("/api/tasks", json={"name": "s", "command": "true"}).json()
    changed = api.put(f"/api/tasks/{task['id']}", json={"input_schema": {"type": "object"}})
    assert changed.status_code == 409, changed.text
    assert changed.json()["error"]["details"][0]["loc"] == ["input_schema"]
    response = api.post(f"/api/tasks/{task['id']}/execute", json={"input": {}})
    assert response.status_code == 409, response.text
    assert "not a Function definition" in response.json()["error"]["message"]


# ------------------------------------------------------------------------------ execute


def test_execute_returns_the_output_and_records_the_definition_and_version(
    api: httpx.Client,
) -> None:
    made = define(api, input_schema=TEXT_IN, output_schema=TEXT_OUT)
    result = execute(api, made["id"], input={"text": "abc"})
    assert result["status"] == "Completed", result
    assert (result["output"], result["task_id"], result["version"]) == (
        {"text": "ABC"},
        made["id"],
        1,
    )
    assert (result["attempts"], result["exit_code"], result["validated"]) == (1, 0, True)
    assert isinstance(result["duration_ms"], int)
    child = api.get(f"/api/tasks/{result['execution_id']}").json()
    assert (child["task_type"], child["parent_id"], child["version"]) == (
        "Simple",
        made["id"],
        1,
    )
    again = api.get(f"/api/executions/{result['execution_id']}").json()
    assert again == result


def test_an_input_breaking_the_schema_is_a_422_with_each_path_and_nothing_runs(
    api: httpx.Client, server: ServerProcess
) -> None:
    made = define(api, input_schema=TEXT_IN)
    before = count_tasks(server)
    response = api.post(
        f"/api/tasks/{made['id']}/execute", json={"input": {"text": 5, "extra": True}}
    )
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    by_path = {d["path"]: d for d in details}
    assert by_path["$.text"]["loc"] == ["input", "text"]
    assert "string" in by_path["$.text"]["msg"]
    assert any("extra" in d["msg"] for d in details), details
    missing = api.post(f"/api/tasks/{made['id']}/execute", json={"input": {}})
    assert missing.status_code == 422
    assert "text" in missing.json()["error"]["details"][0]["msg"]
    assert count_tasks(server) == before


def test_an_output_breaking_the_schema_fails_the_execution_with_the_path(
    api: httpx.Client,
) -> None:
    made = define(api, output_schema=TEXT_OUT)
    result = execute(api, made["id"], input={"text": "far too long"})
    assert (result["status"], result["failure_reason"]) == ("Failed", "output_invalid")
    assert "$.text" in result["error"], result
    assert result["output"] is None


def test_trusted_outputs_are_checked_only_when_forced(api: httpx.Client) -> None:
    made = define(api, output_schema=TEXT_OUT, validate_output=False)
    trusted = execute(api, made["id"], input={"text": "far too long"})
    assert (trusted["status"], trusted["validated"]) == ("Completed", False)
    assert trusted["output"] == {"text": "FAR TOO LONG"}
    forced = execute(api, made["id"], input={"text": "far too long"}, force_validation=True)
    assert (forced["status"], forced["validated"]) == ("Failed", True)


def test_past_timeout_ms_execute_answers_202_and_the_execution_is_polled_to_its_end(
    api: httpx.Client,
) -> None:
    made = define(api, code=SLEEP_EXIT)
    started = execute(api, made["id"], 202, input={"sleep": 1.0}, timeout_ms=50)
    assert started["status"] in ("Pending", "Running")
    path = f"/api/executions/{started['execution_id']}"
    assert api.get(path).json()["status"] in ("Pending", "Running")
    ended = api.get(path, params={"timeout_ms": 30_000}).json()
    assert (ended["status"], ended["exit_code"]) == ("Completed", 0)


def test_a_failing_body_ends_failed_with_its_reason(api: httpx.Client) -> None:
    made = define(api, code=SLEEP_EXIT)
    result = execute(api, made["id"], input={"code": 3})
    assert (result["status"], result["failure_reason"], result["exit_code"]) == (
        "Failed",
        "exit_code",
        3,
    )
    assert result["error"] == "exit code 3"


def test_a_repeated_execute_with_its_idempotency_key_runs_once(
    api: httpx.Client, server: ServerProcess
) -> None:
    made = define(api)
    headers = {"Idempotency-Key": "exec-1"}
    body = {"input": {"text": "once"}}
    first = api.post(f"/api/tasks/{made['id']}/execute", json=body, headers=headers).json()
    before = count_tasks(server)
    second = api.post(f"/api/tasks/{made['id']}/execute", json=body, headers=headers).json()
    assert second["execution_id"] == first["execution_id"]
    assert count_tasks(server) == before


def test_unknown_things_are_404_and_an_unknown_version_a_409(api: httpx.Client) -> None:
    missing = "01a23810-0000-7000-8000-000000000000"
    assert api.post(f"/api/tasks/{missing}/execute", json={}).status_code == 404
    assert api.get(f"/api/executions/{missing}").status_code == 404
    assert api.get(f"/api/batches/{missing}").status_code == 404
    made = define(api)
    response = api.post(f"/api/tasks/{made['id']}/execute", json={"version": 7})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["version"]
    assert "versions 1 to 1" in response.json()["error"]["message"]
    assert api.get(f"/api/tasks/{made['id']}", params={"version": 2}).status_code == 409
    simple = api.post("/api/tasks", json={"name": "s", "command": "true"}).json()
    assert api.get(f"/api/executions/{simple['id']}").status_code == 404


# ------------------------------------------------------------------------------ versions


def test_an_update_of_the_body_makes_a_version_and_old_versions_still_execute(
    api: httpx.Client,
) -> None:
    made = define(api, input_schema=TEXT_IN)
    task_id = made["id"]
    renamed = api.put(f"/api/tasks/{task_id}", json={"description": "same body"}).json()
    assert renamed["version"] == 1  # not a body change
    lower = UPPER.replace(".upper()", ".lower()")
    changed = api.put(f"/api/tasks/{task_id}", json={"code": lower}).json()
    assert changed["version"] == 2
    schema = {**TEXT_IN, "properties": {"text": {"type": "string", "maxLength": 3}}}
    assert api.put(f"/api/tasks/{task_id}", json={"input_schema": schema}).json()["version"] == 3
    versions = api.get(f"/api/tasks/{task_id}/versions").json()
    assert [v["version"] for v in versions["versions"]] == [1, 2, 3]
    assert versions["versions"][0]["code"] == UPPER
    assert versions["versions"][1]["code"] == lower
    assert versions["versions"][2]["input_schema"] == schema
    at_1 = api.get(f"/api/tasks/{task_id}", params={"version": 1}).json()
    assert (at_1["version"], at_1["code"], at_1["description"]) == (1, UPPER, "same body")
    old = execute(api, task_id, input={"text": "Long Text"}, version=1)
    assert (old["version"], old["output"]) == (1, {"text": "LONG TEXT"})
    new = api.post(f"/api/tasks/{task_id}/execute", json={"input": {"text": "Long Text"}})
    assert new.status_code == 422  # version 3's schema: at most 3 characters
    current = execute(api, task_id, input={"text": "AbC"})
    assert (current["version"], current["output"]) == (3, {"text": "abc"})
    simple = api.post("/api/tasks", json={"name": "s", "command": "true"}).json()
    assert api.get(f"/api/tasks/{simple['id']}/versions").status_code == 409


# ------------------------------------------------------------------------------ batches


def _batch(api: httpx.Client, task_id: str, status: int = 200, **body: Any) -> dict[str, Any]:
    response = api.post(f"/api/tasks/{task_id}/batch-execute", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


def _intervals(api: httpx.Client, batch: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    spans = []
    for item in batch["results"]:
        attempts = api.get(f"/api/tasks/{item['execution_id']}/attempts").json()["attempts"]
        for attempt in attempts:
            if attempt["finished_at"] is not None:
                spans.append(
                    (
                        datetime.fromisoformat(attempt["started_at"]),
                        datetime.fromisoformat(attempt["finished_at"]),
                    )
                )
    return spans


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def test_the_simple_form_returns_every_item_in_order(api: httpx.Client) -> None:
    made = define(api, input_schema=TEXT_IN, output_schema=TEXT_OUT)
    inputs = [{"text": "a"}, {"text": "much too long"}, {"text": "c"}]
    batch = _batch(api, made["id"], inputs=inputs, max_concurrency=2)
    assert batch["status"] == "Completed"
    assert (batch["total_items"], batch["success_count"], batch["failure_count"]) == (3, 2, 1)
    assert [r["id"] for r in batch["results"]] == ["0", "1", "2"]
    assert [r["output"] for r in batch["results"]] == [{"text": "A"}, None, {"text": "C"}]
    assert batch["results"][1]["failure_reason"] == "output_invalid"


def test_a_batch_with_a_bad_input_is_refused_whole(
    api: httpx.Client, server: ServerProcess
) -> None:
    made = define(api, input_schema=TEXT_IN)
    before = count_tasks(server)
    items = [{"id": "ok", "input": {"text": "x"}}, {"id": "bad", "input": {"text": 1}}]
    response = api.post(f"/api/tasks/{made['id']}/batch-execute", json={"items": items})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["items", 1, "input", "text"]
    twice = [{"id": "same", "input": {"text": "x"}}, {"id": "same", "input": {"text": "y"}}]
    response = api.post(f"/api/tasks/{made['id']}/batch-execute", json={"items": twice})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["items", 1, "id"]
    both = api.post(
        f"/api/tasks/{made['id']}/batch-execute", json={"items": items[:1], "inputs": [{}]}
    )
    assert both.status_code == 422
    other = api.post(
        f"/api/tasks/{made['id']}/batch-execute",
        json={"task_id": "01a23810-0000-7000-8000-000000000000", "inputs": [{"text": "x"}]},
    )
    assert other.status_code == 409
    assert other.json()["error"]["details"][0]["loc"] == ["task_id"]
    assert count_tasks(server) == before


def test_max_concurrency_holds_across_every_worker(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = make_server("--workers", "6")
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [str(BIN), "worker", "--db", str(server.db), "--concurrency", "4"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=server.url, timeout=120) as api:
                wait_until(
                    lambda: len(api.get("/api/workers").json()["workers"]) >= 2, 30, "2 workers"
                )
                made = define(api, code=SLEEP_EXIT)
                inputs = [{"sleep": 0.3} for _ in range(12)]
                batch = _batch(
                    api, made["id"], inputs=inputs, max_concurrency=3, timeout_ms=120_000
                )
                assert (batch["status"], batch["success_count"]) == ("Completed", 12), batch
                spans = _intervals(api, batch)
                assert len(spans) == 12
                most = _most_at_once(spans)
                assert 2 <= most <= 3, spans
        finally:
            worker.terminate()
            worker.wait(30)


def test_stop_on_first_error_skips_what_has_not_started(api: httpx.Client) -> None:
    made = define(api, code=SLEEP_EXIT)
    items = [
        {"id": "a", "input": {"sleep": 0.1}},
        {"id": "b", "input": {"code": 1}},
        {"id": "c", "input": {}},
        {"id": "d", "input": {}},
    ]
    batch = _batch(api, made["id"], items=items, max_concurrency=1, stop_on_first_error=True)
    assert batch["status"] == "Completed"
    assert [(r["id"], r["status"], r["skipped"]) for r in batch["results"]] == [
        ("a", "Completed", False),
        ("b", "Failed", False),
        ("c", "Cancelled", True),
        ("d", "Cancelled", True),
    ]
    assert (batch["success_count"], batch["failure_count"], batch["skipped_count"]) == (1, 1, 2)
    assert "item 1 ('b') failed" in batch["results"][2]["error"]
    for item in batch["results"][2:]:
        attempts = api.get(f"/api/tasks/{item['execution_id']}/attempts").json()["attempts"]
        assert attempts == []  # never started


def test_without_stop_on_first_error_every_item_runs(api: httpx.Client) -> None:
    made = define(api, code=SLEEP_EXIT)
    inputs = [{"code": 1}, {}, {"code": 2}, {}]
    batch = _batch(api, made["id"], inputs=inputs, max_concurrency=1)
    assert [r["status"] for r in batch["results"]] == ["Failed", "Completed", "Failed", "Completed"]
    assert batch["skipped_count"] == 0


def test_past_timeout_ms_a_batch_answers_202_and_is_polled(api: httpx.Client) -> None:
    made = define(api, code=SLEEP_EXIT)
    batch = _batch(api, made["id"], 202, inputs=[{"sleep": 0.5}] * 3, max_concurrency=1,
                   timeout_ms=50)  # fmt: skip
    assert batch["status"] == "Running"
    ended = api.get(f"/api/batches/{batch['batch_id']}", params={"timeout_ms": 60_000}).json()
    assert (ended["status"], ended["success_count"]) == ("Completed", 3)


def test_a_batch_survives_a_kill_9_of_the_server(
    make_server: Callable[..., ServerProcess],
) -> None:
    args = ("--workers", "4", "--lease-seconds", "2")
    server = make_server(*args)
    with httpx.Client(base_url=server.url, timeout=60) as api:
        made = define(api, code=SLEEP_EXIT, retry_delay=0, retry_attempts=3)
        batch = _batch(api, made["id"], 202, inputs=[{"sleep": 0.4}] * 8, max_concurrency=2,
                       timeout_ms=0)  # fmt: skip
        batch_path = f"/api/batches/{batch['batch_id']}"
        wait_until(lambda: api.get(batch_path).json()["success_count"] >= 2, 60, "two items to end")
    server.kill9()
    restarted = make_server(*args, db=server.db)
    with httpx.Client(base_url=restarted.url, timeout=120) as api:
        deadline = time.monotonic() + 120
        ended = api.get(batch_path, params={"timeout_ms": 60_000}).json()
        while ended["status"] != "Completed" and time.monotonic() < deadline:
            ended = api.get(batch_path, params={"timeout_ms": 60_000}).json()
        assert (ended["status"], ended["success_count"]) == ("Completed", 8), ended
        assert [r["id"] for r in ended["results"]] == [str(i) for i in range(8)]
        assert _most_at_once(_intervals(api, ended)) <= 2


def test_housekeeping_prunes_a_batch_once_its_items_are_gone(db_url: str) -> None:
    from taskqueue.models import TaskCreate, TaskType
    from taskqueue.store import Outcome, Store

    async def body(store: Store) -> tuple[dict[str, int], dict[str, int]]:
        [fn] = await store.create_tasks(
            [TaskCreate(name="f", command="true", task_type=TaskType.FUNCTION)]
        )
        definition = await store.functions.definition(fn["id"], None)
        done = await store.functions.start_batch(definition, [("a", None, False)], 1, False)
        await store.functions.start_batch(definition, [("b", None, False)], 1, False)
        [held] = await store.claim("w", ["default"], 1, 30)
        await store.finish(held.id, held.lease_token, Outcome(True, exit_code=0))
        assert (await store.functions.batch(done))["status"] == "Completed"
        young = await store.prune(retention_s=3600)
        await asyncio.sleep(0.01)
        return young, await store.prune(retention_s=0)

    young, pruned = run_store(db_url, body)
    assert (young["batches"], pruned["tasks"], pruned["batches"]) == (0, 1, 1)
    assert query_db(db_url, "SELECT count(*) FROM batches") == [(1,)]  # its item has not run
    assert query_db(db_url, "SELECT count(*) FROM batch_items") == [(1,)]
