"""tasks.limits: the resource limits a task's command runs within

JSON (``taskqueue._limits.TaskLimits.stored``): CPU seconds, address space, file size,
processes, open files and ``network: false``, each only when the task asked for it. Tasks made
before this revision have none (NULL): they run within the operator's defaults.

Revision ID: 0010
Revises: 0009

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("limits", sa.Text(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("limits")
