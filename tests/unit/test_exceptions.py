"""The exception hierarchy by seed 001's names: importable from ``taskqueue`` and
``taskqueue.exceptions``, aliases included, without a star import shadowing the builtins."""

from __future__ import annotations

import builtins

import taskqueue
import taskqueue.errors
import taskqueue.exceptions

#: Seed 001's exception classes, by name.
SEED_001 = (
    "TaskQueueError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "TaskNotFoundError",
    "ProjectNotFoundError",
    "APIError",
    "ConnectionError",
    "TimeoutError",
    "RateLimitError",
)


def test_every_seed_exception_is_importable_from_both_places() -> None:
    for name in SEED_001:
        from_package = getattr(taskqueue, name)
        assert getattr(taskqueue.exceptions, name) is from_package, name
        assert issubclass(from_package, taskqueue.TaskQueueError), name
        assert from_package.__doc__, name


def test_the_aliases_are_the_sdk_errors_and_not_the_builtins() -> None:
    from taskqueue import ConnectionError, TimeoutError

    assert ConnectionError is taskqueue.TaskQueueConnectionError
    assert TimeoutError is taskqueue.TaskQueueTimeoutError
    assert not issubclass(ConnectionError, builtins.ConnectionError)
    assert not issubclass(TimeoutError, builtins.TimeoutError)


def test_a_star_import_shadows_no_builtin() -> None:
    for module in (taskqueue, taskqueue.exceptions, taskqueue.errors):
        namespace: dict[str, object] = {}
        exec(f"from {module.__name__} import *", namespace)
        assert "ConnectionError" not in namespace, module.__name__
        assert "TimeoutError" not in namespace, module.__name__
        assert "TaskQueueConnectionError" in namespace, module.__name__


def test_seed_000_attributes() -> None:
    invalid = taskqueue.ValidationError(
        "name: too short",
        422,
        {"error": {"details": [{"loc": ["name"], "msg": "too short", "type": "string_too_short"}]}},
    )
    assert (
        invalid.errors
        == invalid.details
        == [{"loc": ["name"], "msg": "too short", "type": "string_too_short"}]
    )
    cause = ConnectionRefusedError(111, "Connection refused")
    failed = taskqueue.TaskQueueConnectionError("cannot reach", original_exception=cause)
    assert failed.original_exception is cause
    assert taskqueue.TaskQueueConnectionError("no cause").original_exception is None
    assert str(taskqueue.TaskQueueError("plain", 404)) == "[404] plain"
