"""The tables. Times are integer microseconds since the Unix epoch (UTC); JSON is stored as text.

Integer times compare and index the same way on SQLite and PostgreSQL and cost nothing to
convert; the wire format turns them into ISO 8601. Command output is stored as the bytes the
command wrote (BLOB on SQLite, BYTEA on PostgreSQL, whose text columns cannot hold a NUL byte);
every other text column holds only what the API accepted (no NUL characters) or JSON, whose
escapes carry any character.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from taskqueue.models import TERMINAL_STATUSES, TaskStatus

__all__ = [
    "FINISHED_SQL",
    "HELD_SQL",
    "RUNNABLE_SQL",
    "api_keys",
    "attempts",
    "batch_items",
    "batches",
    "event_cursors",
    "events",
    "idempotency_keys",
    "meta",
    "metadata",
    "output_chunks",
    "projects",
    "review_links",
    "reviews",
    "schedule_runs",
    "schedules",
    "task_deps",
    "task_versions",
    "tasks",
    "webhook_deliveries",
    "webhooks",
    "workers",
    "workflows",
]

metadata: MetaData = MetaData()


def _where(predicate: str) -> dict[str, Any]:
    """The keyword arguments of a partial index over rows matching ``predicate``, any backend."""
    clause = text(predicate)
    return {"sqlite_where": clause, "postgresql_where": clause}


_FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
assert frozenset(_FINISHED) == TERMINAL_STATUSES
#: Statuses a task never leaves by itself, as an SQL list: ``('Completed', 'Failed', ...)``.
FINISHED_SQL = "(" + ", ".join(f"'{status.value}'" for status in _FINISHED) + ")"
#: Rows of tasks a worker may claim now (given a queue and a time), the claim index's predicate.
RUNNABLE_SQL = "status = 'Pending' AND waiting_on = 0"
#: Children of a batch held back until another of its items ends (its max_concurrency).
HELD_SQL = "batch_id IS NOT NULL AND waiting_on > 0"

_ID = String(36)
_TIME = BigInteger()
# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

projects: Table = Table(
    "projects",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text),
    Column("status", String(50), nullable=False),
    Column("due_date", _TIME),
    Column("tags", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
)

tasks: Table = Table(
    "tasks",
    metadata,
    # seq orders first-in-first-out within a priority and is the claim's tie-breaker.
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("id", _ID, nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("command", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("technical_specs", Text),
    Column("acceptance_criteria", Text, nullable=False),
    Column("project_id", _ID, ForeignKey("projects.id"), index=True),
    Column("task_type", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("priority_rank", SmallInteger, nullable=False),
    Column("dependencies", Text, nullable=False),
    Column("timeout", Integer),
    Column("retry_attempts", Integer, nullable=False),
    Column("retry_delay", Float, nullable=False),
    Column("retries_used", Integer, nullable=False),
    Column("environment", Text, nullable=False),
    Column("working_directory", Text),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text),
    # The typed reason (taskqueue.models.FailureReason) beside the message in status_reason.
    Column("failure_reason", String(30)),
    Column("result", Text),
    Column("phases", Text, nullable=False),
    Column("current_phase", String(20)),
    Column("ai_reviews_required", Integer, nullable=False),
    Column("ai_reviews_completed", Integer, nullable=False),
    # A Workflow task's: times a review sent it back, how many it may, the workflow it copied.
    Column("review_rounds", Integer),
    Column("max_review_rounds", Integer),
    Column("development_workflow", Text),
    Column("metadata", Text, nullable=False),
    Column("created_at", _TIME, nullable=False, index=True),
    Column("updated_at", _TIME, nullable=False),
    Column("queue", String(100), nullable=False),
    Column("run_at", _TIME, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", _TIME),
    Column("finished_at", _TIME),
    Column("parent_id", _ID),
    Column("input", Text),
    Column("input_schema", Text),
    Column("output_schema", Text),
    Column("version", Integer),
    Column("language", String(50)),
    Column("code", Text),
    # The task's resource limits, as JSON (taskqueue._limits.TaskLimits.stored); NULL: none.
    Column("limits", Text),
    Column("idempotency_key", String(255)),
    # A Function definition's: 1 to check its outputs against output_schema, 0 to trust them.
    Column("validate_output", SmallInteger),
    # The batch a Function execution belongs to (see the batches table), or NULL.
    Column("batch_id", _ID),
    # Lease fencing: every write of an attempt is conditional on its token.
    Column("lease_token", String(32)),
    Column("lease_expires_at", _TIME),
    Column("worker_id", String(200)),
    # How many dependencies have not Completed yet; runnable only at 0.
    Column("waiting_on", Integer, nullable=False),
    Index(
        "ix_tasks_claim",
        "queue",
        text("priority_rank DESC"),
        "run_at",
        "seq",
        **_where(RUNNABLE_SQL),
    ),
    Index(
        "ix_tasks_running_lease",
        "lease_expires_at",
        **_where("status = 'Running'"),
    ),
    Index("ix_tasks_status_created", "status", "created_at"),
    # A batch's children still held back, in the order they are let go.
    Index("ix_tasks_batch_held", "batch_id", "seq", **_where(HELD_SQL)),
    # Housekeeping walks finished tasks oldest first.
    Index(
        "ix_tasks_finished",
        "finished_at",
        **_where(f"status IN {FINISHED_SQL}"),
    ),
)

task_deps: Table = Table(
    "task_deps",
    metadata,
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on", _ID, primary_key=True),
    # The ref a batch item named this dependency by (an earlier item's), or NULL (by id).
    Column("ref", String(200)),
    Index("ix_task_deps_depends_on", "depends_on"),
)

attempts: Table = Table(
    "attempts",
    metadata,
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("worker_id", String(200)),
    Column("status", String(20), nullable=False),
    Column("started_at", _TIME, nullable=False),
    Column("finished_at", _TIME),
    Column("exit_code", Integer),
    Column("error", Text),
    Column("duration_ms", BigInteger),
    Column("failure_reason", String(30)),
    # The workflow phase the attempt ran (NULL for other tasks).
    Column("phase", String(20)),
)

output_chunks: Table = Table(
    "output_chunks",
    metadata,
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("attempt", Integer, nullable=False),
    Column("stream", String(10), nullable=False),
    # The bytes as the command wrote them; the wire decodes them (see codec.output_text).
    Column("data", LargeBinary, nullable=False),
)

events: Table = Table(
    "events",
    metadata,
    Column("id", _SEQ, primary_key=True, autoincrement=True),
    Column("type", String(50), nullable=False),
    Column("task_id", _ID),
    Column("project_id", _ID),
    Column("time", _TIME, nullable=False, index=True),
    Column("data", Text, nullable=False),
    Column("trace_id", String(64)),
    # PostgreSQL: the position readers follow, given after commit (SQLite: empty, see outbox).
    Column("seq", BigInteger, index=True, unique=True),
    # The events still to be given a position, for the one numbering them (PostgreSQL).
    Index("ix_events_unsequenced", "id", **_where("seq IS NULL")),
)

#: Where each reader of the outbox that must survive restarts is: the last event it handed on.
event_cursors: Table = Table(
    "event_cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", _TIME, nullable=False),
)

idempotency_keys: Table = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", _TIME, nullable=False, index=True),
)

#: Every worker process that is running (or stopped without saying goodbye), for the API.
workers: Table = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("queues", Text, nullable=False),
    Column("version", String(50), nullable=False),
    Column("started_at", _TIME, nullable=False),
    Column("last_seen", _TIME, nullable=False, index=True),
    Column("running", Integer, nullable=False),
    # The languages the worker runs code in, as JSON: {"python3": "Python 3.11.2", ...}.
    Column("languages", Text),
)

#: Facts about the database itself, one row each; ``deployment_id`` names this deployment in
#: every command it starts (``TASKQUEUE_DEPLOYMENT``), so the orphan sweep knows its own.
meta: Table = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", _TIME, nullable=False),
)

#: API keys: a bearer key's keyed hash (never the key), or a key pair's public id; scopes and
#: projects as JSON lists (``projects`` NULL: every project); revoked keys are kept.
api_keys: Table = Table(
    "api_keys",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(40), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),
    Column("hash", String(64)),
    Column("scopes", Text, nullable=False),
    Column("projects", Text),
    Column("rate_limit", Float),
    Column("burst", Integer),
    Column("expires_at", _TIME),
    Column("created_at", _TIME, nullable=False),
    Column("last_used_at", _TIME),
    Column("revoked_at", _TIME),
)

#: Webhook subscriptions: where to send which events, signed with which secret, and how far
#: delivery got (``position``: the last event handed on, in order). ``project_id`` NULL:
#: every project's events. ``lease_owner`` names the dispatcher delivering it for now.
webhooks: Table = Table(
    "webhooks",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("project_id", _ID, index=True),
    Column("url", Text, nullable=False),
    Column("description", Text),
    Column("event_types", Text, nullable=False),
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100)),
    Column("previous_secret_until", _TIME),
    Column("enabled", SmallInteger, nullable=False),
    Column("disabled_reason", Text),
    Column("position", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("failing_since", _TIME),
    Column("next_attempt_at", _TIME),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", _TIME),
    Column("created_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
)

#: Every attempt to deliver an event to a webhook: what was sent and what came back.
webhook_deliveries: Table = Table(
    "webhook_deliveries",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("webhook_id", _ID, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", String(50), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("manual", SmallInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("request", Text, nullable=False),
    Column("response_code", Integer),
    Column("response_body", Text),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Column("created_at", _TIME, nullable=False, index=True),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
)


task_versions: Table = Table(
    "task_versions",
    metadata,
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("command", Text, nullable=False),
    Column("language", String(50)),
    Column("code", Text),
    Column("input_schema", Text),
    Column("output_schema", Text),
    Column("created_at", _TIME, nullable=False),
)

batches: Table = Table(
    "batches",
    metadata,
    Column("id", _ID, primary_key=True),
    # The Function definition and the version its items run.
    Column("task_id", _ID, nullable=False),
    Column("version", Integer, nullable=False),
    Column("project_id", _ID),
    Column("max_concurrency", Integer, nullable=False),
    Column("stop_on_first_error", SmallInteger, nullable=False),
    Column("total", Integer, nullable=False),
    # The index of the item whose failure stopped the batch (stop_on_first_error), or NULL.
    Column("stopped_by", Integer),
    Column("created_at", _TIME, nullable=False),
)

batch_items: Table = Table(
    "batch_items",
    metadata,
    Column("batch_id", _ID, ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    # The caller's id for the item (its position, for the simple form).
    Column("item_id", String(200), nullable=False),
    Column("execution_id", _ID, nullable=False),
    Index("ix_batch_items_execution", "execution_id", unique=True),
)

schedules: Table = Table(
    "schedules",
    metadata,
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    # Exactly one of cron (in timezone) and interval_us says when it fires.
    Column("cron", String(200)),
    Column("interval_us", BigInteger),
    Column("timezone", String(64), nullable=False),
    Column("start_at", _TIME, nullable=False),
    Column("end_at", _TIME),
    Column("overlap_policy", String(20), nullable=False),
    Column("catchup", String(10), nullable=False),
    Column("catchup_limit", Integer, nullable=False),
    Column("paused", SmallInteger, nullable=False),
    # The next slot to fire (NULL: none left); the latest fired, and its child task.
    Column("next_slot", _TIME),
    Column("last_slot", _TIME),
    Column("last_child", _ID),
    # A slot kept waiting for the previous run to end (overlap_policy buffer_one).
    Column("buffered_slot", _TIME),
    Index("ix_schedules_due", "next_slot", **_where("paused = 0 AND next_slot IS NOT NULL")),
)

schedule_runs: Table = Table(
    "schedule_runs",
    metadata,
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    # One row per slot: a slot fires once, whichever server gets there first.
    Column("slot", _TIME, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("child_id", _ID),
    Column("skipped", String(20)),
    Column("created_at", _TIME, nullable=False),
)

#: Each version of a project's named workflows (a task copies the phases of the one it names).
workflows: Table = Table(
    "workflows",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("project_id", _ID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("phases", Text, nullable=False),
    Column("max_review_rounds", Integer, nullable=False),
    Column("created_at", _TIME, nullable=False),
    UniqueConstraint("project_id", "name", "version", name="uq_workflows_version"),
)

#: One row per verdict on a review gate: a reviewer counts once per (phase, round).
reviews: Table = Table(
    "reviews",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("phase", String(20), nullable=False),
    Column("round", Integer, nullable=False),
    Column("verdict", String(10), nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("via", String(10), nullable=False),
    Column("created_at", _TIME, nullable=False),
    UniqueConstraint("task_id", "phase", "round", "reviewer", name="uq_reviews_once"),
)

#: Single-use approval links: the SHA-256 of each token, for one reviewer, gate and round.
review_links: Table = Table(
    "review_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("task_id", _ID, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("phase", String(20), nullable=False),
    Column("round", Integer, nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("expires_at", _TIME, nullable=False),
    Column("used_at", _TIME),
    Column("created_at", _TIME, nullable=False),
)
