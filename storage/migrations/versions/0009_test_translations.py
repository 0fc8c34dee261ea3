"""Tests carry their texts in other languages: ``tests.translations`` is
``{language: {name, description, skills: {skill: name}}}``, shown to readers of that language
with the English fields as the fallback.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("translations", sa.JSON(), nullable=False,
                                      server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("tests", schema=None) as batch_op:
        batch_op.drop_column("translations")
