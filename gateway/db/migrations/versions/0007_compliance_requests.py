"""SEP-3 compliance requests, one per (sending institution, nonce), with sealed data; the
incoming payments they authorized.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compliance_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sender_domain", sa.String(length=253), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("data_digest", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=256), nullable=False),
        sa.Column("fi_key", sa.String(length=56), nullable=False),
        sa.Column("memo", sa.String(length=64), nullable=False),
        sa.Column("tx_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("destination", sa.String(length=69), nullable=False),
        sa.Column("asset_code", sa.String(length=12), nullable=False),
        sa.Column("asset_issuer", sa.String(length=56), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("need_info", sa.Boolean(), nullable=False),
        sa.Column("tx_status", sa.String(length=8), nullable=False),
        sa.Column("info_status", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("public_reason", sa.String(length=256), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("data_key_id", sa.String(length=16), nullable=False),
        sa.Column("data_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_requests")),
        sa.UniqueConstraint("sender_domain", "nonce", name="uq_compliance_requests_nonce"),
    )
    op.create_index(
        op.f("ix_compliance_requests_memo"), "compliance_requests", ["memo"], unique=False
    )
    with op.batch_alter_table("incoming_payments") as batch:
        batch.add_column(sa.Column("compliance_id", sa.String(length=36), nullable=True))
        batch.create_index(
            batch.f("ix_incoming_payments_compliance_id"), ["compliance_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("incoming_payments") as batch:
        batch.drop_index(batch.f("ix_incoming_payments_compliance_id"))
        batch.drop_column("compliance_id")
    op.drop_index(op.f("ix_compliance_requests_memo"), table_name="compliance_requests")
    op.drop_table("compliance_requests")
