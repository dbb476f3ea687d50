"""Scheduled tasks: their schedules, and one row per slot fired

``schedules`` holds a Scheduled task's rule (cron in a timezone, or an interval), its
policies, and the next slot it fires. ``schedule_runs`` has one row per slot, its primary key
(task, slot), written in the transaction that makes the slot's child task: a slot can never
fire twice, whichever server gets there first.

Revision ID: 0013
Revises: 0012

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "schedules",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("interval_us", sa.BigInteger(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start_at", sa.BigInteger(), nullable=False),
        sa.Column("end_at", sa.BigInteger(), nullable=True),
        sa.Column("overlap_policy", sa.String(length=20), nullable=False),
        sa.Column("catchup", sa.String(length=10), nullable=False),
        sa.Column("catchup_limit", sa.Integer(), nullable=False),
        sa.Column("paused", sa.SmallInteger(), nullable=False),
        sa.Column("next_slot", sa.BigInteger(), nullable=True),
        sa.Column("last_slot", sa.BigInteger(), nullable=True),
        sa.Column("last_child", sa.String(length=36), nullable=True),
        sa.Column("buffered_slot", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index(
        "ix_schedules_due",
        "schedules",
        ["next_slot"],
        sqlite_where=sa.text("paused = 0 AND next_slot IS NOT NULL"),
        postgresql_where=sa.text("paused = 0 AND next_slot IS NOT NULL"),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=True),
        sa.Column("skipped", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "slot"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("schedule_runs")
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
