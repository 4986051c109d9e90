"""The SEP-31 transfer state machine: every method from every status, legal or refused, and
the history each move leaves; fees and amounts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.sep31.model import (
    ALLOWED,
    FINAL,
    MAX_TEXT,
    IllegalTransition,
    Refund,
    Transfer,
    TransferStatus,
    clip,
    fee_for,
)

S = TransferStatus
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)

# The machine as SEP-31 draws it plus the receiving anchor's own moves, written out here
# independently of the table in the model, so a change to either is noticed.
EDGES = {
    (S.PENDING_SENDER, S.PENDING_STELLAR),
    (S.PENDING_SENDER, S.PENDING_RECEIVER),
    (S.PENDING_SENDER, S.EXPIRED),
    (S.PENDING_SENDER, S.ERROR),
    (S.PENDING_STELLAR, S.PENDING_RECEIVER),
    (S.PENDING_STELLAR, S.COMPLETED),
    (S.PENDING_STELLAR, S.REFUNDED),
    (S.PENDING_STELLAR, S.ERROR),
    (S.PENDING_RECEIVER, S.PENDING_EXTERNAL),
    (S.PENDING_RECEIVER, S.PENDING_STELLAR),
    (S.PENDING_RECEIVER, S.PENDING_CUSTOMER_INFO_UPDATE),
    (S.PENDING_RECEIVER, S.PENDING_TRANSACTION_INFO_UPDATE),
    (S.PENDING_RECEIVER, S.COMPLETED),
    (S.PENDING_RECEIVER, S.REFUNDED),
    (S.PENDING_RECEIVER, S.ERROR),
    (S.PENDING_EXTERNAL, S.COMPLETED),
    (S.PENDING_EXTERNAL, S.PENDING_RECEIVER),
    (S.PENDING_EXTERNAL, S.REFUNDED),
    (S.PENDING_EXTERNAL, S.ERROR),
    (S.PENDING_CUSTOMER_INFO_UPDATE, S.PENDING_RECEIVER),
    (S.PENDING_CUSTOMER_INFO_UPDATE, S.REFUNDED),
    (S.PENDING_CUSTOMER_INFO_UPDATE, S.ERROR),
    (S.PENDING_TRANSACTION_INFO_UPDATE, S.PENDING_RECEIVER),
    (S.PENDING_TRANSACTION_INFO_UPDATE, S.REFUNDED),
    (S.PENDING_TRANSACTION_INFO_UPDATE, S.ERROR),
    (S.ERROR, S.REFUNDED),
}


def transfer(status: TransferStatus = S.PENDING_SENDER, **changes) -> Transfer:
    base = Transfer(
        id="t1",
        partner_account="GPARTNER",
        asset_code="USDC",
        asset_issuer="GISSUER",
        decimals=2,
        amount_in=100_0000000,
        amount_fee=1_5000000,
        amount_out=98_5000000,
        funding_method="SEPA",
        sender_id="s",
        receiver_id="r",
        stellar_account_id="GRECEIVING",
        memo_type="id",
        memo="42",
        status=status,
        started_at=T0,
        updated_at=T0,
    )
    from dataclasses import replace

    return replace(base, **changes)


REFUND = Refund("hash", 100_0000000, 100)

# (method name, the call, the status it leads to)
MOVES: list[tuple[str, Callable[[Transfer], Transfer], TransferStatus]] = [
    ("payment_seen", lambda t: t.payment_seen("watcher", T1), S.PENDING_STELLAR),
    (
        "funds_received",
        lambda t: t.funds_received(
            amount=100_0000000, sender_account="GSENDER", transaction_id="h", actor="w", at=T1
        ),
        S.PENDING_RECEIVER,
    ),
    (
        "payout_sent stellar",
        lambda t: t.payout_sent(on_stellar=True, actor="p", at=T1),
        S.PENDING_STELLAR,
    ),
    (
        "payout_sent rail",
        lambda t: t.payout_sent(on_stellar=False, actor="p", at=T1),
        S.PENDING_EXTERNAL,
    ),
    ("completed", lambda t: t.completed(reference="ref", actor="p", at=T1), S.COMPLETED),
    ("refunded", lambda t: t.refunded(REFUND, actor="p", reason="r", at=T1), S.REFUNDED),
    (
        "needs_customer_info",
        lambda t: t.needs_customer_info("fix the bank number", "op", T1),
        S.PENDING_CUSTOMER_INFO_UPDATE,
    ),
    (
        "needs_transaction_info",
        lambda t: t.needs_transaction_info("fix", {"transaction": {}}, "op", T1),
        S.PENDING_TRANSACTION_INFO_UPDATE,
    ),
    ("expired", lambda t: t.expired("expiry", T1), S.EXPIRED),
    ("failed", lambda t: t.failed("broken", "op", T1), S.ERROR),
]


def test_the_transition_table_is_exactly_the_documented_machine():
    table = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert table == EDGES
    assert set(ALLOWED) == set(S)
    assert FINAL == {S.COMPLETED, S.REFUNDED, S.EXPIRED, S.ERROR}
    assert all(not ALLOWED[s] for s in FINAL - {S.ERROR})


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize(("name", "move", "target"), MOVES, ids=[m[0] for m in MOVES])
def test_every_move_from_every_status_is_made_or_refused(status, name, move, target):
    before = transfer(status)
    if (status, target) in EDGES:
        after = move(before)
        assert after.status == target
        assert after.updated_at == T1
        [event] = after.events
        assert (event.from_status, event.to_status, event.at) == (status, target, T1)
        assert event.actor and event.reason
        assert before.status == status  # frozen: the old value is untouched
    else:
        with pytest.raises(IllegalTransition) as refused:
            move(before)
        assert refused.value.current == status and refused.value.wanted == target
        assert str(refused.value) == f"a transfer in {status} cannot become {target}"
        assert refused.value.status == 409


@pytest.mark.parametrize("status", list(S))
def test_info_updated_only_leaves_the_two_info_statuses(status):
    before = transfer(status, required_info_message="m", required_info_updates={"x": 1})
    if status in (S.PENDING_CUSTOMER_INFO_UPDATE, S.PENDING_TRANSACTION_INFO_UPDATE):
        after = before.info_updated("sender", T1)
        assert after.status == S.PENDING_RECEIVER
        assert after.required_info_message is None and after.required_info_updates is None
    else:
        with pytest.raises(IllegalTransition):
            before.info_updated("sender", T1)


def received(amount: int, hold: str | None = "held", fee: int | None = None) -> Transfer:
    return transfer().funds_received(
        amount=amount,
        sender_account="GSENDER",
        transaction_id="h",
        actor="w",
        at=T1,
        hold=hold,
        fee=fee,
    )


T2 = T1 + timedelta(minutes=5)


def test_funds_received_records_who_paid_and_a_hold():
    t = received(100_0000000, hold="held for an operator: paid 1, expected 2")
    assert (t.amount_received, t.sender_account, t.stellar_transaction_id) == (
        100_0000000,
        "GSENDER",
        "h",
    )
    assert t.hold_reason == t.status_message == "held for an operator: paid 1, expected 2"
    assert t.events[-1].reason == t.hold_reason
    noted = transfer().funds_received(
        amount=1, sender_account="G", transaction_id="h", actor="w", at=T1, note="refunding"
    )
    assert noted.hold_reason is None and noted.status_message == "refunding"


def test_a_short_payment_is_priced_on_what_arrived_never_paying_out_more():
    short = received(50_0000000, fee=1_0000000)
    assert (short.amount_in, short.amount_received) == (100_0000000, 50_0000000)
    assert (short.amount_fee, short.amount_out) == (1_0000000, 49_0000000)
    released = short.release_hold("op", "checked with the sender", T2)
    assert released.hold_reason is None and released.status_message is None
    assert released.status == S.PENDING_RECEIVER and released.amount_out == 49_0000000
    event = released.events[-1]
    assert (event.from_status, event.to_status, event.at) == (S.PENDING_RECEIVER,) * 2 + (T2,)
    assert released.updated_at == T1  # SEP-31: when the status was reached
    assert released.excess_stroops == 0
    # A fee larger than what arrived takes it all, never more.
    tiny = received(1000, fee=5000)
    assert (tiny.amount_fee, tiny.amount_out) == (1000, 0)
    # An exact or larger payment keeps the agreed amounts.
    over = received(120_0000000, fee=9)
    assert (over.amount_fee, over.amount_out) == (1_5000000, 98_5000000)
    assert over.excess_stroops == 20_0000000


@pytest.mark.parametrize("t", [received(100_0000000, hold=None), transfer(S.PENDING_SENDER)])
def test_only_a_held_transfer_can_be_released(t):
    with pytest.raises(IllegalTransition):
        t.release_hold("op", "why", T1)


def test_received_funds_can_be_held_noted_or_queued_for_refund():
    t = received(100_0000000, hold=None)
    held = t.held("crypto_memo is not a valid memo", "gateway", T2)
    assert held.hold_reason == held.status_message == "crypto_memo is not a valid memo"
    queued = held.refund_queued("sender asked", "op", T2)
    assert queued.hold_reason is None
    assert queued.status_message == "the payment is being refunded: sender asked"
    with pytest.raises(IllegalTransition):
        queued.release_hold("op", "x", T2)
    assert t.noted("excess refund failed", "p", T2).status_message == "excess refund failed"
    assert [e.to_status for e in queued.events[-2:]] == [S.PENDING_RECEIVER] * 2
    for unpaid in (transfer(S.PENDING_SENDER), transfer(S.COMPLETED)):
        with pytest.raises(IllegalTransition):
            unpaid.held("x", "gateway", T2)
        with pytest.raises(IllegalTransition):
            unpaid.refund_queued("x", "op", T2)


def test_refunds_add_up_and_a_whole_refund_leaves_nothing_paid_out():
    t = received(120_0000000, hold=None)
    partial = t.partly_refunded(Refund("h1", 20_0000000, 100), actor="p", reason="excess", at=T2)
    assert partial.status == S.PENDING_RECEIVER and partial.updated_at == T1
    assert (partial.amount_fee, partial.amount_out) == (1_5000000, 98_5000000)
    whole = partial.refunded(Refund("h2", 100_0000000, 100), actor="p", reason="r", at=T2)
    assert whole.status == S.REFUNDED and whole.completed_at == T2
    assert (whole.refunded_stroops, whole.refund_fees_stroops) == (120_0000000, 200)
    assert (whole.amount_fee, whole.amount_out) == (0, 0)


def test_long_reasons_are_clipped_to_what_is_stored():
    reason = "x" * 2000
    failed = transfer(S.PENDING_RECEIVER).failed(reason, "a" * 300, T1)
    assert len(failed.status_message) == MAX_TEXT and failed.status_message.endswith("…")
    assert len(failed.events[-1].reason) == MAX_TEXT and len(failed.events[-1].actor) == 128
    assert clip("short") == "short" and clip(None) is None


@pytest.mark.parametrize(
    ("amount", "fixed", "percent", "decimals", "fee"),
    [
        (100_0000000, "0.5", "1", 2, 1_5000000),
        (1_0000000, "0", "0.5", 2, 100000),  # 0.005 rounds half up to 0.01
        (1_0000000, "0", "0.4", 2, 0),  # 0.004 rounds down to 0.00
        (3_3333333, "0", "10", 7, 3333333),  # 0.33333333 -> 0.3333333
        (0, "0.25", "0", 2, 2500000),
    ],
)
def test_fees_are_rounded_half_up_to_the_assets_decimals(amount, fixed, percent, decimals, fee):
    assert fee_for(amount, Decimal(fixed), Decimal(percent), decimals) == fee
