"""The 1EdTech CAT Service: platform clients and their tokens, sections, sessions and the item
results the platforms submitted.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cat_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=256), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_cat_clients_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cat_clients")),
        sa.UniqueConstraint("key", name=op.f("uq_cat_clients_key")),
    )
    op.create_table(
        "cat_client_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["cat_clients.id"],
                                name=op.f("fk_cat_client_tokens_client_id_cat_clients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cat_client_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_cat_client_tokens_token_hash")),
    )
    with op.batch_alter_table("cat_client_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cat_client_tokens_client_id"), ["client_id"],
                              unique=False)

    op.create_table(
        "cat_sections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("section_configuration", sa.Text(), nullable=False),
        sa.Column("qti_metadata", sa.Text(), nullable=True),
        sa.Column("qti_usagedata", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["cat_clients.id"],
                                name=op.f("fk_cat_sections_client_id_cat_clients"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["snapshot_id"], ["bank_snapshots.id"],
                                name=op.f("fk_cat_sections_snapshot_id_bank_snapshots"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["test_id"], ["tests.id"],
                                name=op.f("fk_cat_sections_test_id_tests"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cat_sections")),
        sa.UniqueConstraint("identifier", name=op.f("uq_cat_sections_identifier")),
    )
    with op.batch_alter_table("cat_sections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cat_sections_client_id"), ["client_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_cat_sections_test_id"), ["test_id"], unique=False)

    op.create_table(
        "cat_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=36), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("candidate", sa.String(length=255), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["section_id"], ["cat_sections.id"],
                                name=op.f("fk_cat_sessions_section_id_cat_sections"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cat_sessions")),
        sa.UniqueConstraint("identifier", name=op.f("uq_cat_sessions_identifier")),
    )
    with op.batch_alter_table("cat_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cat_sessions_section_id"), ["section_id"],
                              unique=False)

    op.create_table(
        "cat_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_code", sa.String(length=120), nullable=False),
        sa.Column("response", sa.Integer(), nullable=False),
        sa.Column("choice", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["cat_sessions.id"],
                                name=op.f("fk_cat_results_session_id_cat_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cat_results")),
        sa.UniqueConstraint("session_id", "item_code",
                            name=op.f("uq_cat_results_session_id_item_code")),
        sa.UniqueConstraint("session_id", "position",
                            name=op.f("uq_cat_results_session_id_position")),
    )


def downgrade() -> None:
    op.drop_table("cat_results")
    with op.batch_alter_table("cat_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cat_sessions_section_id"))
    op.drop_table("cat_sessions")
    with op.batch_alter_table("cat_sections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cat_sections_test_id"))
        batch_op.drop_index(batch_op.f("ix_cat_sections_client_id"))
    op.drop_table("cat_sections")
    with op.batch_alter_table("cat_client_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cat_client_tokens_client_id"))
    op.drop_table("cat_client_tokens")
    op.drop_table("cat_clients")
