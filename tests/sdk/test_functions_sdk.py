"""Function tasks through both clients (seed 000's flow), against a real server and its workers.

A definition's body here is a ``python3 -c`` command that reads its input from the file named
by ``$TASKQUEUE_INPUT`` and writes its output to the one named by ``$TASKQUEUE_OUTPUT``. Every
definition is made with ``retry_attempts=0``, so a failing execution fails at once. The wire
tests at the end answer from an ``httpx.MockTransport``: they check what the clients send and
how they wait, with no server.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

import taskqueue.exceptions
from taskqueue import (
    AsyncTaskQueueClient,
    BatchExecuteItem,
    BatchExecuteRequest,
    BatchExecuteResponse,
    ExecutionError,
    ExecutionResult,
    TaskQueueClient,
    TaskStatus,
    TaskType,
    TaskVersion,
    ValidationError,
)
from taskqueue.client import _async_functions
from tests.conftest import ServerProcess
from tests.sdk.blocking import sync_and_async_client

#: Upper-cases ``text``; exits 4 (no output) when ``text`` is "fail".
UPPER_PY = (
    "import json, os, sys\n"
    "d = json.load(open(os.environ['TASKQUEUE_INPUT']))\n"
    "if d['text'] == 'fail':\n"
    "    print('asked to fail', file=sys.stderr); sys.exit(4)\n"
    "json.dump({'upper': d['text'].upper(), 'n': len(d['text'])},"
    " open(os.environ['TASKQUEUE_OUTPUT'], 'w'))\n"
)
UPPER = f"python3 -c {shlex.quote(UPPER_PY)}"
#: The same output, reversed instead: version 2 of a definition.
REVERSE = "python3 -c " + shlex.quote(UPPER_PY.replace(".upper()", "[::-1]"))
#: The same, a second and a half later.
SLOW = f"sleep 1.5; {UPPER}"
#: An output that does not match OUT.
WRONG_PY = "import json, os; json.dump({'upper': 1}, open(os.environ['TASKQUEUE_OUTPUT'], 'w'))"
WRONG = f"python3 -c {shlex.quote(WRONG_PY)}"

IN = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
OUT = {
    "type": "object",
    "properties": {"upper": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["upper"],
}


client = sync_and_async_client


def define(client: Any, command: str = UPPER, **fields: Any) -> Any:
    """A definition of ``command`` with the schemas IN and OUT (unless given), run once."""
    name = f"fn-{uuid.uuid4().hex[:8]}"
    given = {"input_schema": IN, "output_schema": OUT, "retry_attempts": 0, **fields}
    return client.create_task(name=name, description="upper-cases text", command=command, **given)


# ------------------------------------------------------------------------------ executions


def test_a_definition_with_schemas_executes_and_answers_its_output(client: Any) -> None:
    task = define(client)
    assert task.task_type is TaskType.FUNCTION  # schemas given: a definition
    assert (task.version, task.input_schema, task.output_schema) == (1, IN, OUT)
    assert task.description == "upper-cases text"

    result = client.execute(task.id, {"text": "hello"})
    assert isinstance(result, ExecutionResult)
    assert result.status is TaskStatus.COMPLETED
    assert result.success
    assert result.output == {"upper": "HELLO", "n": 5}
    assert result.input == {"text": "hello"}
    assert (result.task_id, result.version) == (task.id, 1)
    assert result.validated  # checked against OUT
    assert result.error is None
    assert result.failure_reason is None
    again = client.get_execution(result.execution_id)
    assert (again.execution_id, again.status, again.output) == (
        result.execution_id,
        TaskStatus.COMPLETED,
        {"upper": "HELLO", "n": 5},
    )


def test_the_command_is_still_the_second_positional_argument(client: Any) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    simple = client.create_task(name, "true", queue="parked")
    assert (simple.task_type, simple.command) == (TaskType.SIMPLE, "true")
    definition = client.create_task(f"{name}-fn", UPPER, task_type="Function", retry_attempts=0)
    assert definition.task_type is TaskType.FUNCTION
    assert client.execute(definition.id, {"text": "ab"}).output == {"upper": "AB", "n": 2}


def test_an_input_that_does_not_match_the_schema_names_its_path(client: Any) -> None:
    task = define(client)
    with pytest.raises(ValidationError) as refused:
        client.execute(task.id, {"text": 5})
    assert refused.value.status_code == 422
    # The path of the field in the body: ["input", "text"] (the brief's contract also put a
    # leading "body"; the server follows the other routes' convention, without it).
    locs = [detail["loc"][-2:] for detail in refused.value.errors]
    assert ["input", "text"] in locs, refused.value.errors
    assert all(detail["type"] == "schema" for detail in refused.value.errors)
    with pytest.raises(ValidationError) as extra:
        client.execute(task.id, {"text": "a", "other": 1})
    assert extra.value.status_code == 422
    assert all("input" in detail["loc"] for detail in extra.value.errors)


def test_a_failing_body_raises_execution_error_with_the_execution(client: Any) -> None:
    task = define(client)
    with pytest.raises(ExecutionError) as failed:
        client.execute(task.id, {"text": "fail"})
    error = failed.value
    assert isinstance(error, taskqueue.exceptions.ExecutionError)
    assert error.result.status is TaskStatus.FAILED
    assert error.execution_id == str(error.result.execution_id)
    assert error.result.failure_reason is not None
    assert error.failure_reason == error.result.failure_reason.value
    assert error.result.exit_code == 4
    assert error.execution_id in str(error)
    assert "Failed" in str(error)
    assert error.result.failure_reason.value in str(error)
    # Asked for by id, the failed execution is an answer, not an exception.
    seen = client.get_execution(error.execution_id)
    assert seen.status is TaskStatus.FAILED
    assert not seen.success


def test_an_output_that_does_not_match_its_schema_fails_the_execution(client: Any) -> None:
    checked = define(client, WRONG)
    with pytest.raises(ExecutionError) as failed:
        client.execute(checked.id, {"text": "x"})
    assert failed.value.result.status is TaskStatus.FAILED
    trusted = define(client, WRONG, validate_output=False)
    result = client.execute(trusted.id, {"text": "x"})
    assert (result.status, result.output, result.validated) == (
        TaskStatus.COMPLETED,
        {"upper": 1},
        False,
    )
    with pytest.raises(ExecutionError):
        client.execute(trusted.id, {"text": "x"}, force_validation=True)


def test_a_short_timeout_answers_the_running_execution_to_wait_for(client: Any) -> None:
    task = define(client, SLOW)
    started = client.execute(task.id, {"text": "later"}, timeout_ms=0)
    assert started.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    assert started.output is None
    now = client.get_execution(started.execution_id)
    assert now.status in (TaskStatus.PENDING, TaskStatus.RUNNING)  # no wait asked: at once
    done = client.get_execution(started.execution_id, timeout_ms=60_000)
    assert done.status is TaskStatus.COMPLETED
    assert done.output == {"upper": "LATER", "n": 5}
    # Without timeout_ms, execute itself waits for the slow body.
    assert client.execute(task.id, {"text": "wait"}).output == {"upper": "WAIT", "n": 4}


def test_each_change_of_the_body_or_schemas_is_a_new_version(client: Any) -> None:
    task = define(client)
    changed = client.update_task(task.id, command=REVERSE)
    assert changed.version == 2
    versions = client.get_task_versions(task.id)
    assert [v.version for v in versions] == [1, 2]
    assert all(isinstance(v, TaskVersion) and v.task_id == task.id for v in versions)
    assert [v.command for v in versions] == [UPPER, REVERSE]
    assert versions[0].input_schema == IN
    assert client.get_task(task.id, version=1).command == UPPER
    assert client.get_task(task.id).command == REVERSE
    assert client.execute(task.id, {"text": "abc"}).output == {"upper": "cba", "n": 3}
    old = client.execute(task.id, {"text": "abc"}, version=1)
    assert (old.version, old.output) == (1, {"upper": "ABC", "n": 3})


# ------------------------------------------------------------------------------ batches


def test_a_simple_batch_answers_every_item_in_input_order(client: Any) -> None:
    task = define(client)
    texts = ["a", "fail", "ccc", "dd"]
    batch = client.batch_execute(task.id, [{"text": t} for t in texts], max_concurrency=2)
    assert isinstance(batch, BatchExecuteResponse)
    assert batch.status == "Completed"
    assert (batch.total_items, batch.success_count, batch.failure_count) == (4, 3, 1)
    assert (batch.task_id, batch.max_concurrency, batch.skipped_count) == (task.id, 2, 0)
    assert [r.id for r in batch.results] == ["0", "1", "2", "3"]
    assert [r.index for r in batch.results] == [0, 1, 2, 3]
    assert [r.success for r in batch.results] == [True, False, True, True]
    assert [r.output for r in batch.results if r.success] == [
        {"upper": "A", "n": 1},
        {"upper": "CCC", "n": 3},
        {"upper": "DD", "n": 2},
    ]
    failed = batch.results[1]
    assert failed.status is TaskStatus.FAILED
    assert failed.failure_reason is not None
    again = client.get_batch(batch.batch_id)
    assert [r.id for r in again.results] == ["0", "1", "2", "3"]


def test_an_advanced_batch_keeps_the_callers_ids_in_order(client: Any) -> None:
    task = define(client)
    items = [BatchExecuteItem(id=f"doc-{n}", input={"text": "x" * n}) for n in (3, 1, 2)]
    batch = client.batch_execute_advanced(BatchExecuteRequest(task_id=task.id, items=items))
    assert batch.status == "Completed"
    assert [r.id for r in batch.results] == ["doc-3", "doc-1", "doc-2"]
    assert [r.output["n"] for r in batch.results] == [3, 1, 2]
    assert batch.success_count == 3


def test_camel_case_fields_build_a_batch_request() -> None:
    task_id = uuid.uuid4()
    request = BatchExecuteRequest.model_validate(
        {
            "taskId": str(task_id),
            "items": [{"id": "a", "input": 1, "forceValidation": True}],
            "maxConcurrency": 3,
            "stopOnFirstError": True,
            "timeoutMs": 500,
        }
    )
    assert (request.task_id, request.max_concurrency, request.stop_on_first_error) == (
        task_id,
        3,
        True,
    )
    assert request.timeout_ms == 500
    assert request.items is not None
    assert request.items[0].force_validation is True
    snake = BatchExecuteRequest(task_id=task_id, inputs=[1, 2], max_concurrency=3)
    assert [item.id for item in snake.item_list()] == ["0", "1"]


def test_stop_on_first_error_skips_the_items_not_started(client: Any) -> None:
    task = define(client)
    request = BatchExecuteRequest.model_validate(
        {
            "taskId": str(task.id),
            "inputs": [{"text": "fail"}, {"text": "b"}, {"text": "c"}],
            "maxConcurrency": 1,
            "stopOnFirstError": True,
        }
    )
    batch = client.batch_execute_advanced(request)
    assert batch.status == "Completed"
    assert batch.stop_on_first_error
    assert batch.failure_count == 1
    assert not batch.results[0].success
    assert batch.skipped_count >= 1
    assert batch.results[-1].skipped
    assert batch.success_count + batch.failure_count + batch.skipped_count == 3


def test_an_advanced_batch_with_a_timeout_answers_while_running(client: Any) -> None:
    task = define(client, SLOW)
    request = BatchExecuteRequest(task_id=task.id, inputs=[{"text": "p"}, {"text": "q"}])
    started = client.batch_execute_advanced(request.model_copy(update={"timeout_ms": 0}))
    assert started.status == "Running"
    assert [r.id for r in started.results] == ["0", "1"]
    done = client.get_batch(started.batch_id, timeout_ms=60_000)
    assert done.status == "Completed"
    assert done.success_count == 2
    assert [r.output for r in done.results] == [{"upper": "P", "n": 1}, {"upper": "Q", "n": 1}]


def test_an_advanced_batch_needs_its_task_id(client: Any) -> None:
    with pytest.raises(ValueError, match="task_id"):
        client.batch_execute_advanced(BatchExecuteRequest(inputs=[1]))


# ------------------------------------------------------------------------------ the wire


def _execution(execution_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "task_id": str(uuid.UUID(int=1)),
        "version": 1,
        "status": status,
        "created_at": datetime.now(timezone.utc).isoformat(),
        **fields,
    }


class Script:
    """An ``httpx.MockTransport`` handler: answers in turn, and keeps each request."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        status, body = self.answers.pop(0)
        return httpx.Response(status, json=body)


def _waits() -> Script:
    run = str(uuid.uuid4())
    return Script(
        (202, _execution(run, "Pending")),
        (200, _execution(run, "Running")),
        (200, _execution(run, "Completed", output={"ok": True})),
    )


def _check_waits(script: Script, result: ExecutionResult) -> None:
    assert result.output == {"ok": True}
    first, *polls = script.seen
    assert (first.method, first.url.path) == ("POST", f"/api/tasks/{uuid.UUID(int=7)}/execute")
    assert first.headers["idempotency-key"].startswith("tq-")
    assert json.loads(first.content) == {
        "input": {"a": 1},
        "timeout_ms": 60_000,
        "force_validation": False,
    }
    run = str(result.execution_id)
    assert [(p.method, p.url.path, dict(p.url.params)) for p in polls] == [
        ("GET", f"/api/executions/{run}", {"timeout_ms": "60000"}),
        ("GET", f"/api/executions/{run}", {"timeout_ms": "60000"}),
    ]


def test_both_clients_wait_through_long_polls_of_a_minute() -> None:
    script = _waits()
    with TaskQueueClient("http://tq.test", transport=httpx.MockTransport(script)) as client:
        _check_waits(script, client.execute(uuid.UUID(int=7), {"a": 1}))

    async def main() -> None:
        script = _waits()
        transport = httpx.MockTransport(script)
        async with AsyncTaskQueueClient("http://tq.test", transport=transport) as client:
            _check_waits(script, await client.execute(uuid.UUID(int=7), {"a": 1}))

    asyncio.run(main())


def test_a_given_timeout_is_one_request_answered_as_is() -> None:
    run = str(uuid.uuid4())
    script = Script((202, _execution(run, "Running")))
    with TaskQueueClient("http://tq.test", transport=httpx.MockTransport(script)) as client:
        result = client.execute(str(uuid.UUID(int=7)), None, version=3, timeout_ms=250)
    assert result.status is TaskStatus.RUNNING
    assert len(script.seen) == 1
    assert json.loads(script.seen[0].content) == {
        "input": None,
        "version": 3,
        "timeout_ms": 250,
        "force_validation": False,
    }


def test_a_batch_is_polled_until_completed_and_never_raises() -> None:
    batch_id = str(uuid.uuid4())
    base = {
        "batch_id": batch_id,
        "task_id": str(uuid.UUID(int=7)),
        "version": 1,
        "total_items": 1,
        "success_count": 0,
        "failure_count": 0,
        "skipped_count": 0,
        "max_concurrency": 4,
        "stop_on_first_error": False,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "results": [],
    }
    item = {"id": "0", "index": 0, "execution_id": str(uuid.uuid4()), "success": False}
    script = Script(
        (202, {**base, "status": "Running"}),
        (200, {**base, "status": "Completed", "failure_count": 1,
               "results": [{**item, "status": "Failed", "error": "exit code 1"}]}),
    )  # fmt: skip
    with TaskQueueClient("http://tq.test", transport=httpx.MockTransport(script)) as client:
        batch = client.batch_execute(uuid.UUID(int=7), [{"x": 1}], max_concurrency=4)
    assert batch.failure_count == 1
    assert batch.results[0].error == "exit code 1"
    post, poll = script.seen
    assert post.url.path == f"/api/tasks/{uuid.UUID(int=7)}/batch-execute"
    assert post.headers["idempotency-key"].startswith("tq-")
    assert json.loads(post.content) == {
        "task_id": str(uuid.UUID(int=7)),
        "inputs": [{"x": 1}],
        "max_concurrency": 4,
        "timeout_ms": 60_000,
    }
    assert (poll.url.path, dict(poll.url.params)) == (
        f"/api/batches/{batch_id}",
        {"timeout_ms": "60000"},
    )


def test_a_schema_makes_a_definition_unless_the_type_is_given() -> None:
    task = {
        "id": str(uuid.uuid4()),
        "name": "f",
        "command": "true",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "updated_at": datetime.now(timezone.utc).isoformat(),
    }
    script = Script((201, task), (201, task))
    with TaskQueueClient("http://tq.test", transport=httpx.MockTransport(script)) as client:
        client.create_task(name="f", command="true", input_schema=IN, validate_output=False)
        with pytest.raises(ValidationError, match="input_schema"):
            client.create_task("g", "true", task_type="Simple", input_schema=IN)
        client.get_task(task["id"], version=2)
    sent = json.loads(script.seen[0].content)
    assert (sent["task_type"], sent["input_schema"], sent["validate_output"]) == (
        "Function",
        IN,
        False,
    )
    assert "output_schema" not in sent
    assert dict(script.seen[1].url.params) == {"version": "2"}


def test_a_server_that_never_holds_a_request_is_not_polled_in_a_busy_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskqueue.client import _sync_functions

    run = str(uuid.uuid4())
    script = Script(
        *[(202, _execution(run, "Running"))] * 4, (200, _execution(run, "Completed", output=1))
    )
    pauses: list[float] = []
    monkeypatch.setattr(_sync_functions.time, "sleep", pauses.append)
    with TaskQueueClient("http://tq.test", transport=httpx.MockTransport(script)) as client:
        assert client.execute(uuid.UUID(int=7), None).output == 1
    assert len(script.seen) == 5
    # Each answer came at once, not ended: each of the 4 polls first waited out the rest of
    # MIN_POLL_S (the client paused, rather than asking again at once).
    assert len(pauses) == 4
    assert all(0 < pause <= _async_functions.MIN_POLL_S for pause in pauses)


def test_executions_end_on_a_server_that_caps_the_wait_at_0(
    make_server: Callable[..., ServerProcess],
) -> None:
    capped = make_server("--max-request-wait", "0")
    with TaskQueueClient(capped.url) as client:
        task = define(client, SLOW)
        assert client.execute(task.id, {"text": "capped"}).output == {"upper": "CAPPED", "n": 6}
        batch = client.batch_execute(task.id, [{"text": "a"}, {"text": "b"}])
        assert (batch.status, batch.success_count) == ("Completed", 2)
