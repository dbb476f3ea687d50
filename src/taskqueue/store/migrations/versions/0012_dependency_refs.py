"""task_deps.ref: the ref a batch item named its dependency by

A command reads what its dependencies produced from ``$TASKQUEUE_DEPENDENCIES``, keyed by each
dependency's id and, where it was named by the ``ref`` of an earlier item of the same batch,
by that ref too. Edges made before this revision have none (NULL): keyed by id only.

Revision ID: 0012
Revises: 0011

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("task_deps") as batch:
        batch.add_column(sa.Column("ref", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("task_deps") as batch:
        batch.drop_column("ref")
