"""failure_reason: the typed reason beside each human-readable failure message

Revision ID: 0003
Revises: 0002

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("failure_reason", sa.String(length=30), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("failure_reason", sa.String(length=30), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("failure_reason")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("failure_reason")
