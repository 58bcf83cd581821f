"""the moment a status message's first post began

outbox.status_post_started_at is written just before the first chat.postMessage of an
e-mail's status message. A row that has it but no status_ts may already have its message in
Slack (the worker died in between): the notifier looks the message up by its metadata before
posting again, so no stale "Sending…" message is left behind.

Revision ID: d7a2c9e4f1b6
Revises: c4e1a7b9d2f3
Create Date: 2026-12-05 20:35:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7a2c9e4f1b6"
down_revision: str | None = "c4e1a7b9d2f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_post_started_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("status_post_started_at")
