"""Attempts and their output: the record of every try, and the chunks each one printed.

An attempt's row is started by the claim and ended by the transition that settles it (both in
:mod:`.transitions`); here are its reads, and the output a running attempt appends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskqueue.store import leases
from taskqueue.store.codec import attempt_to_dict, output_text
from taskqueue.store.errors import NotFound
from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx

__all__ = ["append_output", "list_attempts", "read_logs", "task_status"]


def task_status(tx: Tx, task_id: str) -> str | None:
    """A task's status, or None if it does not exist."""
    row = tx.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else str(row[0])


def list_attempts(tx: Tx, task_id: str) -> list[dict[str, Any]]:
    """Every attempt of a task, first to last."""
    if task_status(tx, task_id) is None:
        raise NotFound("task", task_id)
    rows = tx.execute("SELECT * FROM attempts WHERE task_id = ? ORDER BY number", (task_id,))
    return [attempt_to_dict(row) for row in rows]


def append_output(
    tx: Tx,
    fx: Effects,
    task_id: str,
    token: str,
    attempt: int,
    chunks: Sequence[tuple[str, bytes]],
) -> bool:
    """Store output chunks (stream, the bytes as written) of a running attempt.

    False if the lease is lost.
    """
    if not leases.is_held(tx, task_id, token):
        return False
    last = tx.execute(
        "SELECT max(seq) FROM output_chunks WHERE task_id = ?", (task_id,)
    ).fetchone()[0]
    start = 0 if last is None else last + 1
    tx.executemany(
        "INSERT INTO output_chunks (task_id, seq, attempt, stream, data) VALUES (?, ?, ?, ?, ?)",
        [(task_id, start + i, attempt, stream, data) for i, (stream, data) in enumerate(chunks)],
    )
    fx.logs.add(task_id)
    return True


def read_logs(
    tx: Tx,
    task_id: str,
    offset: int,
    limit: int,
    stream: str | None,
    attempt: int | None,
) -> tuple[list[dict[str, Any]], int, str]:
    """Output chunks from ``offset`` (a chunk seq), the offset to continue from, and the status.

    Each chunk's ``data`` is its stored bytes as text (:func:`~.codec.output_text`). The status
    is read before the chunks, so a terminal status means every chunk is already visible to the
    read that follows it.
    """
    status = task_status(tx, task_id)
    if status is None:
        raise NotFound("task", task_id)
    sql = "SELECT seq, attempt, stream, data FROM output_chunks WHERE task_id = ? AND seq >= ?"
    params: list[Any] = [task_id, offset]
    if stream is not None:
        sql += " AND stream = ?"
        params.append(stream)
    if attempt is not None:
        sql += " AND attempt = ?"
        params.append(attempt)
    rows = tx.execute_binary(f"{sql} ORDER BY seq LIMIT ?", [*params, limit]).fetchall()
    chunks = [
        {
            "seq": r["seq"],
            "attempt": r["attempt"],
            "stream": r["stream"],
            "data": output_text(r["data"]),
        }
        for r in rows
    ]
    if rows:
        next_offset = rows[-1]["seq"] + 1
    else:
        last = tx.execute(
            "SELECT max(seq) FROM output_chunks WHERE task_id = ?", (task_id,)
        ).fetchone()[0]
        next_offset = offset if last is None or last < offset else last + 1
    return chunks, next_offset, status
