"""email cards

Revision ID: 5d2c8a417e90
Revises: be6ce1696c38
Create Date: 2026-11-21 15:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.store.base

revision: str = "5d2c8a417e90"
down_revision: str | None = "be6ce1696c38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_cards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=False),
        sa.Column("b24_message_id", sa.BigInteger(), nullable=False),
        sa.Column("portal_host", sa.String(length=255), nullable=False),
        sa.Column("shared_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_cards")),
        sa.UniqueConstraint(
            "channel_id", "message_ts", name=op.f("uq_email_cards_channel_id_message_ts")
        ),
    )


def downgrade() -> None:
    op.drop_table("email_cards")
