"""Housekeeping: forget what is old, in small batches, so the tables stay small.

Each call deletes at most ``limit`` rows of one kind in one short transaction, so claims and
finishes queued behind it wait for milliseconds, not for a sweep of the whole table; the caller
repeats until a batch comes back short. A finished task is pruned (with its attempts, output and
edges, by cascade) only once no unfinished task depends on it, so a dependency is never left
pointing at nothing while it still matters.
"""

from __future__ import annotations

from taskqueue.store.database import Effects
from taskqueue.store.sql import Tx, chunks, locking, marks

__all__ = ["prune_events", "prune_idempotency_keys", "prune_tasks", "prune_workers"]

_FINISHED = "('Completed', 'Failed', 'Cancelled')"


def prune_tasks(conn: Tx, fx: Effects, before: int, limit: int) -> int:
    """Delete up to ``limit`` tasks that finished before ``before``; the number deleted."""
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT t.id FROM tasks t WHERE t.status IN {_FINISHED} AND t.finished_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks c ON c.id = d.task_id"
            f"  WHERE d.depends_on = t.id AND c.status NOT IN {_FINISHED})"
            f" ORDER BY t.finished_at LIMIT ?{locking(conn, 'FOR UPDATE OF t SKIP LOCKED')}",
            (before, limit),
        )
    ]
    for part in chunks(ids):
        conn.execute(f"DELETE FROM task_deps WHERE depends_on IN ({marks(part)})", list(part))
        conn.execute(f"DELETE FROM tasks WHERE id IN ({marks(part)})", list(part))
    fx.changed.update(ids)
    return len(ids)


def prune_events(conn: Tx, fx: Effects, before: int, limit: int) -> int:
    """Delete up to ``limit`` events older than ``before``; the number deleted."""
    del fx
    return conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? ORDER BY time"
        " LIMIT ?)",
        (before, limit),
    ).rowcount


def prune_idempotency_keys(conn: Tx, fx: Effects, before: int, limit: int) -> int:
    """Delete up to ``limit`` idempotency keys first used before ``before``."""
    del fx
    return conn.execute(
        "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys"
        " WHERE created_at < ? ORDER BY created_at LIMIT ?)",
        (before, limit),
    ).rowcount


def prune_workers(conn: Tx, fx: Effects, before: int, limit: int) -> int:
    """Forget up to ``limit`` workers not seen since ``before`` (killed without a goodbye)."""
    del fx
    return conn.execute(
        "DELETE FROM workers WHERE id IN (SELECT id FROM workers WHERE last_seen < ? LIMIT ?)",
        (before, limit),
    ).rowcount
