"""Answers given while the connection was down: ``responses.offline`` marks them, and
``attempts.fallback_items`` lists every item ever sent to the attempt's page as its fallback
module (an offline answer to any other item is refused).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 22:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("responses", sa.Column("offline", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.add_column("attempts", sa.Column("fallback_items", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.drop_column("fallback_items")
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_column("offline")
