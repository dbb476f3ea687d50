"""Batches of executions of a Function definition, and the concurrency they run at.

Every item of a batch is a child task made at once (see :mod:`.functions`); all but the first
``max_concurrency`` are held back (``waiting_on`` 1), and each item that ends lets the next
one go, in the same transaction as its end (:func:`.holds.release`). So no more than
``max_concurrency`` items are ever runnable or running, whichever workers claim them, and the
batch's progress is in the database: a restart of the server loses nothing of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.models import TERMINAL_STATUSES, TaskStatus
from taskqueue.store import functions, idempotency
from taskqueue.store.codec import from_us
from taskqueue.store.errors import NotFound
from taskqueue.store.ids import new_id
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import FINISHED_SQL
from taskqueue.store.sql import Tx, insert_rows

__all__ = ["create", "first_unfinished", "read"]

_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
_C = TaskStatus.COMPLETED.value
_P = TaskStatus.PENDING.value


def create(
    tx: Tx,
    fx: Effects,
    definition: functions.Definition,
    items: Sequence[tuple[str, Any, bool]],
    max_concurrency: int,
    stop_on_first_error: bool,
    now: int,
    idem: idempotency.IdempotencyRequest | None = None,
) -> str:
    """Start a batch of ``items`` (the caller's id, the input, whether to check the output).

    Returns the batch's id; a repeat of a keyed request returns the first one's.
    """
    replay = idempotency.replay(tx, idem)
    if replay is not None:
        return str(replay[0]["batch_id"])
    batch_id = new_id()
    runs = [
        functions.Run(value, validate, batch_id=batch_id, held=index >= max_concurrency)
        for index, (_, value, validate) in enumerate(items)
    ]
    ids = functions.start(tx, fx, definition.task_id, definition.version, runs, now)
    insert_rows(
        tx,
        "batches",
        [
            {
                "id": batch_id,
                "task_id": definition.task_id,
                "version": definition.version,
                "project_id": definition.project_id,
                "max_concurrency": max_concurrency,
                "stop_on_first_error": int(stop_on_first_error),
                "total": len(items),
                "stopped_by": None,
                "created_at": now,
            }
        ],
    )
    insert_rows(
        tx,
        "batch_items",
        [
            {"batch_id": batch_id, "idx": index, "item_id": item_id, "execution_id": task_id}
            for index, ((item_id, _, _), task_id) in enumerate(zip(items, ids, strict=True))
        ],
    )
    idempotency.remember(tx, idem, [{"batch_id": batch_id}], now)
    return batch_id


def _item(row: Any, stopped_by: int | None) -> dict[str, Any]:
    result = functions.execution_result(row)
    status = result["status"]
    skipped = (
        stopped_by is not None
        and status == TaskStatus.CANCELLED.value
        and row["started_at"] is None
        and row["idx"] != stopped_by
    )
    return {
        "id": row["item_id"],
        "index": row["idx"],
        "execution_id": row["id"],
        "status": status,
        "success": status == _C,
        "skipped": skipped,
        "output": result["output"],
        "error": result["error"],
        "failure_reason": result["failure_reason"],
        "duration_ms": result["duration_ms"],
        "attempts": result["attempts"],
    }


def read(tx: Tx, batch_id: str, projects: frozenset[str] | None) -> dict[str, Any]:
    """A batch as a ``BatchExecuteResponse``: its counts and every item, in input order."""
    batch = tx.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
    if batch is None or (projects is not None and batch["project_id"] not in projects):
        raise NotFound("batch", batch_id)
    rows = tx.execute(
        "SELECT t.*, b.idx, b.item_id FROM batch_items b JOIN tasks t ON t.id = b.execution_id"
        " WHERE b.batch_id = ? ORDER BY b.idx",
        (batch_id,),
    ).fetchall()
    results = [_item(row, batch["stopped_by"]) for row in rows]
    done = all(r["status"] in _TERMINAL for r in results)
    skipped = sum(1 for r in results if r["skipped"])
    succeeded = sum(1 for r in results if r["success"])
    return {
        "batch_id": batch["id"],
        "task_id": batch["task_id"],
        "version": batch["version"],
        "status": "Completed" if done else "Running",
        "total_items": batch["total"],
        "success_count": succeeded,
        "failure_count": sum(1 for r in results if r["status"] in _TERMINAL) - succeeded - skipped,
        "skipped_count": skipped,
        "max_concurrency": batch["max_concurrency"],
        "stop_on_first_error": bool(batch["stop_on_first_error"]),
        "created_at": from_us(batch["created_at"]),
        "results": results,
    }


def first_unfinished(tx: Tx, batch_id: str, projects: frozenset[str] | None) -> str | None:
    """The execution id of the batch's first item that has not ended; None when all have."""
    batch = tx.execute("SELECT project_id FROM batches WHERE id = ?", (batch_id,)).fetchone()
    if batch is None or (projects is not None and batch["project_id"] not in projects):
        raise NotFound("batch", batch_id)
    row = tx.execute(
        "SELECT b.execution_id FROM batch_items b JOIN tasks t ON t.id = b.execution_id"
        f" WHERE b.batch_id = ? AND t.status NOT IN {FINISHED_SQL} ORDER BY b.idx LIMIT 1",
        (batch_id,),
    ).fetchone()
    return None if row is None else str(row["execution_id"])
