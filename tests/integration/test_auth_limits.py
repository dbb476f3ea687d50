"""A key's rate limit, the limit on failed attempts per address, and the audit trail, against a
real server process.

The audit events are written in batches (every 2 s): the tests poll the ``events`` table, read
straight from the database, with a bounded wait.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue.server.ratelimit import FAILED_AUTH_BURST
from tests.conftest import query_db, wait_until
from tests.integration.authkit import AuthServer, assert_no_secret, auth_server, fresh_address

# What is checked here happens before the store (headers, signatures, limits, logs); the
# store's own part of keys is tested on both backends in test_auth.py and tests/pg.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def limits(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    root: Path = tmp_path_factory.mktemp("limits")

    def prepare(server: AuthServer) -> None:
        server.make_key("limited-rate", "--rate-limit", "2", "--burst", "3")

    burst = ("--failed-auth-burst", str(FAILED_AUTH_BURST))
    with auth_server(request, backend, root, "--workers", "0", *burst, prepare=prepare) as server:
        yield server
        assert_no_secret(server.log(), server.secrets, "the server's log")


def test_a_key_past_its_rate_gets_429_then_works_again(limits: AuthServer) -> None:
    key = limits.secrets[1]  # the rate-limited key (after the admin key)
    with limits.client(key) as client:
        started = time.monotonic()
        answers = [client.get("/api/tasks", params={"limit": 1}) for _ in range(4)]
        rapid = time.monotonic() - started < 0.45  # too little time for a token to come back
        for answer in answers[:3]:
            assert answer.status_code == 200, answer.text
            assert answer.headers["RateLimit-Limit"] == "3"
            assert "RateLimit-Remaining" in answer.headers
            assert "RateLimit-Policy" in answer.headers
        if rapid:  # (slower, a token may have come back in between)
            assert [int(a.headers["RateLimit-Remaining"]) for a in answers[:3]] == [2, 1, 0]
        if not rapid:
            answers += [client.get("/api/tasks", params={"limit": 1}) for _ in range(3)]
        limited = next((a for a in answers[3:] if a.status_code == 429), None)
        assert limited is not None, [a.status_code for a in answers]
        if rapid:
            assert answers[3].status_code == 429
        retry = int(limited.headers["Retry-After"])
        assert 1 <= retry <= 2
        assert limited.headers["RateLimit-Limit"] == "3"
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert int(limited.headers["RateLimit-Reset"]) >= 1
        assert "RateLimit-Policy" in limited.headers
        assert key not in limited.text
        assert "rate" in limited.json()["error"]["message"]
        time.sleep(retry)
        wait_until(lambda: client.get("/api/tasks").status_code == 200, 30, "the key to work again")
    # Another key is not limited by it.
    with limits.admin_client() as admin:
        assert all(admin.get("/api/tasks").status_code == 200 for _ in range(5))


def test_failed_attempts_from_one_address_are_limited_but_a_good_key_is_not(
    limits: AuthServer,
) -> None:
    address = fresh_address()
    wrong = "tq_" + "W" * 43
    with limits.client(wrong, address) as attacker:
        started = time.monotonic()
        for n in range(FAILED_AUTH_BURST):
            response = attacker.get("/api/tasks")
            assert response.status_code == 401, (n, response.text)
        limited = attacker.get("/api/tasks")
        if time.monotonic() - started > 5:  # slow enough for a token to come back (1 per 6 s)
            limited = next(
                (r for r in (limited, attacker.get("/api/tasks")) if r.status_code == 429), limited
            )
        assert limited.status_code == 429, limited.text
        assert int(limited.headers["Retry-After"]) >= 1
        assert wrong not in limited.text
        # Without a key, or with another wrong one, still limited: it is the address.
        assert attacker.get("/api/tasks", headers={"Authorization": ""}).status_code in (401, 429)
        other = attacker.get("/api/tasks", headers={"Authorization": "Bearer tq_" + "V" * 43})
        assert other.status_code == 429
    with limits.client(limits.admin, address) as same_address:
        assert same_address.get("/api/tasks").status_code == 200
        assert same_address.get("/api/health").json()["tasks"] is not None
    with limits.client(wrong) as elsewhere:  # another address has its own allowance
        assert elsewhere.get("/api/tasks").status_code == 401


def _events(server: AuthServer) -> list[tuple[str, dict[str, Any]]]:
    rows = query_db(
        server.db,
        "SELECT type, data FROM events WHERE type LIKE 'key.%' OR type = 'auth.denied' ORDER BY id",
    )
    return [(str(kind), json.loads(str(data))) for kind, data in rows]


def test_audit_events_record_keys_and_refusals_without_secrets(limits: AuthServer) -> None:
    with limits.admin_client() as admin:
        made = limits.remember(admin.post("/api/keys", json={"name": "audited"}).json())
        assert made["key"]
        revoked = admin.post(f"/api/keys/{made['id']}/revoke")
        assert revoked.status_code == 200
        rotated_from = limits.remember(admin.post("/api/keys", json={"name": "rotating"}).json())
        rotated = admin.post(f"/api/keys/{rotated_from['id']}/rotate", json={"grace_seconds": 1})
        assert rotated.status_code == 201
        limits.remember(rotated.json())
    unique_path = f"/api/tasks/{uuid.uuid4()}"
    with limits.client(made["key"]) as client:  # the revoked key
        assert client.get(unique_path).status_code == 401
    wrong_tail = limits.admin[:11] + "Z" * 35
    with limits.client(wrong_tail) as client:
        assert client.get(unique_path + "/logs").status_code == 401
    with limits.admin_client() as admin:
        reader = limits.remember(admin.post("/api/keys", json={"name": "reader"}).json())
    with limits.client(reader["key"]) as client:
        assert client.post("/api/projects", json={"name": "nope"}).status_code == 403

    def denied(path: str) -> dict[str, Any] | None:
        return next(
            (d for kind, d in _events(limits) if kind == "auth.denied" and d.get("path") == path),
            None,
        )

    wait_until(lambda: denied(unique_path + "/logs") is not None, 30, "the refusals to be written")
    events = _events(limits)
    kinds = {(kind, data.get("id")) for kind, data in events}
    assert ("key.created", made["id"]) in kinds
    assert ("key.revoked", made["id"]) in kinds
    assert ("key.rotated", rotated_from["id"]) in kinds
    assert ("key.created", rotated.json()["id"]) in kinds
    created = next(d for k, d in events if k == "key.created" and d["id"] == made["id"])
    assert created["prefix"] == made["prefix"]
    assert created["name"] == "audited"
    revoked_use = denied(unique_path)
    assert revoked_use is not None
    assert revoked_use["status"] == 401
    assert revoked_use["key_id"] == made["id"]
    assert "revoked" in revoked_use["reason"]
    unknown = denied(unique_path + "/logs")
    assert unknown is not None
    assert unknown["reason"] == "unknown key"
    assert unknown["key_prefix"] == limits.admin[:11]
    assert "key_id" not in unknown
    wait_until(lambda: denied("/api/projects") is not None, 30, "the 403 to be written")
    scope = denied("/api/projects")
    assert scope is not None
    assert scope["status"] == 403
    assert scope["key_id"] == reader["id"]
    # No secret, nor any key's hash, in any event.
    text = json.dumps(_events(limits))
    assert_no_secret(text, limits.secrets, "the events")
    hashes = [str(h) for (h,) in query_db(limits.db, "SELECT hash FROM api_keys") if h]
    assert hashes
    assert not any(h in text for h in hashes)
