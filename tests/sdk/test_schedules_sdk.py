"""Scheduled tasks through both clients, against a real server and its workers."""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from taskqueue import (
    ConflictError,
    ScheduleRun,
    ScheduleRunList,
    ValidationError,
)
from tests.conftest import wait_until
from tests.sdk.blocking import sync_and_async_client

client = sync_and_async_client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_cron_schedule_is_a_scheduled_task_with_its_next_run(client: Any) -> None:
    task = client.create_schedule(
        unique("cron"), "echo hi", cron="30 2 * * *", timezone="Europe/Berlin"
    )
    assert task.task_type.value == "Scheduled"
    assert task.schedule is not None
    assert task.schedule.cron == "30 2 * * *"
    assert task.schedule.timezone == "Europe/Berlin"
    fetched = client.get_task(task.id)
    assert fetched.schedule is not None
    assert fetched.schedule.next_run_at is not None


def test_next_runs_are_increasing_slots_in_the_schedules_timezone(client: Any) -> None:
    task = client.create_schedule(
        unique("cron"), "echo hi", cron="30 2 * * *", timezone="Europe/Berlin"
    )
    slots = client.next_runs(task.id, count=4)
    assert len(slots) == 4
    assert slots == sorted(slots)
    assert len(set(slots)) == 4
    for slot in slots:
        local = slot.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (2, 30)


def test_create_task_with_a_schedule_works_too(client: Any) -> None:
    task = client.create_task(
        unique("plain"), "echo hi", task_type="Scheduled", schedule={"interval_seconds": 3600}
    )
    assert task.schedule is not None
    assert task.schedule.interval_seconds == 3600
    assert task.id in {t.id for t in client.list_schedules(limit=1000)}


def test_pause_and_resume_flip_paused(client: Any) -> None:
    task = client.create_schedule(unique("pause"), "echo hi", interval_seconds=3600)
    assert task.schedule is not None
    assert not task.schedule.paused
    paused = client.pause_schedule(task.id)
    assert paused.schedule is not None
    assert paused.schedule.paused
    resumed = client.resume_schedule(task.id)
    assert resumed.schedule is not None
    assert not resumed.schedule.paused


def test_trigger_makes_a_child_task_that_completes_and_is_listed(client: Any) -> None:
    task = client.create_schedule(unique("trig"), "echo triggered", interval_seconds=3600)
    run = client.trigger_schedule(task.id)
    assert isinstance(run, ScheduleRun)
    assert run.kind == "manual"
    assert run.task_id is not None
    child_id = run.task_id
    wait_until(
        lambda: client.get_task(child_id).status.value == "Completed", 60, "the child to complete"
    )
    child = client.get_task(child_id)
    assert child.parent_id == task.id
    runs = client.list_schedule_runs(task.id)
    assert isinstance(runs, ScheduleRunList)
    assert any(r.kind == "manual" and r.task_id == child_id for r in runs.runs)


def test_an_interval_of_one_second_makes_runs(client: Any) -> None:
    task = client.create_schedule(unique("tick"), "true", interval_seconds=1)
    try:
        wait_until(lambda: client.list_schedule_runs(task.id).total >= 2, 60, "two scheduled runs")
    finally:
        client.pause_schedule(task.id)
    kinds = {r.kind for r in client.list_schedule_runs(task.id).runs}
    assert kinds & {"scheduled", "catchup"}


def test_schedule_routes_refuse_a_task_that_is_not_scheduled(client: Any) -> None:
    plain = client.create_task(unique("simple"), "true")
    for call in (client.pause_schedule, client.trigger_schedule, client.next_runs):
        with pytest.raises(ConflictError):
            call(plain.id)


def test_a_bad_cron_is_a_validation_error_naming_schedule_cron(client: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        client.create_schedule(unique("bad"), "true", cron="not a cron")
    assert any(list(d.get("loc", []))[-2:] == ["schedule", "cron"] for d in caught.value.details), (
        caught.value.details
    )


def test_a_bad_timezone_is_a_validation_error_naming_schedule_timezone(client: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        client.create_schedule(unique("bad"), "true", cron="@daily", timezone="Mars/Olympus")
    locs = [list(d.get("loc", [])) for d in caught.value.details]
    assert any(loc[-2:] == ["schedule", "timezone"] for loc in locs), locs


def test_cron_and_interval_together_are_refused_before_sending(client: Any) -> None:
    with pytest.raises(ValidationError):
        client.create_schedule(unique("both"), "true", cron="@daily", interval_seconds=5)
