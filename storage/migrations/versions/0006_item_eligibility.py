"""Item eligibility keeps its record per test: finished attempts, feasible attempts, and per item
how often it was given and withheld as ineligible, so live tests use the multiplicative rule of
van der Linden and Veldkamp instead of one step from the exposure rates.

Tests finished before this have no record; their eligibility starts from every item eligible.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eligibility_totals",
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("tests", sa.Integer(), nullable=False),
        sa.Column("feasible", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"], ["tests.id"], name=op.f("fk_eligibility_totals_test_id_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", name=op.f("pk_eligibility_totals")),
    )
    op.create_table(
        "eligibility_counts",
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("administered", sa.Integer(), nullable=False),
        sa.Column("ineligible", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_eligibility_counts_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"], ["tests.id"], name=op.f("fk_eligibility_counts_test_id_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", "item_id", name=op.f("pk_eligibility_counts")),
    )
    with op.batch_alter_table("eligibility_counts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eligibility_counts_item_id"), ["item_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eligibility_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eligibility_counts_item_id"))
    op.drop_table("eligibility_counts")
    op.drop_table("eligibility_totals")
