"""output_chunks.data as bytes: output is stored as the command wrote it

PostgreSQL's text columns cannot hold a NUL byte, so a chunk of output with one in it could not
be stored at all; and output that is not UTF-8 was stored with its bad bytes replaced. The data
column becomes BYTEA (PostgreSQL) or BLOB (SQLite). Existing chunks keep their text, as its
UTF-8 bytes.

Revision ID: 0005
Revises: 0004

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Chunks converted per statement by the downgrade.
_PAGE = 1000


def upgrade() -> None:
    """Upgrade schema: text to its UTF-8 bytes (one rewrite of the table on either database)."""
    # SQLite rebuilds the table, copying each value through CAST(data AS BLOB), which keeps its
    # UTF-8 bytes; PostgreSQL converts in place.
    with op.batch_alter_table("output_chunks") as batch:
        batch.alter_column(
            "data",
            type_=sa.LargeBinary(),
            existing_type=sa.Text(),
            existing_nullable=False,
            postgresql_using="convert_to(data, 'UTF8')",
        )


def downgrade() -> None:
    """Downgrade schema: bytes back to text, as the older version stored it.

    Bytes that are not UTF-8 become U+FFFD, as that version's worker wrote them, and so does a
    NUL byte, which a PostgreSQL text column cannot hold.
    """
    with op.batch_alter_table("output_chunks") as batch:
        batch.add_column(sa.Column("text_data", sa.Text(), nullable=True))
    bind = op.get_bind()
    after: tuple[str, int] = ("", -1)
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT task_id, seq, data FROM output_chunks"
                " WHERE task_id > :task OR (task_id = :task AND seq > :seq)"
                " ORDER BY task_id, seq LIMIT :page"
            ),
            {"task": after[0], "seq": after[1], "page": _PAGE},
        ).fetchall()
        if not rows:
            break
        bind.execute(
            sa.text(
                "UPDATE output_chunks SET text_data = :text WHERE task_id = :task AND seq = :seq"
            ),
            [
                {
                    "text": bytes(data).decode("utf-8", "replace").replace("\x00", "\ufffd"),
                    "task": task,
                    "seq": seq,
                }
                for task, seq, data in rows
            ],
        )
        after = (rows[-1][0], rows[-1][1])
    with op.batch_alter_table("output_chunks") as batch:
        batch.drop_column("data")
        batch.alter_column(
            "text_data", new_column_name="data", existing_type=sa.Text(), nullable=False
        )
