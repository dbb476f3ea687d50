"""events: the trace of the change and its position; event_cursors: where each reader is

On PostgreSQL, transactions of several processes commit their events out of id order, so
readers follow ``seq`` instead: the position a committed event is given afterwards, in one
transaction at a time (see ``store.outbox.sequence_events``). SQLite commits in id order and
leaves ``seq`` empty.

Readers of the outbox that must not lose their place across restarts (the NATS publisher;
webhook subscriptions keep theirs on their own rows) store the id of the last event they
handed on, one row each, written in the transaction that records the progress.

Revision ID: 0007
Revises: 0006

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.create_index("ix_events_seq", "events", ["seq"], unique=True)
    op.create_index(
        "ix_events_unsequenced",
        "events",
        ["id"],
        sqlite_where=sa.text("seq IS NULL"),
        postgresql_where=sa.text("seq IS NULL"),
    )
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("event_cursors")
    op.drop_index("ix_events_unsequenced", table_name="events")
    op.drop_index("ix_events_seq", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("seq")
        batch.drop_column("trace_id")
