"""Outbox leases (an outcome is recorded only by the worker holding the message) and a
rate limit on verification codes.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease", sa.String(36), nullable=True))
    with op.batch_alter_table("customer_verifications") as batch:
        batch.add_column(sa.Column("sent", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("window_start", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_verifications") as batch:
        batch.drop_column("window_start")
        batch.drop_column("sent")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lease")
