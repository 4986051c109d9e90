"""SEP-3 requests we send to other institutions before paying their customers, and the
institutions our customers allowed to receive their data.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compliance_outgoing",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("receiver", sa.String(length=256), nullable=False),
        sa.Column("auth_server", sa.String(length=512), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("request_key", sa.String(length=128), nullable=True),
        sa.Column("destination", sa.String(length=56), nullable=False),
        sa.Column("memo", sa.String(length=64), nullable=False),
        sa.Column("asset_code", sa.String(length=12), nullable=False),
        sa.Column("asset_issuer", sa.String(length=56), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sig", sa.String(length=128), nullable=False),
        sa.Column("data_key_id", sa.String(length=16), nullable=False),
        sa.Column("data_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("dest_info_key_id", sa.String(length=16), nullable=True),
        sa.Column("dest_info_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_outgoing")),
        sa.UniqueConstraint("nonce", name=op.f("uq_compliance_outgoing_nonce")),
        sa.UniqueConstraint("request_key", name=op.f("uq_compliance_outgoing_request_key")),
    )
    op.create_index(
        op.f("ix_compliance_outgoing_status"), "compliance_outgoing", ["status"], unique=False
    )
    op.create_table(
        "compliance_consents",
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_compliance_consents_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "domain", name=op.f("pk_compliance_consents")),
    )


def downgrade() -> None:
    op.drop_table("compliance_consents")
    op.drop_index(op.f("ix_compliance_outgoing_status"), table_name="compliance_outgoing")
    op.drop_table("compliance_outgoing")
