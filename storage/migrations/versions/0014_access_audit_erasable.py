"""``access_audit`` accepts DELETE, for erasure; UPDATE stays refused.

Its rows name a student and hold their accommodations (with the note) as JSON: personal data an
erasure must delete. The hash-chained ``audit_log`` (migration 0013) keeps that the erasure
happened, by whom and why, and refuses DELETE itself.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:20:00
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER access_audit_no_change ON access_audit")
        op.execute("CREATE TRIGGER access_audit_no_update BEFORE UPDATE ON access_audit "
                   "FOR EACH ROW EXECUTE FUNCTION access_audit_append_only()")
    else:
        op.execute("DROP TRIGGER access_audit_no_delete")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER access_audit_no_update ON access_audit")
        op.execute("CREATE TRIGGER access_audit_no_change BEFORE UPDATE OR DELETE ON access_audit "
                   "FOR EACH ROW EXECUTE FUNCTION access_audit_append_only()")
    else:
        op.execute("CREATE TRIGGER access_audit_no_delete BEFORE DELETE ON access_audit "
                   "BEGIN SELECT RAISE(ABORT, 'access_audit is append-only'); END")
