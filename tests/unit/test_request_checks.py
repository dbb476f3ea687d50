"""The pure pieces of the request checks: duplicate-key detection and origin spelling.

The duplicate-key check has a fast path (colon counts) that must never miss a duplicate; these
cases try to fool it, and every answer is compared with the exact, slow parse.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskqueue.server.body import find_duplicate_key
from taskqueue.server.guards import content_type_refusal, normalize_origin, parse_allowed_origin


def _exact(body: bytes) -> bool:
    """Whether ``body`` has a duplicate key, by the plain, slow way."""
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        keys = [key for key, _ in pairs]
        found = found or len(keys) != len(set(keys))
        return dict(pairs)

    json.loads(body, object_pairs_hook=hook)
    return found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a":1}', None),
        (b"[]", None),
        (b'"a:b"', None),
        (b'{"a":1,"a":2}', ([], "a")),
        (b'{"a":{"b":1,"b":2}}', (["a"], "b")),
        (b'[{"x":1},{"y":[{"z":1,"z":1}]}]', ([1, "y", 0], "z")),
        (b'{"a":"x:y","a":"z"}', ([], "a")),
        (b'{"a\\u003a":1,"a:":2}', ([], "a:")),  # one key spelt two ways
        (b'{"\\u0061":1,"a":2}', ([], "a")),
        (b'{"a":"\\\\u003a","b":1}', None),  # an escaped backslash, not an escaped colon
        (b'{"a":"\\u003a\\u003A"}', None),
        (b'{"k":{"a":1},"k":{"b":{"c":1,"d":":"}}}', ([], "k")),  # the dropped value has keys
        (b'{"a":123456789012345678901234567890,"a":1}', ([], "a")),  # orjson refuses big ints
        (b'{"a":NaN,"a":1}', ([], "a")),
        (b'{"a":1,"a":2', None),  # not JSON: validation says so
        (b"[" * 5000 + b"]" * 5000, None),
    ],
)
def test_find_duplicate_key(body: bytes, expected: Any) -> None:
    assert find_duplicate_key(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}',
        b'{"a:":"::","b\\"":":\\":","c":"\\\\"}',
        b'{"x":{"y":"\\u003a"},"x\\u003a":1}',
        b'{"x":1,"x\\u0000":2,"x\\u0000":3}',
        b'{"":1,"":2}',
        b'{"\\ud83d\\ude00":1,"\xf0\x9f\x98\x80":2}',
    ],
)
def test_the_fast_path_agrees_with_the_exact_parse(body: bytes) -> None:
    assert (find_duplicate_key(body) is not None) == _exact(body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("HTTP://LocalHost:8080", "http://localhost:8080"),
        ("http://localhost:80", "http://localhost"),
        ("https://dash.example.com:443", "https://dash.example.com"),
        ("https://dash.example.com", "https://dash.example.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[::1]", "http://[::1]"),
        ("null", None),
        ("", None),
        ("file://", None),
        ("ftp://files.example", None),
        ("https://dash.example.com/", None),
        ("https://dash.example.com/app", None),
        ("https://dash.example.com?x", None),
        ("https://dash.example.com#x", None),
        ("https://user:pw@dash.example.com", None),
        ("https://dash.example.com:99999", None),
        ("https://dash.example.com:x", None),
        ("dash.example.com", None),
    ],
)
def test_normalize_origin(value: str, expected: str | None) -> None:
    assert normalize_origin(value) == expected


def test_parse_allowed_origin() -> None:
    assert parse_allowed_origin(" HTTPS://Dash.Example.com:443 ") == "https://dash.example.com"
    for bad in ("*", "null", "dash.example.com", "https://dash.example.com/app"):
        with pytest.raises(ValueError, match=r"would let any web page|is not an origin"):
            parse_allowed_origin(bad)


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),
        ({b"content-length": b"0"}, False),
        ({b"content-type": b"application/json"}, False),
        ({b"content-type": b"application/json; charset=utf-8", b"content-length": b"2"}, False),
        ({b"content-type": b"application/json", b"transfer-encoding": b"chunked"}, False),
        ({b"content-type": b"application/octet-stream"}, False),  # no body: not what forms send
        ({b"content-type": b"text/plain"}, True),
        ({b"content-type": b"TEXT/PLAIN;charset=x"}, True),
        ({b"content-type": b"multipart/form-data; boundary=x"}, True),
        ({b"content-type": b"application/x-www-form-urlencoded"}, True),
        ({b"content-length": b"2"}, True),
        ({b"transfer-encoding": b"chunked"}, True),
        ({b"content-type": b"application/jsonx", b"content-length": b"2"}, True),
    ],
)
def test_content_type_refusal(headers: dict[bytes, bytes], refused: bool) -> None:
    assert (content_type_refusal(headers) is not None) == refused
