"""SEP-31 money on SQLite and PostgreSQL: the payment watcher reading real signed payments
from the fake Horizon and matching them by memo (exact, short, over, duplicate, unknown,
wrong asset, late), restarts mid-page, Horizon faults, concurrent watchers, the payout and
refund hand-off and what the payout engine reports back, operators' actions, and expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import update
from stellar_sdk import Asset, Keypair
from stellar_sdk.memo import HashMemo, TextMemo

from gateway.db.tables import (
    compliance_requests,
    incoming_payments,
    payouts,
    transfer_events,
    transfers,
    watcher_cursors,
)
from gateway.errors import Conflict
from gateway.outbound.horizon import HorizonUnavailable, Payment, PaymentsPage
from gateway.payouts import FAILED, SUBMITTED, PayoutResult
from gateway.sep31 import IllegalTransition, PaymentWatcher
from tests.fakes.sep12 import ManualClock, rows, running_gateway
from tests.fakes.sep31 import (
    RECEIVER,
    Partner,
    Payer,
    open_receiving_account,
    partner_for,
    payer,
)

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
RECEIVING = "GBJ53BGBBOXH6IGA7RFD6PIVKX2M7JYQIWSQ4BG4BWXTX6NP3RFT3JSF"
GWUSD = Asset("GWUSD", ISSUER)
HOOK = "https://sender.test/hook"
REFUND_POLICY = {
    "GATEWAY_SEP31_UNDERPAYMENT": "refund",
    "GATEWAY_SEP31_OVERPAYMENT": "refund",
    "GATEWAY_SEP31_PAYOUT_FAILURE": "refund",
}


@pytest.fixture
def env() -> dict[str, str]:
    return {}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def gw(make_settings, engine, env, clock) -> AsyncIterator:
    settings = make_settings(**env)
    async with running_gateway(settings, engine, clock=clock) as g:
        open_receiving_account(g.ledger, RECEIVING, ISSUER, "GWUSD")
        yield g


@pytest.fixture
async def partner(gw) -> Partner:
    return await partner_for(gw)


@pytest.fixture
def sender(gw) -> Payer:
    return payer(gw.ledger, gw.settings.network_passphrase, ISSUER, "GWUSD", "100000")


def services(gw):
    return gw.app.state.services


async def new_transfer(partner: Partner, amount="100", **extra) -> dict:
    if not hasattr(partner, "_ids"):
        partner._ids = await partner.customers()  # type: ignore[attr-defined]
    sender_id, receiver_id = partner._ids  # type: ignore[attr-defined]
    return await partner.create(
        {
            "amount": amount,
            "asset_code": "GWUSD",
            "funding_method": "SEPA",
            "sender_id": sender_id,
            "receiver_id": receiver_id,
            **extra,
        }
    )


def paid(sender: Payer, memo, amount, asset=GWUSD, **kw) -> str:
    status, body = sender.pay(RECEIVING, amount, memo, asset, **kw)
    assert status == 200, body
    return str(body["hash"])


async def drain(watcher: PaymentWatcher) -> int:
    """Watch until caught up; returns the pages read."""
    pages = 1
    while await watcher.watch_once():
        pages += 1
    return pages


async def state(gw, partner: Partner, tid: str) -> dict:
    return await partner.transaction(tid)


async def payouts_of(gw, tid: str) -> list[dict]:
    return sorted(
        await rows(gw, payouts, source_id=tid), key=lambda r: (r["purpose"], r["attempt"])
    )


async def incoming(gw) -> list[dict]:
    """The recorded payments in ledger order."""
    return sorted(await rows(gw, incoming_payments), key=lambda r: int(r["id"]))


# -- creating transfers ------------------------------------------------------------------------


async def test_a_memo_already_taken_is_drawn_again_and_never_shared(gw, partner, monkeypatch):
    draws = iter([41, 41, 41, 42] + [41] * 5)
    monkeypatch.setattr("gateway.sep31.service.secrets.randbelow", lambda _n: next(draws))
    first = await new_transfer(partner)
    second = await new_transfer(partner, "11")
    assert (first["stellar_memo"], second["stellar_memo"]) == ("42", "43")
    sender_id, receiver_id = partner._ids  # type: ignore[attr-defined]
    stuck = await partner.post(
        {
            "amount": "12",
            "asset_code": "GWUSD",
            "funding_method": "SEPA",
            "sender_id": sender_id,
            "receiver_id": receiver_id,
        },
        key="k-3",
    )
    assert stuck.status_code == 409
    assert stuck.json() == {"error": "could not create the transfer; try again"}
    assert len(await rows(gw, transfers)) == 2
    assert len(await rows(gw, transfer_events)) == 2  # one "created" each


async def test_requests_racing_with_one_request_id_make_one_transfer(gw, partner):
    await new_transfer(partner)
    sender_id, receiver_id = partner._ids  # type: ignore[attr-defined]
    body = {
        "amount": "25",
        "asset_code": "GWUSD",
        "funding_method": "SEPA",
        "sender_id": sender_id,
        "receiver_id": receiver_id,
    }
    answers = await asyncio.gather(*(partner.post(body, key="race-1") for _ in range(6)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(await rows(gw, transfers)) == 2
    assert len(await rows(gw, transfer_events)) == 2


async def test_only_the_callers_accepted_customers_are_usable(gw, partner):
    await new_transfer(partner)
    sender_id, receiver_id = partner._ids  # type: ignore[attr-defined]
    other = await partner_for(gw)
    o_sender, o_receiver = await other.customers()
    base = {"amount": "100", "asset_code": "GWUSD", "funding_method": "SEPA"}
    # Another account's customer is as unknown as a made-up id: its type is needed.
    cases = [
        ({"sender_id": o_sender, "receiver_id": receiver_id}, "sep31-sender"),
        ({"sender_id": sender_id, "receiver_id": o_receiver}, "sep31-receiver"),
        ({"sender_id": sender_id, "receiver_id": "nobody"}, "sep31-receiver"),
        (
            {"sender_id": sender_id, "receiver_id": receiver_id, "amount": "5000"},
            "sep31-large-sender",
        ),
    ]
    for ids, needed in cases:
        response = await partner.post({**base, **ids})
        assert (response.status_code, response.json()) == (
            400,
            {"error": "customer_info_needed", "type": needed},
        )
    same = await partner.post({**base, "sender_id": receiver_id, "receiver_id": receiver_id})
    assert same.status_code == 400 and same.json()["type"] == "sep31-sender"
    assert len(await rows(gw, transfers)) == 1


# -- matching by memo ---------------------------------------------------------------------------


async def test_an_exact_payment_is_matched_by_memo_and_queued_for_payout(gw, partner, sender):
    created = await new_transfer(partner)
    tid = created["id"]
    await partner.callback(tid, {"url": HOOK})
    # Paid from an account that is not the partner's: matched by memo alone.
    tx_hash = paid(sender, created["stellar_memo"], "100")
    await drain(services(gw).watcher)

    tx = await state(gw, partner, tid)
    assert tx["status"] == "pending_receiver"
    assert tx["stellar_transaction_id"] == tx_hash
    assert (tx["amount_in"], tx["amount_fee"], tx["amount_out"]) == ("100.00", "1.50", "98.50")
    assert "status_message" not in tx
    [payout] = await payouts_of(gw, tid)
    assert (payout["purpose"], payout["amount"], payout["asset_code"], payout["status"]) == (
        "payout",
        985_000_000,
        "GWUSD",
        "ready",
    )
    assert (payout["destination"], payout["rail"]) == (None, "SEPA")
    assert payout["customer_id"] == partner._ids[1]  # type: ignore[attr-defined]
    [row] = await incoming(gw)
    assert (row["outcome"], row["transfer_id"], row["source"], row["amount"]) == (
        "matched",
        tid,
        sender.account,
        1_000_000_000,
    )
    events = await rows(gw, transfer_events, transfer_id=tid)
    assert [(e["to_status"], e["actor"]) for e in events][-1] == (
        "pending_receiver",
        "payment-watcher",
    )
    # The partner's callback carries the new status.
    assert await services(gw).callbacks.deliver_once() == 1
    assert json.loads(gw.callbacks.received[0].body)["transaction"]["status"] == "pending_receiver"


class TestStellarDestination:
    @pytest.fixture
    def env(self):
        types = [
            {
                "name": "sep31-sender",
                "direction": "sender",
                "description": "S",
                "required": ["first_name"],
            },
            {
                "name": "sep31-receiver",
                "direction": "receiver",
                "description": "R",
                "required": ["first_name"],
                "optional": ["crypto_address", "crypto_memo"],
            },
        ]
        return {"GATEWAY_SEP12_TYPES": json.dumps(types)}

    async def test_a_receiver_with_a_stellar_account_is_paid_there(self, gw, partner, sender):
        destination = Keypair.random().public_key
        sender_id = await partner.kyc.put_id({"first_name": "A"})
        receiver_id = await partner.kyc.put_id(
            {"memo": "2", "first_name": "B", "crypto_address": destination, "crypto_memo": "inv 9"}
        )
        partner._ids = (sender_id, receiver_id)  # type: ignore[attr-defined]
        created = await new_transfer(partner, "10")
        paid(sender, created["stellar_memo"], "10")
        await drain(services(gw).watcher)
        [payout] = await payouts_of(gw, created["id"])
        assert (payout["destination"], payout["memo_type"], payout["memo"], payout["rail"]) == (
            destination,
            "text",
            "inv 9",
            None,
        )


async def test_a_short_payment_is_held_and_released_on_what_arrived(gw, partner, sender):
    created = await new_transfer(partner)
    tid = created["id"]
    paid(sender, created["stellar_memo"], "50")
    await drain(services(gw).watcher)
    tx = await state(gw, partner, tid)
    assert tx["status"] == "pending_receiver"
    assert tx["status_message"] == "held for an operator: paid 50.00, expected 100.00"
    assert tx["amount_in"] == "50.00"
    assert await payouts_of(gw, tid) == []
    [row] = await incoming(gw)
    assert (row["outcome"], row["note"]) == ("short", "paid 50.00, expected 100.00")
    # The payout engine cannot move a held transfer along.
    await services(gw).transfers.payout_submitted(tid, on_stellar=False)
    assert (await state(gw, partner, tid))["status"] == "pending_receiver"

    await services(gw).transfers.operate(tid, "release", "operator:ana", "sender confirmed")
    tx = await state(gw, partner, tid)
    assert "status_message" not in tx
    assert (tx["amount_in"], tx["amount_fee"], tx["amount_out"]) == ("50.00", "1.00", "49.00")
    [payout] = await payouts_of(gw, tid)
    assert (payout["purpose"], payout["amount"]) == ("payout", 490_000_000)
    with pytest.raises(IllegalTransition):
        await services(gw).transfers.operate(tid, "release", "operator:ana", "again")
    assert len(await payouts_of(gw, tid)) == 1


async def test_an_overpayment_is_held_and_released_with_the_excess_refunded(gw, partner, sender):
    created = await new_transfer(partner, "100", refund_memo="777", refund_memo_type="id")
    tid = created["id"]
    paid(sender, created["stellar_memo"], "120")
    await drain(services(gw).watcher)
    tx = await state(gw, partner, tid)
    assert tx["status_message"] == "held for an operator: paid 120.00, expected 100.00"
    await services(gw).transfers.operate(tid, "release", "operator:ana", "ok")
    excess, payout = await payouts_of(gw, tid)
    assert (payout["purpose"], payout["amount"]) == ("payout", 985_000_000)
    assert (excess["purpose"], excess["amount"], excess["destination"]) == (
        "excess_refund",
        200_000_000,
        sender.account,
    )
    assert (excess["memo_type"], excess["memo"]) == ("id", "777")  # the refund memo asked for


class TestRefundPolicy:
    @pytest.fixture
    def env(self):
        return REFUND_POLICY

    async def test_a_short_payment_goes_back_whole(self, gw, partner, sender):
        created = await new_transfer(partner)
        tid = created["id"]
        paid(sender, created["stellar_memo"], "40")
        await drain(services(gw).watcher)
        tx = await state(gw, partner, tid)
        assert tx["status"] == "pending_receiver"
        assert tx["status_message"] == (
            "the payment is being refunded: paid 40.00, expected 100.00"
        )
        [refund] = await payouts_of(gw, tid)
        assert (refund["purpose"], refund["amount"], refund["destination"]) == (
            "refund",
            400_000_000,
            sender.account,
        )
        assert (refund["memo_type"], refund["memo"]) == ("id", created["stellar_memo"])
        # An operator cannot release it into a payout as well.
        with pytest.raises(IllegalTransition):
            await services(gw).transfers.operate(tid, "release", "operator:ana", "x")

        result = PayoutResult(
            refund["id"], "sep31", tid, "refund", True, 400_000_000, "cd" * 32, fee_stroops=100
        )
        await services(gw).transfers.payout_settled(result)
        await services(gw).transfers.payout_settled(result)  # reported twice: no change
        tx = await state(gw, partner, tid)
        assert tx["status"] == "refunded" and tx["refunded"] is True
        assert tx["completed_at"] is not None
        assert tx["refunds"] == {
            "amount_refunded": "40.00",
            "amount_fee": "0.00",
            "payments": [{"id": "cd" * 32, "amount": "40.00", "fee": "0.00"}],
        }

    async def test_an_overpayment_pays_out_and_refunds_the_excess(self, gw, partner, sender):
        created = await new_transfer(partner)
        tid = created["id"]
        paid(sender, created["stellar_memo"], "130")
        await drain(services(gw).watcher)
        excess, payout = await payouts_of(gw, tid)
        assert (payout["amount"], excess["purpose"], excess["amount"]) == (
            985_000_000,
            "excess_refund",
            300_000_000,
        )
        t = services(gw).transfers
        await t.payout_settled(
            PayoutResult(excess["id"], "sep31", tid, "excess_refund", True, 300_000_000, "ee" * 32)
        )
        await t.payout_submitted(tid, on_stellar=False)
        await t.payout_settled(
            PayoutResult(
                payout["id"], "sep31", tid, "payout", True, 985_000_000, external_reference="SEPA-1"
            )
        )
        tx = await state(gw, partner, tid)
        assert tx["status"] == "completed" and tx["refunded"] is False
        assert tx["external_transaction_id"] == "SEPA-1"
        assert tx["refunds"]["amount_refunded"] == "30.00"
        statuses = [e["to_status"] for e in await rows(gw, transfer_events, transfer_id=tid)]
        assert statuses == [
            "pending_sender",
            "pending_receiver",
            "pending_receiver",  # excess refunded
            "pending_external",
            "completed",
        ]

    async def test_a_failed_payout_is_refunded_less_an_excess_already_returned(
        self, gw, partner, sender
    ):
        created = await new_transfer(partner)
        tid = created["id"]
        paid(sender, created["stellar_memo"], "110")
        await drain(services(gw).watcher)
        _, payout = await payouts_of(gw, tid)
        t = services(gw).transfers
        await t.payout_settled(
            PayoutResult(payout["id"], "sep31", tid, "payout", False, 0, reason="op_no_trust")
        )
        tx = await state(gw, partner, tid)
        assert tx["status"] == "pending_receiver"
        assert tx["status_message"] == "the payment is being refunded: payout failed: op_no_trust"
        refund = next(p for p in await payouts_of(gw, tid) if p["purpose"] == "refund")
        assert refund["amount"] == 1_000_000_000  # 110 received, 10 go back separately


async def test_a_second_payment_to_a_paid_transfer_is_recorded_not_applied(gw, partner, sender):
    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "100")
    paid(sender, created["stellar_memo"], "100")
    # Two payments in one transaction: the second is a duplicate as well.
    other = await new_transfer(partner, "5")
    paid(sender, other["stellar_memo"], "5", payments=2)
    await drain(services(gw).watcher)
    outcomes = [(r["transfer_id"], r["outcome"]) for r in await incoming(gw)]
    assert sorted(outcomes) == sorted(
        [
            (created["id"], "matched"),
            (created["id"], "duplicate"),
            (other["id"], "matched"),
            (other["id"], "duplicate"),
        ]
    )
    assert len(await payouts_of(gw, created["id"])) == 1
    assert len(await payouts_of(gw, other["id"])) == 1


async def test_payments_without_a_known_memo_are_kept_for_operators(gw, partner, sender):
    created = await new_transfer(partner)
    paid(sender, "123456789", "100")  # nobody's memo
    paid(sender, TextMemo(created["stellar_memo"]), "100")  # right digits, wrong memo type
    paid(sender, HashMemo(b"\x01" * 32), "100")
    paid(sender, None, "100")
    await drain(services(gw).watcher)
    rows_ = await incoming(gw)
    assert [r["outcome"] for r in rows_] == ["unknown_memo"] * 4
    assert all(r["transfer_id"] is None for r in rows_)
    assert (await state(gw, partner, created["id"]))["status"] == "pending_sender"
    async with gw.app.state.deps.uow(read_only=True) as uow:
        assert len(await uow.payments.list(outcome="unmatched")) == 4


async def test_a_payment_in_the_wrong_asset_changes_nothing(gw, partner, sender):
    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "10", Asset.native())
    fake = Keypair.random().public_key
    gw.ledger.create_account(fake, "100")
    gw.ledger.issue(fake, sender.account, "GWUSD", "500")
    gw.ledger.issue(fake, RECEIVING, "GWUSD", "0")
    paid(sender, created["stellar_memo"], "100", Asset("GWUSD", fake))  # same code, other issuer
    await drain(services(gw).watcher)
    assert [(r["outcome"], r["note"]) for r in await incoming(gw)] == [
        ("wrong_asset", "paid in XLM, not GWUSD"),
        ("wrong_asset", f"paid in GWUSD:{fake}, not GWUSD:{ISSUER}"),
    ]
    assert (await state(gw, partner, created["id"]))["status"] == "pending_sender"
    # The right payment still matches afterwards.
    paid(sender, created["stellar_memo"], "100")
    await drain(services(gw).watcher)
    assert (await state(gw, partner, created["id"]))["status"] == "pending_receiver"


async def test_a_payment_after_expiry_is_recorded_as_late(gw, partner, sender, clock):
    created = await new_transfer(partner)
    fresh = await new_transfer(partner, "7")
    await drain(services(gw).watcher)
    clock.advance(86_400 - 60)
    await drain(services(gw).watcher)
    assert await services(gw).transfers.expire_once() == 0
    clock.advance(180)
    partner.token = partner.kyc.token = await gw.wallet(partner.keypair).token()
    young = await new_transfer(partner, "8")
    # The watcher has not read anything since before the deadline: nothing expires yet.
    assert await services(gw).transfers.expire_once() == 0
    await drain(services(gw).watcher)
    assert await services(gw).transfers.expire_once() == 2
    assert (await state(gw, partner, created["id"]))["status"] == "expired"
    assert (await state(gw, partner, fresh["id"]))["status"] == "expired"
    assert (await state(gw, partner, young["id"]))["status"] == "pending_sender"
    paid(sender, created["stellar_memo"], "100")
    await drain(services(gw).watcher)
    [row] = await incoming(gw)
    assert (row["outcome"], row["note"]) == ("late", "the transfer had expired")
    assert (await state(gw, partner, created["id"]))["status"] == "expired"

    # An operator sends it back, once; the payout engine's report closes it.
    t = services(gw).transfers
    refunded = await t.refund_payment(row["id"], "operator:ana", "transfer had expired")
    assert refunded["resolution"] == "refund_queued"
    await t.refund_payment(row["id"], "operator:ana", "clicked twice")
    [refund] = await rows(gw, payouts, source="sep31_payment")
    assert (refund["source_id"], refund["purpose"], refund["amount"]) == (
        row["id"],
        "refund",
        1_000_000_000,
    )
    assert (refund["destination"], refund["memo_type"], refund["memo"]) == (
        sender.account,
        "id",
        created["stellar_memo"],
    )
    assert (refund["asset_code"], refund["asset_issuer"]) == ("GWUSD", ISSUER)
    await t.payout_settled(
        PayoutResult(refund["id"], "sep31_payment", row["id"], "refund", True, 1, "aa" * 32)
    )
    [row] = await incoming(gw)
    assert row["resolution"] == "refunded"


async def test_a_payment_made_in_time_but_read_late_still_matches(gw, partner, sender, clock):
    created = await new_transfer(partner)
    await drain(services(gw).watcher)
    paid(sender, created["stellar_memo"], "100")  # in time; the watcher is down for days
    clock.advance(3 * 86_400)
    partner.token = partner.kyc.token = await gw.wallet(partner.keypair).token()
    assert await services(gw).transfers.expire_once() == 0
    await drain(services(gw).watcher)
    assert await services(gw).transfers.expire_once() == 0
    assert (await state(gw, partner, created["id"]))["status"] == "pending_receiver"


async def test_only_payments_without_a_transfer_are_refunded_one_by_one(gw, partner, sender):
    from gateway.errors import NotFound

    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "100")
    paid(sender, "42", "3", Asset.native())
    await drain(services(gw).watcher)
    matched, unknown = await incoming(gw)
    t = services(gw).transfers
    with pytest.raises(Conflict, match="a matched payment is refunded with its transfer"):
        await t.refund_payment(matched["id"], "operator:ana", "x")
    with pytest.raises(NotFound):
        await t.refund_payment("999", "operator:ana", "x")
    await t.refund_payment(unknown["id"], "operator:ana", "nobody's")
    [refund] = await rows(gw, payouts, source="sep31_payment")
    assert (refund["asset_code"], refund["asset_issuer"], refund["amount"]) == (
        "XLM",
        "",
        30_000_000,
    )
    # A failed refund may be tried again: a new attempt.
    await t.payout_settled(
        PayoutResult(refund["id"], "sep31_payment", unknown["id"], "refund", False, 0, reason="x")
    )
    assert (await incoming(gw))[1]["resolution"] == "refund_failed"
    async with gw.app.state.deps.uow() as uow:
        await uow.connection.execute(
            update(payouts).where(payouts.c.id == refund["id"]).values(status=FAILED)
        )
        await uow.commit()
    await t.refund_payment(unknown["id"], "operator:ana", "again")
    attempts = await rows(gw, payouts, source="sep31_payment")
    assert sorted(r["attempt"] for r in attempts) == [1, 2]


OWN = Keypair.random()


class TestOutgoingPayments:
    @pytest.fixture
    def env(self):
        return {"GATEWAY_SEP31_RECEIVING_ACCOUNT": OWN.public_key}

    async def test_payments_from_the_receiving_account_are_not_incoming(self, gw, partner, sender):
        open_receiving_account(gw.ledger, OWN.public_key, ISSUER, "GWUSD")
        gw.ledger.issue(ISSUER, OWN.public_key, "GWUSD", "500")
        created = await new_transfer(partner)
        assert created["stellar_account_id"] == OWN.public_key
        # The anchor pays someone with that very memo: an outgoing payment never matches.
        own = Payer(gw.ledger, OWN, gw.settings.network_passphrase)
        status, body = own.pay(sender.account, "100", created["stellar_memo"], GWUSD)
        assert status == 200, body
        await drain(services(gw).watcher)
        assert await incoming(gw) == []
        assert (await state(gw, partner, created["id"]))["status"] == "pending_sender"
        status, body = sender.pay(OWN.public_key, "100", created["stellar_memo"], GWUSD)
        assert status == 200, body
        await drain(services(gw).watcher)
        assert [r["outcome"] for r in await incoming(gw)] == ["matched"]


# -- restarts, faults, concurrency --------------------------------------------------------------


def watcher_of(gw, page_size: int) -> PaymentWatcher:
    w = services(gw).watcher
    return PaymentWatcher(
        w.account,
        uow=gw.app.state.deps.uow,
        horizon=gw.app.state.deps.horizon,
        transfers=services(gw).transfers,
        page_size=page_size,
    )


async def test_a_restart_mid_way_misses_nothing_and_matches_nothing_twice(gw, partner, sender):
    created = [await new_transfer(partner, str(10 + i)) for i in range(7)]
    for i, c in enumerate(created):
        paid(sender, c["stellar_memo"], str(10 + i))
    first = watcher_of(gw, page_size=3)
    assert await first.watch_once() == 3
    # A new process: a fresh watcher continues from the stored cursor.
    second = watcher_of(gw, page_size=3)
    assert await drain(second) == 2
    rows_ = await incoming(gw)
    assert len(rows_) == 7 and {r["outcome"] for r in rows_} == {"matched"}
    for c in created:
        assert len(await payouts_of(gw, c["id"])) == 1
    [cursor] = await rows(gw, watcher_cursors)
    assert cursor["account"] == RECEIVING and cursor["cursor"]
    # Reading again from scratch (a lost cursor) still applies nothing twice.
    async with gw.app.state.deps.uow() as uow:
        from sqlalchemy import delete

        await uow.connection.execute(delete(watcher_cursors))
        await uow.commit()
    await drain(watcher_of(gw, page_size=3))
    assert len(await incoming(gw)) == 7


async def test_a_crash_while_applying_a_page_leaves_no_trace_of_it(gw, partner, sender):
    created = [await new_transfer(partner, str(20 + i)) for i in range(4)]
    for i, c in enumerate(created):
        paid(sender, c["stellar_memo"], str(20 + i))
    transfers = services(gw).transfers
    real = transfers._payouts

    class Crashing:
        """Dies after the page's transfers were written, before its payouts are."""

        async def enqueue_many(self, uow, instructions, latest):
            raise RuntimeError("process died")

    transfers._payouts = Crashing()
    watcher = watcher_of(gw, page_size=10)
    with pytest.raises(RuntimeError):
        await watcher.watch_once()
    assert await incoming(gw) == [] and await rows(gw, payouts) == []
    assert await rows(gw, watcher_cursors) == [] and await rows(gw, transfer_events) == [
        e for e in await rows(gw, transfer_events) if e["to_status"] == "pending_sender"
    ]
    for c in created:
        assert (await state(gw, partner, c["id"]))["status"] == "pending_sender"
    transfers._payouts = real
    await drain(watcher)
    assert [r["outcome"] for r in await incoming(gw)] == ["matched"] * 4
    assert len(await rows(gw, payouts)) == 4


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "status", "status": 503},
        {"mode": "status", "status": 500},
        {"mode": "status", "status": 429, "retry_after": 1},
        {"mode": "timeout"},
    ],
    ids=["503", "500", "429", "timeout"],
)
async def test_horizon_faults_are_retried_and_never_touch_a_transfer(gw, partner, sender, fault):
    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "100")
    gw.horizon_transport.faults.add(path=f"/accounts/{RECEIVING}/payments", count=2, **fault)
    watcher = services(gw).watcher
    for _ in range(2):
        with pytest.raises(HorizonUnavailable):
            await watcher.watch_once()
    assert (await state(gw, partner, created["id"]))["status"] == "pending_sender"
    assert await incoming(gw) == [] and await rows(gw, watcher_cursors) == []
    await drain(watcher)
    assert (await state(gw, partner, created["id"]))["status"] == "pending_receiver"


async def test_an_account_horizon_does_not_know_yet_has_no_payments(make_settings, engine, clock):
    async with running_gateway(make_settings(), engine, clock=clock) as g:
        assert await g.app.state.services.watcher.watch_once() == 0
        async with g.app.state.deps.uow(read_only=True) as uow:
            assert await uow.payments.list() == []


async def test_the_worker_loop_backs_off_on_horizon_faults(gw, partner, sender):
    from gateway.workers import run_forever

    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "100")
    gw.horizon_transport.faults.add("status", path=f"/accounts/{RECEIVING}/payments", count=3)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_forever(
            "payment-watcher",
            services(gw).watcher.watch_once,
            interval=0.01,
            stop=stop,
            max_backoff=0.05,
        )
    )
    for _ in range(200):
        if (await state(gw, partner, created["id"]))["status"] == "pending_receiver":
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await state(gw, partner, created["id"]))["status"] == "pending_receiver"


async def test_two_watchers_at_once_apply_each_payment_once(gw, partner, sender):
    created = [await new_transfer(partner, str(30 + i)) for i in range(6)]
    for i, c in enumerate(created):
        paid(sender, c["stellar_memo"], str(30 + i))
    a, b = watcher_of(gw, page_size=2), watcher_of(gw, page_size=2)

    async def run(w):
        for _ in range(10):
            await w.watch_once()

    await asyncio.gather(run(a), run(b))
    rows_ = await incoming(gw)
    assert len(rows_) == 6 and {r["outcome"] for r in rows_} == {"matched"}
    assert len(await rows(gw, payouts)) == 6


async def test_lag_is_unknown_before_the_first_run_and_small_when_caught_up(
    gw, partner, sender, clock
):
    watcher = services(gw).watcher
    lag = await watcher.lag()
    assert lag.seconds is None and lag.last_payment_at is None
    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "100")
    await drain(watcher)
    clock.advance(30)
    lag = await watcher.lag()
    assert 29 <= lag.seconds <= 40 and lag.last_payment_at is not None
    # Operators see it in /health and /metrics.
    health = (await gw.client.get("/health")).json()["payment_watcher"]
    assert 29 <= health["lag_seconds"] <= 40 and health["last_payment_at"]
    metrics = (await gw.client.get("/metrics")).text
    assert 'gateway_transfers{status="pending_receiver"} 1' in metrics
    assert f'gateway_payment_watcher_lag_seconds{{account="{RECEIVING}"}} 3' in metrics


# -- what the payout engine reports back, and operators -----------------------------------------


async def received_transfer(gw, partner, sender, amount="100") -> tuple[str, dict]:
    created = await new_transfer(partner, amount)
    paid(sender, created["stellar_memo"], amount)
    await drain(services(gw).watcher)
    [payout] = await payouts_of(gw, created["id"])
    return created["id"], payout


async def test_a_payout_on_stellar_completes_the_transfer(gw, partner, sender):
    tid, payout = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.payout_submitted(tid, on_stellar=True)
    assert (await state(gw, partner, tid))["status"] == "pending_stellar"
    result = PayoutResult(payout["id"], "sep31", tid, "payout", True, 985_000_000, "ab" * 32)
    await t.payout_settled(result)
    await t.payout_settled(result)  # a repeated report changes nothing
    tx = await state(gw, partner, tid)
    assert tx["status"] == "completed" and tx["completed_at"]
    assert tx["external_transaction_id"] == "ab" * 32
    assert tx["stellar_transaction_id"] != "ab" * 32  # stays the inbound payment's hash
    statuses = [e["to_status"] for e in await rows(gw, transfer_events, transfer_id=tid)]
    assert statuses == ["pending_sender", "pending_receiver", "pending_stellar", "completed"]


async def set_payout_status(gw, payout_id: str, status: str) -> None:
    """What the payout engine does to its rows."""
    async with gw.app.state.deps.uow() as uow:
        await uow.connection.execute(
            update(payouts).where(payouts.c.id == payout_id).values(status=status)
        )
        await uow.commit()


async def test_a_failed_payout_is_an_error_by_default_and_can_then_be_refunded(gw, partner, sender):
    tid, payout = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await set_payout_status(gw, payout["id"], SUBMITTED)
    for action in ("refund", "fail", "need_customer_info"):
        with pytest.raises(Conflict, match="a payout of this transfer is submitted or done"):
            await t.operate(tid, action, "operator:ana", "sender asked")
    await t.payout_settled(
        PayoutResult(payout["id"], "sep31", tid, "payout", False, 0, reason="bank rejected")
    )
    tx = await state(gw, partner, tid)
    assert (tx["status"], tx["status_message"]) == ("error", "payout failed: bank rejected")
    await set_payout_status(gw, payout["id"], FAILED)
    await t.operate(tid, "refund", "operator:ana", "sender asked")
    refund = next(p for p in await payouts_of(gw, tid) if p["purpose"] == "refund")
    assert (refund["amount"], refund["destination"]) == (1_000_000_000, sender.account)
    await t.operate(tid, "refund", "operator:ana", "clicked twice")  # one refund only
    assert len(await payouts_of(gw, tid)) == 2
    tx = await state(gw, partner, tid)
    assert tx["status_message"] == "the payment is being refunded: sender asked"


async def test_a_refund_cancels_a_payout_still_queued(gw, partner, sender):
    tid, payout = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.operate(tid, "refund", "operator:ana", "sender cancelled")
    canceled, refund = await payouts_of(gw, tid)
    assert (canceled["id"], canceled["status"]) == (payout["id"], "canceled")
    assert (refund["purpose"], refund["status"], refund["amount"]) == (
        "refund",
        "ready",
        1_000_000_000,
    )
    # Nothing can pay it out now.
    for action in ("release", "info_updated"):
        with pytest.raises(IllegalTransition):
            await t.operate(tid, action, "operator:bob", "pay it")
    assert len(await payouts_of(gw, tid)) == 2


async def test_a_held_payment_refunded_cannot_then_be_released(gw, partner, sender):
    created = await new_transfer(partner)
    tid = created["id"]
    paid(sender, created["stellar_memo"], "50")
    await drain(services(gw).watcher)
    t = services(gw).transfers
    await t.operate(tid, "refund", "operator:ana", "send it back")
    with pytest.raises(IllegalTransition):
        await t.operate(tid, "release", "operator:bob", "pay it out")
    [refund] = await payouts_of(gw, tid)
    assert (refund["purpose"], refund["amount"]) == ("refund", 500_000_000)
    tx = await state(gw, partner, tid)
    assert "held" not in tx["status_message"]


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("fail", None),
        ("need_customer_info", {"bank_number": "unknown bank"}),
        ("need_transaction_info", {"ref": {"description": "r"}}),
    ],
)
async def test_failing_or_asking_for_data_stops_a_queued_payout(
    gw, partner, sender, action, fields
):
    tid, _ = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.operate(tid, action, "operator:ana", "bank number bounced", fields)
    [stopped] = await payouts_of(gw, tid)
    assert stopped["status"] == "canceled"
    if action != "fail":
        # Once the data is fixed the payout is queued again, as a new attempt.
        await t.operate(tid, "info_updated", "operator:ana", "fixed")
        first, second = await payouts_of(gw, tid)
        assert (first["status"], second["status"], second["attempt"]) == ("canceled", "ready", 2)
        assert second["amount"] == first["amount"]


async def test_refund_submissions_do_not_move_the_transfer(gw, partner, sender):
    tid, _ = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.payout_submitted(tid, purpose="refund", on_stellar=True)
    assert (await state(gw, partner, tid))["status"] == "pending_receiver"
    await t.payout_submitted(tid, purpose="payout", on_stellar=False)
    assert (await state(gw, partner, tid))["status"] == "pending_external"


async def test_a_long_reason_from_the_payout_engine_is_stored_clipped(gw, partner, sender):
    tid, payout = await received_transfer(gw, partner, sender)
    reason = "rail said: " + "x" * 3000
    await services(gw).transfers.payout_settled(
        PayoutResult(payout["id"], "sep31", tid, "payout", False, 0, reason=reason)
    )
    tx = await state(gw, partner, tid)
    assert tx["status"] == "error" and len(tx["status_message"]) == 500
    events = await rows(gw, transfer_events, transfer_id=tid)
    assert len(events[-1]["reason"]) == 500


async def test_a_muxed_payer_is_refunded_to_its_muxed_address(gw, partner, sender):
    from stellar_sdk import MuxedAccount

    created = await new_transfer(partner)
    paid(sender, created["stellar_memo"], "50", muxed_id=7)
    await drain(services(gw).watcher)
    await services(gw).transfers.operate(created["id"], "refund", "operator:ana", "short")
    [refund] = await payouts_of(gw, created["id"])
    assert refund["destination"] == MuxedAccount(sender.account, 7).account_muxed
    [row] = await incoming(gw)
    assert row["source"] == refund["destination"]


async def test_a_success_reported_against_the_state_is_logged_not_forced(
    gw, partner, sender, caplog
):
    tid, payout = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.operate(tid, "fail", "operator:ana", "fraud suspected")
    await t.payout_settled(PayoutResult(payout["id"], "sep31", tid, "payout", True, 1, "ff" * 32))
    assert (await state(gw, partner, tid))["status"] == "error"
    assert any("payout success reported while error" in r.getMessage() for r in caplog.records)
    await t.payout_settled(PayoutResult("x", "sep31", "no-such-transfer", "payout", True, 1))


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("need_customer_info", {"bank_number": "unknown bank"}),
        ("need_transaction_info", {"ref": {"description": "r"}}),
    ],
)
async def test_operators_ask_for_information_and_take_it_back(gw, partner, sender, action, fields):
    tid, _ = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.operate(tid, action, "operator:ana", "bank number bounced", fields)
    tx = await state(gw, partner, tid)
    assert tx["status"] == action.replace("need_", "pending_") + "_update"
    assert tx["required_info_message"] == "bank number bounced"
    await t.operate(tid, "info_updated", "operator:ana", "fixed")
    assert (await state(gw, partner, tid))["status"] == "pending_receiver"
    with pytest.raises(IllegalTransition):
        await t.operate(tid, "info_updated", "operator:ana", "again")


async def test_unknown_operator_actions_and_transfers_are_refused(gw, partner, sender):
    from gateway.errors import InvalidField, NotFound

    tid, _ = await received_transfer(gw, partner, sender)
    with pytest.raises(InvalidField):
        await services(gw).transfers.operate(tid, "teleport", "operator:ana", "x")
    with pytest.raises(NotFound):
        await services(gw).transfers.operate("nope", "fail", "operator:ana", "x")
    assert Decimal((await state(gw, partner, tid))["amount_out"]) == Decimal("98.50")


# -- what Horizon may send that the fake does not ------------------------------------------------


class ScriptedHorizon:
    """Pages as a test writes them, keyed by the cursor asked for."""

    def __init__(self, pages):
        self.pages = pages
        self.asked: list[str | None] = []

    async def payments(self, account_id, cursor, limit):
        self.asked.append(cursor)
        return self.pages.get(cursor, PaymentsPage((), cursor))


def record(op_id: int, memo: str, amount: str = "100") -> Payment:
    return Payment(
        id=str(op_id),
        paging_token=str(op_id),
        type="payment",
        transaction_hash=f"{op_id:064x}",
        source=Keypair.random().public_key,
        to=RECEIVING,
        to_muxed_id=None,
        asset_code="GWUSD",
        asset_issuer=ISSUER,
        amount=Decimal(amount),
        created_at=datetime.now(UTC),
        memo_type="id",
        memo=memo,
        ledger=1,
    )


async def test_a_record_repeated_in_one_page_is_applied_once(gw, partner):
    created = await new_transfer(partner)
    twice = record(11, created["stellar_memo"])
    horizon = ScriptedHorizon({None: PaymentsPage((twice, twice), "11")})
    watcher = PaymentWatcher(
        RECEIVING, uow=gw.app.state.deps.uow, horizon=horizon, transfers=services(gw).transfers
    )
    await drain(watcher)
    assert [r["outcome"] for r in await incoming(gw)] == ["matched"]
    assert len(await payouts_of(gw, created["id"])) == 1


async def test_a_full_page_of_records_it_skips_still_means_more_to_read(gw, partner):
    created = await new_transfer(partner)
    outgoing = record(5, created["stellar_memo"])
    outgoing = Payment(
        **{**{f: getattr(outgoing, f) for f in outgoing.__slots__}, "source": RECEIVING}
    )
    horizon = ScriptedHorizon(
        {
            None: PaymentsPage((outgoing,), "5", full=True),
            "5": PaymentsPage((record(6, created["stellar_memo"]),), "6"),
        }
    )
    watcher = PaymentWatcher(
        RECEIVING, uow=gw.app.state.deps.uow, horizon=horizon, transfers=services(gw).transfers
    )
    assert await watcher.watch_once() > 0  # nothing applied, but the page was full
    assert await watcher.watch_once() == 0
    assert horizon.asked == [None, "5"]
    assert [r["id"] for r in await incoming(gw)] == ["6"]


async def test_key_rotation_reseals_values_sent_with_patch(gw, partner, sender):
    from gateway.personal_data import Vault
    from gateway.sep12_customer.rotation import rotate
    from gateway.sep31.model import transfer_info_context
    from tests.conftest import TEST_KYC_KEY

    tid, _ = await received_transfer(gw, partner, sender)
    t = services(gw).transfers
    await t.operate(tid, "need_transaction_info", "op", "ref?", {"ref": {"description": "r"}})
    assert (
        await partner.patch(tid, {"fields": {"transaction": {"ref": "R-1"}}})
    ).status_code == 200
    new_key = "bmV3LWtleS0zMi1ieXRlcy1sb25nLS0tLS0tLS0tLS0="
    vault = Vault.from_texts(new_key, [TEST_KYC_KEY])
    report = await rotate(gw.app.state.deps.uow, vault)
    assert report.resealed >= 1 and report.left is None
    async with gw.app.state.deps.uow(read_only=True) as uow:
        kid, blob = await uow.transfers.info(tid)
    opened = Vault.from_texts(new_key).open(kid, blob, transfer_info_context(tid))
    assert json.loads(opened) == {"ref": "R-1"}


async def test_the_receiver_fixing_their_data_resumes_the_transfer(gw, partner, sender, clock):
    from gateway.errors import InvalidField

    tid, _ = await received_transfer(gw, partner, sender)
    receiver_id = partner._ids[1]  # type: ignore[attr-defined]
    t = services(gw).transfers
    with pytest.raises(InvalidField, match="name the receiver's fields"):
        await t.operate(tid, "need_customer_info", "operator:ana", "fix it")
    with pytest.raises(InvalidField, match="must be fields of sep31-receiver"):
        await t.operate(tid, "need_customer_info", "operator:ana", "x", {"iban": "?"})
    await t.operate(
        tid,
        "need_customer_info",
        "operator:ana",
        "the bank refused the account",
        {"bank_account_number": "closed account"},
    )
    tx = await state(gw, partner, tid)
    assert tx["status"] == "pending_customer_info_update"
    # The sending anchor sees what to fix through SEP-12.
    customer = await partner.kyc.status(id=receiver_id, type="sep31-receiver")
    assert customer["status"] == "NEEDS_INFO"
    assert customer["provided_fields"]["bank_account_number"]["status"] == "REJECTED"
    assert await t.resume_after_customer_updates() == 0  # nothing changed yet

    clock.advance(1)
    await partner.kyc.put_id({"id": receiver_id, "bank_account_number": "7654321"})
    assert (await partner.kyc.status(id=receiver_id, type="sep31-receiver"))["status"] == (
        "ACCEPTED"
    )
    assert await t.resume_after_customer_updates() == 1
    tx = await state(gw, partner, tid)
    assert tx["status"] == "pending_receiver"
    first, second = await payouts_of(gw, tid)
    assert (first["status"], second["status"], second["attempt"]) == ("canceled", "ready", 2)
    events = await rows(gw, transfer_events, transfer_id=tid)
    assert (events[-1]["to_status"], events[-1]["actor"]) == ("pending_receiver", "customer")
    assert await t.resume_after_customer_updates() == 0


async def test_a_transfer_resumes_however_many_newer_ones_still_wait(gw, partner, sender, clock):
    t = services(gw).transfers
    oldest, _ = await received_transfer(gw, partner, sender)
    first_receiver = partner._ids[1]  # type: ignore[attr-defined]
    other_receiver = await partner.kyc.put_id({"memo": "9", "memo_type": "id", **RECEIVER})
    partner._ids = (partner._ids[0], other_receiver)  # type: ignore[attr-defined]
    newer = []
    for _ in range(3):
        clock.advance(1)
        newer.append((await received_transfer(gw, partner, sender))[0])
    for tid in (oldest, *newer):
        await t.operate(
            tid, "need_customer_info", "operator:ana", "bank refused", {"bank_account_number": "?"}
        )
    clock.advance(1)
    await partner.kyc.put_id({"id": first_receiver, "bank_account_number": "7654321"})
    # The three newer transfers fill a page and will not move; the oldest still resumes.
    assert await t.resume_after_customer_updates(batch=2) == 1
    assert (await state(gw, partner, oldest))["status"] == "pending_receiver"
    for tid in newer:
        assert (await state(gw, partner, tid))["status"] == "pending_customer_info_update"


# -- SEP-3: payments that compliance requests authorized -----------------------------------------


async def authorized(
    gw,
    partner,
    attachment: str,
    *,
    amount=200_000_000,
    status="ok",
    domain="bank.test",
    customer: object = "receiver",
) -> str:
    """A stored SEP-3 request for our receiver, as the AUTH_SERVER leaves it; its id."""
    import hashlib

    from tests.fakes.sep3 import compliance_row

    if not hasattr(partner, "_ids"):
        partner._ids = await partner.customers()  # type: ignore[attr-defined]
    row = compliance_row(
        sender_domain=domain,
        nonce=attachment,
        memo=hashlib.sha256(attachment.encode()).hexdigest(),
        customer_id=partner._ids[1] if customer == "receiver" else customer,  # type: ignore[attr-defined]
        destination=RECEIVING,
        asset_code="GWUSD",
        asset_issuer=ISSUER,
        amount=amount,
        tx_status=status,
    )
    async with gw.app.state.deps.uow() as uow:
        await uow.compliance.add(row)
        await uow.commit()
    return str(row["id"])


def hash_memo(attachment: str) -> HashMemo:
    import hashlib

    return HashMemo(hashlib.sha256(attachment.encode()).digest())


async def test_an_authorized_payment_goes_to_payout_once(gw, partner, sender):
    ok = await authorized(gw, partner, '{"nonce":"a"}')
    held = await authorized(gw, partner, '{"nonce":"b"}', status="pending")
    short = await authorized(gw, partner, '{"nonce":"c"}')
    twice = await authorized(gw, partner, '{"nonce":"d"}')
    twice_too = await authorized(gw, partner, '{"nonce":"d"}', domain="other.test")
    no_one = await authorized(gw, partner, '{"nonce":"e"}', customer=None)
    paid(sender, hash_memo('{"nonce":"a"}'), "20")
    paid(sender, hash_memo('{"nonce":"a"}'), "20")  # the same payment again
    paid(sender, hash_memo('{"nonce":"b"}'), "20")
    paid(sender, hash_memo('{"nonce":"c"}'), "19")
    paid(sender, hash_memo('{"nonce":"a"}'), "20", Asset.native())
    paid(sender, hash_memo('{"nonce":"z"}'), "20")  # authorized by no one
    paid(sender, hash_memo('{"nonce":"e"}'), "20")  # authorized, but for no customer
    paid(sender, hash_memo('{"nonce":"d"}'), "20")  # authorized for two institutions
    await drain(services(gw).watcher)
    seen = await incoming(gw)
    assert [(r["outcome"], r["compliance_id"]) for r in seen[:-1]] == [
        ("matched", ok),
        ("duplicate", ok),
        ("unauthorized", held),
        ("short", short),
        ("wrong_asset", ok),
        ("unknown_memo", None),
        ("unauthorized", no_one),
    ]
    assert seen[-1]["outcome"] == "unauthorized" and seen[-1]["compliance_id"] in (twice, twice_too)
    assert seen[-1]["note"] == "the compliance request is ambiguous"
    [payout] = await rows(gw, payouts, source="sep3")
    assert (payout["source_id"], payout["amount"], payout["status"]) == (ok, 200_000_000, "ready")
    assert payout["customer_id"] == partner._ids[1]  # type: ignore[attr-defined]
    assert payout["rail"] == "bank_account" and payout["destination"] is None
    # What was not paid out can be sent back; what was, cannot.
    t = services(gw).transfers
    short_payment = next(r for r in seen if r["outcome"] == "short")
    refunded = await t.refund_payment(short_payment["id"], "operator:ana", "not authorized")
    assert refunded["resolution"] == "refund_queued"
    matched = next(r for r in seen if r["outcome"] == "matched")
    with pytest.raises(Conflict):
        await t.refund_payment(matched["id"], "operator:ana", "no")


async def test_denying_a_paid_request_cancels_its_queued_payout_and_refuses_once_it_is_sent(
    gw, partner, sender
):
    from sqlalchemy import update

    queued = await authorized(gw, partner, '{"nonce":"q"}')
    sent = await authorized(gw, partner, '{"nonce":"s"}')
    paid(sender, hash_memo('{"nonce":"q"}'), "20")
    paid(sender, hash_memo('{"nonce":"s"}'), "20")
    await drain(services(gw).watcher)
    async with gw.app.state.deps.uow() as uow:  # a submitter took this one
        await uow.connection.execute(
            update(payouts).where(payouts.c.source_id == sent).values(status="submitted")
        )
        await uow.commit()
    compliance = services(gw).compliance
    denied = await compliance.decide(
        queued, tx="denied", info=None, operator="operator:ana", reason="sanctions hit"
    )
    assert denied["tx_status"] == "denied"
    [canceled] = await rows(gw, payouts, source_id=queued)
    assert canceled["status"] == "canceled"
    with pytest.raises(Conflict, match="paid out already; it cannot be denied"):
        await compliance.decide(sent, tx="denied", info=None, operator="operator:ana", reason="x")
    [still] = await rows(gw, compliance_requests, id=sent)
    assert still["tx_status"] == "ok"
