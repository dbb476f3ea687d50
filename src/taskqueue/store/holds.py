"""The hold a batch keeps on its items: letting the next one go, and stopping on an error.

Called by the transitions that end a batch's items (:func:`.transitions.settle_batches`), in
their transaction; no status is set here (stopping a batch cancels its items there).
"""

from __future__ import annotations

from collections.abc import Sequence

from taskqueue.models import TaskStatus
from taskqueue.store.pipeline import Effects
from taskqueue.store.schema import HELD_SQL
from taskqueue.store.sql import Tx

__all__ = ["release", "stop"]

_P = TaskStatus.PENDING.value


def release(tx: Tx, fx: Effects, batch_id: str, count: int, now: int) -> None:
    """Let the next ``count`` held items of a batch go (``count`` of its items ended)."""
    if count <= 0:
        return
    pick = (
        f"SELECT seq FROM tasks WHERE batch_id = ? AND {HELD_SQL} AND status = '{_P}'"
        " ORDER BY seq LIMIT ?"
    )
    released = tx.execute(
        f"UPDATE tasks SET waiting_on = 0, run_at = ?, updated_at = ?"
        f" WHERE {tx.dialect.claim_pick(pick)} RETURNING id",
        (now, now, batch_id, count),
    ).fetchall()
    if released:
        fx.wake = True
        fx.changed.update(row["id"] for row in released)


def stop(tx: Tx, batch_id: str, failed: Sequence[str]) -> str | None:
    """The reason to skip the rest of a batch one of whose items (``failed``) did not complete.

    None unless the batch stops on its first error and has not stopped yet; the batch is then
    marked stopped by the earliest of ``failed``.
    """
    batch = tx.execute(
        f"SELECT stop_on_first_error, stopped_by FROM batches WHERE id = ?{tx.dialect.lock()}",
        (batch_id,),
    ).fetchone()
    if batch is None or not batch["stop_on_first_error"] or batch["stopped_by"] is not None:
        return None
    marks = ", ".join("?" for _ in failed)
    first = tx.execute(
        f"SELECT idx, item_id FROM batch_items WHERE batch_id = ? AND execution_id IN ({marks})"
        " ORDER BY idx LIMIT 1",
        (batch_id, *failed),
    ).fetchone()
    index = first["idx"] if first is not None else -1
    tx.execute("UPDATE batches SET stopped_by = ? WHERE id = ?", (index, batch_id))
    item = f"item {index} ({first['item_id']!r})" if first is not None else "an item"
    return f"skipped: {item} failed, and the batch stops on its first error"
