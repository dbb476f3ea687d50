"""Signed requests with a key pair from ``taskqueue keys create --pair``, against a real server.

Requests are built with raw ``httpx`` and :func:`taskqueue.signing.signed_headers`, so the test
controls the exact target and body bytes the server checks the signature against. Every refusal
is followed, where it can be, by the same signature sent as signed: accepted, so it was the
change that was refused, and a refused signature is not taken as used.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from taskqueue.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_WINDOW_S,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
)
from tests.conftest import wait_until
from tests.integration.authkit import AuthServer, assert_no_secret, auth_server

# What is checked here happens before the store (headers, signatures, limits, logs); the
# store's own part of keys is tested on both backends in test_auth.py and tests/pg.
pytestmark = pytest.mark.sqlite_only


@dataclass
class Signed:
    server: AuthServer
    public: str
    secret: str
    reader_public: str
    reader_secret: str

    def client(self) -> httpx.Client:
        """A client of its own address (a test's refusals stay under the failure limit)."""
        return self.server.client()

    def admin_count(self, name: str) -> int:
        with self.server.admin_client() as admin:
            tasks = admin.get("/api/tasks", params={"limit": 1000}).json()["tasks"]
        return sum(1 for t in tasks if t["name"] == name)


@pytest.fixture(scope="module")
def signed(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Signed]:
    root: Path = tmp_path_factory.mktemp("signed")
    with auth_server(request, backend, root, "--workers", "0") as server:
        writer = server.make_key("signer", "--pair", "--scope", "write")  # the CLI's pair
        reader = server.api_key("reader", kind="pair", scopes=["read"])  # the API's
        for made in (writer, reader):
            assert made["public_key"].startswith("tqp_")
            assert made["secret_key"].startswith("tqs_")
            assert made["key"] is None
            assert made["kind"] == "pair"
        yield Signed(
            server, writer["public_key"], writer["secret_key"], reader["public_key"],
            reader["secret_key"],
        )  # fmt: skip
        assert_no_secret(server.log(), server.secrets, "the server's log")


_last_stamp = 0


def sig(public: str, secret: str, method: str, target: str, body: bytes = b"") -> dict[str, str]:
    """Signed headers with a timestamp no earlier request of this module used.

    Timestamps are whole seconds: two requests alike signed in one second would be one signature
    twice, and the second a replay. Each signature here is a little in the past (well within the
    window) and later than the one before.
    """
    global _last_stamp
    _last_stamp = max(int(time.time()) - 30, _last_stamp + 1)
    return signed_headers(public, secret, method, target, body, now=_last_stamp)


def send(
    client: httpx.Client,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``method target`` with exactly these bytes as its target and body."""
    extra = {"Content-Type": "application/json"} if body else {}
    request = client.build_request(
        method, target, content=body or None, headers={**extra, **(headers or {})}
    )
    assert request.url.raw_path == target.encode(), "httpx changed the target"
    return client.send(request)


def refused(response: httpx.Response, s: Signed, says: str = "", status: int = 401) -> None:
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert says in response.json()["error"]["message"], response.text
    for secret in (s.secret, s.reader_secret):
        assert secret not in response.text
        assert secret not in str(response.headers)


def task_body(name: str) -> bytes:
    return orjson.dumps({"name": name, "command": "true"})


def test_signed_get_with_a_query_and_post_with_a_body_are_accepted(signed: Signed) -> None:
    target = "/api/tasks?limit=5&status=Pending"
    with signed.client() as client:
        response = send(client, "GET", target, headers=sig(
            signed.public, signed.secret, "GET", target))  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["limit"] == 5
        name = f"signed-{uuid.uuid4().hex[:8]}"
        body = task_body(name)
        headers = sig(signed.public, signed.secret, "POST", "/api/tasks", body)
        created = send(client, "POST", "/api/tasks", body, headers)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == name
        target = f"/api/tasks/{created.json()['id']}"
        response = send(client, "GET", target, headers=sig(
            signed.public, signed.secret, "GET", target))  # fmt: skip
        assert response.status_code == 200, response.text
    assert signed.admin_count(name) == 1


def test_a_timestamp_outside_the_window_is_refused(signed: Signed) -> None:
    target = "/api/tasks?limit=1"
    with signed.client() as client:
        for skew in (-(SIGNATURE_WINDOW_S + 30), SIGNATURE_WINDOW_S + 30):
            headers = signed_headers(
                signed.public, signed.secret, "GET", target, now=time.time() + skew
            )
            refused(send(client, "GET", target, headers=headers), signed, TIMESTAMP_HEADER)
        for skew in (-(SIGNATURE_WINDOW_S - 60), SIGNATURE_WINDOW_S - 60):  # within: accepted
            headers = signed_headers(
                signed.public, signed.secret, "GET", target, now=time.time() + skew
            )
            assert send(client, "GET", target, headers=headers).status_code == 200


@pytest.mark.parametrize("stamp", ["²", "9" * 5000, "-5", "1e9", "+1", "", "0x10"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(signed: Signed, stamp: str) -> None:
    target = "/api/tasks"
    headers = {
        KEY_ID_HEADER: signed.public,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(signed.secret, stamp, "GET", target, b""),
    }
    with signed.client() as client:
        # a header's bytes as latin-1, as the server reads them
        raw = [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]
        response = client.send(client.build_request("GET", target, headers=raw))
    assert response.status_code == 401, response.text


def test_a_replayed_signature_is_refused(signed: Signed) -> None:
    name = f"replayed-{uuid.uuid4().hex[:8]}"
    body = task_body(name)
    headers = sig(signed.public, signed.secret, "POST", "/api/tasks", body)
    with signed.client() as client:
        assert send(client, "POST", "/api/tasks", body, headers).status_code == 201
        refused(send(client, "POST", "/api/tasks", body, headers), signed, "already used")
        get = sig(signed.public, signed.secret, "GET", "/api/tasks")
        assert send(client, "GET", "/api/tasks", headers=get).status_code == 200
        refused(send(client, "GET", "/api/tasks", headers=get), signed, "already used")
    assert signed.admin_count(name) == 1


def test_a_tampered_body_is_refused(signed: Signed) -> None:
    name = f"tampered-{uuid.uuid4().hex[:8]}"
    body = task_body(name)
    headers = sig(signed.public, signed.secret, "POST", "/api/tasks", body)
    with signed.client() as client:
        for changed in (task_body(name + "x"), body + b" ", body[:-1] + b',"priority":"high"}'):
            refused(send(client, "POST", "/api/tasks", changed, headers), signed, "not valid")
        empty = sig(signed.public, signed.secret, "POST", "/api/tasks")
        refused(send(client, "POST", "/api/tasks", body, empty), signed, "not valid")
        assert signed.admin_count(name) == 0
        assert send(client, "POST", "/api/tasks", body, headers).status_code == 201
    assert signed.admin_count(name) == 1


def test_a_tampered_target_or_method_is_refused(signed: Signed) -> None:
    target = "/api/tasks?limit=5"
    headers = sig(signed.public, signed.secret, "GET", target)
    with signed.client() as client:
        for other in ("/api/tasks?limit=6", "/api/tasks", "/api/tasks?limit=5&offset=0",
                      "/api/projects?limit=5"):  # fmt: skip
            refused(send(client, "GET", other, headers=headers), signed, "not valid")
        refused(send(client, "POST", target, headers=headers), signed, "not valid")
        assert send(client, "GET", target, headers=headers).status_code == 200


def test_a_wrong_secret_or_key_id_is_refused(signed: Signed) -> None:
    target = "/api/tasks"
    with signed.client() as client:
        for public, secret in (
            (signed.public, signed.reader_secret),  # another pair's secret
            (signed.public, "tqs_" + "x" * 43),
            (signed.public, signed.public),
        ):
            headers = sig(public, secret, "GET", target)
            refused(send(client, "GET", target, headers=headers), signed, "not valid")
        unknown = sig("tqp_" + "y" * 16, signed.secret, "GET", target)
        refused(send(client, "GET", target, headers=unknown), signed, "not valid")
        # A pair's secret is no bearer key, nor is its public id.
        for bearer in (signed.secret, signed.public):
            response = client.get(target, headers={"Authorization": f"Bearer {bearer}"})
            refused(response, signed, "not valid")


def test_a_missing_header_is_refused(signed: Signed) -> None:
    target = "/api/tasks"
    with signed.client() as client:
        full = sig(signed.public, signed.secret, "GET", target)
        for left_out in (KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
            headers = {k: v for k, v in full.items() if k != left_out}
            refused(send(client, "GET", target, headers=headers), signed)
        assert send(client, "GET", target, headers=full).status_code == 200


def test_a_signed_request_needs_the_scope_and_a_live_pair(signed: Signed) -> None:
    body = task_body("read-only")
    with signed.client() as client:
        headers = sig(signed.reader_public, signed.reader_secret, "POST", "/api/tasks", body)
        refused(send(client, "POST", "/api/tasks", body, headers), signed, "needs write", 403)
        headers = sig(signed.reader_public, signed.reader_secret, "GET", "/api/tasks")
        assert send(client, "GET", "/api/tasks", headers=headers).status_code == 200
    made = signed.server.api_key("revoked-pair", kind="pair")
    with signed.server.admin_client() as admin:
        assert admin.post(f"/api/keys/{made['id']}/revoke").status_code == 200
    with signed.client() as client:
        headers = sig(made["public_key"], made["secret_key"], "GET", "/api/tasks")
        refused(send(client, "GET", "/api/tasks", headers=headers), signed, "revoked")


def test_a_replay_in_other_letters_is_still_a_replay(signed: Signed) -> None:
    headers = sig(signed.public, signed.secret, "GET", "/api/tasks?limit=2")
    with signed.client() as client:
        assert send(client, "GET", "/api/tasks?limit=2", headers=headers).status_code == 200
        upper = {**headers, SIGNATURE_HEADER: headers[SIGNATURE_HEADER].upper()}
        refused(send(client, "GET", "/api/tasks?limit=2", headers=upper), signed, "already used")


def test_a_rotated_pair_signs_with_both_secrets_for_the_grace_period_only(signed: Signed) -> None:
    old = signed.server.api_key("rotated-pair", kind="pair")
    started = time.monotonic()
    with signed.server.admin_client() as admin:
        rotated = admin.post(f"/api/keys/{old['id']}/rotate", json={"grace_seconds": 2})
    assert rotated.status_code == 201, rotated.text
    new = signed.server.remember(rotated.json())
    assert new["kind"] == "pair"
    assert new["public_key"] != old["public_key"]

    sent = itertools.count()

    def answer(pair: dict[str, str]) -> httpx.Response:
        # Each request differs (its offset), so two in one second are not one signature twice.
        target = f"/api/tasks?offset={next(sent)}"
        headers = sig(pair["public_key"], pair["secret_key"], "GET", target)
        with signed.client() as client:
            return send(client, "GET", target, headers=headers)

    assert answer(new).status_code == 200
    old_now = answer(old).status_code
    if time.monotonic() - started < 1.5:  # still within the grace period
        assert old_now == 200

    def old_expired() -> bool:
        refused = answer(old)
        return refused.status_code == 401 and "expired" in refused.json()["error"]["message"]

    wait_until(old_expired, 30, "the old pair to expire")
    assert answer(new).status_code == 200
