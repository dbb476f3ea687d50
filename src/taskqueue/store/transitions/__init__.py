"""Every change of a task's status: one named, fenced operation per transition.

Each function applies one :class:`~taskqueue.engine.Transition` of the engine's table, inside
the writer's transaction, with its event written in the same transaction (the outbox). The
status a statement sets and the statuses it may start from come from the table
(:data:`~taskqueue.engine.RULES`), so no statement here can move a task in a way the rules do
not allow, and no ``SET status`` exists anywhere else in the code.

Worker writes are fenced by lease: each claim gives the task a fresh random ``lease_token`` and
bumps ``attempt``, and every later write of that attempt matches on ``(id, lease_token)`` and
the Running status. A worker whose lease was revoked (cancelled, expired and reaped, handed
back) matches nothing and learns it has lost the task, so a stale worker can never overwrite a
newer attempt.
"""

from taskqueue.store.transitions.requested import cancel, cascade_cancel, requeue, settle_batches
from taskqueue.store.transitions.running import (
    claim,
    create,
    expire_leases,
    finish_many,
    hand_back,
    has_runnable,
)
from taskqueue.store.transitions.statements import Claimed, Outcome, locked_task_row

__all__ = [
    "Claimed",
    "Outcome",
    "cancel",
    "cascade_cancel",
    "claim",
    "create",
    "expire_leases",
    "finish_many",
    "hand_back",
    "has_runnable",
    "locked_task_row",
    "requeue",
    "settle_batches",
]
