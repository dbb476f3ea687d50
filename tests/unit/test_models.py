"""Wire models: camelCase input, defaults, validation messages."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum

import pydantic
import pytest

import taskqueue
from taskqueue.models import (
    BatchTaskCreate,
    FailureReason,
    ProjectCreate,
    TaskCreate,
    TaskPriority,
    TaskStatus,
    TaskType,
)


def test_camel_case_and_snake_case_both_accepted() -> None:
    camel = TaskCreate.model_validate(
        {
            "name": "a",
            "command": "true",
            "retryAttempts": 1,
            "retryDelay": 2,
            "workingDirectory": "/tmp",
        }
    )
    snake = TaskCreate.model_validate(
        {
            "name": "a",
            "command": "true",
            "retry_attempts": 1,
            "retry_delay": 2,
            "working_directory": "/tmp",
        }
    )
    assert camel == snake


def test_defaults_follow_the_seed() -> None:
    task = TaskCreate(name="a", command="true")
    assert task.priority is TaskPriority.NORMAL
    assert task.retry_attempts == 3
    assert task.retry_delay == 30
    assert task.queue == "default"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("environment", {"1BAD": "x"}, "not a valid environment variable name"),
        ("name", "a\x00b", "must not contain NUL"),
        ("task_type", "Batch", "Input should be"),
        ("metadata", {"x": "y" * 300_000}, "bytes of JSON"),
        ("queue", "has space", "pattern"),
        ("unknown", 1, "Extra inputs are not permitted"),
    ],
)
def test_invalid_fields_are_named_with_a_reason(field: str, value: object, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TaskCreate.model_validate({"name": "a", "command": "true", field: value})
    errors = info.value.errors()
    assert errors[0]["loc"][0] == field
    assert message in errors[0]["msg"]


def test_batches_have_bounds() -> None:
    with pytest.raises(pydantic.ValidationError):
        BatchTaskCreate.model_validate({"tasks": []})


def test_naive_datetimes_are_taken_as_utc() -> None:
    # From Python code a naive datetime is UTC; on the wire an offset is required (RFC 3339).
    project = ProjectCreate.model_validate({"name": "p", "due_date": datetime(2030, 1, 1)})
    assert project.due_date == datetime(2030, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(pydantic.ValidationError, match="RFC 3339"):
        ProjectCreate.model_validate({"name": "p", "due_date": "2030-01-01T00:00:00"})


def test_public_names_are_exported() -> None:
    for name in taskqueue.__all__:
        assert getattr(taskqueue, name) is not None
    assert isinstance(taskqueue.TaskNotFoundError("x", 404), taskqueue.NotFoundError)


def test_errors_read_well() -> None:
    error = taskqueue.TaskNotFoundError("task x not found", 404, {"error": {}}, "req-1")
    assert str(error) == "[404] task x not found (request req-1)"
    assert str(taskqueue.TaskQueueConnectionError("refused")) == "refused"
    limited = taskqueue.RateLimitError("slow down", retry_after=2.5)
    assert limited.retry_after == 2.5
    assert limited.status_code == 429
    details = taskqueue.ValidationError("bad", 422, {"error": {"details": [{"loc": ["x"]}]}})
    assert details.details == [{"loc": ["x"]}]
    assert taskqueue.ValidationError("bad", 422, {"error": "nope"}).details == []


def test_python_callers_may_give_native_values() -> None:
    # The SDK validates with these models before sending: UUIDs and datetimes pass as objects.
    parent = uuid.uuid4()
    task = TaskCreate.model_validate(
        {"name": "a", "command": "true", "dependencies": [parent], "run_at": datetime(2030, 1, 1)}
    )
    assert task.dependencies == [str(parent)]
    assert task.run_at == datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "member",
    [TaskStatus.COMPLETED, TaskPriority.HIGH, FailureReason.TIMEOUT, TaskType.SIMPLE],
    ids=str,
)
def test_enum_members_print_as_their_wire_value(member: Enum) -> None:
    value = member.value
    assert str(member) == value
    assert f"{member}" == value
    assert f"[{member:>12}]" == f"[{value:>12}]"
    assert member == value  # still the string it stands for
