"""Bulk disbursements, their payments (external payment ids unique across all of them) and
the history of both.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disbursements",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("uploaded_by", sa.String(length=128), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("approvers", sa.Text(), nullable=False),
        sa.Column("payments", sa.Integer(), nullable=False),
        sa.Column("total", sa.Text(), nullable=False),
        sa.Column("original", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disbursements")),
    )
    op.create_index(op.f("ix_disbursements_status"), "disbursements", ["status"], unique=False)
    op.create_table(
        "disbursement_payments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("disbursement_id", sa.String(length=36), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("receiver_reference", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("asset_code", sa.String(length=12), nullable=False),
        sa.Column("destination", sa.String(length=256), nullable=False),
        sa.Column("memo_type", sa.String(length=8), nullable=True),
        sa.Column("memo", sa.String(length=64), nullable=True),
        sa.Column("pay_to", sa.String(length=69), nullable=True),
        sa.Column("pay_memo_type", sa.String(length=8), nullable=True),
        sa.Column("pay_memo", sa.String(length=64), nullable=True),
        sa.Column("external_payment_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure", sa.String(length=512), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disbursement_payments")),
        sa.UniqueConstraint(
            "external_payment_id", name=op.f("uq_disbursement_payments_external_payment_id")
        ),
    )
    op.create_index(
        op.f("ix_disbursement_payments_disbursement_id"),
        "disbursement_payments",
        ["disbursement_id"],
        unique=False,
    )

    op.create_table(
        "disbursement_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("disbursement_id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disbursement_events")),
    )
    op.create_index(
        op.f("ix_disbursement_events_disbursement_id"),
        "disbursement_events",
        ["disbursement_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_disbursement_events_disbursement_id"), table_name="disbursement_events")
    op.drop_table("disbursement_events")
    op.drop_index(
        op.f("ix_disbursement_payments_disbursement_id"), table_name="disbursement_payments"
    )
    op.drop_table("disbursement_payments")
    op.drop_index(op.f("ix_disbursements_status"), table_name="disbursements")
    op.drop_table("disbursements")
