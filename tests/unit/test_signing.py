"""The signed-request format (``taskqueue.signing``): message, signature and headers.

The server checks these same bytes, and clients in other languages rebuild them from
docs/security.md, so each rule of the format is pinned here, with a vector anyone can recompute.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from taskqueue.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_WINDOW_S,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
    signing_message,
)

SECRET = "tqs_example_secret"
HEX64 = re.compile(r"[0-9a-f]{64}")


def test_the_message_is_timestamp_method_target_and_body_joined_by_colons() -> None:
    message = signing_message("1767225600", "post", "/api/tasks?x=1&y=a%20b", b'{"a":1}')
    assert message == b'1767225600:POST:/api/tasks?x=1&y=a%20b:{"a":1}'


def test_a_request_without_a_body_ends_its_message_with_the_colon() -> None:
    assert signing_message("1", "GET", "/api/health", b"") == b"1:GET:/api/health:"


def test_the_signature_is_hex_hmac_sha256_of_the_message_under_the_secret() -> None:
    message = b"1767225600:GET:/api/tasks?status=Failed&limit=20:"
    expected = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    signature = sign(SECRET, "1767225600", "GET", "/api/tasks?status=Failed&limit=20", b"")
    assert signature == expected
    assert HEX64.fullmatch(signature)


def test_the_worked_example_of_the_docs() -> None:
    # docs/security.md shows this vector; a change of format must change both.
    body = b'{"name":"hello","command":"echo hi"}'
    assert sign(SECRET, "1767225600", "POST", "/api/tasks", body) == (
        "a4d10493d63b69a451177f1c2884d2566711c90e2597c7ed29dfe8a4343e8c22"
    )


def test_signing_is_deterministic() -> None:
    first = sign(SECRET, "1767225600", "PUT", "/api/tasks/batch", b"[]")
    assert first == sign(SECRET, "1767225600", "PUT", "/api/tasks/batch", b"[]")


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "tqs_other_secret"},
        {"timestamp": "1767225601"},
        {"method": "GET"},
        {"target": "/api/tasks?limit=2"},
        {"target": "/api/Tasks?limit=1"},
        {"body": b'{"a":2}'},
        {"body": b'{"a":1} '},
    ],
    ids=str,
)
def test_every_part_of_the_request_changes_the_signature(change: dict[str, object]) -> None:
    parts: dict[str, object] = {
        "secret": SECRET,
        "timestamp": "1767225600",
        "method": "POST",
        "target": "/api/tasks?limit=1",
        "body": b'{"a":1}',
    }
    before = sign(**parts)  # type: ignore[arg-type]
    after = sign(**{**parts, **change})  # type: ignore[arg-type]
    assert before != after


def test_the_method_is_signed_in_capitals() -> None:
    assert sign(SECRET, "1", "get", "/api/health", b"") == sign(
        SECRET, "1", "GET", "/api/health", b""
    )


def test_the_target_is_signed_as_sent_escapes_and_all() -> None:
    escaped = "/api/projects/na%C3%AFve%20name?tag=a%2Cb&q=%E2%9C%93"
    message = signing_message("1", "GET", escaped, b"")
    assert message == f"1:GET:{escaped}:".encode()
    # The decoded form is another message, so another signature: a server must verify the
    # target it received, not one it decoded.
    decoded = "/api/projects/naïve name?tag=a,b&q=✓"
    assert sign(SECRET, "1", "GET", escaped, b"") != sign(SECRET, "1", "GET", decoded, b"")
    assert signing_message("1", "GET", decoded, b"") == f"1:GET:{decoded}:".encode()


def test_a_body_is_signed_as_bytes_whatever_it_holds() -> None:
    body = '{"command":"printf \'a:b\\\\n\' ✓"}'.encode() + b"\x00\xff"
    message = signing_message("1", "POST", "/api/tasks", body)
    assert message.endswith(b":" + body)
    expected = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1", "POST", "/api/tasks", body) == expected


def test_a_secret_of_any_characters_signs() -> None:
    secret = "tqs_ünï-cödé/+=:"
    expected = hmac.new(secret.encode(), b"1:GET:/:", hashlib.sha256).hexdigest()
    assert sign(secret, "1", "GET", "/", b"") == expected


def test_the_headers_carry_the_key_id_the_time_of_signing_and_the_signature() -> None:
    headers = signed_headers("tqp_example", SECRET, "GET", "/api/health", now=1767225600.9)
    assert headers == {
        KEY_ID_HEADER: "tqp_example",
        TIMESTAMP_HEADER: "1767225600",  # whole seconds, rounded down
        SIGNATURE_HEADER: sign(SECRET, "1767225600", "GET", "/api/health", b""),
    }
    assert set(headers) == {
        "X-TaskQueue-Key-Id",
        "X-TaskQueue-Timestamp",
        "X-TaskQueue-Signature",
    }


def test_the_headers_are_signed_now_when_no_time_is_given() -> None:
    import time

    before = int(time.time())
    headers = signed_headers("tqp_example", SECRET, "POST", "/api/tasks", b"{}")
    stamp = int(headers[TIMESTAMP_HEADER])
    assert before <= stamp <= int(time.time())
    assert headers[SIGNATURE_HEADER] == sign(SECRET, str(stamp), "POST", "/api/tasks", b"{}")
    assert SIGNATURE_WINDOW_S == 300
