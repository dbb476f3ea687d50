"""Idempotency keys: a repeated create with the same key and body returns the first answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskqueue.store.codec import dumps, loads
from taskqueue.store.errors import Conflict
from taskqueue.store.sql import Tx

__all__ = ["IdempotencyRequest", "remember", "replay"]


@dataclass(frozen=True)
class IdempotencyRequest:
    """An ``Idempotency-Key`` with a hash of the request it came with."""

    key: str
    request_hash: str


def replay(tx: Tx, idem: IdempotencyRequest | None) -> Any:
    """The stored response of an earlier request with the same key, if any.

    A key reused with a different request is a conflict, never a silent replay.
    """
    if idem is None:
        return None
    row = tx.execute(
        "SELECT request_hash, response FROM idempotency_keys WHERE key = ?", (idem.key,)
    ).fetchone()
    if row is None:
        return None
    if row["request_hash"] != idem.request_hash:
        raise Conflict("this Idempotency-Key was already used with a different request")
    return loads(row["response"])


def remember(tx: Tx, idem: IdempotencyRequest | None, response: Any, now: int) -> None:
    """Store the response of a request made with an idempotency key."""
    if idem is not None:
        tx.execute(
            "INSERT INTO idempotency_keys (key, request_hash, status_code, response, created_at)"
            " VALUES (?, ?, 201, ?, ?)",
            (idem.key, idem.request_hash, dumps(response), now),
        )
