"""Who may see a student, audited; page sessions kept on the server.

``access_audit`` records every enrolment change, class hand-over and accommodation change
(who, when, what, before and after). It is append-only: triggers refuse UPDATE and DELETE on
both SQLite and PostgreSQL.

``page_sessions`` holds one row per signed-in browser (the SHA-256 of the id its cookie
carries), so that signing out, a new password or deactivation ends every copy of a cookie.
Sessions signed in before this migration are signed out (their cookies carry no id).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER access_audit_no_update BEFORE UPDATE ON access_audit "
    "BEGIN SELECT RAISE(ABORT, 'access_audit is append-only'); END",
    "CREATE TRIGGER access_audit_no_delete BEFORE DELETE ON access_audit "
    "BEGIN SELECT RAISE(ABORT, 'access_audit is append-only'); END",
]
_POSTGRESQL_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION access_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'access_audit is append-only' "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$",
    "CREATE TRIGGER access_audit_no_change BEFORE UPDATE OR DELETE ON access_audit "
    "FOR EACH ROW EXECUTE FUNCTION access_audit_append_only()",
    "CREATE TRIGGER access_audit_no_truncate BEFORE TRUNCATE ON access_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION access_audit_append_only()",
]


def upgrade() -> None:
    op.create_table(
        "access_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.Enum("enrol", "unenrol", "class_teacher", "accommodation",
                                    name="access_action", native_enum=False,
                                    create_constraint=True, length=13), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("student_id", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_audit")),
    )
    with op.batch_alter_table("access_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_audit_class_id"), ["class_id"], unique=False)
        batch_op.create_index("ix_access_audit_student_id_at", ["student_id", "at"],
                              unique=False)
    triggers = (_POSTGRESQL_TRIGGERS if op.get_bind().dialect.name == "postgresql"
                else _SQLITE_TRIGGERS)
    for statement in triggers:
        op.execute(statement)

    op.create_table(
        "page_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_page_sessions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_page_sessions_token_hash")),
    )
    with op.batch_alter_table("page_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("page_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_page_sessions_user_id"))
    op.drop_table("page_sessions")
    op.drop_table("access_audit")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS access_audit_append_only()")
