"""The deployment id: one random name per database, made the first time a worker asks for it.

Every command a worker starts carries it (``TASKQUEUE_DEPLOYMENT``), so the orphan sweep can
tell the commands of its own deployment from anything else on the host that carries
taskqueue's variables. A database copied (a restored backup, a template) keeps the id of the
one it was copied from; the sweep's other checks (the attempt must exist in this database,
under the worker named) still tell such copies apart.
"""

from __future__ import annotations

from taskqueue.store.pipeline import Effects
from taskqueue.store.sql import Tx

__all__ = ["DEPLOYMENT_KEY", "ensure_deployment", "read_deployment"]

#: The row of ``meta`` that holds the deployment id.
DEPLOYMENT_KEY = "deployment_id"


def read_deployment(tx: Tx) -> str | None:
    """The deployment id, or None if no worker asked for one yet."""
    row = tx.execute("SELECT value FROM meta WHERE key = ?", (DEPLOYMENT_KEY,)).fetchone()
    return None if row is None else str(row["value"])


def ensure_deployment(tx: Tx, fx: Effects, candidate: str, now: int) -> str:
    """The deployment id, recording ``candidate`` as it if there is none yet.

    Two processes starting together both offer one; the first to commit wins, and the other
    reads it.
    """
    del fx
    tx.execute(
        "INSERT INTO meta (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (DEPLOYMENT_KEY, candidate, now),
    )
    found = read_deployment(tx)
    assert found is not None
    return found
