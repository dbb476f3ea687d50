"""``taskqueue.webhooks.verify``: which deliveries are trusted, and the typed refusal of the rest.

Pure rules, no I/O: the receiver over HTTP is tested in ``tests/sdk/test_webhook_receiver.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from uuid import UUID

import pytest

from taskqueue import errors
from taskqueue._webhook_receiver import _Deliveries
from taskqueue.events import Event
from taskqueue.webhooks import (
    InvalidSignatureError,
    MalformedWebhookError,
    StaleTimestampError,
    WebhookVerificationError,
    generate_secret,
    sign,
    verify,
)

NOW = 1_800_000_000
SECRET = generate_secret()
BODY = json.dumps(
    {
        "id": 42,
        "type": "task.completed",
        "time": "2027-01-15T08:00:00Z",
        "project_id": "0195e0c6-1c5a-7000-8000-00000000000a",
        "task_id": "0195e0c6-1c5a-7000-8000-00000000000b",
        "data": {"status": "Completed", "exit_code": 0},
        "trace_id": "abc",
    }
).encode()


def headers(
    body: bytes = BODY,
    secrets: tuple[str, ...] = (SECRET,),
    msg_id: str = "evt_42",
    timestamp: int = NOW,
) -> dict[str, str]:
    signature = " ".join(sign(s, msg_id, timestamp, body) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_a_signed_delivery_gives_its_event() -> None:
    event = verify(BODY, headers(), SECRET, now=NOW)
    assert isinstance(event, Event)
    assert (event.id, event.type, event.task_id, event.project_id) == (
        42,
        "task.completed",
        UUID("0195e0c6-1c5a-7000-8000-00000000000b"),
        UUID("0195e0c6-1c5a-7000-8000-00000000000a"),
    )
    assert event.data == {"status": "Completed", "exit_code": 0}
    assert event.trace_id == "abc"


def test_the_standard_webhooks_example_verifies() -> None:
    # The example of the Standard Webhooks specification: a receiver built on one of its
    # libraries and this one agree on every byte.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    given = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": expected,
    }
    # The signature is right; the body is just not one of our events.
    with pytest.raises(MalformedWebhookError, match="not an event"):
        verify(body, given, secret, now=1614265330)


def test_header_names_in_any_case_and_a_str_body() -> None:
    given = {name.upper(): value for name, value in headers().items()}
    assert verify(BODY.decode(), given, SECRET, now=NOW).id == 42
    titled = {name.title(): value for name, value in headers().items()}
    assert verify(BODY, titled, SECRET, now=NOW).id == 42


def test_a_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b'"exit_code": 0', b'"exit_code": 1')
    assert tampered != BODY
    with pytest.raises(InvalidSignatureError) as caught:
        verify(tampered, headers(), SECRET, now=NOW)
    assert caught.value.http_status == 401
    assert isinstance(caught.value, WebhookVerificationError)
    assert isinstance(caught.value, errors.TaskQueueError)
    # One extra byte (a re-encoded body) is as bad.
    with pytest.raises(InvalidSignatureError):
        verify(BODY + b"\n", headers(), SECRET, now=NOW)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignatureError, match="no signature matches"):
        verify(BODY, headers(secrets=(generate_secret(),)), SECRET, now=NOW)


def test_the_id_and_timestamp_are_signed_too() -> None:
    moved = headers()
    moved["webhook-id"] = "evt_43"
    with pytest.raises(InvalidSignatureError):
        verify(BODY, moved, SECRET, now=NOW)
    later = headers()
    later["webhook-timestamp"] = str(NOW + 1)
    with pytest.raises(InvalidSignatureError):
        verify(BODY, later, SECRET, now=NOW)


def test_during_a_rotation_either_secret_passes() -> None:
    old, new = generate_secret(), generate_secret()
    both = headers(secrets=(old, new))
    assert len(both["webhook-signature"].split()) == 2
    # A receiver that knows only one of the two accepts the delivery signed with both...
    assert verify(BODY, both, old, now=NOW).id == 42
    assert verify(BODY, both, new, now=NOW).id == 42
    # ...and one given both secrets accepts a delivery signed with either.
    assert verify(BODY, headers(secrets=(new,)), [old, new], now=NOW).id == 42
    assert verify(BODY, headers(secrets=(old,)), (old, new), now=NOW).id == 42
    with pytest.raises(InvalidSignatureError):
        verify(BODY, both, [generate_secret(), generate_secret()], now=NOW)


def test_other_signature_versions_are_ignored() -> None:
    given = headers()
    given["webhook-signature"] = "v1a,c29tZXRoaW5n " + given["webhook-signature"]
    assert verify(BODY, given, SECRET, now=NOW).id == 42
    given["webhook-signature"] = "v1a,c29tZXRoaW5n v2,abc"
    with pytest.raises(InvalidSignatureError, match="no v1 signature"):
        verify(BODY, given, SECRET, now=NOW)


@pytest.mark.parametrize("signature", ["garbage", "v1,", "v1,not base64 at all", "v1,\u00e9\u00e9"])
def test_a_garbled_signature_is_refused(signature: str) -> None:
    given = headers()
    given["webhook-signature"] = signature
    with pytest.raises(InvalidSignatureError):
        verify(BODY, given, SECRET, now=NOW)


def test_a_plain_string_secret_works_on_both_sides() -> None:
    assert verify(BODY, headers(secrets=("not-whsec",)), "not-whsec", now=NOW).id == 42
    with pytest.raises(InvalidSignatureError):
        verify(BODY, headers(secrets=("not-whsec",)), "not-whsec!", now=NOW)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-300, True), (300, True), (0, True), (-301, False), (301, False), (-86_400, False)],
)
def test_the_timestamp_must_be_within_the_tolerance(offset: int, ok: bool) -> None:
    given = headers(timestamp=NOW + offset)
    if ok:
        assert verify(BODY, given, SECRET, now=NOW).id == 42
        return
    with pytest.raises(StaleTimestampError, match="ago" if offset < 0 else "ahead") as caught:
        verify(BODY, given, SECRET, now=NOW)
    assert caught.value.http_status == 401


def test_the_tolerance_and_the_clock_can_be_given() -> None:
    given = headers(timestamp=NOW - 10)
    with pytest.raises(StaleTimestampError):
        verify(BODY, given, SECRET, tolerance=5, now=NOW)
    assert verify(BODY, given, SECRET, tolerance=10, now=NOW).id == 42
    # By default the clock is the machine's: a delivery signed in 2027 is not "now".
    with pytest.raises(StaleTimestampError):
        verify(BODY, headers(timestamp=0), SECRET)


def test_a_stale_delivery_is_refused_even_with_a_bad_signature() -> None:
    # The timestamp is checked first (no HMAC is spent on a replay of an old delivery); a
    # stale delivery is refused either way.
    given = headers(timestamp=NOW - 1000)
    given["webhook-signature"] = "v1,AAAA"
    with pytest.raises(StaleTimestampError):
        verify(BODY, given, SECRET, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(missing: str) -> None:
    given = headers()
    del given[missing]
    with pytest.raises(MalformedWebhookError, match=missing) as caught:
        verify(BODY, given, SECRET, now=NOW)
    assert caught.value.http_status == 400
    given[missing] = "  "
    with pytest.raises(MalformedWebhookError, match=missing):
        verify(BODY, given, SECRET, now=NOW)


@pytest.mark.parametrize("stamp", ["soon", "+1800000000", "1800000000.5", "1_800_000_000", "-1"])
def test_a_garbled_timestamp_is_refused(stamp: str) -> None:
    given = headers()
    given["webhook-timestamp"] = stamp
    with pytest.raises(MalformedWebhookError, match="webhook-timestamp"):
        verify(BODY, given, SECRET, now=NOW)


def test_an_overlong_id_is_refused() -> None:
    long_id = "x" * 257
    with pytest.raises(MalformedWebhookError, match="longer"):
        verify(BODY, headers(msg_id=long_id), SECRET, now=NOW)
    assert verify(BODY, headers(msg_id="x" * 256), SECRET, now=NOW).id == 42


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"id": 0, "type": "task.created", "time": "2027-01-01T00:00:00Z"}'],
)
def test_a_signed_body_that_is_no_event_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhookError, match="not an event"):
        verify(body, headers(body=body), SECRET, now=NOW)


def test_a_receiver_needs_a_secret_and_a_tolerance() -> None:
    with pytest.raises(ValueError, match="no webhook secret"):
        verify(BODY, headers(), [], now=NOW)
    with pytest.raises(ValueError, match="non-empty"):
        verify(BODY, headers(), "", now=NOW)
    with pytest.raises(ValueError, match="tolerance"):
        verify(BODY, headers(), SECRET, tolerance=-1, now=NOW)


def test_a_replay_within_the_window_passes_verify_and_then_not() -> None:
    # verify() keeps no state: the same delivery passes again while its timestamp is fresh
    # (dropping the repeat is the receiver's part, below), and is stale afterwards.
    given = headers()
    assert verify(BODY, given, SECRET, now=NOW + 299).id == 42
    with pytest.raises(StaleTimestampError):
        verify(BODY, given, SECRET, now=NOW + 301)


def test_the_receiver_remembers_handled_ids_until_they_expire() -> None:
    seen = _Deliveries(limit=10)
    assert seen.begin("a", now=100) == "new"
    # While in hand, a second delivery of it is told to come back; a failure forgets it.
    assert seen.begin("a", now=100) == "in_flight"
    seen.finish("a", handled=False, until=400)
    assert seen.begin("a", now=101) == "new"
    seen.finish("a", handled=True, until=400)
    assert seen.begin("a", now=399) == "duplicate"
    # Past the window the id is forgotten (a delivery that old is stale anyway).
    assert seen.begin("a", now=400) == "new"
    assert len(seen) == 0


def test_the_receiver_memory_is_bounded() -> None:
    seen = _Deliveries(limit=3)
    for n in range(5):
        assert seen.begin(f"id{n}", now=0) == "new"
        seen.finish(f"id{n}", handled=True, until=1000)
    assert len(seen) == 3
    assert [seen.begin(f"id{n}", now=1) for n in (2, 3, 4)] == ["duplicate"] * 3
    # The oldest went first.
    assert seen.begin("id0", now=1) == "new"


def test_the_sdk_side_loads_no_server_module() -> None:
    code = (
        "import sys, taskqueue.webhooks\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'fastapi')"
        " or m.startswith(('taskqueue.server', 'taskqueue.store', 'taskqueue.worker'))]\n"
        "print(bad)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "[]"


def test_run_without_uvicorn_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['uvicorn'] = None\n"  # as if it were not installed
        "from taskqueue.webhooks import WebhookHandler\n"
        "WebhookHandler('whsec_x').run()\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 1
    assert "pip install 'taskqueue-sdk[webhooks]'" in ran.stderr
