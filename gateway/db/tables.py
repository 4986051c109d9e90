"""Table definitions (SQLAlchemy Core). Alembic migrations own the schema; these mirror it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
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


def _history(status_length: int) -> list[Column[object]]:
    """The columns every history table has: the move, who made it, why and when."""
    return [
        Column("from_status", String(status_length), nullable=True),
        Column("to_status", String(status_length), nullable=False),
        Column("actor", String(128), nullable=False),
        Column("reason", String(512), nullable=True),
        Column("at", UtcDateTime, nullable=False),
    ]


# SEP-10 challenges that already produced a token: one token per challenge.
sep10_used_challenges = Table(
    "sep10_used_challenges",
    metadata,
    Column("tx_hash", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# -- SEP-2 federation ----------------------------------------------------------------------
# name*home_domain resolves to the federation account with an id memo that routes to one
# customer. Names are kept lower-cased: an address is the same whatever its case.
federation_names = Table(
    "federation_names",
    metadata,
    Column("name", String(64), primary_key=True),
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("memo", String(20), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# -- SEP-3 compliance requests -------------------------------------------------------------
# One row per (sending institution's domain, attachment nonce): a re-post of the same request
# reads its decision here. `data` (it holds the sender's personal data) is sealed.
compliance_requests = Table(
    "compliance_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sender_domain", String(253), nullable=False),
    Column("nonce", String(128), nullable=False),
    Column("data_digest", String(64), nullable=False),  # SHA-256 of data, hex
    Column("sender", String(256), nullable=False),
    Column("fi_key", String(56), nullable=False),  # the SIGNING_KEY that signed it
    Column("memo", String(64), nullable=False, index=True),  # hash memo, hex
    Column("tx_hash", String(64), nullable=False),
    Column("customer_id", String(36), nullable=True),
    Column("destination", String(69), nullable=False),
    Column("asset_code", String(12), nullable=False),
    Column("asset_issuer", String(56), nullable=False),
    Column("amount", BigInteger, nullable=False),  # stroops
    Column("need_info", Boolean, nullable=False),
    Column("tx_status", String(8), nullable=False),  # ok | denied | pending
    Column("info_status", String(8), nullable=False),
    Column("reason", String(512), nullable=True),  # for operators
    Column("public_reason", String(256), nullable=True),  # what the sender is told
    Column("decided_by", String(128), nullable=True),
    Column("payout_status", String(16), nullable=True),  # paid | failed, once the engine knows
    Column("payout_reason", String(512), nullable=True),
    Column("data_key_id", String(16), nullable=False),
    Column("data_sealed", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("sender_domain", "nonce", name="uq_compliance_requests_nonce"),
)

# Institutions a customer has allowed to receive their data (SEP-3 need_info), as an
# operator recorded it on the customer's instruction.
compliance_consents = Table(
    "compliance_consents",
    metadata,
    Column(
        "customer_id",
        String(36),
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("domain", String(253), primary_key=True),
    Column("recorded_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# SEP-3 requests we send before paying another institution's customer. `data` (our
# customer's personal data) and the recipient's data they may return are sealed.
compliance_outgoing = Table(
    "compliance_outgoing",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("receiver", String(256), nullable=False),  # their federation address
    Column("auth_server", String(512), nullable=False),
    Column("nonce", String(64), nullable=False, unique=True),
    # The operator's key for this payment: sending again with it returns this request.
    Column("request_key", String(128), nullable=True, unique=True),
    Column("destination", String(56), nullable=False),
    Column("memo", String(64), nullable=False),  # hash memo of the payment, hex
    Column("asset_code", String(12), nullable=False),
    Column("asset_issuer", String(56), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("customer_id", String(36), nullable=True),  # our customer who pays
    # sending (not answered yet) | pending | ok | denied | error
    Column("status", String(8), nullable=False, index=True),
    Column("reason", String(512), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("payout_status", String(16), nullable=True),  # paid | failed, once the engine knows
    Column("payout_reason", String(512), nullable=True),
    Column("sig", String(128), nullable=False),
    Column("data_key_id", String(16), nullable=False),
    Column("data_sealed", LargeBinary, nullable=False),
    Column("dest_info_key_id", String(16), nullable=True),
    Column("dest_info_sealed", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# -- Bulk disbursements --------------------------------------------------------------------
disbursements = Table(
    "disbursements",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    # draft | ready | started | paused | completed | canceled
    Column("status", String(16), nullable=False, index=True),
    Column("uploaded_by", String(128), nullable=False),
    Column("approvals_needed", Integer, nullable=False),
    Column("approvers", Text, nullable=False),  # JSON list
    Column("payments", Integer, nullable=False),
    Column("total", Text, nullable=False),  # JSON {asset code: stroops}
    Column("original", LargeBinary, nullable=False),  # the file as uploaded
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # bulk (an uploaded file) | direct (one payout asked for by an operator)
    Column("kind", String(8), nullable=False, server_default="bulk"),
    # A retry of its failed payments, asked for and awaiting approval (null: none).
    Column("retry_by", String(128), nullable=True),
    Column("retry_approvers", Text, nullable=True),  # JSON list
)

disbursement_payments = Table(
    "disbursement_payments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("disbursement_id", String(36), nullable=False, index=True),
    Column("line", Integer, nullable=False),
    Column("receiver_reference", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("asset_code", String(12), nullable=False),
    Column("destination", String(256), nullable=False),  # as in the file
    Column("memo_type", String(8), nullable=True),
    Column("memo", String(64), nullable=True),
    # Where it is paid: the destination itself, or what its federation address resolved to
    # when the disbursement became ready (null until then).
    Column("pay_to", String(69), nullable=True),
    Column("pay_memo_type", String(8), nullable=True),
    Column("pay_memo", String(64), nullable=True),
    # unique across every disbursement ever: a re-upload never pays twice
    Column("external_payment_id", String(64), nullable=True, unique=True),
    # draft | ready | pending | success | failed | canceled
    Column("status", String(16), nullable=False),
    Column("failure", String(512), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_disbursement_payments_status", "disbursement_id", "status"),
)

# Every change of a disbursement or of one of its payments: who, when, why.
disbursement_events = Table(
    "disbursement_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("disbursement_id", String(36), nullable=False, index=True),
    Column("payment_id", String(36), nullable=True),
    *_history(16),
)

# Conditions operators must see (an asset running low in the distribution account): one
# open row per (kind, subject) until the condition clears.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("message", String(512), nullable=False),
    Column("raised_at", UtcDateTime, nullable=False),
    Column("cleared_at", UtcDateTime, nullable=True),
    Index(
        "uq_alerts_open",
        "kind",
        "subject",
        unique=True,
        sqlite_where=text("cleared_at IS NULL"),
        postgresql_where=text("cleared_at IS NULL"),
    ),
)

# -- operations surface ----------------------------------------------------------------------

# Operators of the gateway: one API key each (only its SHA-256 is kept), with a role.
operators = Table(
    "operators",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),  # owner | approver | initiator | viewer
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),  # shown in lists to tell keys apart
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
)

# Every operator action and every read of personal data. Append-only: the database refuses
# UPDATE and DELETE (triggers made by migration 0012).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", String(64), nullable=True),
    Column("before", Text, nullable=True),  # JSON, never personal data
    Column("after", Text, nullable=True),  # JSON, never personal data
    Column("request_id", String(64), nullable=True),
    Index("ix_audit_log_subject", "subject_type", "subject_id"),
    Index("ix_audit_log_actor", "actor"),
)

# Domain events (transfer.*, payout.*, disbursement.*, compliance.*,
# customer.status_changed), written in the transaction of the change they announce and
# fanned out to the webhook endpoints that subscribe to them.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("data", Text, nullable=False),  # JSON, never personal data
    Column("at", UtcDateTime, nullable=False),
    Column("fanned_out", Boolean, nullable=False, server_default=false()),
    Index("ix_events_fan_out", "fanned_out", "id"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("events", Text, nullable=False),  # JSON list of patterns: "transfer.*", ...
    # The signing secret, sealed by gateway.personal_data.Vault.
    Column("secret_key_id", String(32), nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
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
    # Codes sent for this field since window_start: issuing codes is rate limited.
    Column("sent", Integer, nullable=False, server_default="1"),
    Column("window_start", UtcDateTime, nullable=True),
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
    *_history(16),
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
    # Who holds the message now: outcomes are recorded only by the lease's holder.
    Column("lease", String(36), nullable=True),
    Column("last_error", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

# -- SEP-31 transfers ------------------------------------------------------------------------
# Amounts are integer stroops (10^-7 of a unit): exact on both databases.

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("partner_account", String(56), nullable=False, index=True),
    Column("client_domain", String(255), nullable=True),
    Column("asset_code", String(12), nullable=False),
    Column("asset_issuer", String(56), nullable=False),
    Column("decimals", Integer, nullable=False),
    Column("amount_in", BigInteger, nullable=False),
    Column("amount_fee", BigInteger, nullable=False),
    Column("amount_out", BigInteger, nullable=False),
    Column("amount_received", BigInteger, nullable=True),
    Column("funding_method", String(64), nullable=False),
    Column("sender_id", String(36), nullable=True),
    Column("receiver_id", String(36), nullable=True),
    Column("stellar_account_id", String(56), nullable=False),
    Column("memo_type", String(8), nullable=False),
    Column("memo", String(64), nullable=False),
    Column("refund_memo_type", String(8), nullable=True),
    Column("refund_memo", String(64), nullable=True),
    Column("sender_account", String(69), nullable=True),  # G... or M... (refunds go here)
    Column("status", String(40), nullable=False),
    Column("status_message", String(512), nullable=True),
    Column("hold_reason", String(512), nullable=True),
    Column("stellar_transaction_id", String(64), nullable=True),
    Column("external_transaction_id", String(128), nullable=True),
    Column("required_info_message", String(512), nullable=True),
    Column("required_info_updates", Text, nullable=True),  # JSON
    Column("callback_url", String(2048), nullable=True),
    Column("idempotency_key", String(128), nullable=True),
    Column("request_digest", String(64), nullable=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    # Values the sender sent with the deprecated PATCH, sealed like SEP-12 data.
    Column("info_key_id", String(16), nullable=True),
    Column("info_sealed", LargeBinary, nullable=True),
    UniqueConstraint("stellar_account_id", "memo", name="uq_transfers_memo"),
    UniqueConstraint("partner_account", "idempotency_key", name="uq_transfers_idempotency"),
    Index("ix_transfers_status_started", "status", "started_at"),
)

transfer_events = Table(
    "transfer_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transfer_id", String(36), nullable=False, index=True),
    *_history(40),
)

transfer_refunds = Table(
    "transfer_refunds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transfer_id", String(36), nullable=False, index=True),
    Column("payment_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# Every payment the watcher saw to a receiving account, matched or not: none is dropped.
incoming_payments = Table(
    "incoming_payments",
    metadata,
    Column("id", String(32), primary_key=True),  # Horizon's operation id
    Column("account", String(56), nullable=False),
    Column("transaction_hash", String(64), nullable=False),
    Column("source", String(69), nullable=False),  # the payer, muxed when it paid as M...
    Column("asset_code", String(12), nullable=True),  # null for XLM
    Column("asset_issuer", String(56), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("memo_type", String(8), nullable=True),
    Column("memo", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("transfer_id", String(36), nullable=True, index=True),
    Column("compliance_id", String(36), nullable=True, index=True),  # a SEP-3 request's
    # matched | short | over | unknown_memo | wrong_asset | duplicate | late | unauthorized
    Column("outcome", String(16), nullable=False, index=True),
    Column("note", String(256), nullable=True),
    Column("seen_at", UtcDateTime, nullable=False),
    # For payments that matched no transfer: refund_queued | refunded | refund_failed
    Column("resolution", String(16), nullable=True),
)

watcher_cursors = Table(
    "watcher_cursors",
    metadata,
    Column("account", String(56), primary_key=True),
    Column("cursor", String(64), nullable=False),
    Column("last_payment_at", UtcDateTime, nullable=True),  # newest payment read
    Column("caught_up_at", UtcDateTime, nullable=True),  # last time nothing was left to read
    Column("updated_at", UtcDateTime, nullable=False),
)

# -- payouts: money leaving; sources queue them, the payout engine sends them ----------------

payouts = Table(
    "payouts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source", String(16), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),  # payout | refund | excess_refund
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("asset_code", String(12), nullable=False),
    Column("asset_issuer", String(56), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("destination", String(69), nullable=True),  # G... or M...
    Column("memo_type", String(8), nullable=True),
    Column("memo", String(64), nullable=True),
    Column("rail", String(64), nullable=True),
    Column("customer_id", String(36), nullable=True),
    Column("status", String(16), nullable=False),  # ready submitted succeeded failed canceled
    Column("reason", String(512), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The stored transaction carrying it while submitted; what it cost and where it landed.
    Column("tx_id", String(36), nullable=True),
    Column("stellar_transaction_id", String(64), nullable=True),
    Column("external_reference", String(128), nullable=True),  # an off-chain rail's reference
    Column("fee", BigInteger, nullable=True),
    Column("tries", Integer, nullable=False, server_default="0"),  # times sent back to ready
    # Whether its final outcome has reached its source (succeeded/failed only).
    Column("reported", Boolean, nullable=False, server_default=false()),
    # One live payout per purpose; a failed or canceled one may be followed by a new attempt.
    UniqueConstraint("source", "source_id", "purpose", "attempt", name="uq_payouts_source"),
    Index("ix_payouts_status", "status"),
    Index("ix_payouts_tx_id", "tx_id"),
    Index("ix_payouts_unreported", "reported", "status"),
)

# Where a payout transaction takes its sequence number from: a channel account (idx: its
# derivation index) or, when there are none, the distribution account itself (idx NULL).
# A lane carries one open transaction at a time.
payout_lanes = Table(
    "payout_lanes",
    metadata,
    Column("account_id", String(56), primary_key=True),
    Column("idx", Integer, nullable=True),
    Column("sequence", BigInteger, nullable=False),  # the last sequence number it consumed
    Column("open_tx", String(36), nullable=True),
    Column("status", String(16), nullable=False),  # active | halted | retired
    Column("note", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("idx", name="uq_payout_lanes_idx"),
)

# A signed transaction, stored with its payouts before it is sent. Every envelope signed for
# it (a higher fee) keeps its lane and sequence number, so at most one of them can apply.
payout_transactions = Table(
    "payout_transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("lane", String(56), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),  # of the newest envelope
    Column("hashes", Text, nullable=False),  # JSON list of every envelope's hash
    Column("envelope", Text, nullable=False),
    Column("fee_per_op", BigInteger, nullable=False),
    Column("operations", Integer, nullable=False),
    Column("max_time", BigInteger, nullable=False),  # its time bound (unix seconds)
    Column("status", String(16), nullable=False),  # open | included | failed | dead
    Column("submissions", Integer, nullable=False),
    Column("next_try_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("last_error", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_payout_transactions_due", "status", "next_try_at"),
)
