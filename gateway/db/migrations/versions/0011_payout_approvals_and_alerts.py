"""Approval for every path that pays: direct payouts (one-payment disbursements) and
retries of failed payments; and alerts raised for operators (low balance).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("disbursements") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="bulk")
        )
        batch.add_column(sa.Column("retry_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("retry_approvers", sa.Text(), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=512), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "uq_alerts_open",
        "alerts",
        ["kind", "subject"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_alerts_open", table_name="alerts")
    op.drop_table("alerts")
    with op.batch_alter_table("disbursements") as batch:
        batch.drop_column("retry_approvers")
        batch.drop_column("retry_by")
        batch.drop_column("kind")
