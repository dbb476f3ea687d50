"""The questions whose answers depend on the database, asked by the SQL that runs on it."""

from __future__ import annotations

from typing import Any

from taskqueue.store.errors import StoreError

__all__ = ["Dialect"]


class Dialect:
    """What differs between the databases, asked by the SQL that runs on them.

    The defaults are SQLite's: one writer holds the whole database for its transaction, so a
    row read there cannot change before the transaction ends and needs no lock.
    """

    #: ``"sqlite"`` or ``"postgresql"``: for people (health, logs), never for branching.
    name: str = "sqlite"
    #: Whether other processes' commits can wake this one (LISTEN/NOTIFY).
    can_listen: bool = False
    #: The column of ``events`` readers follow: ``id`` where transactions commit in id order
    #: (one writer), ``seq`` where they may not and events are sequenced after commit.
    event_position: str = "id"

    def lock(self, clause: str = "FOR UPDATE") -> str:
        """The clause that locks the rows a read decides a write on (`` FOR UPDATE``...)."""
        return ""

    def claim_pick(self, pick: str) -> str:
        """The condition choosing the rows ``pick`` (a ``SELECT seq ...``) returns, for a claim."""
        return f"seq IN ({pick})"

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a write that raised ``exc`` lost a race and is worth running again."""
        return False

    def classify(self, exc: BaseException) -> StoreError | None:
        """The store's own error for a driver's ``exc`` (None: it is a bug, not a condition)."""
        return None

    def sequence_events(self, tx: Any, limit: int) -> int:
        """Number up to ``limit`` committed events for readers (see ``outbox.sequence_events``).

        ``tx`` is the writer's ``store.sql.Tx`` (which refers to this class: typed loosely here).

        Nothing to do where ``event_position`` is ``id``.
        """
        return 0

    def poll_interval(self, notifications: bool) -> float:
        """How often an idle worker looks for work when nothing wakes it, in seconds."""
        return 0.02
