"""At most one attempt in progress per student and test (a unique partial index).

Two starts sent at once (a double click) could both find no attempt in progress and both insert
one. Attempts already duplicated that way are closed as ``abandoned`` (all but the newest
in progress per student and test), then the index makes it impossible.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

IN_PROGRESS = sa.text("status = 'in_progress'")


def upgrade() -> None:
    op.execute(
        "UPDATE attempts SET status = 'abandoned', current_item_id = NULL "
        "WHERE status = 'in_progress' AND id < ("
        "  SELECT max(newer.id) FROM attempts AS newer WHERE newer.status = 'in_progress' "
        "  AND newer.user_id = attempts.user_id AND newer.test_id = attempts.test_id)"
    )
    op.create_index("uq_attempts_one_in_progress", "attempts", ["user_id", "test_id"],
                    unique=True, postgresql_where=IN_PROGRESS, sqlite_where=IN_PROGRESS)


def downgrade() -> None:
    op.drop_index("uq_attempts_one_in_progress", table_name="attempts")
