"""Items in several languages: ``item_translations`` (stem, options, rationale per language),
``items.language`` (the source text's language, ``en`` for existing items),
``classes.test_language`` (the default test language of a class), ``attempts.language`` (the
language an attempt was delivered in) and ``item_parameter_sets.language`` (a set for one
language, from a calibration that treated languages separately; NULL: for every language).

The one-active-set index now covers the sets for every language; a second one allows one active
set per item and language. Plain ``ADD COLUMN`` (no batch rebuild), which SQLite does in place.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_translations",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("stem", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("source_version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE",
                                name=op.f("fk_item_translations_item_id_items")),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_item_translations_updated_by_users")),
        sa.PrimaryKeyConstraint("item_id", "language", name=op.f("pk_item_translations")),
    )
    op.add_column("items", sa.Column("language", sa.String(length=35), nullable=False,
                                     server_default="en"))
    op.add_column("classes", sa.Column("test_language", sa.String(length=35), nullable=True))
    op.add_column("attempts", sa.Column("language", sa.String(length=35), nullable=True))
    op.add_column("item_parameter_sets",
                  sa.Column("language", sa.String(length=35), nullable=True))
    op.drop_index("uq_item_parameter_sets_one_active", table_name="item_parameter_sets")
    op.create_index(
        "uq_item_parameter_sets_one_active", "item_parameter_sets", ["item_id"], unique=True,
        sqlite_where=sa.text("is_active AND language IS NULL"),
        postgresql_where=sa.text("is_active AND language IS NULL"),
    )
    op.create_index(
        "uq_item_parameter_sets_one_active_language", "item_parameter_sets",
        ["item_id", "language"], unique=True,
        sqlite_where=sa.text("is_active AND language IS NOT NULL"),
        postgresql_where=sa.text("is_active AND language IS NOT NULL"),
    )


def downgrade() -> None:
    op.execute("DELETE FROM item_parameter_sets WHERE language IS NOT NULL")
    op.drop_index("uq_item_parameter_sets_one_active_language",
                  table_name="item_parameter_sets")
    op.drop_index("uq_item_parameter_sets_one_active", table_name="item_parameter_sets")
    op.create_index(
        "uq_item_parameter_sets_one_active", "item_parameter_sets", ["item_id"], unique=True,
        sqlite_where=sa.text("is_active"), postgresql_where=sa.text("is_active"),
    )
    for table in ("item_parameter_sets", "attempts", "classes", "items"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("language" if table != "classes" else "test_language")
    op.drop_table("item_translations")
