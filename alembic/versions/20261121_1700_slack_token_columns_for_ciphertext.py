"""slack token columns wide enough for encrypted tokens

b24mail stores Slack tokens Fernet-encrypted (bot/slack/oauth.py). slack_sdk's tables give each
token column VARCHAR(200): a rotating token (`xoxe.xoxb-1-…`) or refresh token encrypted is longer
than that, and PostgreSQL would refuse it. The token columns become TEXT.

Revision ID: 7b1f0c3d9a52
Revises: 035a6990f03e
Create Date: 2026-11-21 17:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b1f0c3d9a52"
down_revision: str | None = "035a6990f03e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = {
    "slack_installations": ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token"),
    "slack_bots": ("bot_token", "bot_refresh_token"),
}


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.String(length=200),
                    type_=sa.Text(),
                    existing_nullable=True,
                )


def downgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.Text(),
                    type_=sa.String(length=200),
                    existing_nullable=True,
                )
