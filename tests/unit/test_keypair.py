"""The SDK's key pair: what it signs, how it keeps every signature new, what it shows."""

from __future__ import annotations

import concurrent.futures

from taskqueue.client._keypair import MAX_AHEAD_S, KeyPair
from taskqueue.signing import sign

SECRET = "tqs_unit_secret_0123456789"
NOW = 1767225600.5


def stamp(headers: dict[str, str]) -> int:
    return int(headers["X-TaskQueue-Timestamp"])


def test_it_signs_what_it_is_given_at_the_time_given() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    headers = pair.headers("post", "/api/tasks?x=1", b'{"a":1}', now=NOW)
    assert headers == {
        "X-TaskQueue-Key-Id": "tqp_unit",
        "X-TaskQueue-Timestamp": "1767225600",
        "X-TaskQueue-Signature": sign(SECRET, "1767225600", "POST", "/api/tasks?x=1", b'{"a":1}'),
    }
    no_body = pair.headers("GET", "/api/health", None, now=NOW)
    assert no_body["X-TaskQueue-Signature"] == sign(SECRET, "1767225600", "GET", "/api/health", b"")


def test_the_same_request_twice_in_one_second_gets_the_next_second() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    first = pair.headers("GET", "/api/tasks/1", None, now=NOW)
    again = pair.headers("GET", "/api/tasks/1", None, now=NOW + 0.2)
    third = pair.headers("get", "/api/tasks/1", b"", now=NOW + 0.3)  # the same request
    assert [stamp(first), stamp(again), stamp(third)] == [1767225600, 1767225601, 1767225602]
    assert len({h["X-TaskQueue-Signature"] for h in (first, again, third)}) == 3
    # Once the clock passes the seconds used, requests are signed at the clock again.
    assert stamp(pair.headers("GET", "/api/tasks/1", None, now=NOW + 5)) == 1767225605


def test_other_requests_in_the_same_second_keep_the_clock_s_time() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    stamps = {
        stamp(pair.headers("GET", "/api/tasks/1", None, now=NOW)),
        stamp(pair.headers("GET", "/api/tasks/2", None, now=NOW)),
        stamp(pair.headers("POST", "/api/tasks/1", None, now=NOW)),
        stamp(pair.headers("PUT", "/api/tasks/1", b"{}", now=NOW)),
        stamp(pair.headers("PUT", "/api/tasks/1", b"[]", now=NOW)),
    }
    assert stamps == {1767225600}


def test_repeats_go_no_further_ahead_than_the_limit() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    stamps = [stamp(pair.headers("GET", "/api/health", None, now=NOW)) for _ in range(100)]
    assert max(stamps) == 1767225600 + MAX_AHEAD_S
    assert stamps[: MAX_AHEAD_S + 1] == list(range(1767225600, 1767225600 + MAX_AHEAD_S + 1))


def test_threads_signing_one_request_never_share_a_timestamp() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        stamps = list(
            pool.map(lambda _: stamp(pair.headers("GET", "/x", None, now=NOW)), range(40))
        )
    assert len(set(stamps)) == 40


def test_many_distinct_requests_are_remembered_within_bounds() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    for n in range(10_000):
        pair.headers("GET", f"/api/tasks/{n}", None, now=NOW)
    assert len(pair._last) <= 4096
    assert stamp(pair.headers("GET", "/api/tasks/9999", None, now=NOW)) == 1767225601


def test_the_secret_is_in_no_repr() -> None:
    pair = KeyPair("tqp_unit", SECRET)
    assert repr(pair) == "KeyPair(public_id='tqp_unit', secret=***)"
    assert SECRET not in repr(pair)
    assert not hasattr(pair, "__dict__")  # nothing but its slots to dump
