"""The outbox: every state change appends its event here, in the transaction that makes it.

A committed change therefore always has its event, and an event is never written for a change
that rolled back: readers of the ``events`` table (streams, webhooks) can trust it alone.
"""

from __future__ import annotations

from typing import Any

from taskqueue.store.codec import dumps
from taskqueue.store.sql import Tx, insert_rows

__all__ = ["emit", "emit_many", "event_row"]


def event_row(
    type_: str,
    now: int,
    task_id: str | None = None,
    project_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One event as a row of the ``events`` table, for :func:`emit_many`."""
    return {
        "type": type_,
        "task_id": task_id,
        "project_id": project_id,
        "time": now,
        "data": dumps(data or {}),
    }


def emit(
    tx: Tx,
    type_: str,
    now: int,
    task_id: str | None = None,
    project_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event."""
    tx.execute(
        "INSERT INTO events (type, task_id, project_id, time, data) VALUES (?, ?, ?, ?, ?)",
        (type_, task_id, project_id, now, dumps(data or {})),
    )


def emit_many(tx: Tx, rows: list[dict[str, Any]]) -> None:
    """Append many events (rows made by :func:`event_row`) in one statement."""
    insert_rows(tx, "events", rows)
