"""SEP-31 transfers with their history and refunds, incoming payments, the watcher cursor, payouts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 16:39:52.179693
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incoming_payments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=56), nullable=False),
        sa.Column("transaction_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=56), nullable=False),
        sa.Column("asset_code", sa.String(length=12), nullable=True),
        sa.Column("asset_issuer", sa.String(length=56), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("memo_type", sa.String(length=8), nullable=True),
        sa.Column("memo", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transfer_id", sa.String(length=36), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=256), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incoming_payments")),
    )
    op.create_index(
        op.f("ix_incoming_payments_outcome"), "incoming_payments", ["outcome"], unique=False
    )
    op.create_index(
        op.f("ix_incoming_payments_transfer_id"), "incoming_payments", ["transfer_id"], unique=False
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("asset_code", sa.String(length=12), nullable=False),
        sa.Column("asset_issuer", sa.String(length=56), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("destination", sa.String(length=69), nullable=True),
        sa.Column("memo_type", sa.String(length=8), nullable=True),
        sa.Column("memo", sa.String(length=64), nullable=True),
        sa.Column("rail", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("source", "source_id", "purpose", name="uq_payouts_source"),
    )
    op.create_index("ix_payouts_status", "payouts", ["status"], unique=False)
    op.create_table(
        "transfer_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("from_status", sa.String(length=40), nullable=True),
        sa.Column("to_status", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_events")),
    )
    op.create_index(
        op.f("ix_transfer_events_transfer_id"), "transfer_events", ["transfer_id"], unique=False
    )
    op.create_table(
        "transfer_refunds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_refunds")),
    )
    op.create_index(
        op.f("ix_transfer_refunds_transfer_id"), "transfer_refunds", ["transfer_id"], unique=False
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("partner_account", sa.String(length=56), nullable=False),
        sa.Column("client_domain", sa.String(length=255), nullable=True),
        sa.Column("asset_code", sa.String(length=12), nullable=False),
        sa.Column("asset_issuer", sa.String(length=56), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("amount_in", sa.BigInteger(), nullable=False),
        sa.Column("amount_fee", sa.BigInteger(), nullable=False),
        sa.Column("amount_out", sa.BigInteger(), nullable=False),
        sa.Column("amount_received", sa.BigInteger(), nullable=True),
        sa.Column("funding_method", sa.String(length=64), nullable=False),
        sa.Column("sender_id", sa.String(length=36), nullable=True),
        sa.Column("receiver_id", sa.String(length=36), nullable=True),
        sa.Column("stellar_account_id", sa.String(length=56), nullable=False),
        sa.Column("memo_type", sa.String(length=8), nullable=False),
        sa.Column("memo", sa.String(length=64), nullable=False),
        sa.Column("refund_memo_type", sa.String(length=8), nullable=True),
        sa.Column("refund_memo", sa.String(length=64), nullable=True),
        sa.Column("sender_account", sa.String(length=56), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("status_message", sa.String(length=512), nullable=True),
        sa.Column("hold_reason", sa.String(length=512), nullable=True),
        sa.Column("stellar_transaction_id", sa.String(length=64), nullable=True),
        sa.Column("external_transaction_id", sa.String(length=128), nullable=True),
        sa.Column("required_info_message", sa.String(length=512), nullable=True),
        sa.Column("required_info_updates", sa.Text(), nullable=True),
        sa.Column("callback_url", sa.String(length=2048), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("partner_account", "idempotency_key", name="uq_transfers_idempotency"),
        sa.UniqueConstraint("stellar_account_id", "memo", name="uq_transfers_memo"),
    )
    op.create_index(
        op.f("ix_transfers_partner_account"), "transfers", ["partner_account"], unique=False
    )
    op.create_index(
        "ix_transfers_status_started", "transfers", ["status", "started_at"], unique=False
    )
    op.create_table(
        "watcher_cursors",
        sa.Column("account", sa.String(length=56), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=False),
        sa.Column("last_payment_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("caught_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_watcher_cursors")),
    )


def downgrade() -> None:
    op.drop_table("watcher_cursors")
    op.drop_index("ix_transfers_status_started", table_name="transfers")
    op.drop_index(op.f("ix_transfers_partner_account"), table_name="transfers")
    op.drop_table("transfers")
    op.drop_index(op.f("ix_transfer_refunds_transfer_id"), table_name="transfer_refunds")
    op.drop_table("transfer_refunds")
    op.drop_index(op.f("ix_transfer_events_transfer_id"), table_name="transfer_events")
    op.drop_table("transfer_events")
    op.drop_index("ix_payouts_status", table_name="payouts")
    op.drop_table("payouts")
    op.drop_index(op.f("ix_incoming_payments_transfer_id"), table_name="incoming_payments")
    op.drop_index(op.f("ix_incoming_payments_outcome"), table_name="incoming_payments")
    op.drop_table("incoming_payments")
