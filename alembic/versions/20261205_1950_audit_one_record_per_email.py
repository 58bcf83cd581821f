"""audit: one record per e-mail

A unique index on audit_records.email_id, so the worker's record of an e-mail and the
housekeeping sweep that writes records a crash left out can never both land.

Revision ID: 9c4d2e7a1b58
Revises: 3f8e21c4a7d6
Create Date: 2026-12-05 19:50:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9c4d2e7a1b58"
down_revision: str | None = "3f8e21c4a7d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("uq_audit_records_email_id", ["email_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("uq_audit_records_email_id")
