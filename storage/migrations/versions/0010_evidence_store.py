"""The process-evidence store: tasks, drafts and their files and comments, xAPI clients and
statements; a pseudonym for every user and an xAPI registration for every attempt.

Drafts, their files, statements and their activities are append-only: triggers refuse UPDATE on
both SQLite and PostgreSQL (a statement's ``client_id`` alone may change, to NULL, when its
credential's class is deleted). DELETE stays possible, for erasure.

Existing users get a random pseudonym and existing attempts a random registration.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 08:20:23
"""

import secrets
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_stored_files")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activity_id", sa.String(length=2048), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"], name=op.f("fk_tasks_class_id_classes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_tasks_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("activity_id", name=op.f("uq_tasks_activity_id")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_class_id"), ["class_id"], unique=False)

    op.create_table(
        "xapi_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=256), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_xapi_clients_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_xapi_clients_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xapi_clients")),
        sa.UniqueConstraint("key", name=op.f("uq_xapi_clients_key")),
    )
    with op.batch_alter_table("xapi_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_xapi_clients_class_id"), ["class_id"], unique=False)

    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["users.id"],
            name=op.f("fk_drafts_student_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_drafts_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drafts")),
        sa.UniqueConstraint(
            "task_id", "student_id", "version", name=op.f("uq_drafts_task_id_student_id_version")
        ),
    )
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drafts_student_id"), ["student_id"], unique=False)

    op.create_table(
        "draft_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_draft_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["drafts.id"],
            name=op.f("fk_draft_comments_draft_id_drafts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_comments")),
    )
    with op.batch_alter_table("draft_comments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_draft_comments_draft_id"), ["draft_id"], unique=False)

    op.create_table(
        "draft_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["drafts.id"],
            name=op.f("fk_draft_files_draft_id_drafts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["stored_files.sha256"], name=op.f("fk_draft_files_sha256_stored_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_files")),
        sa.UniqueConstraint("draft_id", "position", name=op.f("uq_draft_files_draft_id_position")),
    )
    with op.batch_alter_table("draft_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_draft_files_draft_id"), ["draft_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_draft_files_sha256"), ["sha256"], unique=False)

    op.create_table(
        "statements",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("verb_id", sa.String(length=2048), nullable=False),
        sa.Column("object_id", sa.String(length=2048), nullable=True),
        sa.Column("registration", sa.String(length=36), nullable=True),
        sa.Column("voids", sa.String(length=36), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_statements_actor_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["attempts.id"],
            name=op.f("fk_statements_attempt_id_attempts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["xapi_clients.id"],
            name=op.f("fk_statements_client_id_xapi_clients"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_statements")),
        sa.UniqueConstraint("id", name=op.f("uq_statements_id")),
    )
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_statements_actor_id_stored_at", ["actor_id", "stored_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_statements_attempt_id"), ["attempt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_statements_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_statements_object_id"), ["object_id"], unique=False)
        batch_op.create_index(
            "ix_statements_registration_seq", ["registration", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_statements_stored_at"), ["stored_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_statements_verb_id"), ["verb_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_statements_voids"), ["voids"], unique=False)

    op.create_table(
        "statement_activities",
        sa.Column("statement_seq", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.String(length=2048), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["statement_seq"],
            ["statements.seq"],
            name=op.f("fk_statement_activities_statement_seq_statements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "statement_seq", "activity_id", "relation", name=op.f("pk_statement_activities")
        ),
    )
    with op.batch_alter_table("statement_activities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_statement_activities_activity_id"), ["activity_id"], unique=False
        )

    _add_filled_column("attempts", "registration", 36, lambda: str(uuid.uuid4()))
    _add_filled_column("users", "pseudonym", 32, lambda: secrets.token_hex(16))

    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(_POSTGRESQL_FUNCTION)
    for table, columns in _APPEND_ONLY.items():
        of = f" OF {', '.join(columns)}" if columns else ""
        if postgresql:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE{of} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_update()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE{of} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


#: Tables whose rows never change, with the columns guarded (None: every column).
_APPEND_ONLY: dict[str, list[str] | None] = {
    "drafts": None,
    "draft_files": None,
    "statements": [
        "seq",
        "id",
        "stored_at",
        "timestamp",
        "actor_id",
        "verb_id",
        "object_id",
        "registration",
        "voids",
        "attempt_id",
        "content_hash",
        "body",
    ],
    "statement_activities": None,
}
_POSTGRESQL_FUNCTION = (
    "CREATE OR REPLACE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$"
)


def _add_filled_column(table: str, column: str, length: int, fresh) -> None:
    """Add a non-null text column with a unique index, giving every existing row a fresh value.

    SQLite cannot make a column NOT NULL without rebuilding the table, and rebuilding ``users``
    or ``attempts`` fails while other rows refer to them; there the column is added NOT NULL with
    an empty default that no row keeps (the code always sets it).
    """
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR({length}) NOT NULL DEFAULT ''")
    else:
        op.add_column(table, sa.Column(column, sa.String(length=length), nullable=True))
    ids = [row[0] for row in bind.execute(sa.text(f"SELECT id FROM {table}"))]
    if ids:
        bind.execute(
            sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),
            [{"id": id_, "value": fresh()} for id_ in ids],
        )
    if bind.dialect.name != "sqlite":
        op.alter_column(table, column, existing_type=sa.String(length=length), nullable=False)
    op.create_index(f"uq_{table}_{column}", table, [column], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_pseudonym", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("pseudonym")

    op.drop_index("uq_attempts_registration", table_name="attempts")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("registration")

    with op.batch_alter_table("statement_activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statement_activities_activity_id"))

    op.drop_table("statement_activities")
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statements_voids"))
        batch_op.drop_index(batch_op.f("ix_statements_verb_id"))
        batch_op.drop_index(batch_op.f("ix_statements_stored_at"))
        batch_op.drop_index("ix_statements_registration_seq")
        batch_op.drop_index(batch_op.f("ix_statements_object_id"))
        batch_op.drop_index(batch_op.f("ix_statements_client_id"))
        batch_op.drop_index(batch_op.f("ix_statements_attempt_id"))
        batch_op.drop_index("ix_statements_actor_id_stored_at")

    op.drop_table("statements")
    with op.batch_alter_table("draft_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_draft_files_sha256"))
        batch_op.drop_index(batch_op.f("ix_draft_files_draft_id"))

    op.drop_table("draft_files")
    with op.batch_alter_table("draft_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_draft_comments_draft_id"))

    op.drop_table("draft_comments")
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drafts_student_id"))

    op.drop_table("drafts")
    with op.batch_alter_table("xapi_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xapi_clients_class_id"))

    op.drop_table("xapi_clients")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_class_id"))

    op.drop_table("tasks")
    op.drop_table("stored_files")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS refuse_update()")
