"""Ledger entries and history records: accounts with their signers, trustlines and data,
applied transactions and payment records."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gateway.sandbox.horizon.amounts import INT64_MAX

JSON = dict[str, Any]

AUTH_REQUIRED = 1
AUTH_REVOCABLE = 2
AUTH_IMMUTABLE = 4
AUTH_CLAWBACK_ENABLED = 8
_KNOWN_FLAGS = AUTH_REQUIRED | AUTH_REVOCABLE | AUTH_IMMUTABLE | AUTH_CLAWBACK_ENABLED


@dataclass(slots=True)
class Trustline:
    """One trustline: balance and limit in stroops."""

    code: str
    issuer: str
    balance: int = 0
    limit: int = INT64_MAX
    authorized: bool = True
    last_modified_ledger: int = 0


@dataclass(slots=True)
class LedgerAccount:
    """An account entry. Balances are stroops; ``signers`` maps a signer strkey to its weight."""

    account_id: str
    sequence: int
    balance: int
    master_weight: int = 1
    low_threshold: int = 0
    med_threshold: int = 0
    high_threshold: int = 0
    flags: int = 0
    home_domain: str = ""
    inflation_destination: str | None = None
    signers: dict[str, int] = field(default_factory=dict)
    trustlines: dict[tuple[str, str], Trustline] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    last_modified_ledger: int = 0
    last_modified_time: int = 0
    sequence_ledger: int = 0
    sequence_time: int = 0

    @property
    def subentry_count(self) -> int:
        """Signers, trustlines and data entries: each one raises the minimum balance."""
        return len(self.signers) + len(self.trustlines) + len(self.data)

    def clone(self) -> LedgerAccount:
        """A deep copy safe to mutate while applying a transaction."""
        return replace(
            self,
            signers=dict(self.signers),
            trustlines={key: replace(line) for key, line in self.trustlines.items()},
            data=dict(self.data),
        )


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment-like operation as Horizon lists it, minus links and the joined transaction."""

    id: int
    tx_hash: str
    successful: bool
    participants: tuple[str, ...]
    body: JSON


@dataclass(slots=True)
class AppliedTransaction:
    """A transaction that made it into a ledger, whether its operations succeeded or not."""

    hash: str
    ledger: int
    closed_at: int
    envelope_xdr: str
    result_xdr: str
    successful: bool
    fee_charged: int
    max_fee: int
    source_account: str
    source_muxed: str | None
    sequence: int
    fee_account: str
    fee_account_muxed: str | None
    operation_count: int
    memo_type: str
    memo: str | None
    memo_bytes: str | None
    signatures: list[str]
    preconditions: JSON | None
    result_codes: JSON
    operations: list[JSON]
    inner_hash: str | None = None
    inner_signatures: list[str] | None = None
    inner_max_fee: int | None = None

    def summary(self) -> JSON:
        """The admin snapshot's view: who, what, and how it ended."""
        return {
            "hash": self.hash,
            "inner_hash": self.inner_hash,
            "ledger": self.ledger,
            "successful": self.successful,
            "source_account": self.source_account,
            "fee_account": self.fee_account,
            "sequence": str(self.sequence),
            "fee_charged": str(self.fee_charged),
            "memo_type": self.memo_type,
            "memo": self.memo,
            "result_codes": self.result_codes,
            "operations": self.operations,
        }
