"""Large item imports run in a background worker: the ``item_imports`` table keeps each one's
file until the worker has applied it, its status, and its summary or the records it refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("skill", sa.String(length=80), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("n_records", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "running", "succeeded", "failed", name="item_import_status",
                    native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("problems", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_item_imports_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_imports")),
    )
    with op.batch_alter_table("item_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_imports_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_imports_status"))
    op.drop_table("item_imports")
