"""Rubrics (in immutable versions, criteria linked to skills), oral defenses with their raters,
rubric scores (immutable; corrections are new rows pointing at what they correct), and rubric
calibrations (criteria and rater severities on the bank's theta scale, published by an assessor).

Rubric versions, their criteria and rubric scores are append-only: triggers refuse UPDATE on both
SQLite and PostgreSQL (the function ``refuse_update`` comes from 0010). DELETE stays possible, for
erasure.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 11:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rubrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_rubrics_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubrics")),
        sa.UniqueConstraint("name", name=op.f("uq_rubrics_name")),
    )
    op.create_table(
        "rubric_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rubric_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_rubric_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rubric_id"],
            ["rubrics.id"],
            name=op.f("fk_rubric_versions_rubric_id_rubrics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_versions")),
        sa.UniqueConstraint(
            "rubric_id", "version", name=op.f("uq_rubric_versions_rubric_id_version")
        ),
    )
    op.create_table(
        "defenses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("rubric_version_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recording_url", sa.String(length=2048), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"], name=op.f("fk_defenses_class_id_classes")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_defenses_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rubric_version_id"],
            ["rubric_versions.id"],
            name=op.f("fk_defenses_rubric_version_id_rubric_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["users.id"],
            name=op.f("fk_defenses_student_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_defenses_task_id_tasks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_defenses")),
    )
    with op.batch_alter_table("defenses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_defenses_class_id"), ["class_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_defenses_rubric_version_id"), ["rubric_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_defenses_student_id"), ["student_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_defenses_task_id"), ["task_id"], unique=False)

    op.create_table(
        "rubric_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rubric_version_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=20), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "published",
                "retired",
                name="rubric_calibration_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("raters", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("n_students", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_rubric_calibrations_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["published_by"],
            ["users.id"],
            name=op.f("fk_rubric_calibrations_published_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rubric_version_id"],
            ["rubric_versions.id"],
            name=op.f("fk_rubric_calibrations_rubric_version_id_rubric_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_calibrations")),
    )
    with op.batch_alter_table("rubric_calibrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rubric_calibrations_rubric_version_id"),
            ["rubric_version_id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_rubric_calibrations_one_published",
            ["rubric_version_id"],
            unique=True,
            postgresql_where=sa.text("status = 'published'"),
            sqlite_where=sa.text("status = 'published'"),
        )

    op.create_table(
        "rubric_criteria",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rubric_version_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("skill", sa.String(length=80), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rubric_version_id"],
            ["rubric_versions.id"],
            name=op.f("fk_rubric_criteria_rubric_version_id_rubric_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_criteria")),
        sa.UniqueConstraint(
            "rubric_version_id", "code", name=op.f("uq_rubric_criteria_rubric_version_id_code")
        ),
        sa.UniqueConstraint(
            "rubric_version_id",
            "position",
            name=op.f("uq_rubric_criteria_rubric_version_id_position"),
        ),
    )
    with op.batch_alter_table("rubric_criteria", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rubric_criteria_rubric_version_id"), ["rubric_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rubric_criteria_skill"), ["skill"], unique=False)

    op.create_table(
        "defense_raters",
        sa.Column("defense_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["assigned_by"],
            ["users.id"],
            name=op.f("fk_defense_raters_assigned_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["defense_id"],
            ["defenses.id"],
            name=op.f("fk_defense_raters_defense_id_defenses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"], ["users.id"], name=op.f("fk_defense_raters_rater_id_users")
        ),
        sa.PrimaryKeyConstraint("defense_id", "rater_id", name=op.f("pk_defense_raters")),
    )
    with op.batch_alter_table("defense_raters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_defense_raters_rater_id"), ["rater_id"], unique=False)

    op.create_table(
        "rubric_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("defense_id", sa.Integer(), nullable=False),
        sa.Column("criterion_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("corrects_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["rubric_scores.id"],
            name=op.f("fk_rubric_scores_corrects_id_rubric_scores"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["criterion_id"],
            ["rubric_criteria.id"],
            name=op.f("fk_rubric_scores_criterion_id_rubric_criteria"),
        ),
        sa.ForeignKeyConstraint(
            ["defense_id"],
            ["defenses.id"],
            name=op.f("fk_rubric_scores_defense_id_defenses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"], ["users.id"], name=op.f("fk_rubric_scores_rater_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_scores")),
    )
    with op.batch_alter_table("rubric_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rubric_scores_criterion_id"), ["criterion_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_rubric_scores_defense_id"), ["defense_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rubric_scores_rater_id"), ["rater_id"], unique=False)
        batch_op.create_index("uq_rubric_scores_corrects_id", ["corrects_id"], unique=True)
        batch_op.create_index(
            "uq_rubric_scores_first",
            ["defense_id", "criterion_id", "rater_id", "kind"],
            unique=True,
            postgresql_where=sa.text("corrects_id IS NULL"),
            sqlite_where=sa.text("corrects_id IS NULL"),
        )

    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in _APPEND_ONLY:
        if postgresql:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_update()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


#: Tables whose rows never change once stored.
_APPEND_ONLY = ("rubric_versions", "rubric_criteria", "rubric_scores")


def downgrade() -> None:
    with op.batch_alter_table("rubric_scores", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_rubric_scores_first",
            postgresql_where=sa.text("corrects_id IS NULL"),
            sqlite_where=sa.text("corrects_id IS NULL"),
        )
        batch_op.drop_index("uq_rubric_scores_corrects_id")
        batch_op.drop_index(batch_op.f("ix_rubric_scores_rater_id"))
        batch_op.drop_index(batch_op.f("ix_rubric_scores_defense_id"))
        batch_op.drop_index(batch_op.f("ix_rubric_scores_criterion_id"))

    op.drop_table("rubric_scores")
    with op.batch_alter_table("defense_raters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_defense_raters_rater_id"))

    op.drop_table("defense_raters")
    with op.batch_alter_table("rubric_criteria", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rubric_criteria_skill"))
        batch_op.drop_index(batch_op.f("ix_rubric_criteria_rubric_version_id"))

    op.drop_table("rubric_criteria")
    with op.batch_alter_table("rubric_calibrations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_rubric_calibrations_one_published",
            postgresql_where=sa.text("status = 'published'"),
            sqlite_where=sa.text("status = 'published'"),
        )
        batch_op.drop_index(batch_op.f("ix_rubric_calibrations_rubric_version_id"))

    op.drop_table("rubric_calibrations")
    with op.batch_alter_table("defenses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_defenses_task_id"))
        batch_op.drop_index(batch_op.f("ix_defenses_student_id"))
        batch_op.drop_index(batch_op.f("ix_defenses_rubric_version_id"))
        batch_op.drop_index(batch_op.f("ix_defenses_class_id"))

    op.drop_table("defenses")
    op.drop_table("rubric_versions")
    op.drop_table("rubrics")
