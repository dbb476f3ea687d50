"""The NATS subjects and payloads: the pure rules of ``taskqueue.nats``, publisher and SDK alike."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from taskqueue.events import EVENT_TYPES, Event
from taskqueue.nats import (
    check_token,
    describe_servers,
    message_for,
    server_secrets,
    subject_for,
    subjects_for,
)
from taskqueue.security import redact

PROJECT = "0190a3c2-5b8e-7a1d-9c3e-2f4b6d8e0a1b"


@pytest.mark.parametrize("token", ["etl", PROJECT, "_", "a-b_c", "été", "x" * 200])
def test_a_token_without_separator_wildcard_or_space_is_taken(token: str) -> None:
    assert check_token(token) == token


@pytest.mark.parametrize(
    ("token", "bad"),
    [
        ("a.b", "'.'"),
        ("a*", "'*'"),
        (">", "'>'"),
        ("a b", "' '"),
        ("a\tb", "'\\t'"),
        ("a\nb", "'\\n'"),
        ("a\x00b", "'\\x00'"),
        ("a\u00a0b", "'\\xa0'"),
    ],
)
def test_a_token_with_a_separator_wildcard_space_or_control_is_refused(
    token: str, bad: str
) -> None:
    with pytest.raises(ValueError, match="project id") as raised:
        check_token(token, "project id")
    assert bad in str(raised.value)


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        check_token("")


def test_an_event_goes_to_its_project_then_its_type_tokens() -> None:
    assert subject_for(PROJECT, "task.completed") == f"taskqueue.{PROJECT}.task.completed"
    assert subject_for(None, "key.created") == "taskqueue._.key.created"


def test_every_event_type_makes_a_valid_subject() -> None:
    for type in EVENT_TYPES:
        subject = subject_for(PROJECT, type)
        assert subject.split(".")[2:] == type.split(".")


@pytest.mark.parametrize(
    ("project", "type"),
    [("a.b", "task.created"), ("p q", "task.created"), ("p", "task..created"), ("p", "task.*")],
)
def test_a_subject_that_cannot_be_built_is_refused(project: str, type: str) -> None:
    with pytest.raises(ValueError, match=r"NATS subject token|empty"):
        subject_for(project, type)


def test_subscriptions_name_every_project_type_or_family() -> None:
    assert subjects_for() == ["taskqueue.*.>"]
    assert subjects_for(PROJECT) == [f"taskqueue.{PROJECT}.>"]
    assert subjects_for(PROJECT, ["*"]) == [f"taskqueue.{PROJECT}.>"]
    assert subjects_for(None, ["task.completed", "task.failed", "task.completed"]) == [
        "taskqueue.*.task.completed",
        "taskqueue.*.task.failed",
    ]
    assert subjects_for("p", ["task.*"]) == ["taskqueue.p.task.*"]


@pytest.mark.parametrize("types", [["task.>"], ["*.completed"], ["task completed"], ["task."]])
def test_a_subscription_pattern_other_than_a_family_is_refused(types: list[str]) -> None:
    with pytest.raises(ValueError, match="event type"):
        subjects_for("p", types)


def test_a_subscription_to_a_project_that_no_subject_can_name_is_refused() -> None:
    with pytest.raises(ValueError, match="project id"):
        subjects_for("a.b")


def event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": 42,
        "type": "task.completed",
        "time": "2026-12-02T09:00:00.123456Z",
        "project_id": PROJECT,
        "task_id": "0190a3c2-0000-7000-8000-000000000001",
        "data": {"exit_code": 0, "name": "été"},
        "trace_id": None,
    }
    return {**base, **fields}


def test_the_payload_is_the_envelope_with_seed_003s_fields_and_the_id_as_msg_id() -> None:
    subject, payload, headers = message_for(event())
    assert subject == f"taskqueue.{PROJECT}.task.completed"
    assert headers == {"Nats-Msg-Id": "42"}
    body = json.loads(payload)
    assert body == {
        **event(),
        "timestamp": "2026-12-02T09:00:00.123456Z",
        "service": "taskqueue",
    }
    parsed = Event.model_validate_json(payload)
    assert parsed.id == 42
    assert parsed.data["name"] == "été"
    # The same bytes each time: a copy published again is the same message.
    assert message_for(event()) == (subject, payload, headers)


def test_a_known_trace_id_is_carried() -> None:
    _, payload, _ = message_for(event(trace_id="4bf92f3577b34da6a3ce929d0e0e4736"))
    assert json.loads(payload)["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_event_of_no_project_goes_to_the_underscore_token() -> None:
    subject, _, _ = message_for(event(type="auth.denied", project_id=None, task_id=None))
    assert subject == "taskqueue._.auth.denied"


def test_a_url_is_logged_without_its_credentials() -> None:
    url = "nats://tq:p%40ss-word@n1:4222, tls://s3cr3t-token@n2:4443,nats://n3:4222"
    shown = describe_servers(url)
    assert shown == "nats://***@n1:4222,tls://***@n2:4443,nats://n3:4222"
    secrets = server_secrets(url)
    assert set(secrets) == {"p%40ss-word", "p@ss-word", "s3cr3t-token"}
    line = f"cannot connect to {url} as tq with p@ss-word"
    cleaned = redact(line, secrets)
    assert all(secret not in cleaned for secret in secrets)
    assert "tq" in cleaned  # a user name is not a secret


def test_the_sdk_module_imports_neither_the_server_nor_the_nats_client() -> None:
    code = (
        "import sys, taskqueue.nats\n"
        "bad = ('taskqueue.server', 'taskqueue.store', 'taskqueue.integrations', 'nats',"
        " 'sqlalchemy', 'starlette')\n"
        "print(','.join(m for m in bad if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
