"""Initial schema: users, app_meta, items and tags, parameter sets, tests, attempts, responses.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "app_meta",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("value", sa.String(2000), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_meta")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(80), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", _enum("user_role", "student", "teacher", "assessor", "admin"),
                  nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint("length(username) > 0", name=op.f("ck_users_username_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(120), nullable=False),
        sa.Column("stem", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("key", sa.Integer(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("skill", sa.String(80), nullable=False),
        sa.Column("status", _enum("item_status", "draft", "pretest", "operational", "retired"),
                  nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("code", name=op.f("uq_items_code")),
    )
    op.create_index(op.f("ix_items_skill"), "items", ["skill"])
    op.create_index(op.f("ix_items_status"), "items", ["status"])
    op.create_table(
        "item_tags",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(80), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE",
                                name=op.f("fk_item_tags_item_id_items")),
        sa.PrimaryKeyConstraint("item_id", "tag", name=op.f("pk_item_tags")),
    )
    op.create_index(op.f("ix_item_tags_tag"), "item_tags", ["tag"])
    op.create_table(
        "item_parameter_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("a", sa.Float(), nullable=True),
        sa.Column("b", sa.Float(), nullable=True),
        sa.Column("c", sa.Float(), nullable=True),
        sa.Column("d", sa.Float(), nullable=True),
        sa.Column("thresholds", sa.JSON(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "model IN ('rasch', '1pl', '2pl', '3pl', '4pl', 'grm', 'gpcm', 'pcm')",
            name=op.f("ck_item_parameter_sets_model_known"),
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE",
                                name=op.f("fk_item_parameter_sets_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_parameter_sets")),
    )
    op.create_index(op.f("ix_item_parameter_sets_item_id"), "item_parameter_sets", ["item_id"])
    op.create_index(
        "uq_item_parameter_sets_one_active",
        "item_parameter_sets",
        ["item_id"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tests")),
        sa.UniqueConstraint("name", name=op.f("uq_tests_name")),
    )
    op.create_table(
        "test_items",
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE",
                                name=op.f("fk_test_items_item_id_items")),
        sa.ForeignKeyConstraint(["test_id"], ["tests.id"], ondelete="CASCADE",
                                name=op.f("fk_test_items_test_id_tests")),
        sa.PrimaryKeyConstraint("test_id", "item_id", name=op.f("pk_test_items")),
    )
    op.create_index(op.f("ix_test_items_item_id"), "test_items", ["item_id"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", _enum("attempt_status", "in_progress", "finished", "abandoned"),
                  nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        _timestamp("started_at"),
        _timestamp("finished_at", nullable=True),
        sa.Column("theta", sa.Float(), nullable=True),
        sa.Column("se", sa.Float(), nullable=True),
        sa.Column("stop_reason", sa.String(200), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["test_id"], ["tests.id"],
                                name=op.f("fk_attempts_test_id_tests")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_attempts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index(op.f("ix_attempts_test_id"), "attempts", ["test_id"])
    op.create_index(op.f("ix_attempts_user_id"), "attempts", ["user_id"])
    op.create_table(
        "responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("response", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Boolean(), nullable=False),
        _timestamp("answered_at"),
        sa.Column("response_time_ms", sa.Integer(), nullable=True),
        sa.Column("hints_used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"], ondelete="CASCADE",
                                name=op.f("fk_responses_attempt_id_attempts")),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"],
                                name=op.f("fk_responses_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
        sa.UniqueConstraint("attempt_id", "item_id", name=op.f("uq_responses_attempt_id_item_id")),
        sa.UniqueConstraint("attempt_id", "position",
                            name=op.f("uq_responses_attempt_id_position")),
    )
    op.create_index(op.f("ix_responses_item_id"), "responses", ["item_id"])


def downgrade() -> None:
    # Indexes go with their tables; drop children before parents.
    for table in (
        "responses",
        "attempts",
        "test_items",
        "tests",
        "item_parameter_sets",
        "item_tags",
        "items",
        "users",
        "app_meta",
    ):
        op.drop_table(table)
