"""Table definitions (SQLAlchemy Core). Alembic migrations own the schema; these mirror it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SEP-10 challenges that already produced a token: one token per challenge.
sep10_used_challenges = Table(
    "sep10_used_challenges",
    metadata,
    Column("tx_hash", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)
