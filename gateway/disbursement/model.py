"""Bulk disbursements and their payments: the two state machines and the approval rule.
Pure: no I/O.

    disbursement: draft -> ready -> started <-> paused -> completed;  draft | ready | paused
                  -> canceled.  It completes when every payment is terminal; an approved
                  retry of failed payments starts a completed one again.
    payment:      draft -> ready -> pending -> success | failed;  failed -> ready only by an
                  explicit retry;  draft | ready -> canceled;  pending -> ready when a pause
                  takes it back before it was sent.

Only the methods below change a status, each refusing a move the machine does not have
(IllegalTransition); every change is an event with time, actor and reason.

Approval covers every path that pays: a disbursement's start (bulk, or a direct payout above
the threshold) and a retry of its failed payments each need ``approvals_needed`` distinct
approvers, never the uploader nor who asked for the retry.
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
    D.COMPLETED: frozenset({D.STARTED}),  # by an approved retry only
    D.CANCELED: frozenset(),
}
P_ALLOWED: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.DRAFT: frozenset({P.READY, P.CANCELED}),
    P.READY: frozenset({P.PENDING, P.CANCELED}),
    P.PENDING: frozenset({P.SUCCESS, P.FAILED, P.READY}),
    P.FAILED: frozenset({P.READY}),
    P.SUCCESS: frozenset(),
    P.CANCELED: frozenset(),
}
TERMINAL = frozenset({P.SUCCESS, P.FAILED, P.CANCELED})


# What operators do to a disbursement (DisbursementService.act).
OPERATOR_ACTIONS = frozenset(
    {"ready", "approve", "start", "pause", "cancel", "retry", "drop_retry"}
)


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
    retry_by: str | None = None  # who asked for a retry awaiting approval
    retry_approvers: tuple[str, ...] = ()

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
        if self.status == D.COMPLETED:
            raise IllegalTransition(self.status, "started other than by a retry", "disbursement")
        if self.status == D.READY and not self.approved:
            needed = self.approvals_needed - len(self.approvers)
            raise ApprovalRefused(f"{needed} more approval(s) needed before it starts")
        return self._move(D.STARTED, actor, None, at)

    def pause(self, actor: str, reason: str | None, at: datetime) -> Disbursement:
        return self._move(D.PAUSED, actor, reason, at)

    def cancel(self, actor: str, reason: str | None, at: datetime) -> Disbursement:
        """Canceled, with any retry awaiting approval."""
        return replace(self._move(D.CANCELED, actor, reason, at), retry_by=None, retry_approvers=())

    def request_retry(self, actor: str, failed: int, at: datetime) -> Disbursement:
        """Ask for the failed payments to be paid again; they go once the retry is approved."""
        if self.status not in (D.STARTED, D.PAUSED, D.COMPLETED):
            raise IllegalTransition(self.status, "retried", "disbursement")
        if self.retry_by is not None:
            raise ApprovalRefused(f"a retry asked for by {self.retry_by} awaits approval already")
        if failed < 1:
            raise ApprovalRefused("the disbursement has no failed payment to retry")
        reason = f"retry of {failed} failed payment(s) asked for"
        event = Event(str(self.status), str(self.status), actor, reason, at)
        return replace(self, retry_by=actor, retry_approvers=(), events=(*self.events, event))

    def approve_retry(self, approver: str, at: datetime) -> Disbursement:
        if self.retry_by is None:
            raise ApprovalRefused("no retry awaits approval")
        if approver == self.retry_by:
            raise ApprovalRefused("who asked for a retry cannot approve it")
        if approver == self.uploaded_by:
            raise ApprovalRefused("the uploader cannot approve a retry of their disbursement")
        if approver in self.retry_approvers:
            raise ApprovalRefused(f"{approver} has approved this retry already")
        event = Event(str(self.status), str(self.status), approver, "retry approved", at)
        return replace(
            self, retry_approvers=(*self.retry_approvers, approver), events=(*self.events, event)
        )

    @property
    def retry_approved(self) -> bool:
        return self.retry_by is not None and len(self.retry_approvers) >= self.approvals_needed

    def retried(self, at: datetime) -> Disbursement:
        """The approved retry goes ahead (a completed disbursement is started again until
        the retried payments are final); the request is done with."""
        if not self.retry_approved:
            needed = self.approvals_needed - len(self.retry_approvers)
            raise ApprovalRefused(f"{needed} more approval(s) needed before the retry")
        assert self.retry_by is not None
        done = self
        if self.status == D.COMPLETED:
            done = self._move(D.STARTED, self.retry_by, "started again by an approved retry", at)
        return replace(done, retry_by=None, retry_approvers=())

    def drop_retry(self, actor: str, at: datetime) -> Disbursement:
        if self.retry_by is None:
            raise ApprovalRefused("no retry awaits approval")
        event = Event(str(self.status), str(self.status), actor, "retry withdrawn", at)
        return replace(self, retry_by=None, retry_approvers=(), events=(*self.events, event))

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

    def submitted(self, actor: str, at: datetime) -> DisbursementPayment:
        """Handed to the payout engine (its disbursement started or resumed)."""
        return self._move(P.PENDING, actor, None, at)

    def held_back(self, actor: str, at: datetime) -> DisbursementPayment:
        """Its disbursement paused before the engine sent it."""
        if self.status != P.PENDING:
            raise IllegalTransition(self.status, "ready by a pause", "payment")
        return self._move(P.READY, actor, "paused before it was sent", at)

    def succeeded(self, at: datetime, reason: str | None = None) -> DisbursementPayment:
        return replace(self._move(P.SUCCESS, "payout-engine", reason, at), failure=None)

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
