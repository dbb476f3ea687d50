"""Housekeeping: forget what is old, in small batches, so the tables stay small.

Each call deletes at most ``limit`` rows of one kind in one short transaction, so claims and
finishes queued behind it wait for milliseconds, not for a sweep of the whole table; the caller
repeats until a batch comes back short. A finished task is pruned (with its attempts, output and
edges, by cascade) only once no unfinished task depends on it, so a dependency is never left
pointing at nothing while it still matters.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import FINISHED_SQL
from taskqueue.store.sql import Tx, chunks, marks

__all__ = ["prune", "prune_events", "prune_idempotency_keys", "prune_tasks", "prune_workers"]

#: Rows deleted in one transaction.
PRUNE_BATCH = 1000
#: How long an idempotency key is remembered.
IDEMPOTENCY_RETENTION_S = 24 * 3600
#: A worker silent this long is forgotten.
WORKER_RETENTION_S = 3600

Prune = Callable[[Tx, Effects, int, int], int]


def prune_tasks(conn: Tx, fx: Effects, before: int, limit: int) -> int:
    """Delete up to ``limit`` tasks that finished before ``before``; the number deleted."""
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT t.id FROM tasks t WHERE t.status IN {FINISHED_SQL} AND t.finished_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks c ON c.id = d.task_id"
            f"  WHERE d.depends_on = t.id AND c.status NOT IN {FINISHED_SQL})"
            f" ORDER BY t.finished_at LIMIT ?{conn.dialect.lock('FOR UPDATE OF t SKIP LOCKED')}",
            (before, limit),
        )
    ]
    for part in chunks(ids):
        conn.execute(f"DELETE FROM task_deps WHERE depends_on IN ({marks(part)})", list(part))
        conn.execute(f"DELETE FROM tasks WHERE id IN ({marks(part)})", list(part))
    fx.changed.update(ids)
    return len(ids)


def _oldest(table: str, key: str, time_column: str, keep: str = "") -> Prune:
    """A prune of up to ``limit`` rows of ``table`` whose ``time_column`` is before ``before``.

    ``keep``: a further condition rows to delete must meet.
    """
    statement = (
        f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table}"
        f" WHERE {time_column} < ?{keep} ORDER BY {time_column} LIMIT ?)"
    )

    def prune_rows(tx: Tx, fx: Effects, before: int, limit: int) -> int:
        return tx.execute(statement, (before, limit)).rowcount

    prune_rows.__doc__ = f"Delete up to ``limit`` rows of {table} older than ``before``."
    return prune_rows


#: Events older than the retention, but never the newest: SQLite would hand its id out again
#: once no row holds it, and readers resume after ids they saw.
prune_events: Prune = _oldest("events", "id", "time", " AND id < (SELECT MAX(id) FROM events)")
#: Idempotency keys first used before the cut-off.
prune_idempotency_keys: Prune = _oldest("idempotency_keys", "key", "created_at")
#: Workers not seen since the cut-off (killed without a goodbye).
prune_workers: Prune = _oldest("workers", "id", "last_seen")
#: Webhook delivery logs older than the retention.
prune_deliveries: Prune = _oldest("webhook_deliveries", "id", "created_at")


#: Batches of executions older than the cut-off whose items have all been pruned.
prune_batches: Prune = _oldest(
    "batches",
    "id",
    "created_at",
    " AND NOT EXISTS (SELECT 1 FROM batch_items i JOIN tasks t ON t.id = i.execution_id"
    " WHERE i.batch_id = batches.id)",
)


def _batch(prune: Prune, before: int, tx: Tx, fx: Effects) -> int:
    return prune(tx, fx, before, PRUNE_BATCH)


async def prune(
    write: Callable[[Callable[[Tx, Effects], int]], Awaitable[int]],
    now: int,
    retention_s: float | None,
) -> dict[str, int]:
    """Delete what is older than its retention, batch by batch; the rows deleted per kind.

    Finished tasks (with their attempts, output and edges), batches whose items are all gone,
    events and webhook delivery logs go after ``retention_s`` (never, when None); idempotency
    keys after a day; workers silent for an hour. Each batch is its own short transaction,
    queued with ``write`` like any other.
    """
    jobs: list[tuple[str, Prune, int]] = [
        ("idempotency_keys", prune_idempotency_keys, now - IDEMPOTENCY_RETENTION_S * 1_000_000),
        ("workers", prune_workers, now - WORKER_RETENTION_S * 1_000_000),
    ]
    if retention_s is not None:
        before = now - int(retention_s * 1_000_000)
        jobs += [
            ("tasks", prune_tasks, before),
            ("batches", prune_batches, before),
            ("events", prune_events, before),
            ("webhook_deliveries", prune_deliveries, before),
        ]
    deleted: dict[str, int] = {}
    for kind, job, before in jobs:
        total = 0
        while True:
            count = await write(functools.partial(_batch, job, before))
            total += count
            if count < PRUNE_BATCH:
                break
            await asyncio.sleep(0)  # let other writes in between batches
        deleted[kind] = total
    return deleted
