"""mail notifications: subscriptions, the e-mails each has seen, per-portal poll pacing

Revision ID: e0a109006cdd
Revises: 4e8a1c2f6b3d
Create Date: 2026-12-05 20:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.store.base

revision: str = "e0a109006cdd"
down_revision: str | None = "4e8a1c2f6b3d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_poll_pacing",
        sa.Column("portal_host", sa.String(length=255), nullable=False),
        sa.Column("next_slot_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal_host", name=op.f("pk_mail_poll_pacing")),
    )
    op.create_table(
        "mail_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=False),
        sa.Column("portal_host", sa.String(length=255), nullable=False),
        sa.Column("search", sa.String(length=200), nullable=True),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("dm_channel_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.Column("pause_detail", sa.String(length=255), nullable=True),
        sa.Column("owner_told", sa.Boolean(), nullable=False),
        sa.Column("pauses", sa.Integer(), nullable=False),
        sa.Column("baseline_done", sa.Boolean(), nullable=False),
        sa.Column("more_count", sa.Integer(), nullable=False),
        sa.Column("more_token", sa.String(length=36), nullable=True),
        sa.Column("more_attempts", sa.Integer(), nullable=False),
        sa.Column("more_since", bot.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_due_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_checked_at", bot.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", bot.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["links.id"],
            name=op.f("fk_mail_subscriptions_link_id_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_subscriptions")),
        sa.UniqueConstraint(
            "enterprise_id",
            "team_id",
            "slack_user_id",
            name=op.f("uq_mail_subscriptions_enterprise_id_team_id_slack_user_id"),
        ),
    )
    with op.batch_alter_table("mail_subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_mail_subscriptions_due", ["state", "next_due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mail_subscriptions_link_id"), ["link_id"], unique=False
        )
        batch_op.create_index("ix_mail_subscriptions_portal", ["portal_host"], unique=False)

    op.create_table(
        "mail_seen",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("b24_message_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=36), nullable=True),
        sa.Column("card", sa.JSON(), nullable=True),
        sa.Column("post_attempts", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.Column("first_seen_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("message_date", bot.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("posted_at", bot.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["mail_subscriptions.id"],
            name=op.f("fk_mail_seen_subscription_id_mail_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_seen")),
        sa.UniqueConstraint(
            "subscription_id",
            "b24_message_id",
            name=op.f("uq_mail_seen_subscription_id_b24_message_id"),
        ),
    )
    with op.batch_alter_table("mail_seen", schema=None) as batch_op:
        batch_op.create_index("ix_mail_seen_first_seen", ["first_seen_at"], unique=False)
        batch_op.create_index("ix_mail_seen_state", ["subscription_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail_seen", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_seen_state")
        batch_op.drop_index("ix_mail_seen_first_seen")

    op.drop_table("mail_seen")
    with op.batch_alter_table("mail_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_subscriptions_portal")
        batch_op.drop_index(batch_op.f("ix_mail_subscriptions_link_id"))
        batch_op.drop_index("ix_mail_subscriptions_due")

    op.drop_table("mail_subscriptions")
    op.drop_table("mail_poll_pacing")
