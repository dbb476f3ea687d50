"""A key's secret is shown once, when it is made, and nowhere after: not in the server's log,
an answer, an event, ``/openapi.json``, a process listing, or a task's environment.

The server is started with keys in its environment (``TASKQUEUE_API_KEY`` and a key pair, as a
user's shell may hold them), so a task that inherited its environment would show them. The
server's secret file (the pepper keys are hashed under) is held to the same rule.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskqueue.signing import signed_headers
from tests.conftest import query_db, wait_until
from tests.integration.authkit import AuthServer, assert_no_secret, auth_server

# What is checked here happens before the store (headers, signatures, limits, logs); the
# store's own part of keys is tested on both backends in test_auth.py and tests/pg.
pytestmark = pytest.mark.sqlite_only

#: What a task's environment must not name.
SECRET_VARIABLES = ("TASKQUEUE_API_KEY", "TASKQUEUE_PUBLIC_KEY", "TASKQUEUE_SECRET_KEY")


@pytest.fixture(scope="module")
def secrecy(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    root: Path = tmp_path_factory.mktemp("secrecy")

    def prepare(server: AuthServer) -> dict[str, str]:
        pair = server.make_key("env-pair", "--pair", "--scope", "write")
        return {
            "TASKQUEUE_API_KEY": server.admin,
            "TASKQUEUE_PUBLIC_KEY": pair["public_key"],
            "TASKQUEUE_SECRET_KEY": pair["secret_key"],
        }

    with auth_server(request, backend, root, "--workers", "2", prepare=prepare) as server:
        yield server


def pepper(server: AuthServer) -> str:
    return server.secret.read_text().strip()


def assert_hidden(server: AuthServer, text: str, where: str) -> None:
    assert_no_secret(text, server.secrets, where)
    assert pepper(server) not in text, f"the server's secret is in {where}"


def process_args() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


def test_keys_are_in_no_log_answer_event_document_or_listing(secrecy: AuthServer) -> None:
    server = secrecy
    answers: list[httpx.Response] = []
    with server.admin_client() as admin:
        made = admin.post("/api/keys", json={"name": "w", "scopes": ["write"]})
        writer = server.remember(made.json())
        reader = server.api_key("r", scopes=["read"])
        listed = admin.get("/api/keys")
        answers.append(listed)
        for key in listed.json()["keys"]:
            answers.append(admin.get(f"/api/keys/{key['id']}"))
        rotated = admin.post(f"/api/keys/{writer['id']}/rotate", json={"grace_seconds": 30})
        server.remember(rotated.json())
        answers.append(admin.post(f"/api/keys/{writer['id']}/revoke"))
        answers.append(admin.post(f"/api/keys/{writer['id']}/rotate", json={}))  # 409
        answers.append(admin.post(f"/api/keys/{reader['prefix']}/revoke"))
    presented = [
        *server.secrets,
        server.admin[:11] + "Q" * 35,
        "tq_" + "Q" * 43,
        "not-a-key",
    ]
    for key in presented:
        with server.client(key) as client:
            answers.append(client.get("/api/tasks"))
            answers.append(client.post("/api/projects", json={"name": "secret-test"}))
            answers.append(client.get("/api/tasks/00000000-0000-0000-0000-000000000000"))
            answers.append(client.get("/api/health"))
            answers.append(client.get("/api/nowhere"))
        with server.client() as client:
            answers.append(client.get("/api/tasks", headers={"X-API-Key": key}))
    with server.client() as client:
        bad_signature = signed_headers("tqp_" + "1" * 16, "tqs_" + "2" * 43, "GET", "/api/tasks")
        answers.append(client.get("/api/tasks", headers=bad_signature))
        answers.append(client.get("/openapi.json"))
        answers.append(client.get("/openapi.json", headers={"X-API-Key": server.admin}))
        assert answers[-1].status_code == 200
        assert "paths" in answers[-1].json()
    for answer in answers:
        request = answer.request
        shown = answer.text + json.dumps(dict(answer.headers))
        # an answer may hold the secret it makes (once), never another
        made = [answer.json().get(k) for k in ("key", "secret_key")] if answer.is_success else []
        hidden = [s for s in server.secrets if s not in made]
        assert_no_secret(shown, hidden, f"the answer to {request.method} {request.url}")
        assert pepper(server) not in shown
    assert_hidden(server, process_args(), "ps -eo args")
    wait_until(
        lambda: any(
            kind == "key.revoked"
            for kind, _ in query_db(server.db, "SELECT type, data FROM events")
        ),
        30,
        "the events",
    )
    assert_hidden(server, json.dumps(query_db(server.db, "SELECT * FROM events")), "the events")
    assert_hidden(server, server.log(), "the server's log")


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if token.encode() in args:
            found.append(int(entry))
    return found


def test_a_running_task_holds_no_key(secrecy: AuthServer) -> None:
    server = secrecy
    token = f"{random.randint(1000, 9999)}.{random.randint(100, 999)}"
    with server.admin_client() as admin:
        task = admin.post(
            "/api/tasks", json={"name": "secrecy", "command": f"env; exec sleep {token}"}
        )
        assert task.status_code == 201, task.text
        task_id = task.json()["id"]
        try:
            wait_until(lambda: bool(_processes_with(token)), 60, "the task's process")
            pids = _processes_with(token)
            for pid in pids:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    environ = handle.read().decode(errors="replace")
                names = {item.split("=", 1)[0] for item in environ.split("\0")}
                assert f"TASKQUEUE_TASK_ID={task_id}" in environ.split("\0"), "not the task"
                assert not names & set(SECRET_VARIABLES), names & set(SECRET_VARIABLES)
                assert_hidden(server, environ, f"the environment of the task's process {pid}")
            assert_hidden(server, process_args(), "ps -eo args while a task runs")
            assert server.process.process is not None
            with open(f"/proc/{server.process.process.pid}/cmdline", "rb") as handle:
                assert_hidden(server, handle.read().decode(errors="replace"), "the command line")

            def printed() -> str:
                logs = admin.get(f"/api/tasks/{task_id}/logs")
                assert logs.status_code == 200, logs.text
                return logs.text

            wait_until(lambda: "TASKQUEUE_WORKER_ID" in printed(), 30, "the task's env output")
            assert_hidden(server, printed(), "what the task printed of its environment")
        finally:
            admin.post(f"/api/tasks/{task_id}/cancel")
