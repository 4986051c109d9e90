"""Bulk disbursements and their payments: the two state machines and the approval rule.
Pure: no I/O.

    disbursement: draft -> ready -> started <-> paused -> completed;  draft | ready | paused
                  -> canceled.  It completes when every payment is terminal.
    payment:      draft -> ready -> pending -> success | failed;  failed -> ready only by an
                  explicit retry;  draft | ready -> canceled.

Only the methods below change a status, each refusing a move the machine does not have
(IllegalTransition); every change is an event with time, actor and reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gateway.errors import Conflict
from gateway.history import Event, IllegalTransition


class DisbursementStatus(StrEnum):
    DRAFT = "draft"
    READY = "ready"
    STARTED = "started"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELED = "canceled"


class PaymentStatus(StrEnum):
    DRAFT = "draft"
    READY = "ready"
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


D, P = DisbursementStatus, PaymentStatus
D_ALLOWED: dict[DisbursementStatus, frozenset[DisbursementStatus]] = {
    D.DRAFT: frozenset({D.READY, D.CANCELED}),
    D.READY: frozenset({D.STARTED, D.CANCELED}),
    D.STARTED: frozenset({D.PAUSED, D.COMPLETED}),
    D.PAUSED: frozenset({D.STARTED, D.CANCELED}),
    D.COMPLETED: frozenset(),
    D.CANCELED: frozenset(),
}
P_ALLOWED: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.DRAFT: frozenset({P.READY, P.CANCELED}),
    P.READY: frozenset({P.PENDING, P.CANCELED}),
    P.PENDING: frozenset({P.SUCCESS, P.FAILED}),
    P.FAILED: frozenset({P.READY}),
    P.SUCCESS: frozenset(),
    P.CANCELED: frozenset(),
}
TERMINAL = frozenset({P.SUCCESS, P.FAILED, P.CANCELED})


class ApprovalRefused(Conflict):
    pass


@dataclass(frozen=True)
class Disbursement:
    id: str
    status: DisbursementStatus
    uploaded_by: str
    approvals_needed: int
    approvers: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()

    def _move(
        self, to: DisbursementStatus, actor: str, reason: str | None, at: datetime
    ) -> Disbursement:
        if to not in D_ALLOWED[self.status]:
            raise IllegalTransition(self.status, to, "disbursement")
        event = Event(str(self.status), str(to), actor, reason, at)
        return replace(self, status=to, events=(*self.events, event))

    def mark_ready(self, actor: str, at: datetime) -> Disbursement:
        return self._move(D.READY, actor, None, at)

    def approve(self, approver: str, at: datetime) -> Disbursement:
        """One approval. The uploader never counts, nor the same approver twice."""
        if self.status not in (D.DRAFT, D.READY):
            raise ApprovalRefused(f"a {self.status} disbursement is not approved any more")
        if approver == self.uploaded_by:
            raise ApprovalRefused("the uploader cannot approve their own disbursement")
        if approver in self.approvers:
            raise ApprovalRefused(f"{approver} has approved this disbursement already")
        event = Event(str(self.status), str(self.status), approver, "approved", at)
        return replace(self, approvers=(*self.approvers, approver), events=(*self.events, event))

    @property
    def approved(self) -> bool:
        return len(self.approvers) >= self.approvals_needed

    def start(self, actor: str, at: datetime) -> Disbursement:
        if self.status == D.READY and not self.approved:
            needed = self.approvals_needed - len(self.approvers)
            raise ApprovalRefused(f"{needed} more approval(s) needed before it starts")
        return self._move(D.STARTED, actor, None, at)

    def pause(self, actor: str, reason: str | None, at: datetime) -> Disbursement:
        return self._move(D.PAUSED, actor, reason, at)

    def cancel(self, actor: str, reason: str | None, at: datetime) -> Disbursement:
        return self._move(D.CANCELED, actor, reason, at)

    def settle(self, payments: Iterable[PaymentStatus], at: datetime) -> Disbursement:
        """Completed once every payment is terminal (whatever the mix); else unchanged."""
        if self.status == D.STARTED and all(p in TERMINAL for p in payments):
            return self._move(D.COMPLETED, "payout-engine", "every payment is final", at)
        return self


@dataclass(frozen=True)
class DisbursementPayment:
    id: str
    status: PaymentStatus
    failure: str | None = None
    events: tuple[Event, ...] = ()

    def _move(
        self, to: PaymentStatus, actor: str, reason: str | None, at: datetime
    ) -> DisbursementPayment:
        if to not in P_ALLOWED[self.status]:
            raise IllegalTransition(self.status, to, "payment")
        event = Event(str(self.status), str(to), actor, reason, at)
        return replace(self, status=to, events=(*self.events, event))

    def mark_ready(self, actor: str, at: datetime) -> DisbursementPayment:
        if self.status != P.DRAFT:  # a failed payment comes back only by retry()
            raise IllegalTransition(self.status, "ready", "payment")
        return self._move(P.READY, actor, None, at)

    def submitted(self, at: datetime) -> DisbursementPayment:
        return self._move(P.PENDING, "payout-engine", None, at)

    def succeeded(self, at: datetime) -> DisbursementPayment:
        return replace(self._move(P.SUCCESS, "payout-engine", None, at), failure=None)

    def failed(self, reason: str, at: datetime) -> DisbursementPayment:
        return replace(self._move(P.FAILED, "payout-engine", reason, at), failure=reason[:512])

    def retry(self, actor: str, at: datetime) -> DisbursementPayment:
        """Only an explicit retry brings a failed payment back (and approval applies to it
        as to any payout)."""
        if self.status != P.FAILED:
            raise IllegalTransition(self.status, "ready by a retry", "payment")
        return self._move(P.READY, actor, "retry", at)

    def cancel(self, actor: str, reason: str | None, at: datetime) -> DisbursementPayment:
        return self._move(P.CANCELED, actor, reason, at)
