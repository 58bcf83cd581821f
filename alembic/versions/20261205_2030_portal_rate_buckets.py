"""portal rate buckets shared by every process

One row per Bitrix24 portal: the fill level of its request budget and when it was last
reserved (database epoch seconds). On PostgreSQL every web process and worker paces its calls
against this row (bot/store/rate_limits.py); SQLite deployments keep the in-process buckets and
leave the table empty.

Revision ID: c4e1a7b9d2f3
Revises: 3c9e5a1f7d20
Create Date: 2026-12-05 20:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e1a7b9d2f3"
down_revision: str | None = "3c9e5a1f7d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_rate_buckets",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_portal_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("portal_rate_buckets")
