"""API keys at every route, against a real server process: who is refused, with what, and that a
refused request changed nothing.

One server per backend (``--workers 0``, so tasks stay as the tests leave them) walks the whole
route table; revocation and rotation use the same server; the first key's effect on an open
server gets one of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskqueue.server.auth import Scope
from taskqueue.server.routes import ENDPOINTS, SCOPES, Resource
from tests.conftest import ServerProcess, wait_until
from tests.integration.authkit import (
    AuthServer,
    assert_no_secret,
    auth_server,
    fresh_address,
    run_keys,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.url}: " + (
        response.text
    )
    return response.json() if response.content else None


@dataclass
class Walk:
    """The module's server, two projects, and a key of every kind."""

    server: AuthServer
    admin: httpx.Client
    project_a: str
    project_b: str
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def make_key(self, label: str, **fields: Any) -> str:
        body = {"name": unique(label), **fields}
        made = self.server.remember(ok(self.admin.post("/api/keys", json=body), 201))
        self.keys[label], self.key_ids[label] = made["key"], made["id"]
        return str(made["key"])

    def task(self, project: str | None = None, **fields: Any) -> str:
        body = {"name": unique("walk"), "command": "true", "project_id": project or self.project_a}
        return str(ok(self.admin.post("/api/tasks", json={**body, **fields}), 201)["id"])

    def project(self) -> str:
        return str(ok(self.admin.post("/api/projects", json={"name": unique("p")}), 201)["id"])


@pytest.fixture(scope="module")
def walk(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("auth-walk")
    with auth_server(request, backend, root, "--workers", "0") as server:
        admin = server.admin_client()
        a = ok(admin.post("/api/projects", json={"name": unique("a")}), 201)["id"]
        b = ok(admin.post("/api/projects", json={"name": unique("b")}), 201)["id"]
        w = Walk(server, admin, a, b)
        w.make_key("read", scopes=["read"])
        w.make_key("write", scopes=["write"])
        w.make_key("limited", scopes=["admin"], projects=[b])
        w.make_key("revoked", scopes=["admin"])
        ok(admin.post(f"/api/keys/{w.key_ids['revoked']}/revoke"))
        soon = datetime.now(timezone.utc) + timedelta(seconds=1)
        w.make_key("expired", scopes=["admin"], expires_at=soon.isoformat())
        # Wrong keys: a random one, and one with a real key's prefix but not its secret.
        w.keys["wrong"] = "tq_" + uuid.uuid4().hex + "0123456789A"
        w.keys["wrong-tail"] = w.keys["read"][:11] + "x" * 35
        with server.client(w.keys["expired"]) as expired:
            wait_until(
                lambda: expired.get("/api/tasks").status_code == 401, 30, "the key to expire"
            )
        try:
            yield w
        finally:
            admin.close()
            assert_no_secret(server.log(), server.secrets, "the server's log")


# ------------------------------------------------------------------ what each route is sent


@dataclass
class Target:
    """One concrete request to a route: its path, query and body."""

    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    #: A form body (what a browser posts) instead of JSON.
    form: dict[str, str] | None = None


@dataclass
class Case:
    make: Callable[[Walk], Target]
    #: The status the right key gets.
    good: int
    #: The status a key of every scope limited to the other project gets.
    limited: int
    #: A public route's status for any caller, with or without a (good or bad) key.
    public: int = 200


def _fresh_task(w: Walk, suffix: str = "", body: Any = None, **params: Any) -> Target:
    return Target(f"/api/tasks/{w.task()}{suffix}", body, params or None)


def _cancelled_task(w: Walk) -> Target:
    task = w.task()
    ok(w.admin.post(f"/api/tasks/{task}/cancel"))
    return Target(f"/api/tasks/{task}/retry")


def _fresh_key(w: Walk, suffix: str, body: Any = None) -> Target:
    made = w.server.remember(ok(w.admin.post("/api/keys", json={"name": unique("k")}), 201))
    return Target(f"/api/keys/{made['id']}{suffix}", body)


def _fresh_webhook(w: Walk, suffix: str = "", body: Any = None, **params: Any) -> Target:
    hook = {"url": "http://hooks.invalid/in", "project_id": w.project_a}
    made = ok(w.admin.post("/api/webhooks", json=hook), 201)
    w.server.secrets.append(made["secret"])
    return Target(f"/api/webhooks/{made['id']}{suffix}", body, params or None)


def _redelivery(w: Walk) -> Target:
    target = _fresh_webhook(w, "/redeliver")
    w.task()  # an event of project_a, which the webhook may receive
    page = ok(w.admin.get("/api/events", params={"format": "json", "project_id": w.project_a}))
    newest = max(event["id"] for event in page["items"])
    page = ok(w.admin.get("/api/events", params={"format": "json", "after": newest - 1}))
    target.body = {"event_id": page["items"][0]["id"]}
    return target


def _fresh_function(w: Walk, suffix: str = "", body: Any = None) -> Target:
    task = w.task(task_type="Function", input_schema={"type": "object"})
    return Target(f"/api/tasks/{task}{suffix}", body)


def _fresh_execution(w: Walk) -> Target:
    target = _fresh_function(w, "/execute", {"input": {}, "timeout_ms": 0})
    made = ok(w.admin.post(target.path, json=target.body), 202)
    return Target(f"/api/executions/{made['execution_id']}", params={"timeout_ms": 0})


def _fresh_batch(w: Walk) -> Target:
    target = _fresh_function(w, "/batch-execute", {"inputs": [{}], "timeout_ms": 0})
    made = ok(w.admin.post(target.path, json=target.body), 202)
    return Target(f"/api/batches/{made['batch_id']}", params={"timeout_ms": 0})


def _fresh_schedule(w: Walk, suffix: str, **params: Any) -> Target:
    task = w.task(task_type="Scheduled", schedule={"cron": "@yearly"})
    return Target(f"/api/tasks/{task}{suffix}", None, params or None)


def _fresh_workflow_task(w: Walk, suffix: str, body: Any = None) -> Target:
    # No worker runs in the walk: the workflow never reaches its gate, so a review or a link
    # is refused (409) once the caller is let through.
    task = w.task(task_type="Workflow")
    return Target(f"/api/tasks/{task}{suffix}", body)


def _fresh_workflow(w: Walk) -> Target:
    name = unique("wf")
    body = {"name": name, "phases": [{"name": "build", "command": "true"}]}
    ok(w.admin.post(f"/api/projects/{w.project_a}/workflows", json=body), 201)
    return Target(f"/api/projects/{w.project_a}/workflows/{name}")


def _new_task_body(w: Walk) -> dict[str, Any]:
    return {"name": unique("new"), "command": "true", "project_id": w.project_a}


CASES: dict[tuple[str, str], Case] = {
    ("/", "GET"): Case(lambda w: Target("/"), 200, 200),
    ("/api/health", "GET"): Case(lambda w: Target("/api/health"), 200, 200),
    ("/api/tasks", "GET"): Case(lambda w: Target("/api/tasks"), 200, 200),
    ("/api/tasks", "POST"): Case(lambda w: Target("/api/tasks", _new_task_body(w)), 201, 409),
    ("/api/tasks/batch", "POST"): Case(
        lambda w: Target("/api/tasks/batch", {"tasks": [_new_task_body(w)]}), 201, 409
    ),
    ("/api/tasks/batch", "PUT"): Case(
        lambda w: Target(
            "/api/tasks/batch", {"updates": [{"task_id": w.task(), "changes": {"name": "x"}}]}
        ),
        200,
        404,
    ),
    ("/api/tasks/{task_id}", "GET"): Case(lambda w: _fresh_task(w), 200, 404),
    ("/api/tasks/{task_id}", "PUT"): Case(lambda w: _fresh_task(w, "", {"name": "y"}), 200, 404),
    ("/api/tasks/{task_id}", "DELETE"): Case(lambda w: _fresh_task(w), 204, 404),
    ("/api/tasks/{task_id}/cancel", "POST"): Case(lambda w: _fresh_task(w, "/cancel"), 200, 404),
    ("/api/tasks/{task_id}/retry", "POST"): Case(_cancelled_task, 200, 404),
    ("/api/tasks/{task_id}/wait", "GET"): Case(
        lambda w: _fresh_task(w, "/wait", timeout=0), 200, 404
    ),
    ("/api/tasks/{task_id}/logs", "GET"): Case(lambda w: _fresh_task(w, "/logs"), 200, 404),
    ("/api/tasks/{task_id}/attempts", "GET"): Case(lambda w: _fresh_task(w, "/attempts"), 200, 404),
    ("/api/tasks/{task_id}/versions", "GET"): Case(
        lambda w: _fresh_function(w, "/versions"), 200, 404
    ),
    ("/api/tasks/{task_id}/execute", "POST"): Case(
        lambda w: _fresh_function(w, "/execute", {"input": {}, "timeout_ms": 0}), 202, 404
    ),
    ("/api/tasks/{task_id}/batch-execute", "POST"): Case(
        lambda w: _fresh_function(w, "/batch-execute", {"inputs": [{}], "timeout_ms": 0}),
        202,
        404,
    ),
    ("/api/executions/{execution_id}", "GET"): Case(_fresh_execution, 200, 404),
    ("/api/tasks/{task_id}/runs", "GET"): Case(lambda w: _fresh_schedule(w, "/runs"), 200, 404),
    ("/api/tasks/{task_id}/next", "GET"): Case(
        lambda w: _fresh_schedule(w, "/next", count=2), 200, 404
    ),
    ("/api/tasks/{task_id}/pause", "POST"): Case(lambda w: _fresh_schedule(w, "/pause"), 200, 404),
    ("/api/tasks/{task_id}/resume", "POST"): Case(
        lambda w: _fresh_schedule(w, "/resume"), 200, 404
    ),
    ("/api/tasks/{task_id}/trigger", "POST"): Case(
        lambda w: _fresh_schedule(w, "/trigger"), 201, 404
    ),
    ("/api/batches/{batch_id}", "GET"): Case(_fresh_batch, 200, 404),
    ("/api/tasks/{task_id}/reviews", "GET"): Case(
        lambda w: _fresh_workflow_task(w, "/reviews"), 200, 404
    ),
    ("/api/tasks/{task_id}/reviews", "POST"): Case(
        lambda w: _fresh_workflow_task(w, "/reviews", {"verdict": "approve"}), 409, 404
    ),
    ("/api/tasks/{task_id}/review-links", "POST"): Case(
        lambda w: _fresh_workflow_task(w, "/review-links", {"reviewer": "r"}), 409, 404
    ),
    ("/api/projects/{project_id}/workflows", "GET"): Case(
        lambda w: Target(f"/api/projects/{w.project_a}/workflows"), 200, 404
    ),
    ("/api/projects/{project_id}/workflows", "POST"): Case(
        lambda w: Target(
            f"/api/projects/{w.project_a}/workflows",
            {"name": unique("wf"), "phases": [{"name": "build", "command": "true"}]},
        ),
        201,
        404,
    ),
    ("/api/projects/{project_id}/workflows/{name}", "GET"): Case(_fresh_workflow, 200, 404),
    ("/api/projects/{project_id}/workflows/{name}", "DELETE"): Case(_fresh_workflow, 204, 404),
    # An approval link's token is its credential: no key is needed, none is looked at. A
    # token no link has is a 404 page for everyone.
    ("/reviews/{token}", "GET"): Case(
        lambda w: Target(f"/reviews/{uuid.uuid4().hex}"), 404, 404, public=404
    ),
    ("/reviews/{token}", "POST"): Case(
        lambda w: Target(f"/reviews/{uuid.uuid4().hex}", form={"verdict": "approve"}),
        404,
        404,
        public=404,
    ),
    ("/api/workers", "GET"): Case(lambda w: Target("/api/workers"), 200, 200),
    ("/api/languages", "GET"): Case(lambda w: Target("/api/languages"), 200, 200),
    ("/api/events", "GET"): Case(
        lambda w: Target("/api/events", params={"format": "json"}), 200, 200
    ),
    ("/api/projects", "GET"): Case(lambda w: Target("/api/projects"), 200, 200),
    ("/api/projects", "POST"): Case(
        lambda w: Target("/api/projects", {"name": unique("new")}), 201, 403
    ),
    ("/api/projects/{project_id}", "GET"): Case(
        lambda w: Target(f"/api/projects/{w.project_a}"), 200, 404
    ),
    ("/api/projects/{project_id}", "PUT"): Case(
        lambda w: Target(f"/api/projects/{w.project()}", {"description": "changed"}), 200, 404
    ),
    ("/api/projects/{project_id}", "DELETE"): Case(
        lambda w: Target(f"/api/projects/{w.project()}"), 204, 404
    ),
    ("/api/keys", "GET"): Case(lambda w: Target("/api/keys"), 200, 403),
    ("/api/keys", "POST"): Case(lambda w: Target("/api/keys", {"name": unique("new")}), 201, 403),
    ("/api/keys/{key_id}", "GET"): Case(lambda w: _fresh_key(w, ""), 200, 403),
    ("/api/keys/{key_id}/revoke", "POST"): Case(lambda w: _fresh_key(w, "/revoke"), 200, 403),
    ("/api/keys/{key_id}/rotate", "POST"): Case(
        lambda w: _fresh_key(w, "/rotate", {"grace_seconds": 60}), 201, 403
    ),
    ("/api/webhooks", "GET"): Case(lambda w: Target("/api/webhooks"), 200, 200),
    ("/api/webhooks", "POST"): Case(
        lambda w: Target(
            "/api/webhooks", {"url": "http://hooks.invalid/new", "project_id": w.project_a}
        ),
        201,
        403,
    ),
    ("/api/webhooks/{webhook_id}", "GET"): Case(lambda w: _fresh_webhook(w), 200, 404),
    ("/api/webhooks/{webhook_id}", "PUT"): Case(
        lambda w: _fresh_webhook(w, "", {"description": "changed"}), 200, 404
    ),
    ("/api/webhooks/{webhook_id}", "DELETE"): Case(lambda w: _fresh_webhook(w), 204, 404),
    ("/api/webhooks/{webhook_id}/rotate-secret", "POST"): Case(
        lambda w: _fresh_webhook(w, "/rotate-secret", {"grace_seconds": 60}), 200, 404
    ),
    ("/api/webhooks/{webhook_id}/deliveries", "GET"): Case(
        lambda w: _fresh_webhook(w, "/deliveries"), 200, 404
    ),
    ("/api/webhooks/{webhook_id}/redeliver", "POST"): Case(_redelivery, 200, 404),
    ("/api/webhooks/{webhook_id}/test", "POST"): Case(
        lambda w: _fresh_webhook(w, "/test"), 200, 404
    ),
}

ROUTES = [(path, method) for path, methods in ENDPOINTS.items() for method in methods]


def test_every_route_is_walked() -> None:
    """The walk below covers the route table exactly: a new route fails here until it is."""
    assert sorted(CASES) == sorted(ROUTES)


def test_every_route_declares_a_valid_scope() -> None:
    for path, method in ROUTES:
        assert method in SCOPES.get(path, {}), f"{method} {path} has no scope"
        assert isinstance(SCOPES[path][method], Scope), f"{method} {path}"
    assert {(p, m) for p, ms in SCOPES.items() for m in ms} == set(ROUTES), "scopes of no route"
    for path, method in ROUTES:
        if method != "GET" and path != "/reviews/{token}":
            # Nothing that changes anything is open, or needs only read (but the page of an
            # approval link, whose token is the credential).
            assert SCOPES[path][method] in (Scope.WRITE, Scope.ADMIN), f"{method} {path}"
    assert SCOPES["/api/health"]["GET"] is Scope.PUBLIC
    assert SCOPES["/"]["GET"] is Scope.PUBLIC
    assert {SCOPES[p][m] for p, m in ROUTES if p.startswith("/api/keys")} == {Scope.ADMIN}

    async def handler(request: Any) -> Any:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="no scope declared for POST"):
        Resource("/x", {"GET": handler, "POST": handler}, {"GET": Scope.READ})


def _send(
    w: Walk,
    method: str,
    target: Target,
    key: str | None,
    *,
    header: str = "bearer",
    client: httpx.Client | None = None,
) -> httpx.Response:
    headers: dict[str, str] = {}
    if key is not None:
        headers = (
            {"X-API-Key": key} if header == "x-api-key" else {"Authorization": f"Bearer {key}"}
        )
    if client is not None:
        if target.form is not None:
            return client.request(
                method, target.path, params=target.params, data=target.form, headers=headers
            )
        return client.request(
            method, target.path, params=target.params, json=target.body, headers=headers
        )
    with w.server.client(address=fresh_address()) as fresh:
        return _send(w, method, target, key, header=header, client=fresh)


def _refusal(response: httpx.Response, status: int, key: str | None, what: str) -> None:
    request = response.request
    where = f"{what}: {request.method} {request.url}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
    if key is not None:
        assert key not in response.text, f"{where} echoes it"
        assert key[11:] not in response.text, f"{where} echoes it"
        assert key not in str(response.headers), f"{where} echoes the key in a header"
    if status == 401:
        assert response.headers.get("www-authenticate", "").startswith("Bearer"), where
    if status >= 400 and response.headers["content-type"].startswith("application/json"):
        assert response.json()["error"]["message"], where


@pytest.mark.parametrize(("path", "method"), ROUTES, ids=[f"{m} {p}" for p, m in ROUTES])
def test_route_refuses_every_wrong_key(walk: Walk, path: str, method: str) -> None:
    case = CASES[(path, method)]
    needed = SCOPES[path][method]
    target = case.make(walk)
    before = walk.server.state()
    refused: list[tuple[str, int, str | None]] = []  # (which key, status, what the message says)
    if needed is Scope.PUBLIC:
        for label in ("none", "wrong", "wrong-tail", "revoked", "expired"):
            key = walk.keys.get(label)
            response = _send(walk, method, target, key)
            _refusal(response, case.public, key, label)
            if path == "/api/health":  # without a usable key: up, not what it holds
                assert response.json()["tasks"] == {}, label
    else:
        refused = [
            ("none", 401, "needs an API key"),
            ("wrong", 401, "not valid"),
            ("wrong-tail", 401, "not valid"),
            ("revoked", 401, "revoked"),
            ("expired", 401, "expired"),
        ]
        if needed in (Scope.WRITE, Scope.ADMIN):
            refused.append(("read", 403, "needs"))
        if needed is Scope.ADMIN:
            refused.append(("write", 403, "needs"))
        refused.append(("limited", case.limited, None))
        # Each header's refusals from an address of their own: fewer than the failures an
        # address may make before it is limited (10).
        for header in ("bearer", "x-api-key"):
            with walk.server.client(address=fresh_address()) as client:
                for label, status, says in refused:
                    key = walk.keys.get(label)
                    if status < 400:
                        continue
                    response = _send(walk, method, target, key, header=header, client=client)
                    _refusal(response, status, key, f"{label} key ({header})")
                    if says is not None:
                        assert says in response.json()["error"]["message"], response.text
    assert walk.server.state() == before, "a refused request changed the database"
    if needed is Scope.READ:  # a read key reads
        assert _send(walk, method, target, walk.keys["read"]).status_code == case.good
    if case.limited < 400:
        limited = _send(walk, method, target, walk.keys["limited"])
        assert limited.status_code == case.limited, limited.text
    known = list(walk.server.secrets)
    response = _send(walk, method, target, walk.server.admin, header="x-api-key")
    assert response.status_code == case.good, response.text
    if response.content:
        assert_no_secret(response.text, known, "an answer")
        if response.headers["content-type"].startswith("application/json"):
            walk.server.remember(response.json())


def test_limited_key_sees_nothing_of_other_projects(walk: Walk) -> None:
    """A key limited to project B: A's task and project are not there, in any list or count."""
    hidden = walk.task(walk.project_a)
    seen = walk.task(walk.project_b)
    with walk.server.client(walk.keys["limited"]) as limited:
        tasks = ok(limited.get("/api/tasks", params={"limit": 1000}))
        ids = {t["id"] for t in tasks["tasks"]}
        assert seen in ids
        assert hidden not in ids
        assert {t["project_id"] for t in tasks["tasks"]} == {walk.project_b}
        assert tasks["total"] == len(ids)
        assert ok(limited.get("/api/tasks", params={"project_id": walk.project_a}))["tasks"] == []
        projects = ok(limited.get("/api/projects"))
        assert [p["id"] for p in projects["projects"]] == [walk.project_b]
        assert projects["total"] == 1
        counts = ok(limited.get("/api/health"))["tasks"]
        assert sum(counts.values()) == len(ids)
        for suffix in ("", "/logs", "/attempts", "/wait?timeout=0"):
            assert limited.get(f"/api/tasks/{hidden}{suffix}").status_code == 404, suffix
            assert limited.get(f"/api/tasks/{seen}{suffix}").status_code == 200, suffix
        assert limited.get(f"/api/projects/{walk.project_a}").status_code == 404
        assert limited.get(f"/api/projects/{walk.project_b}").status_code == 200
        # What it creates is in its projects; elsewhere (or in none) is refused.
        made = ok(limited.post("/api/tasks", json={"name": "in-b", "command": "true",
                                                   "project_id": walk.project_b}), 201)  # fmt: skip
        assert made["project_id"] == walk.project_b
        before = walk.server.state()
        # 409, as for a project that does not exist: to this key, A does not. (docs/auth.md
        # says 422 for a task naming no project or another's; the server says 409, the answer
        # to every store refusal of what a body names.)
        refused = limited.post("/api/tasks", json={"name": "nowhere", "command": "true"})
        assert refused.status_code == 409, refused.text
        elsewhere = {"name": "in-a", "command": "true", "project_id": walk.project_a}
        refused = limited.post("/api/tasks", json=elsewhere)
        nowhere = {**elsewhere, "project_id": str(uuid.uuid4())}
        absent = limited.post("/api/tasks", json=nowhere)
        assert refused.status_code == absent.status_code == 409, refused.text
        assert refused.json()["error"]["type"] == absent.json()["error"]["type"]
        # A's task is no dependency it can name, and no batch of its changes A's task (nor,
        # all or none, its own).
        in_b = {"name": "dep", "command": "true", "project_id": walk.project_b}
        on_hidden = limited.post("/api/tasks", json={**in_b, "dependencies": [{"task_id": hidden}]})
        on_none = {**in_b, "dependencies": [{"task_id": str(uuid.uuid4())}]}
        on_nothing = limited.post("/api/tasks", json=on_none)
        assert on_hidden.status_code == on_nothing.status_code == 409, on_hidden.text
        assert on_hidden.json()["error"]["type"] == on_nothing.json()["error"]["type"]
        changes = {"name": "changed-by-batch"}
        updates = [{"task_id": seen, "changes": changes}, {"task_id": hidden, "changes": changes}]
        mixed = limited.put("/api/tasks/batch", json={"updates": updates})
        assert mixed.status_code == 404, mixed.text
        assert walk.server.state() == before
        assert walk.server.state() == before
    everything = ok(walk.admin.get("/api/health"))["tasks"]
    assert sum(everything.values()) > sum(counts.values())
    all_ids = {t["id"] for t in ok(walk.admin.get("/api/tasks", params={"limit": 1000}))["tasks"]}
    assert hidden in all_ids


def _status(server: AuthServer, key: str) -> int:
    with server.client(key) as client:
        return client.get("/api/tasks", params={"limit": 1}).status_code


def test_revocation_through_the_api_is_at_once(walk: Walk) -> None:
    key = walk.make_key("to-revoke", scopes=["read"])
    assert _status(walk.server, key) == 200
    revoked = ok(walk.admin.post(f"/api/keys/{walk.key_ids['to-revoke']}/revoke"))
    assert revoked["status"] == "revoked"
    assert "key" not in {k for k, v in revoked.items() if v}
    with walk.server.client(key) as client:
        response = client.get("/api/tasks")
    assert response.status_code == 401
    assert "revoked" in response.text
    listed = ok(walk.admin.get(f"/api/keys/{walk.key_ids['to-revoke']}"))
    assert listed["status"] == "revoked"
    assert listed["revoked_at"]


def test_revocation_on_the_database_reaches_the_running_server(walk: Walk) -> None:
    server = walk.server
    key = server.api_key("cli-revoke")["key"]
    assert _status(server, key) == 200
    run_keys(server.db, server.secret, "revoke", key[:11])
    wait_until(lambda: _status(server, key) == 401, 30, "the server to learn of the revocation")
    assert _status(server, key) == 401  # and it stays refused


def test_rotation_keeps_both_keys_for_the_grace_period_only(walk: Walk) -> None:
    old = walk.make_key("rotated", scopes=["read"])
    old_id = walk.key_ids["rotated"]
    started = time.monotonic()
    answer = walk.server.remember(
        ok(walk.admin.post(f"/api/keys/{old_id}/rotate", json={"grace_seconds": 3}), 201)
    )
    new = answer["key"]
    assert answer["replaces"] == old_id
    assert new != old
    assert answer["id"] != old_id
    assert answer["scopes"] == ["read"]
    assert _status(walk.server, new) == 200
    old_now = _status(walk.server, old)
    if time.monotonic() - started < 2.5:  # still within the grace period
        assert old_now == 200
    wait_until(lambda: _status(walk.server, old) == 401, 30, "the old key to expire")
    with walk.server.client(old) as client:
        assert "expired" in client.get("/api/tasks").text
    assert _status(walk.server, new) == 200
    assert ok(walk.admin.get(f"/api/keys/{old_id}"))["status"] == "expired"
    # A key that is not active does not rotate.
    again = walk.admin.post(f"/api/keys/{old_id}/rotate", json={"grace_seconds": 3})
    assert again.status_code == 409, again.text


def test_the_first_key_closes_an_open_server(
    make_server: Callable[..., ServerProcess], db_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "pepper.secret"
    server = make_server("--secret-file", str(secret), "--workers", "0")
    with httpx.Client(base_url=server.url, timeout=30) as anyone:
        ok(anyone.post("/api/tasks", json={"name": "open", "command": "true"}), 201)
        assert ok(anyone.get("/api/health"))["tasks"]  # open: it shows what it holds
        done = run_keys(db_url, secret, "create", "--name", "first", "--scope", "read")
        key = done.stdout.strip()
        wait_until(
            lambda: anyone.get("/api/tasks").status_code == 401, 30, "the server to need a key"
        )
        assert ok(anyone.get("/api/health"))["tasks"] == {}
        assert anyone.get("/api/tasks", headers={"X-API-Key": key}).status_code == 200
        run_keys(db_url, secret, "revoke", key[:11])
        wait_until(
            lambda: anyone.get("/api/tasks", headers={"X-API-Key": key}).status_code == 401,
            30,
            "the revocation",
        )
        # Revoking the last key does not open the server again (it has re-read the keys).
        assert anyone.get("/api/tasks").status_code == 401
        assert server.log is not None
        assert key not in server.log.read_text()
