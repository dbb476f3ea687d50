"""Leases: what workers read and renew to keep (or learn they lost) the tasks they run.

A lease is the ``lease_token`` a claim gave a task and the ``lease_expires_at`` its worker's
heartbeats push forward; the status changes that take or end a lease are in
:mod:`.transitions`.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskqueue.models import TaskStatus
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx, chunks, marks

__all__ = ["has_expired_leases", "heartbeat", "lost_leases", "orphaned_attempts"]

_R = TaskStatus.RUNNING.value
_HOLDS = f"id = ? AND lease_token = ? AND status = '{_R}'"


def heartbeat(
    tx: Tx, fx: Effects, leases: Sequence[tuple[str, str]], lease_us: int, now: int
) -> list[tuple[str, str]]:
    """Extend the leases held; return those that are no longer ours."""
    del fx
    lost: list[tuple[str, str]] = []
    # In id order, so two writers never lock the same rows in opposite orders.
    for task_id, token in sorted(leases):
        cursor = tx.execute(
            f"UPDATE tasks SET lease_expires_at = ? WHERE {_HOLDS}",
            (now + lease_us, task_id, token),
        )
        if cursor.rowcount == 0:
            lost.append((task_id, token))
    return lost


def is_held(tx: Tx, task_id: str, token: str) -> bool:
    """Whether the attempt under ``token`` still holds the task (locked against a revocation)."""
    held = tx.execute(
        f"SELECT 1 FROM tasks WHERE {_HOLDS}{tx.dialect.lock('FOR SHARE')}", (task_id, token)
    ).fetchone()
    return held is not None


def lost_leases(tx: Tx, leases: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Read-only: which of these leases are no longer held (cancelled, reaped, re-claimed)."""
    if not leases:
        return []
    ids = [task_id for task_id, _ in leases]
    current = {
        r["id"]: (r["lease_token"], r["status"])
        for r in tx.execute(
            f"SELECT id, lease_token, status FROM tasks WHERE id IN ({marks(ids)})", ids
        )
    }
    return [(task_id, token) for task_id, token in leases if current.get(task_id) != (token, _R)]


def has_expired_leases(tx: Tx, now: int) -> bool:
    """Whether some running task's lease has expired (a read over the running-lease index)."""
    return (
        tx.execute(
            f"SELECT 1 FROM tasks WHERE status = '{_R}' AND lease_expires_at < ? LIMIT 1", (now,)
        ).fetchone()
        is not None
    )


def orphaned_attempts(
    tx: Tx, attempts: list[tuple[str, int, str]], now: int
) -> set[tuple[str, int, str]]:
    """Which (task id, attempt, worker id) this database recorded and no live lease holds.

    An attempt is recorded when its claim names the worker that runs it; a lease holds it
    while the task runs that attempt and the lease has not expired. Anything not recorded
    (another database's task, a made-up id) is never returned.
    """
    found: set[tuple[str, int, str]] = set()
    ids = sorted({task_id for task_id, _, _ in attempts})
    for part in chunks(ids):
        rows = tx.execute(
            "SELECT a.task_id, a.number, a.worker_id FROM attempts a"
            " JOIN tasks t ON t.id = a.task_id"
            f" WHERE a.task_id IN ({marks(part)}) AND a.worker_id IS NOT NULL"
            f" AND NOT (t.status = '{_R}' AND t.attempt = a.number"
            " AND t.lease_expires_at >= ?)",
            [*part, now],
        )
        found.update((r["task_id"], r["number"], r["worker_id"]) for r in rows)
    return found & set(attempts)
