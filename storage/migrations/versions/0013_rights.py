"""Learners' rights: schools, the privacy note, consents, group variables, the hash-chained
audit log, erasures, and the rate limiter's counters.

``users`` and ``classes`` get a ``school_id`` (NULL: no school; an administrator without one
administers the whole deployment) and ``users`` an ``erased_at``: plain columns, since SQLite
cannot add a foreign key without rebuilding ``users``, which fails while other rows refer to it.
``audit_log`` refuses UPDATE, DELETE and TRUNCATE; ``consents`` refuses UPDATE.
``audit_head`` starts with its one row.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 18:46:13
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_actor_id_at", ["actor_id", "at"], unique=False)
        batch_op.create_index("ix_audit_log_subject_id_at", ["subject_id", "at"], unique=False)

    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "done",
                "cancelled",
                name="erasure_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.Integer(), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index("ix_erasures_student_id", ["student_id"], unique=False)

    op.create_table(
        "privacy_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("retention", sa.JSON(), nullable=False),
        sa.Column("keep_anonymous_responses", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_notes")),
        sa.UniqueConstraint("version", name=op.f("uq_privacy_notes_version")),
    )
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
    )
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rate_limit_counters_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "schools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "erasure_confirmation",
            sa.Enum(
                "second_admin",
                "delay",
                name="erasure_confirmation",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("erasure_delay_days", sa.Integer(), nullable=False),
        sa.Column("students_may_consent", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
        sa.UniqueConstraint("name", name=op.f("uq_schools_name")),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "research",
                "demographics",
                name="consent_purpose",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["users.id"],
            name=op.f("fk_consents_student_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consents_student_purpose", ["student_id", "purpose", "at"], unique=False
        )

    op.create_table(
        "student_groups",
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("variable", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=80), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["users.id"],
            name=op.f("fk_student_groups_student_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("student_id", "variable", name=op.f("pk_student_groups")),
    )
    for table in ("classes", "users"):
        _add_school_column(table)
    op.add_column("users", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))

    op.execute(f"INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '{'0' * 64}')")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(_POSTGRESQL_REFUSE)
    for table, events in _APPEND_ONLY.items():
        for event in events:
            if postgresql:
                level = "STATEMENT" if event == "TRUNCATE" else "ROW"
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"FOR EACH {level} EXECUTE FUNCTION refuse_change_{table}()"
                )
            elif event != "TRUNCATE":  # SQLite has none: DELETE covers it
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


#: Append-only tables and the statements their triggers refuse.
_APPEND_ONLY = {"audit_log": ("UPDATE", "DELETE", "TRUNCATE"), "consents": ("UPDATE",)}
_POSTGRESQL_REFUSE = ";".join(
    f"CREATE OR REPLACE FUNCTION refuse_change_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{table} is append-only' "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$"
    for table in _APPEND_ONLY
)


def _add_school_column(table: str) -> None:
    op.add_column(table, sa.Column("school_id", sa.Integer(), nullable=True))
    op.create_index(f"ix_{table}_school_id", table, ["school_id"], unique=False)


def downgrade() -> None:
    for table in ("users", "classes"):
        op.drop_index(f"ix_{table}_school_id", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("school_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("erased_at")

    op.drop_table("student_groups")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_student_purpose")

    op.drop_table("consents")
    op.drop_table("schools")
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_limit_counters_expires_at"))

    op.drop_table("rate_limit_counters")
    op.drop_table("privacy_notes")
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index("ix_erasures_student_id")

    op.drop_table("erasures")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_subject_id_at")
        batch_op.drop_index("ix_audit_log_actor_id_at")

    op.drop_table("audit_log")
    op.drop_table("audit_head")
    if op.get_bind().dialect.name == "postgresql":
        for table in _APPEND_ONLY:
            op.execute(f"DROP FUNCTION IF EXISTS refuse_change_{table}()")
