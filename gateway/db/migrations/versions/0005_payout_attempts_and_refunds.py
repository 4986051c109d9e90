"""Payout attempts (a failed or canceled payout can be queued again as a new attempt), room
for muxed payers, sealed PATCH values, and refunds of single incoming payments.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payouts") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch.drop_constraint("uq_payouts_source", type_="unique")
        batch.create_unique_constraint(
            "uq_payouts_source", ["source", "source_id", "purpose", "attempt"]
        )
    with op.batch_alter_table("transfers") as batch:
        batch.alter_column(
            "sender_account", type_=sa.String(69), existing_type=sa.String(56), nullable=True
        )
        batch.add_column(sa.Column("info_key_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("info_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("incoming_payments") as batch:
        batch.alter_column(
            "source", type_=sa.String(69), existing_type=sa.String(56), nullable=False
        )
        batch.add_column(sa.Column("resolution", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incoming_payments") as batch:
        batch.drop_column("resolution")
        batch.alter_column(
            "source", type_=sa.String(56), existing_type=sa.String(69), nullable=False
        )
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("info_sealed")
        batch.drop_column("info_key_id")
        batch.alter_column(
            "sender_account", type_=sa.String(56), existing_type=sa.String(69), nullable=True
        )
    with op.batch_alter_table("payouts") as batch:
        batch.drop_constraint("uq_payouts_source", type_="unique")
        batch.create_unique_constraint("uq_payouts_source", ["source", "source_id", "purpose"])
        batch.drop_column("attempt")
