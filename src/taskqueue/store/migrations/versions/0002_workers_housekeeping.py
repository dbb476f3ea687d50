"""workers table, and the indexes housekeeping walks

Revision ID: 0002
Revises: 0001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINISHED = "status IN ('Completed', 'Failed', 'Cancelled')"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("queues", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workers_last_seen", "workers", ["last_seen"], unique=False)
    op.create_index("ix_events_time", "events", ["time"], unique=False)
    op.create_index(
        "ix_tasks_finished",
        "tasks",
        ["finished_at"],
        unique=False,
        sqlite_where=sa.text(_FINISHED),
        postgresql_where=sa.text(_FINISHED),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_tasks_finished", table_name="tasks")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_workers_last_seen", table_name="workers")
    op.drop_table("workers")
