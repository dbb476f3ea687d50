"""Which requests may change state: origins, content types, CORS, and the Host header.

A web page on any site can make the user's browser send a ``POST`` to a server on localhost
without asking first (an HTML form, ``fetch`` in ``no-cors`` mode), as long as it uses a content
type a form can send. Each case sends what such a page (or a hostile client) would, and checks
the answer and that nothing stored changed. The server runs as a real process with
``--allow-origin`` for two origins; these are HTTP-layer checks, so they run on SQLite alone.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from taskqueue.client import TaskQueueClient
from tests.conftest import ServerProcess, free_port
from tests.integration.test_hostile_input import assert_error, refused, snapshot, task

pytestmark = pytest.mark.sqlite_only

ALLOWED = "https://dash.example.com"
#: Given to the server as ``HTTP://Other.Example:8443/``-less spelling below; browsers send it so.
ALLOWED_TOO = "http://other.example:8443"
FORMS = [
    pytest.param("application/x-www-form-urlencoded", id="form"),
    pytest.param("multipart/form-data; boundary=x", id="multipart"),
    pytest.param("text/plain", id="text-plain"),
    pytest.param("Text/Plain; charset=utf-8", id="text-plain-cased"),
]


@pytest.fixture(scope="module")
def guarded(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("guarded")
    server = ServerProcess(
        db=base / "tq.db",
        port=free_port(),
        args=[
            "--workers",
            "0",
            "--allow-origin",
            ALLOWED,
            "--allow-origin",
            "HTTP://Other.Example:8443",
        ],
        log=base / "server.log",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(guarded: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        yield client


@pytest.fixture
def pending(api: httpx.Client) -> str:
    """A new Pending task no worker runs (the server has none)."""
    response = api.post("/api/tasks", json=task(name="target"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def cancelled(api: httpx.Client, pending: str) -> str:
    """A Cancelled task, which ``retry`` would re-queue."""
    assert api.post(f"/api/tasks/{pending}/cancel").status_code == 200
    return pending


STATE_CHANGES = [
    pytest.param("POST", "/api/tasks/{pending}/cancel", None, id="cancel"),
    pytest.param("POST", "/api/tasks/{cancelled}/retry", None, id="retry"),
    pytest.param("DELETE", "/api/tasks/{pending}", None, id="delete"),
    pytest.param("POST", "/api/tasks", task(name="planted"), id="create"),
    pytest.param("POST", "/api/tasks/batch", {"tasks": [task(name="planted")]}, id="batch"),
    pytest.param("PUT", "/api/tasks/{pending}", {"command": "echo EVIL"}, id="update"),
    pytest.param("POST", "/api/projects", {"name": "planted"}, id="create-project"),
]


def _path(path: str, pending: str, cancelled: str | None = None) -> str:
    return path.format(pending=pending, cancelled=cancelled or pending)


def _kwargs(body: Any, headers: dict[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["content"] = json.dumps(body).encode()
        kwargs["headers"] = {"content-type": "application/json", **headers}
    return kwargs


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("http://evil.example", id="evil"),
        pytest.param("null", id="null"),
        pytest.param("http://127.0.0.1:1", id="other-local-port"),
        pytest.param("https://127.0.0.1:{port}", id="https-same-port"),
        pytest.param("http://localhost.evil.example:{port}", id="localhost-prefix"),
        pytest.param("https://dash.example.com.evil.example", id="allowed-prefix"),
        pytest.param("https://dash.example.com:444", id="allowed-other-port"),
        pytest.param("not an origin", id="garbage"),
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGES)
def test_foreign_origin_cannot_change_state(
    api: httpx.Client,
    guarded: ServerProcess,
    cancelled: str,
    method: str,
    path: str,
    body: Any,
    origin: str,
) -> None:
    fresh = api.post("/api/tasks", json=task(name="fresh")).json()["id"]
    headers = {"origin": origin.format(port=guarded.port)}
    error = refused(api, method, _path(path, fresh, cancelled), _kwargs(body, headers), 403, None)
    assert "--allow-origin" in error["message"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGES)
def test_a_request_the_browser_marks_cross_site_cannot_change_state(
    api: httpx.Client, cancelled: str, method: str, path: str, body: Any, site: str
) -> None:
    fresh = api.post("/api/tasks", json=task(name="fresh")).json()["id"]
    kwargs = _kwargs(body, {"sec-fetch-site": site})
    error = refused(api, method, _path(path, fresh, cancelled), kwargs, 403, None)
    assert "Sec-Fetch-Site" in error["message"]


@pytest.mark.parametrize("content_type", FORMS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/api/tasks/{pending}/cancel", id="cancel"),
        pytest.param("POST", "/api/tasks/{cancelled}/retry", id="retry"),
        pytest.param("DELETE", "/api/tasks/{pending}", id="delete"),
    ],
)
def test_a_form_without_a_body_cannot_change_state(
    api: httpx.Client, cancelled: str, method: str, path: str, content_type: str
) -> None:
    """What an empty HTML form sends (no Origin, as some clients and old browsers do)."""
    fresh = api.post("/api/tasks", json=task(name="fresh")).json()["id"]
    kwargs = {"content": b"", "headers": {"content-type": content_type}}
    error = refused(api, method, _path(path, fresh, cancelled), kwargs, 415, None)
    assert "HTML form" in error["message"]


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        pytest.param("text/plain", b"cancel=1", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", b"a=1", id="form"),
        pytest.param(None, b"{}", id="no-type"),
        pytest.param("application/octet-stream", b"\x00", id="binary"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/api/tasks/{pending}/cancel", id="cancel"),
        pytest.param("POST", "/api/tasks/{cancelled}/retry", id="retry"),
        pytest.param("DELETE", "/api/tasks/{pending}", id="delete"),
        pytest.param("DELETE", "/api/projects/00000000-0000-4000-8000-000000000000", id="project"),
    ],
)
def test_a_body_that_is_not_json_cannot_change_state(
    api: httpx.Client,
    cancelled: str,
    method: str,
    path: str,
    content_type: str | None,
    content: bytes,
) -> None:
    fresh = api.post("/api/tasks", json=task(name="fresh")).json()["id"]
    headers = {"content-type": content_type} if content_type else {}
    kwargs = {"content": content, "headers": headers}
    error = refused(api, method, _path(path, fresh, cancelled), kwargs, 415, None)
    assert "application/json" in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="plain"),
        pytest.param({"content-type": "application/json"}, id="json-type"),
        pytest.param({"origin": "http://127.0.0.1:{port}"}, id="own-origin"),
        pytest.param({"origin": "HTTP://127.0.0.1:{port}"}, id="own-origin-cased"),
        pytest.param({"origin": "http://localhost:{port}", "host": "localhost:{port}"}, id="host"),
        pytest.param({"origin": ALLOWED}, id="allowed"),
        pytest.param({"origin": ALLOWED_TOO, "sec-fetch-site": "cross-site"}, id="allowed-too"),
        pytest.param({"sec-fetch-site": "same-origin"}, id="same-origin"),
        pytest.param({"sec-fetch-site": "none"}, id="user-initiated"),
    ],
)
def test_the_servers_own_and_allowed_origins_may_change_state(
    api: httpx.Client, guarded: ServerProcess, pending: str, headers: dict[str, str]
) -> None:
    sent = {name: value.format(port=guarded.port) for name, value in headers.items()}
    cancelled = api.post(f"/api/tasks/{pending}/cancel", headers=sent)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "Cancelled"
    retried = api.post(f"/api/tasks/{pending}/retry", headers=sent)
    assert retried.status_code == 200, retried.text
    created = api.post("/api/tasks", json=task(name="welcome"), headers=sent)
    assert created.status_code == 201, created.text
    assert api.delete(f"/api/tasks/{created.json()['id']}", headers=sent).status_code == 204


@pytest.mark.parametrize("origin", [ALLOWED, ALLOWED_TOO])
@pytest.mark.parametrize("path", ["/api/tasks", "/api/tasks/{pending}/cancel", "/api/health"])
def test_a_preflight_from_an_allowed_origin_is_answered(
    api: httpx.Client, pending: str, path: str, origin: str
) -> None:
    response = api.options(
        path.format(pending=pending),
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, idempotency-key",
        },
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == origin
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers
    assert "idempotency-key" in allowed_headers
    # A page may send a key, or sign with a key pair.
    for header in ("authorization", "x-api-key", "x-taskqueue-signature", "x-taskqueue-key-id"):
        assert header in allowed_headers
    assert response.headers["vary"] == "Origin"
    assert int(response.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize("origin", ["http://evil.example", "null", f"{ALLOWED}.evil.example"])
def test_a_preflight_from_another_origin_is_refused(api: httpx.Client, origin: str) -> None:
    response = api.options(
        "/api/tasks", headers={"origin": origin, "access-control-request-method": "POST"}
    )
    error = assert_error(response, 403)
    assert "--allow-origin" in error["message"]
    assert "access-control-allow-origin" not in response.headers


def test_answers_to_an_allowed_origin_carry_cors_headers(api: httpx.Client, pending: str) -> None:
    headers = {"origin": ALLOWED}
    for response in (
        api.get("/api/health", headers=headers),
        api.get(f"/api/tasks/{pending}", headers=headers),
        api.post("/api/tasks", json=task(name="cors"), headers=headers),
        api.post("/api/tasks", json=task(priority="Bogus"), headers=headers),  # a 422
    ):
        assert response.headers["access-control-allow-origin"] == ALLOWED, response.text
        assert response.headers["vary"] == "Origin"
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    other = api.get("/api/health", headers={"origin": "http://evil.example"})
    assert other.status_code == 200  # a read; the browser keeps the answer from the page
    assert "access-control-allow-origin" not in other.headers


def test_a_plain_options_request_is_not_a_preflight(api: httpx.Client) -> None:
    """An OPTIONS that is not a preflight says which methods the path takes, and no more."""
    for headers in ({}, {"origin": ALLOWED}):
        reply = api.options("/api/tasks", headers=headers)
        assert reply.status_code == 204
        assert reply.headers["allow"] == "GET, POST, HEAD, OPTIONS"
        assert "access-control-allow-methods" not in reply.headers


def test_the_sdk_passes_every_guard(guarded: ServerProcess) -> None:
    """The SDK's calls without a body (cancel, retry, delete) send what the guards accept."""
    with TaskQueueClient(base_url=guarded.url) as client:
        made = client.create_task(name="sdk", command="true", queue="parked")
        assert client.cancel_task(made.id).status == "Cancelled"
        assert client.retry_task(made.id).status == "Pending"
        assert client.update_task(made.id, name="sdk-renamed").name == "sdk-renamed"
        [one, two] = client.create_tasks([task(name="a"), task(name="b")])
        assert client.delete_task(one.id)
        assert client.delete_task(two.id)
        project = client.create_project(name="sdk-project")
        assert client.update_project(project.id, description="d").description == "d"
        assert client.delete_project(project.id)


# --------------------------------------------------------------------------------- the Host


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
@pytest.mark.parametrize(
    "request_line",
    ["GET /api/health", "GET /api/tasks", "POST /api/tasks/{pending}/cancel"],
)
def test_a_request_without_host_is_refused_like_a_wrong_one(
    api: httpx.Client, guarded: ServerProcess, pending: str, request_line: str, version: str
) -> None:
    before = snapshot(api)
    line = f"{request_line.format(pending=pending)} {version}\r\nContent-Length: 0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=30) as sock:
        sock.sendall(line.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"400", b"403"), answer  # llhttp may refuse it itself
    error = json.loads(body)["error"]
    if head.split(b" ")[1] == b"403":
        assert "no Host header" in error["message"]
    assert snapshot(api) == before
