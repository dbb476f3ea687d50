"""Request bodies as JSON: duplicate keys refused, large bodies checked right.

A JSON object with two equal keys means one thing to the server (pydantic keeps the last) and
another to anything in front of it that reads the first; it is refused, naming the key. Large
bodies are parsed and validated off the event loop (``bench/loop.py`` measures what that does
for other requests); here they must get exactly the answers a small body gets. The server is a
real process; these are HTTP-layer checks, so they run on SQLite alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, free_port, query_db
from tests.integration.test_hostile_input import assert_error, refused, task

pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("bodies")
    process = ServerProcess(
        db=base / "tq.db", port=free_port(), args=["--workers", "0"], log=base / "server.log"
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture
def pending(api: httpx.Client) -> str:
    response = api.post("/api/tasks", json=task(name="target"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


DUPLICATES = [
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","queue":"parked","command":"echo SAFE","command":"echo EVIL"}',
        ["command"],
        id="top-level",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","queue":"parked","command":"echo SAFE","comm\\u0061nd":"echo EVIL"}',
        ["command"],
        id="escaped-spelling",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","queue":"parked","command":"true","metadata":{"k":{"x":1,"x":2}}}',
        ["metadata", "k", "x"],
        id="nested",
    ),
    pytest.param(
        "POST",
        "/api/tasks/batch",
        b'{"tasks":[{"name":"a","command":"true","queue":"parked"},'
        b'{"name":"b","command":"true","queue":"parked","queue":"default"}]}',
        ["tasks", 1, "queue"],
        id="batch-item",
    ),
    pytest.param(
        "POST",
        "/api/tasks/batch",
        b'{"tasks":[{"name":"a","command":"true","queue":"parked"}],"tasks":[]}',
        ["tasks"],
        id="batch-tasks",
    ),
    pytest.param(
        "POST", "/api/projects", b'{"name":"p","name":"q"}', ["name"], id="create-project"
    ),
    pytest.param(
        "PUT",
        "/api/tasks/{pending}",
        b'{"command":"echo SAFE","command":"echo EVIL"}',
        ["command"],
        id="update-task",
    ),
    pytest.param(
        "POST",
        "/api/tasks",
        b'{"name":"a","queue":"parked","command":"true","input":[{"k:":"v:","k:":"\\u003a"}]}',
        ["input", 0, "k:"],
        id="colons-in-strings",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "loc"), DUPLICATES)
def test_a_duplicate_key_is_refused_naming_it(
    api: httpx.Client, pending: str, method: str, path: str, body: bytes, loc: list[Any]
) -> None:
    kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    error = refused(api, method, path.format(pending=pending), kwargs, 400, loc)
    assert repr(loc[-1]) in error["message"]
    assert error["details"][0]["type"] == "duplicate_key"
    if len(loc) > 1:
        assert ".".join(str(part) for part in loc[:-1]) in error["message"]


def test_bodies_that_only_look_like_duplicates_are_stored_as_sent(api: httpx.Client) -> None:
    """Colons and escapes in strings, and equal keys in different objects, are not duplicates."""
    body = (
        b'{"name":"lookalike","queue":"parked","command":"echo a:b",'
        b'"metadata":{"url":"http://x:1/","k\\u003a":"\\\\u003a","a":{"a":{"a":1}},'
        b'"list":[{"a":1},{"a":2}],"c\\\\":":"}}'
    )
    response = api.post("/api/tasks", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == json.loads(body)["metadata"]


# ------------------------------------------------------------------------- large batches

MiB = 1024 * 1024


def _batch(count: int, padding: int, **last: Any) -> bytes:
    items = [task(name=f"big-{i}", metadata={"pad": "x" * padding}) for i in range(count)]
    items[-1].update(last)
    return json.dumps({"tasks": items}).encode()


def test_a_large_batch_is_still_checked_and_stored_right(
    api: httpx.Client, server: ServerProcess
) -> None:
    """Large bodies are validated off the event loop; what they get is what a small one gets."""
    headers = {"content-type": "application/json"}
    over = _batch(60_000, 150)
    assert 8 * MiB < len(over) < 16 * MiB
    error = assert_error(api.post("/api/tasks/batch", content=over, headers=headers), 422)
    assert error["details"] == [
        {
            "loc": ["tasks"],
            "msg": "List should have at most 5000 items after validation, not 60000",
            "type": "too_long",
        }
    ]
    bad = _batch(5000, 2500, priority="Bogus")
    error = assert_error(api.post("/api/tasks/batch", content=bad, headers=headers), 422)
    assert error["details"][0]["loc"] == ["tasks", 4999, "priority"]
    doubled = _batch(5000, 2500).replace(b'"name": "big-4999"', b'"name": "x", "name": "big-4999"')
    error = assert_error(api.post("/api/tasks/batch", content=doubled, headers=headers), 400)
    assert error["details"][0]["loc"] == ["tasks", 4999, "name"]

    def stored_big() -> int:
        db = server.db
        assert isinstance(db, Path)
        return int(query_db(db, "SELECT count(*) FROM tasks WHERE name LIKE 'big-%'")[0][0])

    assert stored_big() == 0
    good = _batch(5000, 2500)
    assert len(good) > 12 * MiB
    with httpx.Client(base_url=server.url, timeout=120) as other:
        response = other.post("/api/tasks/batch", content=good, headers=headers)
        assert response.status_code == 201, response.text[:500]
        assert other.get("/api/health").status_code == 200
    created = response.json()["tasks"]
    assert [t["name"] for t in created] == [f"big-{i}" for i in range(5000)]
    assert created[4999]["metadata"] == {"pad": "x" * 2500}
    assert stored_big() == 5000
