"""The disbursement and payment state machines, table-driven: every legal move works, every
other move is refused and changes nothing; approvals; completion."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from gateway.disbursement.model import (
    D_ALLOWED,
    P_ALLOWED,
    ApprovalRefused,
    Disbursement,
    DisbursementPayment,
    DisbursementStatus,
    PaymentStatus,
)
from gateway.history import IllegalTransition

AT = datetime(2026, 11, 21, tzinfo=UTC)
D, P = DisbursementStatus, PaymentStatus


def disbursement(status=D.DRAFT, needed=0, approvers=()):
    return Disbursement("d1", status, "uploader", needed, tuple(approvers))


def disbursement_move(d: Disbursement, to: DisbursementStatus) -> Disbursement:
    return {
        D.READY: lambda: d.mark_ready("ana", AT),
        D.STARTED: lambda: d.start("ana", AT),
        D.PAUSED: lambda: d.pause("ana", "why", AT),
        D.CANCELED: lambda: d.cancel("ana", "why", AT),
        D.COMPLETED: lambda: d._move(D.COMPLETED, "ana", None, AT),
        D.DRAFT: lambda: d._move(D.DRAFT, "ana", None, AT),
    }[to]()


@pytest.mark.parametrize(("start", "to"), list(product(D, D)))
def test_every_disbursement_move_is_legal_or_refused(start, to):
    d = disbursement(start)
    if to in D_ALLOWED[start]:
        moved = disbursement_move(d, to)
        assert moved.status == to and moved.events[-1].from_status == start
        assert (moved.events[-1].to_status, moved.events[-1].actor) == (to, "ana")
    else:
        with pytest.raises(IllegalTransition):
            disbursement_move(d, to)
        assert d.status == start and d.events == ()


def payment_move(p: DisbursementPayment, to: PaymentStatus) -> DisbursementPayment:
    return {
        P.READY: lambda: p.retry("ana", AT) if p.status == P.FAILED else p.mark_ready("ana", AT),
        P.PENDING: lambda: p.submitted(AT),
        P.SUCCESS: lambda: p.succeeded(AT),
        P.FAILED: lambda: p.failed("op_no_trust: the receiver has no trustline", AT),
        P.CANCELED: lambda: p.cancel("ana", "why", AT),
        P.DRAFT: lambda: p._move(P.DRAFT, "ana", None, AT),
    }[to]()


@pytest.mark.parametrize(("start", "to"), list(product(P, P)))
def test_every_payment_move_is_legal_or_refused(start, to):
    p = DisbursementPayment("p1", start)
    if to in P_ALLOWED[start]:
        moved = payment_move(p, to)
        assert moved.status == to and moved.events[-1].from_status == start
    else:
        with pytest.raises(IllegalTransition):
            payment_move(p, to)
        assert p.status == start and p.events == ()


def test_a_failed_payment_comes_back_only_by_an_explicit_retry():
    failed = DisbursementPayment("p1", P.FAILED, failure="op_underfunded")
    with pytest.raises(IllegalTransition):
        failed.mark_ready("ana", AT)
    again = failed.retry("ana", AT)
    assert (again.status, again.events[-1].reason) == (P.READY, "retry")
    with pytest.raises(IllegalTransition):
        DisbursementPayment("p2", P.READY).retry("ana", AT)
    assert failed.status == P.FAILED  # the original is unchanged


def test_approvals_are_distinct_and_never_the_uploaders():
    d = disbursement(D.READY, needed=2)
    with pytest.raises(ApprovalRefused, match="the uploader cannot approve"):
        d.approve("uploader", AT)
    once = d.approve("bea", AT)
    with pytest.raises(ApprovalRefused, match="bea has approved this disbursement already"):
        once.approve("bea", AT)
    with pytest.raises(ApprovalRefused, match="1 more approval"):
        once.start("bea", AT)
    twice = once.approve("cai", AT)
    assert twice.approved and twice.start("cai", AT).status == D.STARTED
    with pytest.raises(ApprovalRefused):
        twice.start("cai", AT).approve("dan", AT)  # a started disbursement takes no more


def test_a_disbursement_completes_when_every_payment_is_final_whatever_the_mix():
    started = disbursement(D.STARTED)
    assert started.settle([P.SUCCESS, P.PENDING], AT).status == D.STARTED
    done = started.settle([P.SUCCESS, P.FAILED, P.CANCELED], AT)
    assert done.status == D.COMPLETED and done.events[-1].actor == "payout-engine"
    assert disbursement(D.PAUSED).settle([P.SUCCESS], AT).status == D.PAUSED
