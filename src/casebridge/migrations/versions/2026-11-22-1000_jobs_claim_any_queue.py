"""jobs: an index for claims that take any queue

Revision ID: 5b1f0c2a7d41
Revises: 9e936d4b80bb
Create Date: 2026-11-22 10:00:00

``ix_jobs_claim`` leads with ``queue``, which serves a worker that names its queues but not one that
takes them all (the default): its ``ORDER BY priority, run_at, id`` then sorted the whole backlog on
every claim. This partial index gives that order directly.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1f0c2a7d41"
down_revision: str | None = "9e936d4b80bb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_claim_any_queue",
            ["priority", "run_at", "id"],
            unique=False,
            sqlite_where=sa.text("state = 'available'"),
            postgresql_where=sa.text("state = 'available'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_jobs_claim_any_queue",
            sqlite_where=sa.text("state = 'available'"),
            postgresql_where=sa.text("state = 'available'"),
        )
