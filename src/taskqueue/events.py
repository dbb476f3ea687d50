"""The event envelope: what the server says happened, on every channel it says it on.

Every state change writes one event in the transaction that makes it (the outbox). The same
envelope reaches a user by the stream (``GET /api/events``, :meth:`AsyncTaskQueueClient.events`),
by webhooks (the body of each delivery, see :mod:`taskqueue.webhooks`) and by NATS (see
:mod:`taskqueue.nats`). ``docs/events.md`` lists every type with an example.

An event never carries a secret: a task's ``environment`` values, API keys and webhook
secrets are never in ``data``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_TYPES",
    "TASK_EVENT_TYPES",
    "Event",
    "EventPage",
    "is_event_type",
]

#: Events of a task's life.
TASK_EVENT_TYPES: tuple[str, ...] = (
    "task.created",
    "task.started",
    "task.retrying",
    "task.completed",
    "task.failed",
    "task.cancelled",
    "task.updated",
    "task.deleted",
    "task.phase_started",
    "task.phase_completed",
    "task.review_requested",
    "task.reviewed",
)

#: Every event type the server writes.
EVENT_TYPES: tuple[str, ...] = (
    *TASK_EVENT_TYPES,
    "project.created",
    "project.updated",
    "project.deleted",
    "key.created",
    "key.revoked",
    "key.rotated",
    "auth.denied",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.disabled",
    "webhook.test",
)


def is_event_type(pattern: str) -> bool:
    """Whether ``pattern`` names an event type, or a family of them (``task.*``, ``*``)."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        family = pattern[:-1]
        return any(t.startswith(family) for t in EVENT_TYPES)
    return pattern in EVENT_TYPES


class Event(BaseModel):
    """One event: a committed change, as every channel carries it."""

    model_config: ClassVar[ConfigDict] = ConfigDict(extra="allow", frozen=True)

    #: Increases with every event the server writes: the position to resume after.
    id: int = Field(ge=1)
    #: What happened: one of :data:`EVENT_TYPES` (``task.completed``...).
    type: str
    #: When the change committed (UTC).
    time: datetime
    #: The project of the task or project the event is about (None: not in a project).
    project_id: UUID | None = None
    #: The task the event is about (None: not about a task).
    task_id: UUID | None = None
    #: What changed: a snapshot of the fields concerned (never a secret).
    data: dict[str, Any] = Field(default_factory=dict)
    #: The trace of the request or task that made the change, when known.
    trace_id: str | None = None


class EventPage(BaseModel):
    """A page of past events (``GET /api/events?format=json``)."""

    #: The events after the position asked for, oldest first.
    items: list[Event]
    #: The position to ask for next (``?after=``): the last event's id, or the one asked for.
    next_after: int
    #: The oldest event still stored (older ones were pruned); None when there is none.
    first_id: int | None = None
    #: The newest event stored; None when there is none.
    last_id: int | None = None
