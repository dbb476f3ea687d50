"""workers.languages: the languages each worker runs code tasks in

A code task (``tasks.language`` and ``tasks.code``, columns present since 0001) is claimed only
by a worker whose ``languages`` (JSON: each language's name and the version probed) name it.
Workers registered before this revision offer none.

Revision ID: 0009
Revises: 0008

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("languages", sa.Text(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("languages")
