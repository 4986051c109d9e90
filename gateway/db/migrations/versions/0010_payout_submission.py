"""Payout submission: lanes (channel accounts, or the distribution account itself) that give
transactions their sequence numbers, the signed transactions stored before they are sent, and
what each payout learned from them.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payout_lanes",
        sa.Column("account_id", sa.String(length=56), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("open_tx", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_payout_lanes")),
        sa.UniqueConstraint("idx", name="uq_payout_lanes_idx"),
    )
    op.create_table(
        "payout_transactions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("lane", sa.String(length=56), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("fee_per_op", sa.BigInteger(), nullable=False),
        sa.Column("operations", sa.Integer(), nullable=False),
        sa.Column("max_time", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_transactions")),
    )
    op.create_index("ix_payout_transactions_due", "payout_transactions", ["status", "next_try_at"])
    op.create_index(
        "ix_disbursement_payments_status", "disbursement_payments", ["disbursement_id", "status"]
    )
    with op.batch_alter_table("payouts") as batch:
        batch.add_column(sa.Column("tx_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("stellar_transaction_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("external_reference", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("fee", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("tries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("reported", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_payouts_tx_id", ["tx_id"])
        batch.create_index("ix_payouts_unreported", ["reported", "status"])
    for table in ("compliance_requests", "compliance_outgoing"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("payout_status", sa.String(length=16), nullable=True))
            batch.add_column(sa.Column("payout_reason", sa.String(length=512), nullable=True))


def downgrade() -> None:
    for table in ("compliance_requests", "compliance_outgoing"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("payout_reason")
            batch.drop_column("payout_status")
    with op.batch_alter_table("payouts") as batch:
        batch.drop_index("ix_payouts_unreported")
        batch.drop_index("ix_payouts_tx_id")
        for name in (
            "reported",
            "tries",
            "fee",
            "external_reference",
            "stellar_transaction_id",
            "tx_id",
        ):
            batch.drop_column(name)
    op.drop_index("ix_disbursement_payments_status", table_name="disbursement_payments")
    op.drop_index("ix_payout_transactions_due", table_name="payout_transactions")
    op.drop_table("payout_transactions")
    op.drop_table("payout_lanes")
