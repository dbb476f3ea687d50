"""When schedules fire: slots of cron expressions in real timezones, across DST, and intervals."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from taskqueue.engine.schedules import ScheduleRule, check_cron, check_timezone, slots_after

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _local(slots: list[int], zone: ZoneInfo) -> list[str]:
    return [datetime.fromtimestamp(s / 1e6, zone).strftime("%m-%d %H:%M %Z") for s in slots]


def test_a_slot_in_the_hour_skipped_in_spring_does_not_exist() -> None:
    # Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST.
    rule = ScheduleRule(
        "30 2 * * *", None, "Europe/Berlin", _us(datetime(2026, 3, 27, tzinfo=timezone.utc))
    )
    assert _local(slots_after(rule, rule.start_us, 3), BERLIN) == [
        "03-27 02:30 CET",
        "03-28 02:30 CET",
        "03-30 02:30 CEST",
    ]


def test_a_slot_in_the_hour_repeated_in_autumn_fires_once() -> None:
    # Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:00 to 03:00 happens twice.
    start = _us(datetime(2026, 10, 25, 0, 15, tzinfo=timezone.utc))  # 02:15 CEST
    rule = ScheduleRule("*/30 * * * *", None, "Europe/Berlin", start)
    assert _local(slots_after(rule, start, 4), BERLIN) == [
        "10-25 02:30 CEST",
        "10-25 03:00 CET",
        "10-25 03:30 CET",
        "10-25 04:00 CET",
    ]
    daily = ScheduleRule(
        "30 2 * * *", None, "Europe/Berlin", _us(datetime(2026, 10, 24, tzinfo=timezone.utc))
    )
    assert _local(slots_after(daily, daily.start_us, 3), BERLIN) == [
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",
        "10-26 02:30 CET",
    ]


def test_a_daily_slot_keeps_its_wall_clock_time_across_dst_in_new_york() -> None:
    rule = ScheduleRule(
        "0 9 * * *", None, "America/New_York", _us(datetime(2026, 3, 7, tzinfo=timezone.utc))
    )
    slots = slots_after(rule, rule.start_us, 3)
    assert _local(slots, NEW_YORK) == ["03-07 09:00 EST", "03-08 09:00 EDT", "03-09 09:00 EDT"]
    assert slots[1] - slots[0] == 23 * 3600 * 1_000_000  # the short day


def test_six_fields_have_seconds_last_and_aliases_work() -> None:
    start = _us(datetime(2026, 1, 1, tzinfo=timezone.utc))
    every_ten = ScheduleRule("* * * * * */10", None, "UTC", start)
    assert [s - start for s in slots_after(every_ten, start, 3)] == [
        10_000_000,
        20_000_000,
        30_000_000,
    ]
    hourly = ScheduleRule("@hourly", None, "UTC", start)
    assert slots_after(hourly, start, 1) == [start + 3600 * 1_000_000]


def test_an_interval_counts_from_its_start_and_stops_at_its_end() -> None:
    rule = ScheduleRule(None, 5_000_000, "UTC", 10_000_000, end_us=22_000_000)
    assert slots_after(rule, 0, 5) == [10_000_000, 15_000_000, 20_000_000]
    assert slots_after(rule, 15_000_000, 5) == [20_000_000]
    assert slots_after(rule, 20_000_000, 5) == []


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* * *", "has 3 fields"),
        ("0 0 30 2 *", "names no time that ever comes"),
        ("", "has 0 fields"),
    ],
)
def test_a_cron_expression_that_cannot_fire_says_why(expression: str, says: str) -> None:
    problem = check_cron(expression)
    assert problem is not None
    assert says in problem


def test_good_cron_expressions_and_timezones_pass() -> None:
    for expression in ("*/5 * * * *", "0 3 * * 1-5", "@daily", "0 0 1 1 *", "* * * * * *"):
        assert check_cron(expression) is None, expression
    assert check_timezone("Europe/Berlin") is None
    problem = check_timezone("Mars/Olympus")
    assert problem is not None
    assert "IANA" in problem
