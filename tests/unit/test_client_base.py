"""The SDK's I/O-free core: retry decisions, Retry-After, error mapping, input checks, NDJSON."""

from __future__ import annotations

import email.utils
import errno
import json
import random
import socket
import time

import pydantic
import pytest

from taskqueue import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    RateLimitError,
    ServerError,
    TaskNotFoundError,
    ValidationError,
)
from taskqueue.client._base import (
    MAX_RETRY_WAIT_S,
    NOT_GIVEN,
    NotGiven,
    RequestSpec,
    RetryPolicy,
    error_from_response,
    error_from_transport,
    filter_params,
    parse_model,
    parse_retry_after,
    transport_message,
    validate_input,
)
from taskqueue.client._wire import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    encode_body,
    encode_url,
    os_error_text,
    split_lines,
)
from taskqueue.engine import backoff_delay
from taskqueue.errors import TaskQueueConnectionError, TaskQueueTimeoutError
from taskqueue.models import Task, TaskCreate, TaskFilters, TaskStatus
from taskqueue.server.errors import validation_details as server_validation_details

URL = "http://test/api/tasks/x"


def answer(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str | None = None
) -> Response:
    content = text.encode() if text is not None else json.dumps(body).encode()
    return Response(status, "", headers or {}, content, "GET", URL)


def test_not_given_is_a_falsy_singleton() -> None:
    assert NotGiven() is NOT_GIVEN
    assert not NOT_GIVEN
    assert repr(NOT_GIVEN) == "NOT_GIVEN"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
    ],
)
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(header, now=now) or 0) <= 31
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "idempotent", "retry"),
    [
        (429, False, True),
        (429, True, True),
        (503, True, True),
        (503, False, False),
        (500, True, True),
        (502, True, True),
        (504, True, True),
        (404, True, False),
        (409, True, False),
        (400, True, False),
    ],
)
def test_which_statuses_are_retried(status: int, idempotent: bool, retry: bool) -> None:
    assert RetryPolicy().should_retry(0, idempotent, status=status) is retry


def test_which_transport_errors_are_retried() -> None:
    policy = RetryPolicy()
    url = "http://tq.example.com/api/health"
    for never_sent in (
        ConnectError("down", url),
        ConnectTimeout("slow", url),
        PoolTimeout("", url),
    ):
        assert policy.should_retry(0, False, error=never_sent)
        assert not policy.should_retry(3, True, error=never_sent)  # budget spent
    for maybe_received in (
        ReadError("reset", url),
        ReadTimeout("", url),
        RemoteProtocolError("", url),
    ):
        assert policy.should_retry(0, True, error=maybe_received)
        assert not policy.should_retry(0, False, error=maybe_received)
    assert not policy.should_retry(0, True, error=ValueError("not transport"))
    assert not RetryPolicy(max_retries=0).should_retry(0, True, status=503)


def _refused(url: str) -> ConnectError:
    error = ConnectError("[Errno 111] Connection refused", url)
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


@pytest.mark.parametrize(
    ("url", "retry"),
    [
        ("http://127.0.0.1:8080/api/health", False),
        ("http://localhost:8080/api/health", False),
        ("http://[::1]:8080/api/health", False),
        ("http://10.1.2.3:8080/api/health", True),  # a balancer may be restarting a server
        ("http://tq.example.com/api/health", True),
    ],
)
def test_a_refused_connection_to_this_machine_is_not_retried(url: str, retry: bool) -> None:
    assert RetryPolicy().should_retry(0, True, error=_refused(url)) is retry
    assert "connection refused" in transport_message(_refused(url), "http://x")


def test_backoff_is_jittered_exponential_and_retry_after_wins() -> None:
    policy = RetryPolicy(backoff=1.0)
    rng = random.Random(3)
    for retries_done in range(6):
        ideal = min(2.0**retries_done, MAX_RETRY_WAIT_S)
        delays = [policy.delay(retries_done, rng=rng) for _ in range(100)]
        assert all(ideal / 2 <= d <= ideal for d in delays)
    assert policy.delay(0, retry_after=7) == 7
    assert policy.delay(0, retry_after=3600) == MAX_RETRY_WAIT_S
    assert policy.delay(10) <= MAX_RETRY_WAIT_S
    assert policy.delay(10_000) <= MAX_RETRY_WAIT_S  # no overflow on huge counts
    assert RetryPolicy(backoff=0).delay(4) == 0.0


def test_client_backoff_is_the_engines_formula_with_a_one_minute_cap() -> None:
    policy = RetryPolicy(backoff=2.0)
    for retries_done in range(10):
        ours, engines = random.Random(retries_done), random.Random(retries_done)
        assert policy.delay(retries_done, rng=ours) == backoff_delay(
            retries_done + 1, 2.0, cap=MAX_RETRY_WAIT_S, rng=engines
        )


def test_a_create_carries_one_fresh_idempotency_key() -> None:
    first = RequestSpec.create("/api/tasks", {"name": "a"})
    second = RequestSpec.create("/api/tasks", {"name": "a"})
    assert first.headers["Idempotency-Key"].startswith("tq-")
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert first.idempotent


@pytest.mark.parametrize(
    ("status", "resource", "kind"),
    [
        (400, None, ValidationError),
        (422, "task", ValidationError),
        (401, None, AuthenticationError),
        (403, None, AuthorizationError),
        (404, "task", TaskNotFoundError),
        (404, "project", ProjectNotFoundError),
        (404, None, NotFoundError),
        (409, "task", ConflictError),
        (413, None, PayloadTooLargeError),
        (500, None, ServerError),
        (503, None, ServerError),
        (418, None, APIError),
    ],
)
def test_each_status_becomes_its_error(status: int, resource: str | None, kind: type) -> None:
    body = {"error": {"type": "x", "message": "what went wrong", "details": [], "request_id": "r1"}}
    error = error_from_response(answer(status, body, {"x-request-id": "r1"}), resource)
    assert type(error) is kind
    assert (error.status_code, error.message, error.request_id) == (status, "what went wrong", "r1")
    assert error.response_data == body


def test_rate_limits_carry_retry_after_and_odd_bodies_still_read() -> None:
    limited = error_from_response(answer(429, {"error": {"message": "slow"}}, {"retry-after": "4"}))
    assert isinstance(limited, RateLimitError)
    assert limited.retry_after == 4.0
    proxy = error_from_response(answer(502, text="<html>bad gateway</html>"))
    assert isinstance(proxy, ServerError)
    assert proxy.message == "<html>bad gateway</html>"
    plain = error_from_response(answer(400, {"detail": "nope"}))
    assert plain.message == "nope"
    listed = error_from_response(answer(400, ["not", "an", "object"]))
    assert listed.message == "request failed"


def test_input_is_checked_before_sending() -> None:
    assert validate_input(TaskCreate, {"name": "a", "command": "b", "retryAttempts": 1}) == {
        "name": "a",
        "command": "b",
        "retry_attempts": 1,
    }
    with pytest.raises(ValidationError) as bad:
        validate_input(TaskCreate, {"name": "", "command": "b"})
    assert bad.value.status_code is None
    assert bad.value.details[0]["loc"] == ["name"]
    assert str(bad.value).startswith("name: ")


def test_input_errors_carry_the_servers_details_without_the_input() -> None:
    bad_input = {"name": "", "command": "b", "priority": "x" * 10_000}
    with pytest.raises(ValidationError) as bad:
        validate_input(TaskCreate, bad_input)
    details = bad.value.details
    assert [d["loc"] for d in details] == [["name"], ["priority"]]
    assert all(set(d) == {"loc", "msg", "type"} for d in details)
    assert "x" * 100 not in repr(details)
    with pytest.raises(pydantic.ValidationError) as raw:
        TaskCreate.model_validate(bad_input)
    assert details == server_validation_details(raw.value)


def test_transport_failures_become_the_sdk_errors_with_what_caused_them() -> None:
    refused = _refused("http://127.0.0.1:8080/api/health")
    connection = error_from_transport(refused, "http://127.0.0.1:8080")
    assert type(connection) is TaskQueueConnectionError
    assert isinstance(connection.original_exception, ConnectionRefusedError)
    slow = ReadTimeout("read timed out", "http://x/api/health")
    timeout = error_from_transport(slow, "http://x")
    assert type(timeout) is TaskQueueTimeoutError
    assert timeout.message == "the request to http://x timed out (ReadTimeout)"
    assert timeout.original_exception is slow


def test_os_errors_are_worded_the_same_whatever_library_raised_them() -> None:
    # aiohttp words a refusal "Connect call failed (...)"; httpx and urllib3 use strerror.
    wrapped = OSError("a library's own words")
    wrapped.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    assert os_error_text(wrapped) == f"[Errno {errno.ECONNREFUSED}] Connection refused"
    unknown = socket.gaierror(-2, "Name or service not known")
    assert os_error_text(unknown) == "[Errno -2] Name or service not known"
    assert os_error_text(ValueError("no OS error")) is None


def test_urls_and_bodies_are_encoded_as_httpx_encoded_them() -> None:
    url = encode_url("http://h:1", "/api/tasks/a b", {"follow": True, "offset": 3, "x": None})
    assert url == "http://h:1/api/tasks/a%20b?follow=true&offset=3&x="
    assert encode_url("http://h:1", "/api/health") == "http://h:1/api/health"
    assert encode_body({"name": "é", "n": [1, 2]}) == '{"name":"é","n":[1,2]}'.encode()
    assert encode_body(None) is None
    url, body, headers = RequestSpec("PUT", "/api/tasks/1", json={"a": 1}).encode("http://h")
    assert (url, body, headers) == (
        "http://h/api/tasks/1",
        b'{"a":1}',
        {"Content-Type": "application/json"},
    )


def test_task_filters_and_keywords_make_one_query() -> None:
    given = TaskFilters(status=TaskStatus.FAILED, limit=5)
    assert filter_params(given, {"queue": None, "offset": None}) == {
        "status": "Failed",
        "limit": 5,
        "offset": 0,
        "sort": "created_at",
    }
    assert filter_params(given, {"limit": 7})["limit"] == 7  # keywords replace its fields
    assert filter_params(None, {"status": "Pending", "limit": None}) == {"status": "Pending"}
    with pytest.raises(ValidationError):
        filter_params(None, {"limit": 0})


def test_a_malformed_answer_is_an_api_error() -> None:
    with pytest.raises(APIError, match="unexpected answer"):
        parse_model(Task, {"id": "not-a-uuid"})


def test_stream_lines_end_at_newlines_only_wherever_the_bytes_are_cut() -> None:
    # U+2028, U+2029 and U+0085 end lines for str.splitlines; JSON leaves them unescaped.
    items = [{"data": "a\u2028b\u2029c\u0085d\x00"}, {"data": "✓"}, {"event": "end"}]
    body = b"".join(json.dumps(i, ensure_ascii=False).encode() + b"\n" for i in items)
    for size in (1, 2, 3, 7, len(body)):
        rest, got = b"", []
        for i in range(0, len(body), size):
            lines, rest = split_lines(rest + body[i : i + size])
            got += [json.loads(line) for line in lines]
        assert got == items
        assert rest == b""
