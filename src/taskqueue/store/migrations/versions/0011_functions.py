"""Function definitions: their versions, and batches of executions

``task_versions`` keeps each version of a Function definition's body and schemas (the task's
row holds the current one). ``tasks.validate_output`` says whether a definition's outputs are
checked against its ``output_schema``. ``batches`` and ``batch_items`` hold a batch of
executions; ``tasks.batch_id`` marks the child tasks of a batch, held back (``waiting_on``) so
that no more than the batch's ``max_concurrency`` run at once.

Revision ID: 0011
Revises: 0010

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD = "batch_id IS NOT NULL AND waiting_on > 0"


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("validate_output", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
    op.create_index(
        "ix_tasks_batch_held",
        "tasks",
        ["batch_id", "seq"],
        sqlite_where=sa.text(_HELD),
        postgresql_where=sa.text(_HELD),
    )
    op.create_table(
        "task_versions",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=50), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("input_schema", sa.Text(), nullable=True),
        sa.Column("output_schema", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "version"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=True),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("stop_on_first_error", sa.SmallInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("stopped_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("batch_id", "idx"),
    )
    op.create_index("ix_batch_items_execution", "batch_items", ["execution_id"], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_batch_items_execution", table_name="batch_items")
    op.drop_table("batch_items")
    op.drop_table("batches")
    op.drop_table("task_versions")
    op.drop_index("ix_tasks_batch_held", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("batch_id")
        batch.drop_column("validate_output")
