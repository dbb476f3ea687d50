"""Bad input gets a clear error and changes nothing.

Every endpoint is sent malformed, oversized and hostile input. Each answer must be the expected
4xx (never a 500), in the one error shape ``{"error": {"type", "message", "details",
"request_id"}}`` with the request id echoed in ``X-Request-ID``; field errors name the field in
``details[0]["loc"]``; and the stored tasks and projects must be exactly as they were before.

Most cases run against one server shared by the whole module. Cases whose input, if wrongly
accepted, leaves a row that breaks every later listing run against a second, scratch server, and
check what was stored by reading its SQLite file.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, free_port, module_database, query_db, wait_status

MiB = 1024 * 1024
UNKNOWN = "00000000-0000-4000-8000-000000000000"
JSON = {"content-type": "application/json"}

#: ``error.type`` for each status, as the API documents it.
ERROR_TYPES = {
    400: "invalid_request",
    403: "authorization_error",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    431: "headers_too_large",
    503: "unavailable",
}

#: What an error body must never show: a traceback or the repr of the server's internals.
LEAKS = re.compile(r"Traceback|File \"|<function |functools|function-after|0x[0-9a-f]{6,}")

DEEP_LIST = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
BIG_INT = b"123456789012345678901234567890"


# ----------------------------------------------------------------------------------- helpers


def task(**fields: Any) -> dict[str, Any]:
    """A valid task body (on a queue no worker serves), with ``fields`` changed."""
    return {"name": "hostile", "command": "true", "queue": "parked", **fields}


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def raw(data: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    """Request kwargs sending ``data`` verbatim."""
    headers = {"content-type": content_type} if content_type is not None else {}
    return {"content": data, "headers": headers}


def task_raw(extra: bytes) -> dict[str, Any]:
    """A valid task body as bytes, with ``extra`` (``"key":value``) spliced in."""
    return raw(b'{"name":"hostile","command":"true","queue":"parked",' + extra + b"}")


def assert_error(
    response: httpx.Response,
    status: int | tuple[int, ...],
    loc: list[Any] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """The response is the expected error, in the error shape; returns ``error``."""
    statuses = (status,) if isinstance(status, int) else status
    request = f"{response.request.method} {str(response.request.url)[:200]}"
    assert response.status_code in statuses, (
        f"{request}: expected {statuses}, got {response.status_code}: {response.text[:1000]}"
        + (f"; and {note}" if note else "")
    )
    assert response.headers.get("content-type", "").startswith("application/json"), request
    assert len(response.content) < 64 * 1024, f"{request}: the error echoes its input"
    assert not LEAKS.search(response.text), f"{request}: the error leaks internals: {response.text}"
    body = response.json()
    assert isinstance(body, dict), request
    assert set(body) == {"error"}, request
    error = body["error"]
    assert set(error) == {"type", "message", "details", "request_id"}, request
    assert error["type"] == ERROR_TYPES[response.status_code], request
    assert isinstance(error["message"], str), request
    assert error["message"].strip(), f"{request}: empty message"
    assert isinstance(error["details"], list), request
    assert isinstance(error["request_id"], str), request
    assert error["request_id"], request
    assert response.headers.get("x-request-id") == error["request_id"], request
    for detail in error["details"]:
        assert isinstance(detail, dict), request
        assert {"loc", "msg", "type"} <= set(detail), request
        assert isinstance(detail["loc"], list), request
        assert isinstance(detail["msg"], str), request
        assert detail["msg"].strip(), request
        assert isinstance(detail["type"], str), request
    if loc is not None:
        assert error["details"], f"{request}: no details naming {loc}: {error}"
        first = error["details"][0]["loc"]
        assert first[: len(loc)] == loc, f"{request}: details[0].loc is {first}, expected {loc}"
    return error


def snapshot(client: httpx.Client) -> dict[str, Any]:
    """Everything stored: every task and every project, as the API lists them."""
    tasks = client.get("/api/tasks", params={"limit": 1000})
    projects = client.get("/api/projects", params={"limit": 1000})
    assert tasks.status_code == 200, tasks.text[:500]
    assert projects.status_code == 200, projects.text[:500]
    return {"tasks": tasks.json(), "projects": projects.json()}


def changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What differs between two snapshots, in words ("" when nothing does)."""
    counts = (after["tasks"]["total"], after["projects"]["total"])
    expected = (before["tasks"]["total"], before["projects"]["total"])
    if counts != expected:
        return f"(tasks, projects) stored went from {expected} to {counts}"
    if after != before:
        return "stored data changed"
    return ""


def assert_unchanged(client: httpx.Client, before: dict[str, Any]) -> None:
    after = snapshot(client)
    changed = changes(before, after)
    assert not changed, changed
    assert after == before


def refused(
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int | tuple[int, ...],
    loc: list[Any] | None,
) -> dict[str, Any]:
    """Send one request; it must be refused with ``status`` and change nothing."""
    before = snapshot(client)
    response = client.request(method, path, **kwargs)
    after = snapshot(client)
    changed = changes(before, after)
    error = assert_error(response, status, loc, note=changed)
    assert not changed, changed
    assert after == before
    return error


def http_exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes; the status and the body of the first response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        assert b"\r\n\r\n" in received, f"no response to {data[:200]!r}: {received!r}"
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest[:length]


def raw_post(path: str, body: bytes, content_length: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + content_length + b"\r\n"
        b"Connection: close\r\n" + extra + b"\r\n" + body
    )


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def main_server(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("hostile")
    with module_database(request, backend, base) as db:
        server = ServerProcess(db=db, port=free_port(), log=base / "server.log")
        server.start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def client(main_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=main_server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def ids(client: httpx.Client) -> dict[str, str]:
    """Real things to aim at.

    ``pending`` and ``parent`` stay Pending (no worker serves their queue); ``child`` depends on
    ``parent``; ``done`` is Completed; ``project`` holds ``pending``; ``other`` is a second
    project; the Idempotency-Key ``k-1`` has been used once.
    """

    def made(response: httpx.Response) -> str:
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    project = made(client.post("/api/projects", json={"name": "hostile-target"}))
    other = made(client.post("/api/projects", json={"name": "hostile-other"}))
    pending = made(
        client.post("/api/tasks", json=task(name="pending", command="sleep 30", project_id=project))
    )
    parent = made(client.post("/api/tasks", json=task(name="parent")))
    child = made(client.post("/api/tasks", json=task(name="child", dependencies=[parent])))
    done = made(client.post("/api/tasks", json={"name": "done", "command": "true"}))
    assert wait_status(client, done)["status"] == "Completed"
    made(client.post("/api/tasks", json=task(name="keyed"), headers={"Idempotency-Key": "k-1"}))
    return {
        "project": project,
        "other": other,
        "pending": pending,
        "parent": parent,
        "child": child,
        "done": done,
        "unknown": UNKNOWN,
    }


@pytest.fixture
def fresh(client: httpx.Client) -> str:
    """A new Pending task that no worker will run, for cases that may wrongly change it."""
    response = client.post("/api/tasks", json=task(name="fresh", command="sleep 30"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def scratch(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A second server for input that, wrongly stored, breaks every later listing."""
    base = tmp_path_factory.mktemp("scratch")
    with module_database(request, backend, base) as db:
        server = ServerProcess(
            db=db, port=free_port(), args=["--workers", "0"], log=base / "server.log"
        )
        server.start()
        yield server
        server.stop()


def stored_rows(db: Path | str) -> dict[str, int]:
    """Row counts of the tables a request could add to, read straight from the database."""
    return {
        table: int(query_db(db, f"SELECT count(*) FROM {table}")[0][0])
        for table in ("tasks", "projects", "task_deps")
    }


# ------------------------------------------------------------------------- POST /api/tasks

CREATE_TASK_CASES = [
    # wrong types
    pytest.param({"json": task(name=123)}, 422, ["name"], id="name-int"),
    pytest.param({"json": task(command=["echo", "hi"])}, 422, ["command"], id="command-list"),
    pytest.param({"json": task(retry_attempts="three")}, 422, ["retry_attempts"], id="retries-str"),
    pytest.param({"json": task(timeout="soon")}, 422, ["timeout"], id="timeout-str"),
    pytest.param({"json": task(environment=["A=1"])}, 422, ["environment"], id="env-list"),
    pytest.param({"json": task(environment={"A": 1})}, 422, ["environment", "A"], id="env-int"),
    pytest.param({"json": task(metadata=[1, 2])}, 422, ["metadata"], id="metadata-list"),
    pytest.param({"json": task(metadata="x")}, 422, ["metadata"], id="metadata-str"),
    pytest.param({"json": task(dependencies="abc")}, 422, ["dependencies"], id="deps-str"),
    pytest.param(
        {"json": task(acceptance_criteria="all")}, 422, ["acceptance_criteria"], id="criteria-str"
    ),
    pytest.param({"json": task(priority=1)}, 422, ["priority"], id="priority-int"),
    pytest.param({"json": task(run_at=[2025])}, 422, ["run_at"], id="run-at-list"),
    # null and missing required fields
    pytest.param({"json": task(name=None)}, 422, ["name"], id="name-null"),
    pytest.param({"json": task(command=None)}, 422, ["command"], id="command-null"),
    pytest.param({"json": task(priority=None)}, 422, ["priority"], id="priority-null"),
    pytest.param({"json": without(task(), "name")}, 422, ["name"], id="name-missing"),
    pytest.param({"json": without(task(), "command")}, 422, ["command"], id="command-missing"),
    pytest.param({"json": {}}, 422, ["name"], id="empty-object"),
    # unknown fields
    pytest.param({"json": task(bogus=1)}, 422, ["bogus"], id="unknown-field"),
    pytest.param({"json": task(status="Completed")}, 422, ["status"], id="read-only-status"),
    pytest.param({"json": task(id=UNKNOWN)}, 422, ["id"], id="read-only-id"),
    pytest.param({"json": task(result={"exit_code": 0})}, 422, ["result"], id="read-only-result"),
    # enums
    pytest.param({"json": task(priority="Urgent")}, 422, ["priority"], id="priority-urgent"),
    pytest.param({"json": task(priority="high")}, 422, ["priority"], id="priority-lowercase"),
    pytest.param({"json": task(task_type="Bogus")}, 422, ["task_type"], id="task-type-unknown"),
    pytest.param(
        {"json": task(phases=[{"name": "a"}])}, 422, ["phases"], id="phases-on-a-simple-task"
    ),
    pytest.param(
        {"json": task(task_type="Workflow", phases=[{"name": "r", "review": True}])},
        422,
        ["phases", 0, "review"],
        id="workflow-starting-at-a-gate",
    ),
    # huge strings
    pytest.param({"json": task(name="n" * 1_000_000)}, 422, ["name"], id="name-1mb"),
    pytest.param({"json": task(command="c" * 70_000)}, 422, ["command"], id="command-70kb"),
    pytest.param(
        {"json": task(description="d" * 2_000_000)}, 422, ["description"], id="description-2mb"
    ),
    pytest.param(
        {"json": task(environment={"K" * 100_000: "v"})}, 422, ["environment"], id="env-key-100kb"
    ),
    pytest.param(
        {"json": task(environment={"K": "v" * 40_000})},
        422,
        ["environment", "K"],
        id="env-value-40kb",
    ),
    pytest.param(
        {"json": task(metadata={"blob": "b" * 300_000})}, 422, ["metadata"], id="metadata-300kb"
    ),
    pytest.param({"json": task(input="i" * 300_000)}, 422, ["input"], id="input-300kb"),
    pytest.param(
        {"json": task(environment={f"K{i}": "v" for i in range(257)})},
        422,
        ["environment"],
        id="env-257-keys",
    ),
    pytest.param(
        {"json": task(acceptance_criteria=["c"] * 101)},
        422,
        ["acceptance_criteria"],
        id="criteria-101",
    ),
    pytest.param(
        {"json": task(dependencies=[UNKNOWN] * 1001)}, 422, ["dependencies"], id="deps-1001"
    ),
    # NUL characters
    pytest.param({"json": task(name="a\x00b")}, 422, ["name"], id="nul-name"),
    pytest.param({"json": task(command="true\x00rm")}, 422, ["command"], id="nul-command"),
    pytest.param({"json": task(description="\x00")}, 422, ["description"], id="nul-description"),
    pytest.param(
        {"json": task(environment={"A": "x\x00y"})}, 422, ["environment", "A"], id="nul-env-value"
    ),
    pytest.param(
        {"json": task(working_directory="/tmp\x00")},
        422,
        ["working_directory"],
        id="nul-working-dir",
    ),
    pytest.param({"json": task(queue="q\x00")}, 422, ["queue"], id="nul-queue"),
    # deep nesting, non-object bodies, empty and broken bodies
    pytest.param(task_raw(b'"metadata":{"x":' + DEEP_LIST + b"}"), 400, None, id="deep-metadata"),
    pytest.param(task_raw(b'"input":' + DEEP_LIST), 400, None, id="deep-input"),
    pytest.param(raw(DEEP_LIST), 400, None, id="deep-body-lists"),
    pytest.param(raw(DEEP_OBJECT), 400, None, id="deep-body-objects"),
    pytest.param(raw(b"[]"), 422, [], id="body-list"),
    pytest.param(raw(b"5"), 422, [], id="body-number"),
    pytest.param(raw(b"null"), 422, [], id="body-null"),
    pytest.param(raw(b'"task"'), 422, [], id="body-string"),
    pytest.param(raw(b"true"), 422, [], id="body-bool"),
    pytest.param(raw(b""), 400, None, id="body-empty"),
    pytest.param(raw(b"  \n "), 400, None, id="body-whitespace"),
    pytest.param(raw(b'{"name": "a", "command":'), 400, None, id="body-truncated"),
    pytest.param(raw(b'{"name": "a"} {"b": 1}'), 400, None, id="body-trailing-data"),
    pytest.param(raw(b"{'name': 'a'}"), 400, None, id="body-single-quotes"),
    pytest.param(raw(b'{"name":"\xff\xfe","command":"true"}'), 400, None, id="invalid-utf8"),
    pytest.param(raw(b'{"name":"\xc3","command":"true"}'), 400, None, id="truncated-utf8"),
    pytest.param(raw(b'{"name":"\\ud800","command":"true"}'), 400, None, id="lone-surrogate"),
    pytest.param(raw(b"\xef\xbb\xbf" + b'{"name":"a","command":"true"}'), 400, None, id="utf8-bom"),
    # bad ids in the body
    pytest.param({"json": task(project_id="nope")}, 422, ["project_id"], id="project-id-bad"),
    pytest.param({"json": task(project_id=42)}, 422, ["project_id"], id="project-id-int"),
    pytest.param({"json": task(project_id="")}, 422, ["project_id"], id="project-id-empty"),
    pytest.param({"json": task(project_id=UNKNOWN)}, 409, ["project_id"], id="project-unknown"),
    pytest.param(
        {"json": task(dependencies=[UNKNOWN])}, 409, ["dependencies", 0], id="dep-unknown-id"
    ),
    pytest.param(
        {"json": task(dependencies=["not-a-uuid"])}, 422, ["dependencies", 0], id="dep-bad-id"
    ),
    pytest.param({"json": task(dependencies=[5])}, 422, ["dependencies", 0], id="dep-int"),
    pytest.param({"json": task(dependencies=[""])}, 422, ["dependencies", 0], id="dep-empty"),
    pytest.param({"json": task(dependencies=["a\x00b"])}, 422, ["dependencies", 0], id="dep-nul"),
    pytest.param(
        {"json": task(dependencies=[{"task_id": "nope"}])},
        422,
        ["dependencies", 0],
        id="dep-object-bad-id",
    ),
    pytest.param(
        {"json": task(dependencies=[{"task_id": UNKNOWN}])},
        409,
        ["dependencies", 0],
        id="dep-object-unknown-id",
    ),
    pytest.param(
        {"json": task(dependencies=[{}])}, 422, ["dependencies", 0], id="dep-object-empty"
    ),
    pytest.param(
        {"json": task(dependencies=[{"task_id": UNKNOWN, "ref": "a"}])},
        422,
        ["dependencies", 0],
        id="dep-object-both",
    ),
    pytest.param(
        {"json": task(dependencies=[{"ref": "a"}])}, 422, ["dependencies", 0], id="dep-ref-alone"
    ),
    pytest.param({"json": task(ref="solo")}, 422, ["ref"], id="ref-outside-batch"),
    # environment variable names
    pytest.param({"json": task(environment={"1BAD": "x"})}, 422, ["environment"], id="env-1BAD"),
    pytest.param({"json": task(environment={"A=B": "x"})}, 422, ["environment"], id="env-A=B"),
    pytest.param({"json": task(environment={"": "x"})}, 422, ["environment"], id="env-empty"),
    pytest.param({"json": task(environment={"A B": "x"})}, 422, ["environment"], id="env-space"),
    pytest.param({"json": task(environment={"Ä": "x"})}, 422, ["environment"], id="env-non-ascii"),
    # numbers out of range, and other out-of-range values
    pytest.param({"json": task(timeout=0)}, 422, ["timeout"], id="timeout-0"),
    pytest.param({"json": task(timeout=-1)}, 422, ["timeout"], id="timeout-negative"),
    pytest.param({"json": task(timeout=10**12)}, 422, ["timeout"], id="timeout-10e12"),
    pytest.param({"json": task(timeout=1.5)}, 422, ["timeout"], id="timeout-fraction"),
    pytest.param({"json": task(retry_attempts=-1)}, 422, ["retry_attempts"], id="retries--1"),
    pytest.param({"json": task(retry_attempts=1000)}, 422, ["retry_attempts"], id="retries-1000"),
    pytest.param(task_raw(b'"retry_attempts":1e400'), 422, ["retry_attempts"], id="retries-inf"),
    pytest.param(
        task_raw(b'"retry_attempts":' + BIG_INT), 422, ["retry_attempts"], id="retries-bigint"
    ),
    pytest.param({"json": task(retry_delay=-1)}, 422, ["retry_delay"], id="retry-delay-negative"),
    pytest.param({"json": task(retry_delay=10**9)}, 422, ["retry_delay"], id="retry-delay-huge"),
    pytest.param(
        {"json": task(ai_reviews_required=-1)}, 422, ["ai_reviews_required"], id="reviews-negative"
    ),
    pytest.param({"json": task(queue="has space")}, 422, ["queue"], id="queue-space"),
    pytest.param({"json": task(queue="")}, 422, ["queue"], id="queue-empty"),
    pytest.param({"json": task(queue="q" * 101)}, 422, ["queue"], id="queue-101"),
    pytest.param({"json": task(run_at="yesterday")}, 422, ["run_at"], id="run-at-text"),
    pytest.param({"json": task(working_directory="")}, 422, ["working_directory"], id="wd-empty"),
]


@pytest.mark.parametrize(("kwargs", "status", "loc"), CREATE_TASK_CASES)
def test_create_task_refuses(
    client: httpx.Client,
    ids: dict[str, str],
    kwargs: dict[str, Any],
    status: int,
    loc: list[Any] | None,
) -> None:
    refused(client, "POST", "/api/tasks", kwargs, status, loc)


# ------------------------------------------------------------------- POST /api/tasks/batch

HUNDRED = [task(name=f"ok-{i}") for i in range(100)]

BATCH_CASES = [
    pytest.param({"tasks": []}, 422, ["tasks"], id="empty-batch"),
    pytest.param({"tasks": [task()] * 5001}, 422, ["tasks"], id="5001-items"),
    pytest.param({}, 422, ["tasks"], id="tasks-missing"),
    pytest.param({"tasks": None}, 422, ["tasks"], id="tasks-null"),
    pytest.param({"tasks": task()}, 422, ["tasks"], id="tasks-object"),
    pytest.param({"tasks": "all"}, 422, ["tasks"], id="tasks-string"),
    pytest.param({"tasks": [task()], "extra": 1}, 422, ["extra"], id="unknown-field"),
    pytest.param({"tasks": [[task()]]}, 422, ["tasks", 0], id="item-list"),
    pytest.param({"tasks": [None]}, 422, ["tasks", 0], id="item-null"),
    pytest.param(
        {"tasks": [task(), task(priority="Urgent")]}, 422, ["tasks", 1, "priority"], id="enum"
    ),
    pytest.param({"tasks": [task(name="\x00")]}, 422, ["tasks", 0, "name"], id="nul-name"),
    pytest.param({"tasks": [task(ref="a\x00")]}, 422, ["tasks", 0, "ref"], id="nul-ref"),
    pytest.param({"tasks": [task(ref="")]}, 422, ["tasks", 0, "ref"], id="empty-ref"),
    pytest.param({"tasks": [task(ref="r" * 201)]}, 422, ["tasks", 0, "ref"], id="ref-201"),
    pytest.param(
        {"tasks": [task(ref="a", dependencies=["b"]), task(ref="b")]},
        409,
        ["tasks", 0, "dependencies", 0],
        id="ref-to-later-item",
    ),
    pytest.param(
        {"tasks": [task(ref="a", dependencies=["b"]), task(ref="b", dependencies=["a"])]},
        409,
        ["tasks", 0, "dependencies", 0],
        id="cycle",
    ),
    pytest.param(
        {"tasks": [task(ref="a"), task(ref="b", dependencies=["b"])]},
        409,
        ["tasks", 1, "dependencies", 0],
        id="self-ref",
    ),
    pytest.param(
        {"tasks": [task(ref="a"), task(ref="b", dependencies=[{"ref": "b"}])]},
        409,
        ["tasks", 1, "dependencies", 0],
        id="self-ref-object",
    ),
    pytest.param(
        {"tasks": [task(ref="a"), task(ref="a")]}, 409, ["tasks", 1, "ref"], id="duplicate-ref"
    ),
    pytest.param({"tasks": [task(ref=UNKNOWN)]}, 409, ["tasks", 0, "ref"], id="ref-like-uuid"),
    pytest.param(
        {"tasks": [task(ref="a"), task(dependencies=[{"ref": "a", "task_id": UNKNOWN}])]},
        422,
        ["tasks", 1, "dependencies", 0],
        id="dep-ref-and-id",
    ),
    pytest.param(
        {"tasks": [task(), task(dependencies=[UNKNOWN])]},
        409,
        ["tasks", 1, "dependencies", 0],
        id="dep-unknown-id",
    ),
    pytest.param(
        {"tasks": [task(), task(dependencies=["nowhere"])]},
        409,
        ["tasks", 1, "dependencies", 0],
        id="dep-unknown-ref",
    ),
    pytest.param(
        {"tasks": [task(), task(project_id=UNKNOWN)]},
        409,
        ["tasks", 1, "project_id"],
        id="project-unknown",
    ),
    pytest.param(
        {"tasks": [task(), task(project_id="nope")]},
        422,
        ["tasks", 1, "project_id"],
        id="project-bad-id",
    ),
    # A batch of one is still a batch: its errors are located under "tasks", 0.
    pytest.param(
        {"tasks": [task(ref="a", dependencies=["a"])]},
        409,
        ["tasks", 0, "dependencies", 0],
        id="one-item-self-ref",
    ),
    pytest.param(
        {"tasks": [task(dependencies=[UNKNOWN])]},
        409,
        ["tasks", 0, "dependencies", 0],
        id="one-item-dep-unknown",
    ),
    pytest.param(
        {"tasks": [task(project_id=UNKNOWN)]},
        409,
        ["tasks", 0, "project_id"],
        id="one-item-project-unknown",
    ),
    # all or nothing: 100 good items and one bad one store nothing
    pytest.param(
        {"tasks": [*HUNDRED, without(task(), "command")]},
        422,
        ["tasks", 100, "command"],
        id="all-or-nothing-invalid",
    ),
    pytest.param(
        {"tasks": [*HUNDRED, task(dependencies=[UNKNOWN])]},
        409,
        ["tasks", 100, "dependencies", 0],
        id="all-or-nothing-unknown-dep",
    ),
    pytest.param(
        {"tasks": [task(ref="a"), *HUNDRED, task(ref="a")]},
        409,
        ["tasks", 101, "ref"],
        id="all-or-nothing-duplicate-ref",
    ),
]


@pytest.mark.parametrize(("body", "status", "loc"), BATCH_CASES)
def test_create_batch_refuses(
    client: httpx.Client, ids: dict[str, str], body: Any, status: int, loc: list[Any] | None
) -> None:
    refused(client, "POST", "/api/tasks/batch", {"json": body}, status, loc)


@pytest.mark.parametrize(
    ("data", "status", "loc"),
    [
        pytest.param(b'{"tasks":' + DEEP_LIST + b"}", 400, None, id="deep-tasks"),
        pytest.param(
            b'{"tasks":[{"name":"a","command":"true","metadata":{"x":' + DEEP_LIST + b"}}]}",
            400,
            None,
            id="deep-item-metadata",
        ),
        pytest.param(DEEP_LIST, 400, None, id="deep-body"),
        pytest.param(b"[]", 422, [], id="body-list"),
        pytest.param(b"null", 422, [], id="body-null"),
        pytest.param(b"7", 422, [], id="body-number"),
        pytest.param(b"", 400, None, id="body-empty"),
        pytest.param(b'{"tasks":[{"name":"\xff"}]}', 400, None, id="invalid-utf8"),
    ],
)
def test_create_batch_refuses_raw(
    client: httpx.Client, ids: dict[str, str], data: bytes, status: int, loc: list[Any] | None
) -> None:
    refused(client, "POST", "/api/tasks/batch", raw(data), status, loc)


# --------------------------------------------------------------------- PUT /api/tasks/{id}

UPDATE_TASK_CASES = [
    pytest.param({"json": {"name": None}}, 422, ["name"], id="name-null"),
    pytest.param({"json": {"command": None}}, 422, ["command"], id="command-null"),
    pytest.param({"json": {"description": None}}, 422, ["description"], id="description-null"),
    pytest.param({"json": {"metadata": None}}, 422, ["metadata"], id="metadata-null"),
    pytest.param({"json": {"environment": None}}, 422, ["environment"], id="env-null"),
    pytest.param({"json": {"priority": None}}, 422, ["priority"], id="priority-null"),
    pytest.param({"json": {"name": 7}}, 422, ["name"], id="name-int"),
    pytest.param({"json": {"retry_attempts": "many"}}, 422, ["retry_attempts"], id="retries-str"),
    pytest.param({"json": {"metadata": []}}, 422, ["metadata"], id="metadata-list"),
    pytest.param({"json": {"priority": "Urgent"}}, 422, ["priority"], id="priority-urgent"),
    pytest.param({"json": {"retry_attempts": -1}}, 422, ["retry_attempts"], id="retries--1"),
    pytest.param({"json": {"retry_attempts": 1000}}, 422, ["retry_attempts"], id="retries-1000"),
    pytest.param({"json": {"timeout": 0}}, 422, ["timeout"], id="timeout-0"),
    pytest.param({"json": {"timeout": -1}}, 422, ["timeout"], id="timeout--1"),
    pytest.param({"json": {"timeout": 10**12}}, 422, ["timeout"], id="timeout-10e12"),
    pytest.param({"json": {"environment": {"1BAD": "x"}}}, 422, ["environment"], id="env-1BAD"),
    pytest.param({"json": {"environment": {"A=B": "x"}}}, 422, ["environment"], id="env-A=B"),
    pytest.param({"json": {"environment": {"": "x"}}}, 422, ["environment"], id="env-empty"),
    pytest.param(
        {"json": {"environment": {"K" * 100_000: "v"}}}, 422, ["environment"], id="env-key-100kb"
    ),
    pytest.param({"json": {"name": "n" * 1_000_000}}, 422, ["name"], id="name-1mb"),
    pytest.param({"json": {"name": "a\x00"}}, 422, ["name"], id="nul-name"),
    pytest.param({"json": {"command": "\x00"}}, 422, ["command"], id="nul-command"),
    pytest.param({"json": {"queue": "a b"}}, 422, ["queue"], id="queue-space"),
    pytest.param({"json": {"run_at": "soon"}}, 422, ["run_at"], id="run-at-text"),
    pytest.param({"json": {"bogus": 1}}, 422, ["bogus"], id="unknown-field"),
    pytest.param({"json": {"status": "Completed"}}, 422, ["status"], id="status-not-settable"),
    pytest.param({"json": {"id": UNKNOWN}}, 422, ["id"], id="id-not-settable"),
    pytest.param({"json": {"dependencies": []}}, 422, ["dependencies"], id="deps-not-settable"),
    pytest.param({"json": {"project_id": UNKNOWN}}, 422, ["project_id"], id="project-not-settable"),
    pytest.param({"json": {"name": "ok", "bogus": 1}}, 422, ["bogus"], id="valid-plus-unknown"),
    pytest.param(raw(b"[]"), 422, [], id="body-list"),
    pytest.param(raw(b"null"), 422, [], id="body-null"),
    pytest.param(raw(b"5"), 422, [], id="body-number"),
    pytest.param(raw(b""), 400, None, id="body-empty"),
    pytest.param(raw(b'{"name":"\xff"}'), 400, None, id="invalid-utf8"),
    pytest.param(raw(b'{"metadata":{"x":' + DEEP_LIST + b"}}"), 400, None, id="deep-metadata"),
    pytest.param(raw(DEEP_LIST), 400, None, id="deep-body"),
    pytest.param(raw(b'{"name":"x"}', "text/plain"), 415, None, id="text-plain"),
    pytest.param(raw(b'{"name":"x"}', None), 415, None, id="no-content-type"),
]


@pytest.mark.parametrize(("kwargs", "status", "loc"), UPDATE_TASK_CASES)
def test_update_task_refuses(
    client: httpx.Client,
    ids: dict[str, str],
    kwargs: dict[str, Any],
    status: int,
    loc: list[Any] | None,
) -> None:
    refused(client, "PUT", f"/api/tasks/{ids['pending']}", kwargs, status, loc)


# --------------------------------------------------------------------------------- projects

CREATE_PROJECT_CASES = [
    pytest.param({"json": {}}, 422, ["name"], id="name-missing"),
    pytest.param({"json": {"name": None}}, 422, ["name"], id="name-null"),
    pytest.param({"json": {"name": ""}}, 422, ["name"], id="name-empty"),
    pytest.param({"json": {"name": 5}}, 422, ["name"], id="name-int"),
    pytest.param({"json": {"name": ["p"]}}, 422, ["name"], id="name-list"),
    pytest.param({"json": {"name": "n" * 1_000_000}}, 422, ["name"], id="name-1mb"),
    pytest.param({"json": {"name": "a\x00b"}}, 422, ["name"], id="nul-name"),
    pytest.param(
        {"json": {"name": "p", "description": "d" * 20_000}}, 422, ["description"], id="desc-20kb"
    ),
    pytest.param({"json": {"name": "p", "status": ""}}, 422, ["status"], id="status-empty"),
    pytest.param({"json": {"name": "p", "status": None}}, 422, ["status"], id="status-null"),
    pytest.param({"json": {"name": "p", "tags": "a"}}, 422, ["tags"], id="tags-str"),
    pytest.param({"json": {"name": "p", "tags": [1]}}, 422, ["tags", 0], id="tags-int-item"),
    pytest.param({"json": {"name": "p", "tags": ["t"] * 101}}, 422, ["tags"], id="tags-101"),
    pytest.param({"json": {"name": "p", "tags": ["\x00"]}}, 422, ["tags", 0], id="nul-tag"),
    pytest.param({"json": {"name": "p", "metadata": []}}, 422, ["metadata"], id="metadata-list"),
    pytest.param(
        {"json": {"name": "p", "metadata": {"b": "b" * 300_000}}},
        422,
        ["metadata"],
        id="metadata-300kb",
    ),
    pytest.param({"json": {"name": "p", "due_date": "soon"}}, 422, ["due_date"], id="due-text"),
    pytest.param({"json": {"name": "p", "id": UNKNOWN}}, 422, ["id"], id="id-not-settable"),
    pytest.param({"json": {"name": "p", "bogus": True}}, 422, ["bogus"], id="unknown-field"),
    pytest.param(raw(b"[]"), 422, [], id="body-list"),
    pytest.param(raw(b"null"), 422, [], id="body-null"),
    pytest.param(raw(b"1"), 422, [], id="body-number"),
    pytest.param(raw(b""), 400, None, id="body-empty"),
    pytest.param(raw(b'{"name":"\xff"}'), 400, None, id="invalid-utf8"),
    pytest.param(
        raw(b'{"name":"p","metadata":{"x":' + DEEP_LIST + b"}}"), 400, None, id="deep-metadata"
    ),
    pytest.param(raw(DEEP_OBJECT), 400, None, id="deep-body"),
    pytest.param(raw(b'{"name":"p"}', "text/plain"), 415, None, id="text-plain"),
    pytest.param({"json": {"name": "hostile-target"}}, 409, None, id="name-taken"),
]


@pytest.mark.parametrize(("kwargs", "status", "loc"), CREATE_PROJECT_CASES)
def test_create_project_refuses(
    client: httpx.Client,
    ids: dict[str, str],
    kwargs: dict[str, Any],
    status: int,
    loc: list[Any] | None,
) -> None:
    refused(client, "POST", "/api/projects", kwargs, status, loc)


UPDATE_PROJECT_CASES = [
    pytest.param({"json": {"name": None}}, 422, ["name"], id="name-null"),
    pytest.param({"json": {"status": None}}, 422, ["status"], id="status-null"),
    pytest.param({"json": {"tags": None}}, 422, ["tags"], id="tags-null"),
    pytest.param({"json": {"metadata": None}}, 422, ["metadata"], id="metadata-null"),
    pytest.param({"json": {"name": ""}}, 422, ["name"], id="name-empty"),
    pytest.param({"json": {"name": 1}}, 422, ["name"], id="name-int"),
    pytest.param({"json": {"name": "n" * 1_000_000}}, 422, ["name"], id="name-1mb"),
    pytest.param({"json": {"name": "x\x00"}}, 422, ["name"], id="nul-name"),
    pytest.param({"json": {"tags": [None]}}, 422, ["tags", 0], id="tags-null-item"),
    pytest.param({"json": {"metadata": "m"}}, 422, ["metadata"], id="metadata-str"),
    pytest.param({"json": {"due_date": "soon"}}, 422, ["due_date"], id="due-text"),
    pytest.param({"json": {"bogus": 1}}, 422, ["bogus"], id="unknown-field"),
    pytest.param({"json": {"id": UNKNOWN}}, 422, ["id"], id="id-not-settable"),
    pytest.param({"json": {"name": "hostile-other"}}, 409, None, id="name-taken"),
    pytest.param(raw(b"[]"), 422, [], id="body-list"),
    pytest.param(raw(b""), 400, None, id="body-empty"),
    pytest.param(raw(b"{\xff}"), 400, None, id="invalid-utf8"),
    pytest.param(raw(DEEP_LIST), 400, None, id="deep-body"),
    pytest.param(raw(b"{}", "application/xml"), 415, None, id="xml"),
]


@pytest.mark.parametrize(("kwargs", "status", "loc"), UPDATE_PROJECT_CASES)
def test_update_project_refuses(
    client: httpx.Client,
    ids: dict[str, str],
    kwargs: dict[str, Any],
    status: int,
    loc: list[Any] | None,
) -> None:
    refused(client, "PUT", f"/api/projects/{ids['project']}", kwargs, status, loc)


# ------------------------------------------------------------------------ query parameters

QUERY_CASES = [
    # GET /api/tasks
    ("GET", "/api/tasks", "status=Done", "status"),
    ("GET", "/api/tasks", "status=", "status"),
    ("GET", "/api/tasks", "status=pending", "status"),
    ("GET", "/api/tasks", "priority=Urgent", "priority"),
    ("GET", "/api/tasks", "task_type=Nope", "task_type"),
    ("GET", "/api/tasks", "project_id=nope", "project_id"),
    ("GET", "/api/tasks", "project_id=%00", "project_id"),
    ("GET", "/api/tasks", "created_after=yesterday", "created_after"),
    ("GET", "/api/tasks", "created_before=not-a-date", "created_before"),
    ("GET", "/api/tasks", "limit=0", "limit"),
    ("GET", "/api/tasks", "limit=-1", "limit"),
    ("GET", "/api/tasks", "limit=1001", "limit"),
    ("GET", "/api/tasks", "limit=" + "9" * 30, "limit"),
    ("GET", "/api/tasks", "limit=abc", "limit"),
    ("GET", "/api/tasks", "limit=1.5", "limit"),
    ("GET", "/api/tasks", "limit=", "limit"),
    ("GET", "/api/tasks", "offset=-1", "offset"),
    ("GET", "/api/tasks", "offset=" + "9" * 30, "offset"),
    ("GET", "/api/tasks", "offset=x", "offset"),
    ("GET", "/api/tasks", "queue=" + "q" * 101, "queue"),
    ("GET", "/api/tasks", "queue=" + "q" * 60_000, "queue"),
    ("GET", "/api/tasks", "bogus=1", "bogus"),
    ("GET", "/api/tasks", "Status=Pending", "Status"),
    ("GET", "/api/tasks", "limit=1&limit=2", "limit"),
    ("GET", "/api/tasks", "status=Pending&status=Failed", "status"),
    # GET /api/projects
    ("GET", "/api/projects", "limit=0", "limit"),
    ("GET", "/api/projects", "limit=-5", "limit"),
    ("GET", "/api/projects", "limit=1001", "limit"),
    ("GET", "/api/projects", "limit=ten", "limit"),
    ("GET", "/api/projects", "offset=-1", "offset"),
    ("GET", "/api/projects", "offset=" + "9" * 30, "offset"),
    ("GET", "/api/projects", "name=x", "name"),
    ("GET", "/api/projects", "offset=0&offset=1", "offset"),
    # GET /api/tasks/{id}/wait
    ("GET", "/api/tasks/{pending}/wait", "timeout=-1", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=301", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=1000000000000", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=abc", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=nan", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=inf", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=", "timeout"),
    ("GET", "/api/tasks/{pending}/wait", "wait=1", "wait"),
    ("GET", "/api/tasks/{pending}/wait", "timeout=1&timeout=2", "timeout"),
    # GET /api/tasks/{id}/logs
    ("GET", "/api/tasks/{pending}/logs", "offset=-1", "offset"),
    ("GET", "/api/tasks/{pending}/logs", "offset=" + "9" * 30, "offset"),
    ("GET", "/api/tasks/{pending}/logs", "limit=0", "limit"),
    ("GET", "/api/tasks/{pending}/logs", "limit=-5", "limit"),
    ("GET", "/api/tasks/{pending}/logs", "limit=100000", "limit"),
    ("GET", "/api/tasks/{pending}/logs", "stream=stdin", "stream"),
    ("GET", "/api/tasks/{pending}/logs", "stream=", "stream"),
    ("GET", "/api/tasks/{pending}/logs", "attempt=0", "attempt"),
    ("GET", "/api/tasks/{pending}/logs", "attempt=-1", "attempt"),
    ("GET", "/api/tasks/{pending}/logs", "follow=maybe", "follow"),
    ("GET", "/api/tasks/{pending}/logs", "timeout=-1", "timeout"),
    ("GET", "/api/tasks/{pending}/logs", "timeout=1000000000000", "timeout"),
    ("GET", "/api/tasks/{pending}/logs", "tail=1", "tail"),
    ("GET", "/api/tasks/{pending}/logs", "stream=stdout&stream=stderr", "stream"),
    # NUL characters: no database stores them (PostgreSQL refuses them outright)
    ("GET", "/api/tasks", "queue=a%00b", "queue"),
    ("GET", "/api/tasks", "worker_id=w%00", "worker_id"),
    ("GET", "/api/tasks", "error=%00", "error"),
    ("GET", "/api/tasks/{pending}/logs", "stream=std%00out", "stream"),
    # DELETE /api/projects/{id}
    ("DELETE", "/api/projects/{project}", "cascade=maybe", "cascade"),
    ("DELETE", "/api/projects/{project}", "cascade=", "cascade"),
    ("DELETE", "/api/projects/{project}", "force=1", "force"),
    ("DELETE", "/api/projects/{project}", "cascade=true&cascade=false", "cascade"),
]


def query_case_id(method: str, path: str, query: str, param: str) -> str:
    shown = query if len(query) <= 40 else f"{query[:30]}...({len(query)} chars)"
    return f"{method} {path.replace('{', '').replace('}', '')}?{shown}"


@pytest.mark.parametrize(
    ("method", "path", "query", "param"),
    [pytest.param(*case, id=query_case_id(*case)) for case in QUERY_CASES],
)
def test_bad_query_parameters(
    client: httpx.Client, ids: dict[str, str], method: str, path: str, query: str, param: str
) -> None:
    url = path.format(**ids) + "?" + query
    refused(client, method, url, {}, 422, ["query", param])


# ------------------------------------------------------------------------------- path ids

BAD_IDS = [
    pytest.param("not-a-uuid", id="word"),
    pytest.param("123", id="number"),
    pytest.param("%00", id="nul"),
    pytest.param("%FF%FE", id="invalid-utf8"),
    pytest.param(UNKNOWN[:-1], id="one-char-short"),
    pytest.param(UNKNOWN + "0", id="one-char-long"),
    pytest.param(UNKNOWN.replace("0", "g", 1), id="non-hex"),
    pytest.param("x" * 5000, id="5000-chars"),
    pytest.param("'%20OR%201=1--", id="sql"),
]

ID_ENDPOINTS = [
    pytest.param("GET", "/api/tasks/{}", "task_id", {}, id="get-task"),
    pytest.param("PUT", "/api/tasks/{}", "task_id", {"json": {"name": "x"}}, id="put-task"),
    pytest.param("DELETE", "/api/tasks/{}", "task_id", {}, id="delete-task"),
    pytest.param("POST", "/api/tasks/{}/cancel", "task_id", {}, id="cancel"),
    pytest.param("POST", "/api/tasks/{}/retry", "task_id", {}, id="retry"),
    pytest.param("GET", "/api/tasks/{}/wait", "task_id", {"params": {"timeout": 0}}, id="wait"),
    pytest.param("GET", "/api/tasks/{}/logs", "task_id", {}, id="logs"),
    pytest.param("GET", "/api/tasks/{}/attempts", "task_id", {}, id="attempts"),
    pytest.param("GET", "/api/projects/{}", "project_id", {}, id="get-project"),
    pytest.param(
        "PUT", "/api/projects/{}", "project_id", {"json": {"name": "y"}}, id="put-project"
    ),
    pytest.param("DELETE", "/api/projects/{}", "project_id", {}, id="delete-project"),
]


@pytest.mark.parametrize(("method", "path", "name", "kwargs"), ID_ENDPOINTS)
@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_bad_path_id(
    client: httpx.Client,
    ids: dict[str, str],
    method: str,
    path: str,
    name: str,
    kwargs: dict[str, Any],
    bad_id: str,
) -> None:
    error = refused(client, method, path.format(bad_id), kwargs, 422, ["path", name])
    assert name in error["message"]


@pytest.mark.parametrize(("method", "path", "name", "kwargs"), ID_ENDPOINTS)
def test_unknown_id(
    client: httpx.Client,
    ids: dict[str, str],
    method: str,
    path: str,
    name: str,
    kwargs: dict[str, Any],
) -> None:
    error = refused(client, method, path.format(UNKNOWN), kwargs, 404, None)
    assert UNKNOWN in error["message"]


# ------------------------------------------------------------------------- state conflicts

CONFLICT_CASES = [
    pytest.param("POST", "/api/tasks/{pending}/retry", {}, id="retry-pending"),
    pytest.param("POST", "/api/tasks/{done}/retry", {}, id="retry-completed"),
    pytest.param("POST", "/api/tasks/{done}/cancel", {}, id="cancel-completed"),
    pytest.param("PUT", "/api/tasks/{done}", {"json": {"command": "false"}}, id="run-field-done"),
    pytest.param("PUT", "/api/tasks/{done}", {"json": {"priority": "High"}}, id="priority-done"),
    pytest.param("DELETE", "/api/tasks/{parent}", {}, id="delete-depended-on"),
    pytest.param("DELETE", "/api/projects/{project}", {}, id="delete-project-with-tasks"),
    pytest.param(
        "DELETE", "/api/projects/{project}?cascade=false", {}, id="delete-project-no-cascade"
    ),
    pytest.param(
        "PUT", "/api/projects/{other}", {"json": {"name": "hostile-target"}}, id="rename-taken"
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        {"json": task(name="different"), "headers": {"Idempotency-Key": "k-1"}},
        id="idempotency-key-reused",
    ),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CONFLICT_CASES)
def test_state_conflict(
    client: httpx.Client, ids: dict[str, str], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    refused(client, method, path.format(**ids), kwargs, 409, None)


# ---------------------------------------------------------------------------------- headers

BODY_ENDPOINTS = [
    pytest.param("POST", "/api/tasks", task(), id="create-task"),
    pytest.param("POST", "/api/tasks/batch", {"tasks": [task()]}, id="batch"),
    pytest.param("POST", "/api/projects", {"name": "via-header"}, id="create-project"),
    pytest.param("PUT", "/api/tasks/{pending}", {"name": "renamed"}, id="update-task"),
    pytest.param("PUT", "/api/projects/{project}", {"name": "renamed"}, id="update-project"),
]


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(None, id="none"),
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("multipart/form-data; boundary=x", id="multipart"),
        pytest.param("application/jsonx", id="jsonx"),
        pytest.param("", id="empty"),
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), BODY_ENDPOINTS)
def test_body_must_be_sent_as_json(
    client: httpx.Client,
    ids: dict[str, str],
    method: str,
    path: str,
    body: Any,
    content_type: str | None,
) -> None:
    kwargs = raw(json.dumps(body).encode(), content_type)
    error = refused(client, method, path.format(**ids), kwargs, 415, None)
    assert "application/json" in error["message"]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 256, id="256-chars"),
        # Longer heads are refused before any route reads them (431, test_http_limits.py).
        pytest.param("k" * 60_000, id="60kb"),
        pytest.param("has space", id="space"),
        pytest.param("", id="empty"),
        pytest.param("tab\there", id="tab"),
        pytest.param("caf\xe9".encode(), id="latin-1"),
        pytest.param(b"\xff\xfe", id="invalid-utf8"),
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), BODY_ENDPOINTS[:3])
def test_bad_idempotency_key(
    client: httpx.Client,
    ids: dict[str, str],
    method: str,
    path: str,
    body: Any,
    key: str | bytes,
) -> None:
    kwargs = {"json": body, "headers": {"Idempotency-Key": key}}
    refused(client, method, path, kwargs, 422, ["header", "Idempotency-Key"])


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("evil.example", id="name"),
        pytest.param("evil.example:8080", id="name-port"),
        pytest.param("localhost.evil.example", id="localhost-prefix"),
        pytest.param("127.0.0.1.nip.io", id="loopback-prefix"),
        pytest.param("10.0.0.1", id="private-ip"),
        pytest.param("[::2]:80", id="ipv6"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/api/health", None, id="health"),
        pytest.param("GET", "/api/tasks", None, id="list-tasks"),
        *BODY_ENDPOINTS[:3],
        pytest.param("DELETE", "/api/tasks/{pending}", None, id="delete-task"),
        pytest.param("POST", "/api/tasks/{pending}/cancel", None, id="cancel"),
    ],
)
def test_non_loopback_host_is_refused(
    client: httpx.Client, ids: dict[str, str], method: str, path: str, body: Any, host: str
) -> None:
    kwargs: dict[str, Any] = {"headers": {"host": host}}
    if body is not None:
        kwargs["json"] = body
    error = refused(client, method, path.format(**ids), kwargs, 403, None)
    assert "is not a name this server answers to" in error["message"]
    assert "--allowed-host" in error["message"]


def test_request_id_is_echoed_only_when_sane(client: httpx.Client) -> None:
    response = client.get("/api/tasks/nope", headers={"X-Request-ID": "trace-42.a_b"})
    assert assert_error(response, 422)["request_id"] == "trace-42.a_b"
    for hostile in ("x" * 65, "has space", "semi;colon", "", "<script>"):
        response = client.get("/api/tasks/nope", headers={"X-Request-ID": hostile})
        request_id = assert_error(response, 422)["request_id"]
        assert request_id != hostile
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", request_id)


# -------------------------------------------------------------------- methods and paths


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("PATCH", "/api/tasks", 405, id="patch-tasks"),
        pytest.param("DELETE", "/api/tasks", 405, id="delete-tasks"),
        pytest.param("PUT", "/api/tasks", 405, id="put-tasks"),
        pytest.param("PUT", "/api/projects", 405, id="put-projects"),
        pytest.param("DELETE", "/api/projects", 405, id="delete-projects"),
        pytest.param("POST", "/api/health", 405, id="post-health"),
        pytest.param("DELETE", "/api/health", 405, id="delete-health"),
        pytest.param("POST", "/api/workers", 405, id="post-workers"),
        pytest.param("DELETE", "/api/workers", 405, id="delete-workers"),
        pytest.param("GET", "/api/workers/x", 404, id="workers-subpath"),
        pytest.param("POST", "/openapi.json", 405, id="post-openapi"),
        pytest.param("PATCH", "/api/tasks/{pending}", 405, id="patch-task"),
        pytest.param("POST", "/api/tasks/{pending}", 405, id="post-task"),
        pytest.param("GET", "/api/tasks/{pending}/cancel", 405, id="get-cancel"),
        pytest.param("DELETE", "/api/tasks/{pending}/cancel", 405, id="delete-cancel"),
        pytest.param("GET", "/api/tasks/{pending}/retry", 405, id="get-retry"),
        pytest.param("POST", "/api/tasks/{pending}/wait", 405, id="post-wait"),
        pytest.param("DELETE", "/api/tasks/{pending}/logs", 405, id="delete-logs"),
        pytest.param("POST", "/api/tasks/{pending}/attempts", 405, id="post-attempts"),
        pytest.param("POST", "/api/projects/{project}", 405, id="post-project"),
        pytest.param("GET", "/api/nope", 404, id="api-unknown"),
        pytest.param("GET", "/nope", 404, id="root-unknown"),
        pytest.param("POST", "/api/task", 404, id="singular"),
        pytest.param("GET", "/api/tasks/{pending}/nope", 404, id="task-subpath"),
        pytest.param("GET", "/api/tasks/{pending}/logs/1", 404, id="logs-subpath"),
        pytest.param("GET", "/api/projects/{project}/tasks", 404, id="project-subpath"),
        pytest.param("DELETE", "/api/tasks/{pending}/nope", 404, id="delete-subpath"),
        pytest.param("GET", "/api/" + "a" * 10_000, 404, id="long-path"),
        pytest.param("GET", "/api/%00", 404, id="nul-path"),
    ],
)
def test_wrong_method_or_unknown_path(
    client: httpx.Client, ids: dict[str, str], method: str, path: str, status: int
) -> None:
    refused(client, method, path.format(**ids), {}, status, None)


# ---------------------------------------------------------------------------- body size

OVERSIZED_ENDPOINTS = [*BODY_ENDPOINTS]


@pytest.fixture(scope="module")
def oversized() -> bytes:
    """17 MiB of JSON (one long name), over the 16 MiB default limit."""
    return b'{"name":"' + b"n" * (17 * MiB) + b'","command":"true"}'


@pytest.mark.parametrize(
    "streamed", [pytest.param(False, id="declared"), pytest.param(True, id="streamed")]
)
@pytest.mark.parametrize(("method", "path", "body"), OVERSIZED_ENDPOINTS)
def test_body_over_limit(
    client: httpx.Client,
    ids: dict[str, str],
    oversized: bytes,
    method: str,
    path: str,
    body: Any,
    streamed: bool,
) -> None:
    """413 whether the client declares the size (Content-Length) or streams it (chunked)."""

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(oversized), MiB):
            yield oversized[start : start + MiB]

    content: Any = chunks() if streamed else oversized
    error = refused(
        client, method, path.format(**ids), {"content": content, "headers": JSON}, 413, None
    )
    assert str(16 * MiB) in error["message"]


# ---------------------------------------------------------------- a lying Content-Length


def test_content_length_shorter_than_body(client: httpx.Client, main_server: ServerProcess) -> None:
    """The server reads only what was declared: a truncated JSON body is a 400, nothing stored."""
    before = snapshot(client)
    body = b'{"name":"short","command":"true","queue":"parked"}'
    status, payload = http_exchange(main_server.port, raw_post("/api/tasks", body, b"20"))
    assert status == 400, payload
    error = json.loads(payload)["error"]
    assert error["type"] == "invalid_request"
    assert "JSON" in error["message"]
    assert_unchanged(client, before)


def test_content_length_over_limit_is_refused_before_reading(
    client: httpx.Client, main_server: ServerProcess
) -> None:
    """A declared 20 MiB gets 413 at once, though only a few bytes follow."""
    before = snapshot(client)
    body = b'{"name":"liar","command":"true","queue":"parked"}'
    declared = str(20 * MiB).encode()
    status, payload = http_exchange(main_server.port, raw_post("/api/tasks", body, declared))
    assert status == 413, payload
    error = json.loads(payload)["error"]
    assert error["type"] == "payload_too_large"
    assert declared.decode() in error["message"]
    assert_unchanged(client, before)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(raw_post("/api/tasks", b"{}", b"abc"), id="cl-not-a-number"),
        pytest.param(raw_post("/api/tasks", b"{}", b"-1"), id="cl-negative"),
        pytest.param(raw_post("/api/tasks", b"{}", b"2", b"Content-Length: 3\r\n"), id="cl-twice"),
        pytest.param(b"GET /api/tasks/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id="raw-path"),
    ],
)
def test_malformed_http_is_a_400(
    client: httpx.Client, main_server: ServerProcess, request_bytes: bytes
) -> None:
    """Requests HTTP itself forbids are a 400 (uvicorn answers these before the app sees them)."""
    before = snapshot(client)
    status, _ = http_exchange(main_server.port, request_bytes)
    assert status == 400
    assert_unchanged(client, before)


def test_client_that_hangs_up_mid_body_is_not_a_crash(
    client: httpx.Client, main_server: ServerProcess
) -> None:
    """Content-Length promises more than is sent, then the client leaves.

    Nothing is stored, and the server neither logs a crash (a traceback) nor answers a 500.
    """
    assert main_server.log is not None
    before = snapshot(client)
    start = main_server.log.stat().st_size
    body = b'{"name":"gone","command":"true","queue":"parked"}'
    with socket.create_connection(("127.0.0.1", main_server.port), timeout=10) as sock:
        sock.sendall(raw_post("/api/tasks", body, b"1000"))
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b" 500 " not in answer.split(b"\r\n", 1)[0], answer
    deadline = time.monotonic() + 1.0
    logged = ""
    while time.monotonic() < deadline:
        with main_server.log.open("rb") as handle:
            handle.seek(start)
            logged = handle.read().decode("utf-8", "replace")
        if "Traceback" in logged:
            break
        time.sleep(0.05)
    assert "Traceback" not in logged, f"the server logged a crash:\n{logged[-3000:]}"
    assert " ERROR " not in logged
    assert_unchanged(client, before)


# ----------------------------------------------------------- JSON that is not JSON (NaN)

NON_STANDARD_NUMBERS = [
    pytest.param("POST", "/api/tasks", task_raw(b'"input":NaN'), id="task-input-nan"),
    pytest.param("POST", "/api/tasks", task_raw(b'"metadata":{"a":Infinity}'), id="task-meta-inf"),
    pytest.param("POST", "/api/tasks", task_raw(b'"input":[-Infinity]'), id="task-input-neg-inf"),
    pytest.param("POST", "/api/tasks", task_raw(b'"retry_delay":NaN'), id="task-retry-delay-nan"),
    pytest.param(
        "POST",
        "/api/tasks/batch",
        raw(b'{"tasks":[{"name":"a","command":"true","queue":"parked","input":NaN}]}'),
        id="batch-input-nan",
    ),
    pytest.param(
        "POST", "/api/projects", raw(b'{"name":"nan","metadata":{"a":NaN}}'), id="project-meta-nan"
    ),
    pytest.param(
        "PUT", "/api/tasks/{pending}", raw(b'{"metadata":{"a":NaN}}'), id="update-task-meta-nan"
    ),
    pytest.param(
        "PUT",
        "/api/projects/{project}",
        raw(b'{"metadata":{"a":Infinity}}'),
        id="update-project-meta-inf",
    ),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), NON_STANDARD_NUMBERS)
def test_nan_and_infinity_are_not_json(
    client: httpx.Client, ids: dict[str, str], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """``NaN`` and ``Infinity`` are not JSON (RFC 8259): refused, never stored."""
    refused(client, method, path.format(**ids), kwargs, (400, 422), None)


# -------------------------------------------- endpoints that take no query parameters


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        pytest.param("POST", "/api/tasks/{fresh}/cancel?force=true", {}, id="cancel"),
        pytest.param("DELETE", "/api/tasks/{fresh}?cascade=true", {}, id="delete-task"),
        pytest.param(
            "PUT", "/api/tasks/{fresh}?dry_run=true", {"json": {"name": "x"}}, id="update-task"
        ),
        pytest.param("POST", "/api/tasks?dry_run=true", {"json": task()}, id="create-task"),
        pytest.param(
            "POST", "/api/tasks/batch?dry_run=true", {"json": {"tasks": [task()]}}, id="batch"
        ),
        pytest.param("POST", "/api/projects?dry_run=1", {"json": {"name": "dry"}}, id="project"),
        pytest.param("GET", "/api/tasks/{fresh}?fields=name", {}, id="get-task"),
        pytest.param("GET", "/api/workers?status=stale", {}, id="workers"),
    ],
)
def test_unknown_query_parameter_on_endpoint_without_any(
    client: httpx.Client, fresh: str, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """A typo'd or unsupported option is an error, not silently ignored (here: not applied)."""
    refused(client, method, path.format(fresh=fresh), kwargs, 422, ["query"])


# ------------------------------------- values that overflow (on a scratch server)

#: (method, path, raw body or None, the field, query string)
OVERFLOW_CASES = [
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","command":"true","metadata":{"n":' + BIG_INT + b"}}",
        ["metadata"],
        id="task-metadata-bigint",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","command":"true","input":-' + BIG_INT + b"}",
        ["input"],
        id="task-input-bigint",
    ),
    pytest.param(
        "POST",
        "/api/tasks/batch",
        b'{"tasks":[{"name":"a","command":"true","input":' + BIG_INT + b"}]}",
        ["tasks", 0, "input"],
        id="batch-input-bigint",
    ),
    pytest.param(
        "POST",
        "/api/projects",
        b'{"name":"big","metadata":{"n":' + BIG_INT + b"}}",
        ["metadata"],
        id="project-metadata-bigint",
    ),
    pytest.param(
        "PUT",
        "/api/tasks/{task}",
        b'{"metadata":{"n":' + BIG_INT + b"}}",
        ["metadata"],
        id="update-task-metadata-bigint",
    ),
    pytest.param(
        "PUT",
        "/api/projects/{project}",
        b'{"metadata":{"n":[' + BIG_INT + b"]}}",
        ["metadata"],
        id="update-project-metadata-bigint",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","command":"true","run_at":"0001-01-01T00:00:00+01:00"}',
        ["run_at"],
        id="run-at-before-year-1",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","command":"true","run_at":"9999-12-31T23:59:59-01:00"}',
        ["run_at"],
        id="run-at-after-9999",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","command":"true","run_at":"9999-12-31T23:59:59.999999Z"}',
        ["run_at"],
        id="run-at-last-microsecond",
    ),
    pytest.param(
        "PUT",
        "/api/tasks/{task}",
        b'{"run_at":"0001-01-01T00:00:00+14:00"}',
        ["run_at"],
        id="update-run-at-before-year-1",
    ),
    pytest.param(
        "POST",
        "/api/projects",
        b'{"name":"due","due_date":"9999-12-31T23:59:59-12:00"}',
        ["due_date"],
        id="due-after-9999",
    ),
    pytest.param(
        "PUT",
        "/api/projects/{project}",
        b'{"due_date":"0001-01-01T00:00:00+14:00"}',
        ["due_date"],
        id="update-due-before-year-1",
    ),
    pytest.param(
        "GET",
        "/api/tasks?created_after=0001-01-01T00:00:00%2B14:00",
        None,
        ["query", "created_after"],
        id="filter-before-year-1",
    ),
    pytest.param(
        "GET",
        "/api/tasks?created_before=9999-12-31T23:59:59-12:00",
        None,
        ["query", "created_before"],
        id="filter-after-9999",
    ),
]


@pytest.mark.parametrize(("method", "path", "data", "loc"), OVERFLOW_CASES)
def test_overflowing_values_are_never_a_500(
    scratch: ServerProcess, method: str, path: str, data: bytes | None, loc: list[Any]
) -> None:
    """Integers past 64 bits and dates past the calendar's ends.

    Either refused (422, nothing stored) or stored and read back; never a 500, and never a
    stored row that cannot be read back.
    """
    with httpx.Client(base_url=scratch.url, timeout=30) as http:
        project = http.post("/api/projects", json={"name": f"p-{uuid.uuid4()}"})
        assert project.status_code == 201, project.text
        target = http.post("/api/tasks", json=task(name="target"))
        assert target.status_code == 201, target.text
        targets = [f"/api/tasks/{target.json()['id']}", f"/api/projects/{project.json()['id']}"]
        url = path.format(task=target.json()["id"], project=project.json()["id"])
        before_rows = stored_rows(scratch.db)
        before = [http.get(t).json() for t in targets]
        response = http.request(method, url, **(raw(data) if data is not None else {}))
        rows = stored_rows(scratch.db)
        reads = {t: http.get(t).status_code for t in targets}
        assert response.status_code in (200, 201, 422), (
            f"{method} {url}: {response.status_code} {response.text[:300]}; "
            f"rows before {before_rows}, after {rows}; reading the targets back: {reads}"
        )
        if response.status_code in (200, 201) and method != "GET":
            created = response.json()
            kind = "projects" if "/projects" in path else "tasks"
            for item in created.get("tasks", [created]):
                again = http.get(f"/api/{kind}/{item['id']}")
                assert again.status_code == 200, f"stored but unreadable: {again.text[:300]}"
        elif response.status_code != 200:
            assert_error(response, 422, loc)
            assert rows == before_rows, "stored despite the error"
            after = [http.get(t) for t in targets]
            assert [a.status_code for a in after] == [200, 200], [a.text[:300] for a in after]
            assert [a.json() for a in after] == before
