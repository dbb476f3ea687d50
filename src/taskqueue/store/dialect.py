"""The questions whose answers depend on the database, asked by the SQL that runs on it."""

from __future__ import annotations

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

    def poll_interval(self, notifications: bool) -> float:
        """How often an idle worker looks for work when nothing wakes it, in seconds."""
        return 0.02
