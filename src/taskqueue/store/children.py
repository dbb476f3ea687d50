"""The row of a child task: a run of a template (a Function definition, a Scheduled task).

The child is a Simple task (a Workflow task, for a Scheduled task given phases) with every
field of its template (priority, queue, environment, limits, project...) and a life of its own:
a new id, no attempt yet, ``parent_id`` naming the template.
"""

from __future__ import annotations

from typing import Any

from taskqueue.models import TaskType
from taskqueue.store.codec import loads
from taskqueue.store.ids import new_id
from taskqueue.store.schema import tasks as tasks_table

__all__ = ["child_row"]

_COLUMNS = tuple(c.name for c in tasks_table.columns if c.name != "seq")
#: What a child never takes from its template: how the template itself ran, and its keys.
_FRESH = (
    "started_at",
    "finished_at",
    "result",
    "status_reason",
    "failure_reason",
    "current_phase",
    "lease_token",
    "lease_expires_at",
    "worker_id",
    "input_schema",
    "output_schema",
    "validate_output",
    "version",
    "batch_id",
    "idempotency_key",
)


def child_row(template: Any, now: int, **fields: Any) -> dict[str, Any]:
    """A new child task's row from ``template``'s row, with ``fields`` over it.

    Its status is set by ``transitions.create``, which inserts it.
    """
    row = {column: template[column] for column in _COLUMNS}
    row.update(dict.fromkeys(_FRESH))
    row.update(
        {
            "id": new_id(),
            "task_type": TaskType.SIMPLE.value,
            "parent_id": template["id"],
            "dependencies": "[]",
            "created_at": now,
            "updated_at": now,
            "run_at": now,
            "attempt": 0,
            "retries_used": 0,
            "waiting_on": 0,
        }
    )
    phases = loads(template["phases"])
    if phases and template["task_type"] == TaskType.SCHEDULED.value:
        # A Scheduled task with phases makes workflows, each walking them from the first.
        row.update(
            task_type=TaskType.WORKFLOW.value,
            current_phase=phases[0]["name"],
            language=phases[0].get("language"),
        )
    row.update(fields)
    return row
