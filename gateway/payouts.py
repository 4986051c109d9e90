"""The contract between what decides money must leave (SEP-31 transfers, SEP-3 authorizations,
bulk disbursements) and the payout engine that sends it.

A source queues a PayoutInstruction inside its own unit of work, so the decision and the
instruction commit together or not at all; one instruction per (source, source id, purpose)
is kept, so a retried decision never queues a second payout. The engine reports each
outcome back to the source's PayoutResultHandler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork

# refund: everything received goes back; excess_refund: only what was paid beyond the amount
# agreed (the rest is paid out). Separate purposes, so each is queued at most once.
Purpose = Literal["payout", "refund", "excess_refund"]


# A payout row's status: ready (queued) -> submitted -> succeeded | failed; a ready row may be
# canceled by its source (only while ready: the engine moves it to submitted under a lock).
READY, SUBMITTED, SUCCEEDED, FAILED, CANCELED = (
    "ready",
    "submitted",
    "succeeded",
    "failed",
    "canceled",
)
LIVE = frozenset({READY, SUBMITTED, SUCCEEDED})  # money is leaving or has left


@dataclass(frozen=True, slots=True)
class PayoutInstruction:
    source: str  # "sep31" | "sep31_payment" | "sep3" | "disbursement"
    source_id: str
    purpose: Purpose
    asset_code: str  # "XLM" with issuer "" for lumens
    asset_issuer: str
    amount_stroops: int
    # A Stellar destination (G... or M...), with an optional memo; or an off-chain rail
    # whose details the rail reads from the customer's KYC at payout time.
    destination: str | None = None
    memo_type: str | None = None
    memo: str | None = None
    rail: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutResult:
    payout_id: str
    source: str
    source_id: str
    purpose: Purpose
    succeeded: bool
    amount_stroops: int
    stellar_transaction_id: str | None = None
    external_reference: str | None = None
    fee_stroops: int = 0
    reason: str | None = None


class PayoutQueue(Protocol):
    async def enqueue(self, uow: UnitOfWork, instruction: PayoutInstruction) -> str:
        """Queue the instruction in ``uow``'s transaction; returns the payout id (the
        existing one when this source has a live payout of this purpose)."""

    async def enqueue_many(
        self,
        uow: UnitOfWork,
        instructions: list[PayoutInstruction],
        latest: Mapping[str, Mapping[str, tuple[str, int]]],
    ) -> None:
        """``enqueue`` for many, in one statement; ``latest`` is payouts.latest() of their
        source ids, read in this transaction."""

    async def cancel(self, uow: UnitOfWork, source: str, source_id: str, purpose: str) -> bool:
        """Cancel a payout that is still only queued; False when one is submitted or done
        (it can no longer be stopped) -- True also when there was none."""


class PayoutResultHandler(Protocol):
    async def payout_settled(self, result: PayoutResult) -> None:
        """Apply a payout's final outcome to its source."""


class DbPayoutQueue:
    """Payout instructions as rows of the payouts table, read by the payout engine."""

    async def enqueue(self, uow: UnitOfWork, instruction: PayoutInstruction) -> str:
        return await uow.payouts.add(instruction, datetime.now(UTC))

    async def enqueue_many(
        self,
        uow: UnitOfWork,
        instructions: list[PayoutInstruction],
        latest: Mapping[str, Mapping[str, tuple[str, int]]],
    ) -> None:
        await uow.payouts.add_many(instructions, latest, datetime.now(UTC))

    async def cancel(self, uow: UnitOfWork, source: str, source_id: str, purpose: str) -> bool:
        return await uow.payouts.cancel(source, source_id, purpose, datetime.now(UTC))
