"""outbox: the e-mail a queued forward passes on

A forward is sent through the outbox like a send or a reply; `forward_message_id` names the
Bitrix24 e-mail it forwards (`mail.message.forward`'s forwardMessageId), NULL for other kinds.

Revision ID: 4e8a1c2f6b3d
Revises: 9c4d2e7a1b58
Create Date: 2026-12-05 19:55:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4e8a1c2f6b3d"
down_revision: str | None = "9c4d2e7a1b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("forward_message_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("forward_message_id")
