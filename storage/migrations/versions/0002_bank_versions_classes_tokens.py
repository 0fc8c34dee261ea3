"""Item versions and status history, bank snapshots, exposure counters, classes and assignments,
accommodations, API tokens, response uploads and calibration runs; attempt state for HTTP delivery.

Existing items get their content as version 1.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:03:45.577290
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accommodations",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "time",
            sa.Enum(
                "standard",
                "extended",
                "none",
                name="time_accommodation",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("time_factor", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "time_factor >= 1", name=op.f("ck_accommodations_time_factor_at_least_one")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_accommodations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_accommodations")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "bank_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("test_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["tests.id"],
            name=op.f("fk_bank_snapshots_test_id_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_snapshots")),
        sa.UniqueConstraint(
            "test_id", "fingerprint", name=op.f("uq_bank_snapshots_test_id_fingerprint")
        ),
    )
    op.create_table(
        "classes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("teacher_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["users.id"], name=op.f("fk_classes_teacher_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classes")),
        sa.UniqueConstraint("teacher_id", "name", name=op.f("uq_classes_teacher_id_name")),
    )
    with op.batch_alter_table("classes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_classes_teacher_id"), ["teacher_id"], unique=False)

    op.create_table(
        "item_exposures",
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("administered", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_item_exposures_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["tests.id"],
            name=op.f("fk_item_exposures_test_id_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", "item_id", name=op.f("pk_item_exposures")),
    )
    with op.batch_alter_table("item_exposures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_exposures_item_id"), ["item_id"], unique=False)

    op.create_table(
        "item_status_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column(
            "from_status",
            sa.Enum(
                "draft",
                "pretest",
                "operational",
                "retired",
                name="item_status_from",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_status",
            sa.Enum(
                "draft",
                "pretest",
                "operational",
                "retired",
                name="item_status_to",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("changed_by", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by"],
            ["users.id"],
            name=op.f("fk_item_status_events_changed_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_item_status_events_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_status_events")),
    )
    with op.batch_alter_table("item_status_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_item_status_events_item_id"), ["item_id"], unique=False
        )

    op.create_table(
        "item_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("stem", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("key", sa.Integer(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_item_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_item_versions_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_versions")),
        sa.UniqueConstraint("item_id", "version", name=op.f("uq_item_versions_item_id_version")),
    )
    op.create_table(
        "response_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("layout", sa.String(length=10), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("n_persons", sa.Integer(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("n_responses", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uploaded_by"],
            ["users.id"],
            name=op.f("fk_response_uploads_uploaded_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_uploads")),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("time_limit_minutes", sa.Integer(), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_assignments_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_assignments_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"], ["tests.id"], name=op.f("fk_assignments_test_id_tests"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignments_class_id"), ["class_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_test_id"), ["test_id"], unique=False)

    op.create_table(
        "calibration_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=True),
        sa.Column("test_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "published",
                name="run_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_calibration_runs_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["published_by"],
            ["users.id"],
            name=op.f("fk_calibration_runs_published_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["tests.id"],
            name=op.f("fk_calibration_runs_test_id_tests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["response_uploads.id"],
            name=op.f("fk_calibration_runs_upload_id_response_uploads"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_runs")),
    )
    with op.batch_alter_table("calibration_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calibration_runs_status"), ["status"], unique=False)

    op.create_table(
        "class_members",
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_members_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_class_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("class_id", "user_id", name=op.f("pk_class_members")),
    )
    with op.batch_alter_table("class_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_class_members_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("assignment_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("state", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("current_item_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("presented_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_attempts_assignment_id"), ["assignment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_attempts_snapshot_id"), ["snapshot_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_attempts_snapshot_id_bank_snapshots"),
            "bank_snapshots",
            ["snapshot_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_attempts_current_item_id_items"), "items", ["current_item_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_attempts_assignment_id_assignments"),
            "assignments",
            ["assignment_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("item_parameter_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calibration_run_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_item_parameter_sets_calibration_run_id"),
            ["calibration_run_id"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_item_parameter_sets_calibration_run_id_calibration_runs"),
            "calibration_runs",
            ["calibration_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_item_parameter_sets_created_by_users"),
            "users",
            ["created_by"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("media", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )

    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("choice", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("reply", sa.JSON(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_responses_attempt_id_idempotency_key"), ["attempt_id", "idempotency_key"]
        )

    with op.batch_alter_table("tests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bank_filter", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("cut_scores", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(
            sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )

    # Existing content becomes version 1 of each item.
    op.execute(
        "INSERT INTO item_versions (item_id, version, stem, options, key, rationale, media, "
        "created_at, note) SELECT id, 1, stem, options, key, rationale, media, created_at, "
        "'before versioning' FROM items"
    )


def downgrade() -> None:
    with op.batch_alter_table("tests", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("is_active")
        batch_op.drop_column("version")
        batch_op.drop_column("cut_scores")
        batch_op.drop_column("bank_filter")

    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_responses_attempt_id_idempotency_key"), type_="unique"
        )
        batch_op.drop_column("reply")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("choice")

    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("media")

    with op.batch_alter_table("item_parameter_sets", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_item_parameter_sets_created_by_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_item_parameter_sets_calibration_run_id_calibration_runs"),
            type_="foreignkey",
        )
        batch_op.drop_index(batch_op.f("ix_item_parameter_sets_calibration_run_id"))
        batch_op.drop_column("created_by")
        batch_op.drop_column("calibration_run_id")

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_attempts_assignment_id_assignments"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_attempts_current_item_id_items"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_attempts_snapshot_id_bank_snapshots"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_attempts_snapshot_id"))
        batch_op.drop_index(batch_op.f("ix_attempts_assignment_id"))
        batch_op.drop_column("deadline")
        batch_op.drop_column("presented_at")
        batch_op.drop_column("current_item_id")
        batch_op.drop_column("state")
        batch_op.drop_column("assignment_id")
        batch_op.drop_column("snapshot_id")

    with op.batch_alter_table("class_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_class_members_user_id"))

    op.drop_table("class_members")
    with op.batch_alter_table("calibration_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calibration_runs_status"))

    op.drop_table("calibration_runs")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_test_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_class_id"))

    op.drop_table("assignments")
    op.drop_table("response_uploads")
    op.drop_table("item_versions")
    with op.batch_alter_table("item_status_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_status_events_item_id"))

    op.drop_table("item_status_events")
    with op.batch_alter_table("item_exposures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_exposures_item_id"))

    op.drop_table("item_exposures")
    with op.batch_alter_table("classes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_classes_teacher_id"))

    op.drop_table("classes")
    op.drop_table("bank_snapshots")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("accommodations")
