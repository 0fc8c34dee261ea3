"""Attempts remember the time they were granted and how often the student extended it, so a
teacher changing the time limit mid-attempt no longer changes the size or count of extensions.

Attempts started before this keep working from their deadline (``time_granted_seconds`` NULL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 06:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_granted_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("time_extensions", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("time_extensions")
        batch_op.drop_column("time_granted_seconds")
