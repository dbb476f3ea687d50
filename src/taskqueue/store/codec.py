"""The codec: stored rows to the JSON-ready dicts the API sends, times, and stored JSON.

The dicts follow :mod:`taskqueue.models` field for field; the API serialises them directly, which
is several times cheaper than building a model per row. A test checks that every dict the API
sends parses as its model.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from taskqueue.engine.workflows import wire_status

__all__ = [
    "attempt_to_dict",
    "dumps",
    "from_us",
    "loads",
    "now_us",
    "output_text",
    "project_to_dict",
    "task_to_dict",
    "to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_us() -> int:
    """The current time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


def to_us(value: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=512)
def from_us(value: int | None) -> str | None:
    """Integer microseconds as an ISO 8601 UTC string ending in ``Z`` (None stays None).

    Integer arithmetic, not a float division: exact to the microsecond at any date. The ``Z``
    form is the one pydantic writes, so a model's JSON equals the API's.
    """
    if value is None:
        return None
    return (_EPOCH + timedelta(microseconds=value)).isoformat().replace("+00:00", "Z")


def dumps(value: Any) -> str:
    """Compact JSON text for storage."""
    if not value and (value == {} or value == []):
        return "{}" if isinstance(value, dict) else "[]"
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(value: str | None) -> Any:
    """Parse stored JSON text (None stays None)."""
    return None if value is None else orjson.loads(value)


def output_text(data: bytes) -> str:
    """Stored output as the wire carries it: UTF-8, each byte that is not UTF-8 as U+FFFD.

    The same decoding as ``stdout_tail``. A NUL byte is a character like any other (JSON sends
    it as an escape). Workers cut chunks between characters, so decoding chunk by chunk
    gives the text of the whole.
    """
    return data.decode("utf-8", "replace")


def task_to_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A task row as its wire dict."""
    return {
        "id": row["id"],
        "name": row["name"],
        "command": row["command"],
        "description": row["description"],
        "technical_specs": row["technical_specs"],
        "acceptance_criteria": loads(row["acceptance_criteria"]),
        "project_id": row["project_id"],
        "task_type": row["task_type"],
        "priority": row["priority"],
        "dependencies": loads(row["dependencies"]),
        "timeout": row["timeout"],
        "retry_attempts": row["retry_attempts"],
        "retry_delay": row["retry_delay"],
        "environment": loads(row["environment"]),
        "working_directory": row["working_directory"],
        "status": wire_status(row["task_type"], row["status"], row["current_phase"]),
        "status_reason": row["status_reason"],
        "failure_reason": row["failure_reason"],
        "result": loads(row["result"]),
        "phases": [_phase_to_dict(p) for p in loads(row["phases"])],
        "current_phase": row["current_phase"],
        "ai_reviews_required": row["ai_reviews_required"],
        "ai_reviews_completed": row["ai_reviews_completed"],
        "development_workflow": loads(row["development_workflow"]),
        "review_rounds": row["review_rounds"] or 0,
        "max_review_rounds": row["max_review_rounds"],
        "metadata": loads(row["metadata"]),
        "created_at": from_us(row["created_at"]),
        "updated_at": from_us(row["updated_at"]),
        "queue": row["queue"],
        "run_at": from_us(row["run_at"]),
        "attempt": row["attempt"],
        "started_at": from_us(row["started_at"]),
        "finished_at": from_us(row["finished_at"]),
        "parent_id": row["parent_id"],
        "input": loads(row["input"]),
        "input_schema": loads(row["input_schema"]),
        "output_schema": loads(row["output_schema"]),
        "version": row["version"],
        "language": row["language"],
        "code": row["code"],
        "limits": loads(row["limits"]),
        "idempotency_key": row["idempotency_key"],
        # A Scheduled task's schedule (filled in by the store: store.schedules.attach).
        "schedule": None,
    }


def _phase_to_dict(phase: Mapping[str, Any]) -> dict[str, Any]:
    """A stored workflow phase as its wire dict (its times as the wire writes times)."""
    return {
        **phase,
        "started_at": from_us(phase["started_at"]),
        "finished_at": from_us(phase["finished_at"]),
    }


def project_to_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A project row as its wire dict."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "due_date": from_us(row["due_date"]),
        "tags": loads(row["tags"]),
        "metadata": loads(row["metadata"]),
        "created_at": from_us(row["created_at"]),
        "updated_at": from_us(row["updated_at"]),
    }


def attempt_to_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt row as its wire dict."""
    return {
        "number": row["number"],
        "worker_id": row["worker_id"],
        "status": row["status"],
        "started_at": from_us(row["started_at"]),
        "finished_at": from_us(row["finished_at"]),
        "exit_code": row["exit_code"],
        "error": row["error"],
        "failure_reason": row["failure_reason"],
        "duration_ms": row["duration_ms"],
        "phase": row["phase"],
    }
