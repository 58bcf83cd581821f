"""workspace policy and audit

A workspace's e-mail policy (one row per workspace), the append-only audit log of e-mails that
left and policy changes, the queue of audit lines still to be posted in the audit channel, and
e-mails waiting for their sender's confirmation to go outside the allowed domains.

Revision ID: 3f8e21c4a7d6
Revises: 7b1f0c3d9a52
Create Date: 2026-12-05 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.store.base

revision: str = "3f8e21c4a7d6"
down_revision: str | None = "7b1f0c3d9a52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_posts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", bot.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_posts")),
    )
    with op.batch_alter_table("audit_posts", schema=None) as batch_op:
        batch_op.create_index("ix_audit_posts_due", ["due_at"], unique=False)

    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("email_id", sa.String(length=36), nullable=True),
        sa.Column("sender", sa.String(length=400), nullable=True),
        sa.Column("to_addrs", sa.JSON(), nullable=False),
        sa.Column("cc_addrs", sa.JSON(), nullable=False),
        sa.Column("bcc_addrs", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_records_occurred", ["occurred_at"], unique=False)
        batch_op.create_index(
            "ix_audit_records_team_occurred", ["team_id", "occurred_at"], unique=False
        )

    op.create_table(
        "pending_sends",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_sends")),
    )
    with op.batch_alter_table("pending_sends", schema=None) as batch_op:
        batch_op.create_index("ix_pending_sends_created", ["created_at"], unique=False)

    op.create_table(
        "workspace_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("allowed_domains", sa.JSON(), nullable=False),
        sa.Column("blocked_domains", sa.JSON(), nullable=False),
        sa.Column("max_recipients", sa.Integer(), nullable=True),
        sa.Column("hourly_cap", sa.Integer(), nullable=True),
        sa.Column("confirm_outside", sa.Boolean(), nullable=False),
        sa.Column("audit_channel", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("updated_by", sa.String(length=32), nullable=False),
        sa.Column("updated_at", bot.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_policies")),
        sa.UniqueConstraint(
            "enterprise_id", "team_id", name=op.f("uq_workspace_policies_enterprise_id_team_id")
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("pending_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_pending_sends_created")

    op.drop_table("pending_sends")
    op.drop_table("workspace_policies")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_records_team_occurred")
        batch_op.drop_index("ix_audit_records_occurred")

    op.drop_table("audit_records")
    with op.batch_alter_table("audit_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_posts_due")

    op.drop_table("audit_posts")
