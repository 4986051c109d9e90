"""SEP-31 transfers: the state machine, fees and amounts. Pure: no I/O.

    (new) -> pending_sender -> pending_receiver -> pending_external | pending_stellar -> completed
    pending_sender -> pending_stellar -> pending_receiver    (payment seen before it settles)
    pending_receiver <-> pending_customer_info_update | pending_transaction_info_update
    pending_sender -> expired;  any non-final -> error;  received funds -> refunded

Only the methods below change a transfer's status, and each refuses a move the machine does
not allow (IllegalTransition), so no status is ever overwritten silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from gateway.history import Event, IllegalTransition
from gateway.types import STROOPS_PER_UNIT


class TransferStatus(StrEnum):
    PENDING_SENDER = "pending_sender"
    PENDING_STELLAR = "pending_stellar"
    PENDING_RECEIVER = "pending_receiver"
    PENDING_EXTERNAL = "pending_external"
    PENDING_CUSTOMER_INFO_UPDATE = "pending_customer_info_update"
    PENDING_TRANSACTION_INFO_UPDATE = "pending_transaction_info_update"
    COMPLETED = "completed"
    REFUNDED = "refunded"
    EXPIRED = "expired"
    ERROR = "error"


S = TransferStatus
FINAL = frozenset({S.COMPLETED, S.REFUNDED, S.EXPIRED, S.ERROR})
ALLOWED: dict[TransferStatus, frozenset[TransferStatus]] = {
    S.PENDING_SENDER: frozenset({S.PENDING_STELLAR, S.PENDING_RECEIVER, S.EXPIRED, S.ERROR}),
    S.PENDING_STELLAR: frozenset({S.PENDING_RECEIVER, S.COMPLETED, S.ERROR, S.REFUNDED}),
    S.PENDING_RECEIVER: frozenset(
        {
            S.PENDING_EXTERNAL,
            S.PENDING_STELLAR,
            S.PENDING_CUSTOMER_INFO_UPDATE,
            S.PENDING_TRANSACTION_INFO_UPDATE,
            S.COMPLETED,
            S.REFUNDED,
            S.ERROR,
        }
    ),
    S.PENDING_EXTERNAL: frozenset({S.COMPLETED, S.PENDING_RECEIVER, S.REFUNDED, S.ERROR}),
    S.PENDING_CUSTOMER_INFO_UPDATE: frozenset({S.PENDING_RECEIVER, S.REFUNDED, S.ERROR}),
    S.PENDING_TRANSACTION_INFO_UPDATE: frozenset({S.PENDING_RECEIVER, S.REFUNDED, S.ERROR}),
    S.COMPLETED: frozenset(),
    S.REFUNDED: frozenset(),
    S.EXPIRED: frozenset(),
    S.ERROR: frozenset({S.REFUNDED}),  # an operator may still send the money back
}


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the payment watcher is in an account's payments."""

    cursor: str
    last_payment_at: datetime | None
    caught_up_at: datetime | None


@dataclass(frozen=True, slots=True)
class Refund:
    payment_id: str  # Stellar transaction hash of the refund
    amount_stroops: int
    fee_stroops: int


@dataclass(frozen=True)
class Transfer:
    id: str
    partner_account: str
    asset_code: str
    asset_issuer: str
    decimals: int
    amount_in: int  # stroops the sender is to pay
    amount_fee: int
    amount_out: int
    funding_method: str
    sender_id: str | None
    receiver_id: str | None
    stellar_account_id: str
    memo_type: str
    memo: str
    status: TransferStatus
    started_at: datetime
    updated_at: datetime
    client_domain: str | None = None
    refund_memo_type: str | None = None
    refund_memo: str | None = None
    amount_received: int | None = None
    sender_account: str | None = None  # who paid (refunds go back there)
    stellar_transaction_id: str | None = None
    external_transaction_id: str | None = None
    completed_at: datetime | None = None
    status_message: str | None = None
    hold_reason: str | None = None
    required_info_message: str | None = None
    required_info_updates: dict[str, Any] | None = None
    callback_url: str | None = None
    refunds: tuple[Refund, ...] = ()
    events: tuple[Event, ...] = field(default=(), compare=False)  # appended, not loaded

    # -- the only ways a status changes -----------------------------------------------------

    def _move(
        self, to: TransferStatus, actor: str, reason: str | None, at: datetime, **changes: Any
    ) -> Transfer:
        if to not in ALLOWED[self.status]:
            raise IllegalTransition(self.status, to)
        event = Event(self.status, to, actor[:128], clip(reason), at)
        return replace(self, status=to, updated_at=at, events=(*self.events, event), **changes)

    def _note(self, actor: str, reason: str, at: datetime, **changes: Any) -> Transfer:
        """A change within the status, kept in the history (``updated_at`` stays the time
        the status was reached, as SEP-31 defines it)."""
        event = Event(self.status, self.status, actor[:128], clip(reason), at)
        return replace(self, events=(*self.events, event), **changes)

    def payment_seen(self, actor: str, at: datetime) -> Transfer:
        return self._move(S.PENDING_STELLAR, actor, "payment seen, not yet settled", at)

    def funds_received(
        self,
        *,
        amount: int,
        sender_account: str,
        transaction_id: str,
        actor: str,
        at: datetime,
        hold: str | None = None,
        note: str | None = None,
        fee: int | None = None,
    ) -> Transfer:
        """The sender's payment arrived. With ``hold`` it waits for an operator instead of
        going to payout; ``note`` tells the sender what happens next (a refund, say). A
        short payment is paid out, if at all, on what arrived, with ``fee`` (the fee on
        that amount): never more than was received."""
        changes: dict[str, Any] = {}
        if amount < self.amount_in:
            fee = min(self.amount_fee if fee is None else fee, amount)
            changes = {"amount_fee": fee, "amount_out": amount - fee}
        return self._move(
            S.PENDING_RECEIVER,
            actor,
            hold or note or "payment received",
            at,
            amount_received=amount,
            sender_account=sender_account,
            stellar_transaction_id=transaction_id,
            hold_reason=clip(hold),
            status_message=clip(hold or note),
            **changes,
        )

    def release_hold(self, actor: str, reason: str, at: datetime) -> Transfer:
        """An operator lets a held payment go to payout."""
        if self.status != S.PENDING_RECEIVER or self.hold_reason is None:
            raise IllegalTransition(self.status, "released")
        return self._note(actor, reason, at, hold_reason=None, status_message=None)

    def held(self, reason: str, actor: str, at: datetime) -> Transfer:
        """Received funds wait for an operator (the payout cannot be made as it stands)."""
        if self.status != S.PENDING_RECEIVER or self.amount_received is None:
            raise IllegalTransition(self.status, "held")
        return self._note(actor, reason, at, hold_reason=clip(reason), status_message=clip(reason))

    def refund_queued(self, reason: str, actor: str, at: datetime) -> Transfer:
        """The money is on its way back to the sender; no hold is left to release."""
        if S.REFUNDED not in ALLOWED[self.status] or self.amount_received is None:
            raise IllegalTransition(self.status, "refunded")
        message = f"the payment is being refunded: {reason}"
        return self._note(actor, message, at, hold_reason=None, status_message=clip(message))

    def noted(self, message: str, actor: str, at: datetime) -> Transfer:
        """A message for the sender and operators, without a change of status."""
        return self._note(actor, message, at, status_message=clip(message))

    @property
    def excess_stroops(self) -> int:
        """What was paid beyond the amount agreed (it belongs to the sender)."""
        received = self.amount_received or 0
        return max(0, received - self.amount_in)

    def payout_sent(self, *, on_stellar: bool, actor: str, at: datetime) -> Transfer:
        to = S.PENDING_STELLAR if on_stellar else S.PENDING_EXTERNAL
        return self._move(to, actor, "payout submitted", at)

    def completed(self, *, reference: str | None, actor: str, at: datetime) -> Transfer:
        """Delivered. ``reference`` is the payout's own: its Stellar transaction hash or the
        rail's reference (stellar_transaction_id stays the inbound payment's)."""
        return self._move(
            S.COMPLETED,
            actor,
            "delivered to the receiver",
            at,
            completed_at=at,
            external_transaction_id=reference or self.external_transaction_id,
        )

    def refunded(self, refund: Refund, *, actor: str, reason: str, at: datetime) -> Transfer:
        """Everything left went back to the sender: nothing is paid out and no fee is kept
        (SEP-31: amount_out = amount_in - amount_fee - refunded - refund fees)."""
        return self._move(
            S.REFUNDED,
            actor,
            reason,
            at,
            completed_at=at,
            refunds=(*self.refunds, refund),
            amount_fee=0,
            amount_out=0,
            status_message=None,
            hold_reason=None,
        )

    def partly_refunded(self, refund: Refund, *, actor: str, reason: str, at: datetime) -> Transfer:
        """Part of the payment (an overpayment's excess) went back; the status stays."""
        return self._note(actor, reason, at, refunds=(*self.refunds, refund))

    def needs_customer_info(self, message: str, actor: str, at: datetime) -> Transfer:
        return self._move(
            S.PENDING_CUSTOMER_INFO_UPDATE, actor, message, at, required_info_message=clip(message)
        )

    def needs_transaction_info(
        self, message: str, fields: dict[str, Any], actor: str, at: datetime
    ) -> Transfer:
        return self._move(
            S.PENDING_TRANSACTION_INFO_UPDATE,
            actor,
            message,
            at,
            required_info_message=clip(message),
            required_info_updates=fields,
        )

    def info_updated(self, actor: str, at: datetime) -> Transfer:
        if self.status not in (S.PENDING_CUSTOMER_INFO_UPDATE, S.PENDING_TRANSACTION_INFO_UPDATE):
            raise IllegalTransition(self.status, S.PENDING_RECEIVER)
        return self._move(
            S.PENDING_RECEIVER,
            actor,
            "information updated",
            at,
            required_info_message=None,
            required_info_updates=None,
        )

    def expired(self, actor: str, at: datetime) -> Transfer:
        return self._move(S.EXPIRED, actor, "no payment arrived in time", at)

    def failed(self, reason: str, actor: str, at: datetime) -> Transfer:
        return self._move(S.ERROR, actor, reason, at, status_message=clip(reason), hold_reason=None)

    @property
    def refunded_stroops(self) -> int:
        return sum(r.amount_stroops for r in self.refunds)

    @property
    def refund_fees_stroops(self) -> int:
        return sum(r.fee_stroops for r in self.refunds)


def transfer_info_context(transfer_id: str) -> str:
    """What a transfer's sealed PATCH values are bound to (see gateway.personal_data)."""
    return f"transfer_info:{transfer_id}"


MAX_TEXT = 500  # the stored length of reasons and messages


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """Reasons come from operators and payout rails: stored at most ``limit`` characters."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def fee_for(amount: int, fee_fixed: Decimal, fee_percent: Decimal, decimals: int) -> int:
    """The fee on ``amount`` stroops, rounded half up to the asset's decimals."""
    units = Decimal(amount) / STROOPS_PER_UNIT
    fee = (fee_fixed + units * fee_percent / 100).quantize(
        Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP
    )
    return int(fee * STROOPS_PER_UNIT)
