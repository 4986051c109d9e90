"""Table definitions (SQLAlchemy Core). Alembic migrations own the schema; these mirror it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from gateway.db.types import UtcDateTime

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

# -- SEP-12 customers ----------------------------------------------------------------------
# Personal data only ever sits in `value` / `content` columns, sealed by gateway.personal_data
# with the key named in `key_id`.

customers = Table(
    "customers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account", String(56), nullable=False),
    Column("memo_type", String(8), nullable=False),  # none | id | text | hash
    Column("memo", String(64), nullable=False),  # "" when memo_type is none
    Column("version", Integer, nullable=False),  # bumped by every change of its data
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("account", "memo_type", "memo", name="uq_customers_identity"),
)

customer_fields = Table(
    "customer_fields",
    metadata,
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(64), primary_key=True),
    Column("key_id", String(16), nullable=True),  # null for files: content is in customer_files
    Column("value", LargeBinary, nullable=True),
    Column("file_id", String(36), nullable=True),
    Column("status", String(24), nullable=False),
    Column("error", String(256), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

customer_files = Table(
    "customer_files",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account", String(56), nullable=False),
    Column("memo_type", String(8), nullable=False),
    Column("memo", String(64), nullable=False),
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True, index=True),  # null once attached
)

customer_type_status = Table(
    "customer_type_status",
    metadata,
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("type", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # last status reported for this type
    Column("decision", String(16), nullable=True),  # ACCEPTED | REJECTED by a reviewer
    Column("decision_version", Integer, nullable=True),  # customers.version it judged
    Column("message", String(512), nullable=True),
    Column("review_version", Integer, nullable=True),  # version sent to the KYC provider
    Column("updated_at", UtcDateTime, nullable=False),
)

customer_verifications = Table(
    "customer_verifications",
    metadata,
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("field", String(64), primary_key=True),
    Column("code_digest", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
)

customer_callbacks = Table(
    "customer_callbacks",
    metadata,
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("url", String(2048), nullable=False),
    Column("type", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# History of every customer status change and deletion; outlives the customer's data.
customer_events = Table(
    "customer_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(36), nullable=False, index=True),
    Column("type", String(64), nullable=True),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", String(512), nullable=True),
    Column("at", UtcDateTime, nullable=False),
)

# -- outbox: messages that must leave after their transaction commits ------------------------

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(36), primary_key=True),  # also the receiver's idempotency key
    Column("kind", String(32), nullable=False),
    Column("subject", String(64), nullable=True),  # e.g. the customer or transfer id
    Column("target", String(2048), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)
