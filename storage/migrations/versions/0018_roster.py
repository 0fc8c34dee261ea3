"""OneRoster imports: ``sourced_id`` on schools, users and classes, and ``roster_imports``.

A roster's ``sourcedId`` is how a second import finds what the first made, so each is unique
(NULL for what no roster made: a unique index lets any number of NULLs through on SQLite and
PostgreSQL alike). ``roster_imports`` keeps an upload between its dry run and its application.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_TABLES = ("schools", "users", "classes")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("sourced_id", sa.String(length=255), nullable=True))
        op.create_index(f"uq_{table}_sourced_id", table, ["sourced_id"], unique=True)
    op.create_table(
        "roster_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_imports")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_roster_imports_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("roster_imports")
    for table in _TABLES:
        op.drop_index(f"uq_{table}_sourced_id", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("sourced_id")
