"""What a client with a key pair puts on the wire: a signature of each request it sends.

A real HTTP server on 127.0.0.1 (``tests/sdk/recorder.py``) records each request's method,
target, headers and body as they arrived; each signature is checked with
``taskqueue.signing.sign`` over those bytes, as the server does, through every transport: the
sync client's sockets, the async client's asyncio, and httpx under either (as an injected
transport or for a proxy).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from taskqueue import AsyncTaskQueueClient, TaskQueueClient
from taskqueue.client import resolve_config
from taskqueue.signing import sign
from tests.sdk.recorder import Recorder, Seen

PUBLIC = "tqp_wire_test"
SECRET = "tqs_wire_test_secret_0123456789"
#: One answer every call below can parse: a project, and an (empty) page of them.
ANSWER = json.dumps(
    {
        "id": "0b9c2e33-5f4e-4a49-9d0b-7a1e7f4c2d10",
        "name": "etl",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "projects": [],
        "total": 0,
        "limit": 2,
        "offset": 3,
    }
).encode()

TRANSPORTS = pytest.mark.parametrize(
    "transport", ["sync", "async", "sync-httpx", "async-httpx"], ids=str
)


@pytest.fixture(autouse=True)
def no_outside_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, profile or accounts file of the machine's user takes part."""
    for name in ("TASKQUEUE_API_KEY", "TASKQUEUE_PUBLIC_KEY", "TASKQUEUE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TASKQUEUE_PROFILE", "TASKQUEUE_ACCOUNT", "TASKQUEUE_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def call(transport: str, url: str, action: Callable[[Any], Any], **options: Any) -> Any:
    """``action(client)`` on a new client signing with the test's key pair, then close."""
    options = {"public_key": PUBLIC, "secret_key": SECRET, "retry_backoff": 0, **options}
    if transport == "sync-httpx":
        options["transport"] = httpx.HTTPTransport()
    if transport == "async-httpx":
        options["transport"] = httpx.AsyncHTTPTransport()
    if transport.startswith("sync"):
        with TaskQueueClient(url, **options) as client:
            return action(client)

    async def main() -> Any:
        async with AsyncTaskQueueClient(url, **options) as client:
            result = action(client)
            return await result if inspect.isawaitable(result) else result

    return asyncio.run(main())


def target_of(seen: Seen) -> str:
    """The request target as the request line carried it (origin form even through a proxy)."""
    parts = urlsplit(seen.path)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assert_signed(seen: Seen) -> int:
    """The request carries a valid signature of what arrived; its timestamp."""
    headers = seen.headers
    assert headers["x-taskqueue-key-id"] == PUBLIC
    stamp = headers["x-taskqueue-timestamp"]
    expected = sign(SECRET, stamp, seen.method, target_of(seen), seen.body)
    assert headers["x-taskqueue-signature"] == expected
    assert SECRET not in json.dumps(headers)  # the secret itself is never sent
    assert "authorization" not in headers
    assert "x-api-key" not in headers
    return int(stamp)


@TRANSPORTS
def test_a_get_with_a_query_is_signed_over_its_path_and_query(
    transport: str, recorder: Recorder
) -> None:
    recorder.answer = ANSWER
    call(transport, recorder.url, lambda c: c.list_projects(limit=2, offset=3))
    (seen,) = recorder.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/api/projects?limit=2&offset=3", b"")
    assert_signed(seen)


@TRANSPORTS
def test_a_path_with_escapes_is_signed_as_it_was_sent(transport: str, recorder: Recorder) -> None:
    recorder.answer = ANSWER
    call(transport, recorder.url, lambda c: c.get_project("naïve name"))
    (seen,) = recorder.seen
    assert seen.path == "/api/projects/na%C3%AFve%20name"
    assert_signed(seen)


@TRANSPORTS
def test_a_post_is_signed_over_its_body(transport: str, recorder: Recorder) -> None:
    recorder.answer = ANSWER
    call(transport, recorder.url, lambda c: c.create_project("etl ✓", description="a:b"))
    (seen,) = recorder.seen
    assert seen.method == "POST"
    assert json.loads(seen.body) == {"name": "etl ✓", "description": "a:b"}
    assert_signed(seen)
    # A signature of another body does not match: the body is really covered.
    other = sign(SECRET, seen.headers["x-taskqueue-timestamp"], "POST", "/api/projects", b"{}")
    assert seen.headers["x-taskqueue-signature"] != other


@TRANSPORTS
def test_each_attempt_of_a_retried_call_is_signed_afresh(
    transport: str, recorder: Recorder
) -> None:
    recorder.answer = ANSWER
    recorder.refusals = [429]  # with Retry-After: 1, so the retry is in a later second
    call(transport, recorder.url, lambda c: c.create_project("etl"))
    first, second = recorder.seen
    assert first.body == second.body
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert assert_signed(second) > assert_signed(first)  # a new timestamp, a new signature
    assert first.headers["x-taskqueue-signature"] != second.headers["x-taskqueue-signature"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_followed_log_stream_is_signed_too(kind: str, recorder: Recorder) -> None:
    recorder.answer = b'{"event":"end"}\n'  # the task has ended: no output to follow

    def follow(client: Any) -> Any:
        if kind == "sync":
            return list(client.follow_logs("0b9c2e33-5f4e-4a49-9d0b-7a1e7f4c2d10"))

        async def lines() -> list[Any]:
            return [
                line async for line in client.follow_logs("0b9c2e33-5f4e-4a49-9d0b-7a1e7f4c2d10")
            ]

        return lines()

    assert call(kind, recorder.url, follow) == []
    (seen,) = recorder.seen
    assert target_of(seen).endswith("/logs?follow=true&offset=0")
    assert_signed(seen)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_request_through_a_proxy_is_signed_over_the_origin_form_target(
    kind: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", recorder.url)
    recorder.answer = ANSWER
    call(kind, "http://tq.example.invalid:8080", lambda c: c.list_projects(limit=2, offset=3))
    (seen,) = recorder.seen
    assert seen.path == "http://tq.example.invalid:8080/api/projects?limit=2&offset=3"
    assert_signed(seen)


def test_the_key_pair_is_in_no_repr_and_no_log_line(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.refusals = [503]
    caplog.set_level(logging.DEBUG, logger="taskqueue")
    with TaskQueueClient(recorder.url, public_key=PUBLIC, secret_key=SECRET) as client:
        client.with_options(retry_backoff=0).get_health()
        shown = [
            repr(client),
            repr(vars(client)),
            repr(resolve_config(public_key=PUBLIC, secret_key=SECRET)),
        ]
    assert len(recorder.seen) == 2
    assert any("retry" in r.getMessage() for r in caplog.records)  # the retry was logged
    for text in (*shown, *(r.getMessage() for r in caplog.records)):
        assert SECRET not in text
    assert PUBLIC in shown[1]  # the public id may be shown


@TRANSPORTS
def test_the_same_call_twice_at_once_is_signed_twice_anew(
    transport: str, recorder: Recorder
) -> None:
    # Sent within one second, the two would carry one signature, which the server would
    # refuse the second time as a replay.
    async def twice_async(client: Any) -> None:
        await client.get_health()
        await client.get_health()

    def twice(client: Any) -> Any:
        if transport.startswith("async"):
            return twice_async(client)
        client.get_health()
        return client.get_health()

    call(transport, recorder.url, twice)
    first, second = recorder.seen
    assert assert_signed(second) > assert_signed(first)
    assert first.headers["x-taskqueue-signature"] != second.headers["x-taskqueue-signature"]
