"""Scheduled tasks: their schedules, firing their due slots exactly once, and their runs.

A Scheduled task is a template row of ``tasks`` (never runnable) and a ``schedules`` row. A
slot fires in one transaction: its ``schedule_runs`` row (primary key (task, slot)), the
child task made of the template, and the schedule's next slot. The schedule's row is locked
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the one writer on SQLite) while its slots fire, and
the run's key refuses a second row for a slot: however many servers fire due schedules at
once, each slot makes at most one child.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskqueue.engine.schedules import ScheduleRule, slots_after
from taskqueue.models import TERMINAL_STATUSES, TaskCreate, TaskType
from taskqueue.store import transitions
from taskqueue.store.children import child_row
from taskqueue.store.codec import from_us, to_us
from taskqueue.store.errors import Conflict, NotFound
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import FINISHED_SQL
from taskqueue.store.sql import Tx, chunks, insert_rows, marks

__all__ = [
    "MISFIRE_GRACE_US",
    "attach",
    "create_schedules",
    "fire_due",
    "list_runs",
    "next_due",
    "next_runs",
    "set_paused",
    "trigger",
]

_S = TaskType.SCHEDULED.value
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
#: A due slot this close to now is on time; one older was missed (no server ran then) and
#: follows the schedule's ``catchup`` policy.
MISFIRE_GRACE_US = 30 * 1_000_000
#: Schedules fired per transaction.
FIRE_BATCH = 500
#: Slots looked at past a schedule's next one when catching up (a larger gap: the latest).
_MAX_MISSED = 10_000


def _rule(row: Any) -> ScheduleRule:
    return ScheduleRule(
        cron=row["cron"],
        interval_us=row["interval_us"],
        timezone=row["timezone"],
        start_us=row["start_at"],
        end_us=row["end_at"],
    )


def _first_slot(rule: ScheduleRule, after: int) -> int | None:
    found = slots_after(rule, after, 1)
    return found[0] if found else None


def create_schedules(
    tx: Tx, rows: Sequence[dict[str, Any]], items: Sequence[TaskCreate], now: int
) -> None:
    """Store the schedules of new Scheduled tasks (their rows and requests, in order)."""
    stored = []
    for row, item in zip(rows, items, strict=True):
        spec = item.schedule
        assert spec is not None
        start = to_us(spec.start_at) if spec.start_at is not None else now
        schedule = {
            "task_id": row["id"],
            "cron": spec.cron,
            "interval_us": spec.interval_seconds * 1_000_000 if spec.interval_seconds else None,
            "timezone": spec.timezone,
            "start_at": start,
            "end_at": to_us(spec.end_at) if spec.end_at is not None else None,
            "overlap_policy": spec.overlap_policy,
            "catchup": spec.catchup,
            "catchup_limit": spec.catchup_limit,
            "paused": int(spec.paused),
            "last_slot": None,
            "last_child": None,
            "buffered_slot": None,
        }
        schedule["next_slot"] = _first_slot(_rule(schedule), max(start, now) - 1)
        stored.append(schedule)
    insert_rows(tx, "schedules", stored)


def _info(row: Any) -> dict[str, Any]:
    interval = row["interval_us"]
    return {
        "cron": row["cron"],
        "interval_seconds": interval // 1_000_000 if interval is not None else None,
        "timezone": row["timezone"],
        "start_at": from_us(row["start_at"]),
        "end_at": from_us(row["end_at"]),
        "overlap_policy": row["overlap_policy"],
        "catchup": row["catchup"],
        "catchup_limit": row["catchup_limit"],
        "paused": bool(row["paused"]),
        "next_run_at": from_us(row["next_slot"]),
        "last_run_at": from_us(row["last_slot"]),
        "last_task_id": row["last_child"],
    }


def attach(tx: Tx, wires: Iterable[dict[str, Any]]) -> None:
    """Give each Scheduled task's wire dict its ``schedule``; others get None."""
    tasks = list(wires)
    for wire in tasks:
        wire["schedule"] = None
    scheduled = {wire["id"]: wire for wire in tasks if wire["task_type"] == _S}
    if not scheduled:
        return
    ids = list(scheduled)
    for row in tx.execute(f"SELECT * FROM schedules WHERE task_id IN ({marks(ids)})", ids):
        scheduled[row["task_id"]]["schedule"] = _info(row)


# ------------------------------------------------------------------------------------ firing


@dataclass
class _Firing:
    """What a pass of firing makes, written together at its end (a statement per kind)."""

    now: int
    children: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    saves: dict[str, dict[str, Any]] = field(default_factory=dict)

    def unfinished(self, tx: Tx, child_id: str | None) -> bool:
        """Whether the run ``child_id`` has not ended (one made in this pass has not)."""
        if child_id is None:
            return False
        if any(child["id"] == child_id for child in self.children):
            return True
        row = tx.execute("SELECT status FROM tasks WHERE id = ?", (child_id,)).fetchone()
        return row is not None and row["status"] not in _TERMINAL

    def child(self, template: Any) -> str:
        """Make a child of ``template`` (inserted by :meth:`flush`); its id."""
        row = child_row(template, self.now)
        self.children.append(row)
        return str(row["id"])

    def run(self, task_id: str, slot: int, kind: str, **fields: Any) -> dict[str, Any]:
        """Record a slot's run (inserted by :meth:`flush`)."""
        run = {"task_id": task_id, "slot": slot, "kind": kind, "child_id": None,
               "skipped": None, "created_at": self.now, **fields}  # fmt: skip
        self.runs[(task_id, slot)] = run
        return run

    def give_way(self, tx: Tx, task_id: str, slot: int) -> None:
        """A buffered slot gives way to a later one: it is skipped for the overlap."""
        run = self.runs.get((task_id, slot))
        if run is not None:
            run["skipped"] = "overlap"
            return
        tx.execute(
            "UPDATE schedule_runs SET skipped = 'overlap' WHERE task_id = ? AND slot = ?",
            (task_id, slot),
        )

    def flush(self, tx: Tx, fx: Effects) -> None:
        """Write what the pass made: the children, the runs, the schedules' new state."""
        if self.children:
            transitions.create(tx, fx, self.children, self.now)
        insert_rows(tx, "schedule_runs", list(self.runs.values()))
        if self.saves:
            tx.executemany(
                "UPDATE schedules SET next_slot = ?, last_slot = ?, last_child = ?,"
                " buffered_slot = ? WHERE task_id = ?",
                [
                    (s["next_slot"], s["last_slot"], s["last_child"], s["buffered_slot"], key)
                    for key, s in self.saves.items()
                ],
            )
        self.children, self.runs, self.saves = [], {}, {}


def _fire(
    tx: Tx,
    fx: Effects,
    schedule: dict[str, Any],
    template: Any,
    slot: int,
    kind: str,
    firing: _Firing,
) -> dict[str, Any]:
    """Fire one slot by the schedule's overlap policy; its run (written by ``firing``)."""
    task_id = schedule["task_id"]
    policy = schedule["overlap_policy"]
    busy = firing.unfinished(tx, schedule["last_child"])
    if busy and policy == "skip":
        run = firing.run(task_id, slot, kind, skipped="overlap")
    elif busy and policy == "buffer_one":
        if schedule["buffered_slot"] is not None:  # only one waits: the earlier gives way
            firing.give_way(tx, task_id, schedule["buffered_slot"])
        schedule["buffered_slot"] = slot
        run = firing.run(task_id, slot, kind, skipped="buffered")
    else:
        if busy and policy == "cancel_previous":
            firing.flush(tx, fx)  # the previous run may be one this pass made
            transitions.cancel(
                tx, fx, schedule["last_child"], firing.now,
                "cancelled: the next run of its schedule began",
            )  # fmt: skip
        child = firing.child(template)
        schedule["last_child"] = child
        run = firing.run(task_id, slot, kind, child_id=child)
    schedule["last_slot"] = slot
    firing.saves[task_id] = schedule
    return run


def _due_slots(schedule: dict[str, Any], now: int) -> list[tuple[int, str]]:
    """The slots to fire now, each ``scheduled`` (on time) or ``catchup`` (missed)."""
    rule = _rule(schedule)
    due: list[int] = [schedule["next_slot"]]
    for slot in rule.slots(schedule["next_slot"]):
        if slot > now or len(due) > _MAX_MISSED:
            break
        due.append(slot)
    on_time = [(s, "scheduled") for s in due if now - s <= MISFIRE_GRACE_US]
    missed = [s for s in due if now - s > MISFIRE_GRACE_US]
    policy = schedule["catchup"]
    if not missed or policy == "none":
        return on_time
    if policy == "latest":
        return on_time or [(missed[-1], "catchup")]
    return [(s, "catchup") for s in missed[-schedule["catchup_limit"] :]] + on_time


def _templates(tx: Tx, ids: list[str]) -> dict[str, Any]:
    """The template rows of these Scheduled tasks, locked until the transaction ends."""
    found: dict[str, Any] = {}
    for part in chunks(ids):
        rows = tx.execute(
            f"SELECT * FROM tasks WHERE id IN ({marks(part)}){tx.dialect.lock()}", list(part)
        )
        found.update({row["id"]: row for row in rows})
    return found


def fire_due(
    tx: Tx, fx: Effects, now: int, made: int | None = None, limit: int = FIRE_BATCH
) -> tuple[int, int]:
    """Fire every slot due by ``now`` of up to ``limit`` schedules.

    Returns the schedules looked at and the runs recorded. ``made`` is the time the rows are
    made at (default ``now``).
    """
    firing = _Firing(now if made is None else made)
    lock = tx.dialect.lock("FOR UPDATE SKIP LOCKED")
    rows = tx.execute(
        "SELECT * FROM schedules WHERE paused = 0 AND next_slot IS NOT NULL AND next_slot <= ?"
        f" ORDER BY next_slot LIMIT ?{lock}",
        (now, limit),
    ).fetchall()
    templates = _templates(tx, [row["task_id"] for row in rows])
    fired = 0
    for row in rows:
        schedule = dict(row)
        template = templates[schedule["task_id"]]
        for slot, kind in _due_slots(schedule, now):
            _fire(tx, fx, schedule, template, slot, kind, firing)
            fired += 1
        schedule["next_slot"] = _first_slot(_rule(schedule), now)
        firing.saves[schedule["task_id"]] = schedule
    fired += _release_buffered(tx, fx, firing)
    firing.flush(tx, fx)
    return len(rows), fired


def _release_buffered(tx: Tx, fx: Effects, firing: _Firing) -> int:
    """Fire the slots kept waiting (``buffer_one``) whose previous run has ended."""
    lock = tx.dialect.lock("FOR UPDATE OF s SKIP LOCKED")
    rows = tx.execute(
        "SELECT s.* FROM schedules s JOIN tasks t ON t.id = s.last_child"
        f" WHERE s.buffered_slot IS NOT NULL AND t.status IN {FINISHED_SQL}{lock}"
    ).fetchall()
    templates = _templates(tx, [row["task_id"] for row in rows])
    for row in rows:
        schedule = dict(row)
        child = firing.child(templates[schedule["task_id"]])
        tx.execute(
            "UPDATE schedule_runs SET child_id = ?, skipped = NULL WHERE task_id = ? AND slot = ?",
            (child, schedule["task_id"], schedule["buffered_slot"]),
        )
        schedule["last_child"], schedule["buffered_slot"] = child, None
        firing.saves[schedule["task_id"]] = schedule
    return len(rows)


def next_due(tx: Tx) -> tuple[int | None, bool]:
    """When the earliest slot is due (None: none is), and whether a slot waits (``buffer_one``).

    A read, to know whether firing has work.
    """
    row = tx.execute(
        "SELECT min(next_slot) FROM schedules WHERE paused = 0 AND next_slot IS NOT NULL"
    ).fetchone()
    buffered = tx.execute(
        "SELECT 1 FROM schedules WHERE buffered_slot IS NOT NULL LIMIT 1"
    ).fetchone()
    due = None if row is None or row[0] is None else int(row[0])
    return due, buffered is not None


# ------------------------------------------------------------------------------ by request


def _schedule_of(
    tx: Tx, task_id: str, projects: frozenset[str] | None, lock: bool = False
) -> tuple[Any, dict[str, Any]]:
    row = tx.execute(
        f"SELECT * FROM tasks WHERE id = ?{tx.dialect.lock() if lock else ''}", (task_id,)
    ).fetchone()
    if row is None or (projects is not None and row["project_id"] not in projects):
        raise NotFound("task", task_id)
    if row["task_type"] != _S:
        raise Conflict(
            f"task {task_id} is a {row['task_type']} task, not a Scheduled task; only "
            "Scheduled tasks have runs, a next run, pause, resume and trigger"
        )
    found = tx.execute(
        f"SELECT * FROM schedules WHERE task_id = ?{tx.dialect.lock() if lock else ''}",
        (task_id,),
    ).fetchone()
    assert found is not None, "every Scheduled task has its schedule"
    return row, dict(found)


def _run_to_dict(row: Any) -> dict[str, Any]:
    return {
        "slot": from_us(row["slot"]),
        "kind": row["kind"],
        "task_id": row["child_id"],
        "status": row["status"],
        "skipped": row["skipped"],
        "created_at": from_us(row["created_at"]),
    }


_RUNS = (
    "SELECT r.*, t.status FROM schedule_runs r LEFT JOIN tasks t ON t.id = r.child_id"
    " WHERE r.task_id = ?"
)


def list_runs(
    tx: Tx, task_id: str, limit: int, offset: int, projects: frozenset[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """A page of a schedule's runs, newest slot first, and how many there are."""
    _schedule_of(tx, task_id, projects)
    rows = tx.execute(
        f"{_RUNS} ORDER BY r.slot DESC LIMIT ? OFFSET ?", (task_id, limit, offset)
    ).fetchall()
    total = tx.execute(
        "SELECT count(*) FROM schedule_runs WHERE task_id = ?", (task_id,)
    ).fetchone()[0]
    return [_run_to_dict(r) for r in rows], int(total)


def next_runs(
    tx: Tx, task_id: str, count: int, now: int, projects: frozenset[str] | None
) -> dict[str, Any]:
    """The next ``count`` slots the schedule will fire (from its next one)."""
    _, schedule = _schedule_of(tx, task_id, projects)
    first = schedule["next_slot"]
    slots = [] if first is None else [first, *slots_after(_rule(schedule), first, count - 1)]
    return {
        "task_id": task_id,
        "slots": [from_us(slot) for slot in slots[:count]],
        "paused": bool(schedule["paused"]),
    }


def set_paused(
    tx: Tx, fx: Effects, task_id: str, paused: bool, now: int, projects: frozenset[str] | None
) -> None:
    """Pause a schedule, or resume it from its next slot after now (missed ones skipped)."""
    _, schedule = _schedule_of(tx, task_id, projects, lock=True)
    if bool(schedule["paused"]) == paused:
        return
    next_slot = schedule["next_slot"] if paused else _first_slot(_rule(schedule), now)
    tx.execute(
        "UPDATE schedules SET paused = ?, next_slot = ? WHERE task_id = ?",
        (int(paused), next_slot, task_id),
    )
    tx.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
    fx.changed.add(task_id)


def trigger(
    tx: Tx, fx: Effects, task_id: str, now: int, projects: frozenset[str] | None
) -> dict[str, Any]:
    """Run the schedule's template now, as a manual slot (overlap policy applies)."""
    template, schedule = _schedule_of(tx, task_id, projects, lock=True)
    slot = now
    while tx.execute(
        "SELECT 1 FROM schedule_runs WHERE task_id = ? AND slot = ?", (task_id, slot)
    ).fetchone():
        slot += 1  # a slot of its own, never one the schedule fires
    last = schedule["last_slot"]
    firing = _Firing(now)
    run = _fire(tx, fx, schedule, template, slot, "manual", firing)
    schedule["last_slot"] = max(last, slot) if last is not None else slot
    firing.flush(tx, fx)
    status = None
    if run["child_id"] is not None:
        status = tx.execute("SELECT status FROM tasks WHERE id = ?", (run["child_id"],)).fetchone()[
            "status"
        ]
    return _run_to_dict({**run, "status": status})
