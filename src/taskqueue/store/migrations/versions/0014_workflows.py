"""Workflow tasks: project workflows, reviews, approval links, and the phase of each attempt

A Workflow task keeps its phases (and where each is) in ``tasks.phases``; ``review_rounds``
counts the times a review sent it back, ``max_review_rounds`` how many it may, and
``development_workflow`` which project workflow (and version) it copied. ``workflows`` holds
each version of a project's named workflows; ``reviews`` one row per verdict, unique per
(task, phase, round, reviewer); ``review_links`` the SHA-256 of each single-use approval link.

Revision ID: 0014
Revises: 0013

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("review_rounds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_review_rounds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("development_workflow", sa.Text(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("phase", sa.String(length=20), nullable=True))
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("phases", sa.Text(), nullable=False),
        sa.Column("max_review_rounds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_workflows_version"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "phase", "round", "reviewer", name="uq_reviews_once"),
    )
    op.create_table(
        "review_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_review_links_task_id", "review_links", ["task_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_review_links_task_id", table_name="review_links")
    op.drop_table("review_links")
    op.drop_table("reviews")
    op.drop_table("workflows")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("phase")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("development_workflow")
        batch.drop_column("max_review_rounds")
        batch.drop_column("review_rounds")
