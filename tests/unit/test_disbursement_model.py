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
        D.STARTED: lambda: (
            d.request_retry("ana", 1, AT).retried(AT)
            if d.status == D.COMPLETED
            else d.start("ana", AT)
        ),
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
        P.READY: lambda: {
            P.FAILED: lambda: p.retry("ana", AT),
            P.PENDING: lambda: p.held_back("ana", AT),
        }.get(p.status, lambda: p.mark_ready("ana", AT))(),
        P.PENDING: lambda: p.submitted("ana", AT),
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


def test_a_retry_needs_its_own_approvals_never_the_askers_nor_the_uploaders():
    done = disbursement(D.COMPLETED, needed=2)
    with pytest.raises(IllegalTransition):
        done.start("ana", AT)  # a completed disbursement starts again only by a retry
    with pytest.raises(ApprovalRefused, match="no failed payment"):
        done.request_retry("ana", 0, AT)
    asked = done.request_retry("ana", 3, AT)
    assert asked.events[-1].reason == "retry of 3 failed payment(s) asked for"
    with pytest.raises(ApprovalRefused, match="awaits approval already"):
        asked.request_retry("bea", 3, AT)
    for who, why in [("ana", "who asked for a retry"), ("uploader", "the uploader cannot")]:
        with pytest.raises(ApprovalRefused, match=why):
            asked.approve_retry(who, AT)
    once = asked.approve_retry("bea", AT)
    with pytest.raises(ApprovalRefused, match="bea has approved this retry already"):
        once.approve_retry("bea", AT)
    with pytest.raises(ApprovalRefused, match="1 more approval"):
        once.retried(AT)
    again = once.approve_retry("cai", AT).retried(AT)
    assert (again.status, again.retry_by, again.retry_approvers) == (D.STARTED, None, ())
    assert (again.events[-1].from_status, again.events[-1].actor) == (D.COMPLETED, "ana")
    # A paused one stays paused: its retried payments wait for the resume.
    paused = disbursement(D.PAUSED).request_retry("ana", 1, AT).retried(AT)
    assert paused.status == D.PAUSED
    dropped = asked.drop_retry("bea", AT)
    assert (dropped.retry_by, dropped.events[-1].reason) == (None, "retry withdrawn")
    with pytest.raises(ApprovalRefused, match="no retry awaits"):
        dropped.approve_retry("cai", AT)
    for status in (D.DRAFT, D.READY, D.CANCELED):
        with pytest.raises(IllegalTransition):
            disbursement(status).request_retry("ana", 1, AT)


def test_a_disbursement_completes_when_every_payment_is_final_whatever_the_mix():
    started = disbursement(D.STARTED)
    assert started.settle([P.SUCCESS, P.PENDING], AT).status == D.STARTED
    done = started.settle([P.SUCCESS, P.FAILED, P.CANCELED], AT)
    assert done.status == D.COMPLETED and done.events[-1].actor == "payout-engine"
    assert disbursement(D.PAUSED).settle([P.SUCCESS], AT).status == D.PAUSED
