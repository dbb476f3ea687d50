"""Scheduled tasks on the wire: the schedule a template fires on, and the runs it made.

A Scheduled task (``task_type: "Scheduled"``) is a template (a body and every field a task
has) plus a ``schedule``: a cron expression in an IANA timezone, or a fixed interval. It never
runs by itself: each slot of its schedule makes one child Simple task (``parent_id`` the
template), exactly once, however many servers share the database. See ``docs/schedules.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskqueue._enums import TaskStatus
from taskqueue._fields import StrictInteger, Text, UTCDateTime
from taskqueue._input import _Input
from taskqueue._responses import OutputModel as _Output

__all__ = [
    "CATCHUP_POLICIES",
    "OVERLAP_POLICIES",
    "NextRuns",
    "Schedule",
    "ScheduleInfo",
    "ScheduleRun",
    "ScheduleRunList",
]

#: What happens to a slot while the previous run has not ended.
OVERLAP_POLICIES = ("skip", "buffer_one", "allow", "cancel_previous")
#: What happens to the slots missed while no server ran.
CATCHUP_POLICIES = ("none", "latest", "all")

OverlapPolicy = Literal["skip", "buffer_one", "allow", "cancel_previous"]
CatchupPolicy = Literal["none", "latest", "all"]
Cron = Annotated[Text, Field(min_length=1, max_length=200)]
Interval = Annotated[int, Field(ge=1, le=366 * 24 * 3600), StrictInteger]
TimezoneName = Annotated[Text, Field(min_length=1, max_length=64)]


class Schedule(_Input):
    """When a Scheduled task fires: ``cron`` or ``interval_seconds`` (exactly one).

    ``cron``: five fields (minute hour day month weekday), six (with seconds last), or an
    alias (``@hourly``, ``@daily``...), in ``timezone`` (IANA, default UTC): a time that does
    not exist there is skipped, one that happens twice fires once. ``interval_seconds``: every
    so many seconds from ``start_at`` (default: when it is created). No slot before
    ``start_at`` or after ``end_at``. ``overlap_policy``: what a slot does while the previous
    run has not ended (``skip`` it, keep one waiting: ``buffer_one``, ``allow`` both, or
    ``cancel_previous``). ``catchup``: what the slots missed while no server ran become
    (``none``: skipped, ``latest``: the latest one runs, ``all``: each runs, at most
    ``catchup_limit``). ``paused``: fires nothing until resumed.
    """

    cron: Cron | None = None
    interval_seconds: Interval | None = None
    timezone: TimezoneName = "UTC"
    start_at: UTCDateTime | None = None
    end_at: UTCDateTime | None = None
    overlap_policy: OverlapPolicy = "skip"
    catchup: CatchupPolicy = "none"
    catchup_limit: Annotated[int, Field(ge=1, le=1000), StrictInteger] = 100
    paused: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> Schedule:
        if (self.cron is None) == (self.interval_seconds is None):
            error = PydanticCustomError("schedule_rule", "give either cron or interval_seconds")
            raise ValidationError.from_exception_data(
                type(self).__name__, [InitErrorDetails(type=error, loc=("cron",), input=None)]
            )
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            error = PydanticCustomError("schedule_end", "end_at must be after start_at")
            raise ValidationError.from_exception_data(
                type(self).__name__, [InitErrorDetails(type=error, loc=("end_at",), input=None)]
            )
        return self


class ScheduleInfo(_Output):
    """A Scheduled task's schedule as stored, with when it fires next."""

    cron: str | None = None
    interval_seconds: int | None = None
    timezone: str = "UTC"
    start_at: datetime
    end_at: datetime | None = None
    overlap_policy: OverlapPolicy = "skip"
    catchup: CatchupPolicy = "none"
    catchup_limit: int = 100
    paused: bool = False
    #: The next slot it will fire (None: paused past its end, or ended).
    next_run_at: datetime | None = None
    #: The latest slot it fired (or skipped), and the child task of its latest run.
    last_run_at: datetime | None = None
    last_task_id: UUID | None = None


class ScheduleRun(_Output):
    """One slot of a schedule: the child task it made, or why it made none."""

    slot: datetime
    #: ``scheduled`` (its time came), ``catchup`` (missed while no server ran), ``manual``
    #: (``POST .../trigger``).
    kind: Literal["scheduled", "catchup", "manual"]
    task_id: UUID | None = None
    #: The child task's status (None: no child).
    status: TaskStatus | None = None
    #: Why the slot made no child: ``overlap`` (the previous run had not ended).
    skipped: str | None = None
    created_at: datetime


class ScheduleRunList(_Output):
    """A page of a schedule's runs, newest first."""

    task_id: UUID
    runs: list[ScheduleRun]
    total: int
    limit: int
    offset: int


class NextRuns(_Output):
    """The next slots a schedule will fire (a preview: nothing is made)."""

    task_id: UUID
    slots: list[datetime]
    paused: bool
