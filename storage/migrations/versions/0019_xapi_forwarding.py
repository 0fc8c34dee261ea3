"""xAPI out: each school's external learning record store and the outbox of statements to it.

``xapi_lrs`` holds one LRS per school (its basic-auth secret encrypted, see
:mod:`evidence.xapi_forwarding`); ``xapi_forwards`` one row per statement and LRS. A trigger on
``statements`` writes the forward rows in the transaction that stores a statement, for every
enabled LRS of the student's school whose scope takes it (``own``: the engine's statements,
``client_id`` NULL; ``received``: those tools sent; ``both``), whatever path stored it (the API,
the engine's answer path, the demo), so that no statement is left out.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_SELECT = (
    "SELECT NEW.seq, l.id, 'pending', 0, NEW.stored_at, NEW.stored_at "
    "FROM xapi_lrs l JOIN users u ON u.school_id = l.school_id "
    "WHERE u.id = NEW.actor_id AND l.enabled "
    "AND (l.scope = 'both' OR (l.scope = 'own' AND NEW.client_id IS NULL) "
    "OR (l.scope = 'received' AND NEW.client_id IS NOT NULL))"
)
_INSERT = ("INSERT INTO xapi_forwards (statement_seq, lrs_id, status, tries, next_try_at, "
           "created_at) " + _SELECT)
_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION xapi_forward_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN {_INSERT}; RETURN NULL; END $$",
    "CREATE TRIGGER statements_forward AFTER INSERT ON statements "
    "FOR EACH ROW EXECUTE FUNCTION xapi_forward_enqueue()",
]
_SQLITE = [
    f"CREATE TRIGGER statements_forward AFTER INSERT ON statements BEGIN {_INSERT}; END",
]


def upgrade() -> None:
    op.create_table(
        "xapi_lrs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("xapi_version", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "scope",
            sa.Enum("own", "received", "both", name="xapi_forward_scope", native_enum=False,
                    create_constraint=True, length=8),
            nullable=False,
        ),
        sa.Column("max_tries", sa.Integer(), nullable=False),
        sa.Column("sending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"],
                                name=op.f("fk_xapi_lrs_school_id_schools"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"],
                                name=op.f("fk_xapi_lrs_updated_by_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xapi_lrs")),
        sa.UniqueConstraint("school_id", name=op.f("uq_xapi_lrs_school_id")),
    )
    op.create_table(
        "xapi_forwards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lrs_id", sa.Integer(), nullable=False),
        sa.Column("statement_seq", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "sent", "dead", "discarded", name="xapi_forward_status",
                    native_enum=False, create_constraint=True, length=9),
            nullable=False,
        ),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lrs_id"], ["xapi_lrs.id"],
                                name=op.f("fk_xapi_forwards_lrs_id_xapi_lrs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["statement_seq"], ["statements.seq"],
                                name=op.f("fk_xapi_forwards_statement_seq_statements"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xapi_forwards")),
        sa.UniqueConstraint("lrs_id", "statement_seq",
                            name=op.f("uq_xapi_forwards_lrs_id_statement_seq")),
    )
    with op.batch_alter_table("xapi_forwards", schema=None) as batch_op:
        batch_op.create_index("ix_xapi_forwards_lrs_id_status_statement_seq",
                              ["lrs_id", "status", "statement_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_xapi_forwards_statement_seq"), ["statement_seq"],
                              unique=False)
    triggers = _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER statements_forward ON statements")
        op.execute("DROP FUNCTION xapi_forward_enqueue()")
    else:
        op.execute("DROP TRIGGER statements_forward")
    with op.batch_alter_table("xapi_forwards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xapi_forwards_statement_seq"))
        batch_op.drop_index("ix_xapi_forwards_lrs_id_status_statement_seq")
    op.drop_table("xapi_forwards")
    op.drop_table("xapi_lrs")
