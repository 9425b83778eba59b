"""connections.history_before: where history ends on the remote side's clock

Revision ID: 3c8e1f4a9b27
Revises: 9532d45aa89c
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casebridge.db.types

revision: str = "3c8e1f4a9b27"
down_revision: str | None = "9532d45aa89c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "connections",
        sa.Column("history_before", casebridge.db.types.UTCDateTime(timezone=True), nullable=True),
    )
    # A connection made before this column: its history ends when it connected (our clock).
    op.execute(sa.text("UPDATE connections SET history_before = connected_at WHERE connected_at IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("history_before")
