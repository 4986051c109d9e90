"""SEP-2 federation names: name*home_domain routes to a customer by an id memo.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "federation_names",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("memo", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_federation_names_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_federation_names")),
        sa.UniqueConstraint("memo", name=op.f("uq_federation_names_memo")),
    )
    op.create_index(
        op.f("ix_federation_names_customer_id"), "federation_names", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_federation_names_customer_id"), table_name="federation_names")
    op.drop_table("federation_names")
