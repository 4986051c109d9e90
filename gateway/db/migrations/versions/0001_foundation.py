"""Foundation: SEP-10 used challenges.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sep10_used_challenges",
        sa.Column("tx_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", name=op.f("pk_sep10_used_challenges")),
    )
    op.create_index(
        op.f("ix_sep10_used_challenges_expires_at"), "sep10_used_challenges", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sep10_used_challenges_expires_at"), "sep10_used_challenges")
    op.drop_table("sep10_used_challenges")
