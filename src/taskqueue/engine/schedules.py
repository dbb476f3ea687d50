"""When a schedule fires: its slots, in a real timezone, with no I/O.

A cron schedule's slots are the wall-clock times its expression names in its timezone: a time
that does not exist there (the hour skipped when clocks go forward) is no slot, and a time
that happens twice (the hour repeated when they go back) is one slot, the first. An interval
schedule's slots are ``start + k * interval`` in UTC. Times are integer microseconds since the
epoch, as the store keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

__all__ = [
    "ScheduleRule",
    "check_cron",
    "check_timezone",
    "slots_after",
]

_UTC = timezone.utc
#: Cron expressions step through at most this many candidate times looking for one slot
#: (a February 30th never comes).
_MAX_CANDIDATES = 10_000


def check_cron(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression this scheduler runs, or None if it is.

    Five fields (minute hour day month weekday), six (and seconds last), or an alias such as
    ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``.
    """
    fields = expression.split()
    if not expression.startswith("@") and len(fields) not in (5, 6):
        return (
            f"has {len(fields)} fields; give 5 (minute hour day month weekday) or 6 (seconds last)"
        )
    if not croniter.is_valid(expression):
        return "is not a valid cron expression"
    try:
        next(_cron_slots(expression, ZoneInfo("UTC"), 0))
    except StopIteration:
        return "names no time that ever comes"
    return None


def check_timezone(name: str) -> str | None:
    """Why ``name`` is not an IANA timezone, or None if it is."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not an IANA timezone (such as UTC or Europe/Berlin)"
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _cron_slots(expression: str, zone: ZoneInfo, after_us: int) -> Iterator[int]:
    """The slots of ``expression`` in ``zone`` strictly after ``after_us``, in order."""
    start = (_EPOCH + timedelta(microseconds=after_us)).astimezone(zone)
    # Wall-clock candidates after the wall-clock time of ``after_us`` (in a repeated hour,
    # those of its first pass are before it, and skipped).
    walker = croniter(expression, start.replace(tzinfo=None))
    misses = 0
    while misses < _MAX_CANDIDATES:
        try:
            candidate: datetime = walker.get_next(datetime)
        except (CroniterError, ValueError, OverflowError):
            return  # no further time it names (a year past what datetime holds...)
        local = candidate.replace(tzinfo=zone, fold=0)
        real = local.astimezone(_UTC)
        if real.astimezone(zone).replace(tzinfo=None) != candidate:
            misses += 1  # a wall-clock time that does not exist there: no slot
            continue
        slot = _to_us(real)
        if slot > after_us:
            misses = 0
            yield slot
        else:
            misses += 1
    return


@dataclass(frozen=True)
class ScheduleRule:
    """What a schedule fires on: a cron expression in a timezone, or a fixed interval."""

    cron: str | None
    interval_us: int | None
    timezone: str
    #: No slot before this (for an interval: the first slot), none after ``end_us``.
    start_us: int
    end_us: int | None = None

    def slots(self, after_us: int) -> Iterator[int]:
        """Every slot strictly after ``after_us`` (and not before the start), in order."""
        floor = max(after_us, self.start_us - 1)
        if self.interval_us is not None:
            step = self.interval_us
            index = max(0, (floor - self.start_us) // step + 1)
            slot = self.start_us + index * step
            while self.end_us is None or slot <= self.end_us:
                yield slot
                slot += step
            return
        assert self.cron is not None
        for slot in _cron_slots(self.cron, ZoneInfo(self.timezone), floor):
            if self.end_us is not None and slot > self.end_us:
                return
            yield slot


def slots_after(rule: ScheduleRule, after_us: int, count: int) -> list[int]:
    """The next ``count`` slots of ``rule`` strictly after ``after_us``."""
    found: list[int] = []
    for slot in rule.slots(after_us):
        found.append(slot)
        if len(found) >= count:
            break
    return found
