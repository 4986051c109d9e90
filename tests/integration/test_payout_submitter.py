"""The payout submitter against the fake Horizon, on SQLite and PostgreSQL: batching, channel
leasing, every Horizon answer (success, operation failures, bad sequence, fees, lost answers,
timeouts), results back to the sources, and several submitters on one database."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from stellar_sdk import Keypair

from gateway.db.tables import disbursement_payments, payout_lanes, payout_transactions, payouts
from gateway.db.uow import UnitOfWorkFactory
from gateway.disbursement.channels import Channels
from gateway.disbursement.service import DisbursementService, RowsRefused
from gateway.disbursement.submitter import (
    RailOutcome,
    ResultRouter,
    Submitter,
    channel_keypair,
    op_codes,
)
from gateway.errors import Conflict, InvalidField
from gateway.outbound.horizon import HttpxHorizon
from gateway.payouts import PayoutInstruction
from gateway.sandbox.horizon import FakeHorizonTransport, FakeLedger, FaultInjector

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
HEADER = "receiver_reference,amount,asset_code,destination,memo,external_payment_id\n"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """A fake network with a funded distribution account, and the gateway's side of it."""

    def __init__(self, make_settings, engine, *, clock=None, max_ops=50, max_fee=10_000, **env):
        import time

        self.clock = clock or time.time
        self.ledger = FakeLedger(clock=self.clock)
        self.faults = FaultInjector(seed=7)
        self.keys = Keypair.random()
        self.ledger.create_account(ISSUER)
        self.ledger.create_account(self.keys.public_key, 1000)
        self.ledger.issue(ISSUER, self.keys.public_key, "GWUSD", 1_000_000)
        self.settings = make_settings(
            GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=self.keys.public_key,
            GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET=self.keys.secret,
            GATEWAY_DISBURSEMENT_MAX_OPS_PER_TX=str(max_ops),
            GATEWAY_DISBURSEMENT_MAX_FEE_STROOPS=str(max_fee),
            GATEWAY_DISBURSEMENT_TX_TIMEOUT_SECONDS="30",
            **env,
        )
        self.client = httpx.AsyncClient(
            transport=FakeHorizonTransport(self.ledger, self.faults), base_url="http://horizon"
        )
        self.horizon = HttpxHorizon(self.client)
        self.uow = UnitOfWorkFactory(engine)
        self.engine = engine
        self.service = DisbursementService(self.settings, uow=self.uow, horizon=self.horizon)
        self.router = ResultRouter({"disbursement": self.service})

    def submitter(self, **kw) -> Submitter:
        return Submitter(
            self.settings,
            uow=self.uow,
            horizon=self.horizon,
            distribution=self.keys,
            results=self.router,
            clock=self.clock,
            **kw,
        )

    def receiver(self, trust: bool = True) -> str:
        account = Keypair.random().public_key
        self.ledger.create_account(account, 10)
        if trust:
            self.ledger.add_trustline(account, "GWUSD", ISSUER)
        return account

    async def disbursement(self, destinations: list[str], amount: str = "1.25") -> str:
        rows = "".join(f"r{i},{amount},GWUSD,{d},,\n" for i, d in enumerate(destinations))
        made = await self.service.upload(
            (HEADER + rows).encode(), name="payroll", uploaded_by="operator:ana"
        )
        await self.service.act(made["id"], "ready", "operator:ana")
        await self.service.act(made["id"], "approve", "operator:bea")
        await self.service.act(made["id"], "start", "operator:bea")
        return str(made["id"])

    def received(self, account: str) -> Decimal:
        return self.ledger.balance_of(account, "GWUSD", ISSUER)

    async def rows(self, table) -> list[dict]:
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(select(table))]


async def run_until_idle(*submitters: Submitter, limit: int = 500) -> None:
    """Step until nothing is open, queued or unreported (waiting out backoffs)."""
    for _ in range(limit):
        done = await asyncio.gather(*(s.step() for s in submitters))
        if not any(done):
            async with submitters[0]._uow(read_only=True) as uow:
                txs = await uow.submissions.tx_counts()
                queued = await uow.submissions.counts()
                unreported = await uow.submissions.unreported(1)
            if not txs.get("open") and not queued.get("ready") and not unreported:
                return
            if queued.get("ready") and not txs.get("open"):
                return  # nothing can take them (no lane): the test looks at why
            await asyncio.sleep(0.1)
    raise AssertionError("the submitters never went idle")


@pytest.fixture
async def world(make_settings, engine):
    w = World(make_settings, engine)
    yield w
    await w.client.aclose()


async def test_a_started_disbursement_is_paid_in_batches_and_completes(world):
    receivers = [world.receiver() for _ in range(120)]
    did = await world.disbursement(receivers)
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    assert all(world.received(r) == Decimal("1.25") for r in receivers)
    assert world.received(world.keys.public_key) == Decimal(1_000_000) - Decimal("150")
    txs = await world.rows(payout_transactions)
    assert sorted(t["operations"] for t in txs) == [20, 50, 50]
    assert {t["status"] for t in txs} == {"included"}
    shown = await world.service.show(did)
    assert shown["status"] == "completed"
    assert {p["status"] for p in shown["payment_rows"]} == {"success"}
    assert all(p["reported"] and p["stellar_transaction_id"] for p in await world.rows(payouts))
    # Each payment's history: handed over, then paid, naming the transaction.
    mine = [e for e in shown["history"] if e["payment_id"] == shown["payment_rows"][0]["id"]]
    assert [(e["to_status"], e["actor"]) for e in mine][-2:] == [
        ("pending", "operator:bea"),
        ("success", "payout-engine"),
    ]
    assert mine[-1]["reason"] in {t["hash"] for t in txs}
    # The distribution account was the only lane, and knows its sequence number.
    (lane,) = await world.rows(payout_lanes)
    assert lane["sequence"] == world.ledger.sequence_of(world.keys.public_key)


async def test_a_failed_operation_fails_its_payout_and_the_others_are_sent_again(world):
    good = [world.receiver() for _ in range(3)]
    no_trust = world.receiver(trust=False)
    missing = Keypair.random().public_key
    did = await world.disbursement([good[0], no_trust, good[1], missing, good[2]])
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    assert [world.received(r) for r in good] == [Decimal("1.25")] * 3
    shown = await world.service.show(did)
    by_line = {p["line"]: (p["status"], p["failure"]) for p in shown["payment_rows"]}
    assert by_line[3] == ("failed", "op_no_trust: the destination has no trustline for the asset")
    assert by_line[5][0] == "failed" and "does not exist" in by_line[5][1]
    assert shown["status"] == "completed"  # whatever the mix
    statuses = Counter(t["status"] for t in await world.rows(payout_transactions))
    assert statuses == {"failed": 1, "included": 1}


async def test_a_lost_answer_sends_the_same_envelope_again_and_pays_once(make_settings, engine):
    clock = Clock()
    w = World(make_settings, engine, clock=clock)
    try:
        receivers = [w.receiver() for _ in range(10)]
        await w.disbursement(receivers)
        w.faults.add("lost_answer", method="POST", path="/transactions", count=2, status=504)
        submitter = w.submitter()
        await submitter.ensure_lane()
        for _ in range(6):
            await submitter.step()
            clock.now += 2  # past each backoff, well within the bound
        assert [w.received(r) for r in receivers] == [Decimal("1.25")] * 10
        (tx,) = await w.rows(payout_transactions)
        assert (tx["status"], tx["submissions"]) == ("included", 2)
        assert len(w.ledger.transactions) == 1
        assert {p["status"] for p in await w.rows(payouts)} == {"succeeded"}
    finally:
        await w.client.aclose()


async def test_an_unanswered_envelope_is_rebuilt_only_after_its_bound_passes(make_settings, engine):
    clock = Clock()
    w = World(make_settings, engine, clock=clock)
    try:
        receivers = [w.receiver() for _ in range(3)]
        await w.disbursement(receivers)
        rule = w.faults.add("timeout", method="POST", path="/transactions")
        submitter = w.submitter()
        await submitter.ensure_lane()
        for _ in range(5):
            await submitter.step()
            clock.now += 5  # within the 30 s bound: the same envelope goes again
        (tx,) = await w.rows(payout_transactions)
        assert tx["status"] == "open" and tx["submissions"] >= 3
        assert {p["status"] for p in await w.rows(payouts)} == {"submitted"}
        clock.now += 60  # past the bound: not on the ledger, so it is dead
        w.faults.remove(rule.id)
        await run_until_idle(submitter)
        txs = sorted(await w.rows(payout_transactions), key=lambda t: t["created_at"])
        assert [t["status"] for t in txs] == ["dead", "included"]
        assert txs[0]["sequence"] == txs[1]["sequence"]  # the number was never spent
        assert [w.received(r) for r in receivers] == [Decimal("1.25")] * 3
        assert {(p["status"], p["tries"]) for p in await w.rows(payouts)} == {("succeeded", 1)}
    finally:
        await w.client.aclose()


async def test_a_fee_too_low_is_raised_at_the_same_sequence_up_to_the_cap(make_settings, engine):
    clock = Clock()
    w = World(make_settings, engine, clock=clock, max_fee=500)
    try:
        receivers = [w.receiver() for _ in range(2)]
        await w.disbursement(receivers)
        submitter = w.submitter()
        await submitter.ensure_lane()
        assert await submitter._base_fee() == 100  # read before the surge
        w.ledger.set_base_fee(400)
        await submitter.step()
        (tx,) = await w.rows(payout_transactions)
        assert (tx["status"], tx["fee_per_op"], len(json.loads(tx["hashes"]))) == (
            "included",
            400,
            3,
        )
        assert [w.received(r) for r in receivers] == [Decimal("1.25")] * 2
        # Above the cap: it waits for its bound, then is given up and sent again.
        await w.disbursement([w.receiver()])
        w.ledger.set_base_fee(1000)
        await submitter.step()
        (latest,) = [t for t in await w.rows(payout_transactions) if t["status"] == "open"]
        assert latest["fee_per_op"] == 500
        assert latest["last_error"] == "tx_insufficient_fee at the fee cap"
        w.ledger.set_base_fee(100)
        clock.now += 120
        await run_until_idle(submitter)
        assert {p["status"] for p in await w.rows(payouts)} == {"succeeded"}
    finally:
        await w.client.aclose()


async def test_a_spent_sequence_number_gives_the_transaction_up_and_resyncs_the_lane(world):
    receivers = [world.receiver() for _ in range(2)]
    await world.disbursement(receivers)
    submitter = world.submitter()
    await submitter.ensure_lane()
    # Someone else used the distribution account: our next number is spent.
    world.ledger.accounts[world.keys.public_key].sequence += 3
    await run_until_idle(submitter)
    txs = sorted(await world.rows(payout_transactions), key=lambda t: t["created_at"])
    assert [t["status"] for t in txs] == ["dead", "included"]
    assert txs[0]["last_error"] == "its sequence number was used elsewhere"
    assert [world.received(r) for r in receivers] == [Decimal("1.25")] * 2


async def test_a_payout_sent_back_too_often_fails_with_the_reason(make_settings, engine):
    clock = Clock()
    w = World(make_settings, engine, clock=clock, GATEWAY_DISBURSEMENT_MAX_TRIES="2")
    try:
        await w.disbursement([w.receiver()])
        w.faults.add("timeout", method="POST", path="/transactions")
        submitter = w.submitter()
        await submitter.ensure_lane()
        for _ in range(6):
            await submitter.step()
            clock.now += 40
        (p,) = await w.rows(payouts)
        assert p["status"] == "failed" and p["reason"].startswith("not sent after 2 tries")
        (payment,) = await w.rows(disbursement_payments)
        assert payment["status"] == "failed"
    finally:
        await w.client.aclose()


async def test_channels_are_created_leased_in_parallel_verified_and_deleted(world):
    submitter = world.submitter(lease_seconds=30)
    await submitter.ensure_lane()
    channels = Channels(
        world.settings, uow=world.uow, horizon=world.horizon, distribution=world.keys
    )
    made = await channels.create(3)
    assert [lane["idx"] for lane in made] == [None, 0, 1, 2]
    assert made[0]["status"] == "retired" and {m["status"] for m in made[1:]} == {"active"}
    assert made[1]["account_id"] == channel_keypair(world.keys, 0).public_key
    receivers = [world.receiver() for _ in range(200)]
    await world.disbursement(receivers)
    world.faults.add("status", method="POST", path="/transactions", probability=0.2, status=503)
    await run_until_idle(*(world.submitter() for _ in range(3)))
    assert all(world.received(r) == Decimal("1.25") for r in receivers)
    lanes_used = {t["lane"] for t in await world.rows(payout_transactions)}
    assert lanes_used == {m["account_id"] for m in made[1:]}
    assert all(not lane["problems"] for lane in await channels.verify())
    # The channels paid the fees; payments came from the distribution account.
    assert world.received(world.keys.public_key) == Decimal(1_000_000) - Decimal(250)
    world.faults.clear()
    removed = await channels.delete()
    assert len(removed) == 3
    (left,) = await channels.lanes()
    assert (left["idx"], left["status"]) == (None, "active")
    assert all(world.ledger.account(a) is None for a in removed)


async def test_a_halted_channel_stops_taking_work_until_verified(world):
    channels = Channels(
        world.settings, uow=world.uow, horizon=world.horizon, distribution=world.keys
    )
    (lane,) = await channels.create(1)
    world.ledger.set_balance(lane["account_id"], "1")  # nothing left above its reserve
    await world.disbursement([world.receiver()])
    submitter = world.submitter()
    await submitter.step()
    (row,) = [x for x in await channels.lanes() if x["idx"] == 0]
    assert (row["status"], row["note"]) == ("halted", "tx_insufficient_balance")
    verified = next(x for x in await channels.verify() if x["idx"] == 0)
    assert verified["status"] == "halted" and "too little for fees" in verified["problems"][0]
    world.ledger.set_balance(lane["account_id"], "5")
    assert next(x for x in await channels.verify() if x["idx"] == 0)["status"] == "active"
    status = await world.service.accounts_status()
    assert [x["idx"] for x in status["lanes"]] == [0]


async def test_pausing_takes_back_what_was_not_sent_and_resuming_sends_it(world):
    receivers = [world.receiver() for _ in range(4)]
    did = await world.disbursement(receivers)
    await world.service.act(did, "pause", "operator:bea", "checking")
    shown = await world.service.show(did)
    assert {p["status"] for p in shown["payment_rows"]} == {"ready"}
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    assert world.received(receivers[0]) == 0
    await world.service.act(did, "start", "operator:bea")
    await run_until_idle(submitter)
    assert [world.received(r) for r in receivers] == [Decimal("1.25")] * 4
    attempts = Counter((p["attempt"], p["status"]) for p in await world.rows(payouts))
    assert attempts == {(1, "canceled"): 4, (2, "succeeded"): 4}
    assert (await world.service.get(did))["status"] == "completed"


async def test_memos_go_one_per_transaction(world):
    receivers = [world.receiver() for _ in range(3)]
    rows = "".join(f"r{i},1,GWUSD,{d},{i + 1},\n" for i, d in enumerate(receivers))
    made = await world.service.upload((HEADER + rows).encode(), name="m", uploaded_by="ana")
    for action, who in (("ready", "ana"), ("approve", "bea"), ("start", "bea")):
        await world.service.act(made["id"], action, who)
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    assert [t.operation_count for t in world.ledger.transactions] == [1, 1, 1]
    assert [world.received(r) for r in receivers] == [Decimal(1)] * 3


class FakeRail:
    def __init__(self):
        self.paid: Counter[str] = Counter()

    async def pay(self, key, payout):
        self.paid[key] += 1
        return RailOutcome(True, reference=f"bank-{key[:8]}")


async def test_off_chain_payouts_go_through_the_rail_once_per_key(world):
    from datetime import UTC, datetime, timedelta

    rail = FakeRail()
    async with world.uow() as uow:
        for i in range(3):
            await uow.payouts.add(
                PayoutInstruction("sep31", f"t-{i}", "payout", "GWUSD", ISSUER, 100, rail="sepa"),
                datetime.now(UTC),
            )
        await uow.commit()
    seen = []

    class Handler:
        async def payout_settled(self, result):
            seen.append((result.source_id, result.succeeded, result.external_reference))

    submitter = Submitter(
        world.settings,
        uow=world.uow,
        horizon=world.horizon,
        distribution=world.keys,
        results=ResultRouter({"sep31": Handler()}),
        rail=rail,
        lease_seconds=1,
    )
    # A submitter that stopped after claiming: the next asks the rail again, same key.
    async with world.uow() as uow:
        (first,) = await uow.submissions.claim_rail(1, datetime.now(UTC))
        await uow.submissions.attach([first["id"]], None, datetime.now(UTC) - timedelta(seconds=5))
        await uow.commit()
    await run_until_idle(submitter)
    assert sorted(rail.paid.values()) == [1, 1, 1]
    assert sorted(s[0] for s in seen) == ["t-0", "t-1", "t-2"]
    assert all(s[1] and s[2].startswith("bank-") for s in seen)


async def test_operation_codes_are_read_from_result_xdr():
    ledger = FakeLedger()
    keys = Keypair.random()
    ledger.create_account(keys.public_key)
    status, body = ledger.submit(_payment_to_nowhere(ledger, keys))
    assert status == 400
    assert op_codes(body["extras"]["result_xdr"]) == ("op_no_destination",)
    assert op_codes(None) == ()


def _payment_to_nowhere(ledger: FakeLedger, keys: Keypair) -> str:
    from stellar_sdk import Account, Asset, TransactionBuilder

    tx = (
        TransactionBuilder(
            Account(keys.public_key, ledger.sequence_of(keys.public_key)),
            ledger.network_passphrase,
            base_fee=100,
        )
        .append_payment_op(Keypair.random().public_key, Asset.native(), "1")
        .set_timeout(30)
        .build()
    )
    tx.sign(keys)
    return tx.to_xdr()


class Recorded:
    """The gateway's Horizon adapter, recording calls and able to hide operation codes."""

    def __init__(self, inner: HttpxHorizon, *, hide_op_codes: bool = False):
        self._inner = inner
        self._hide = hide_op_codes
        self.calls: list[str] = []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self._inner, name)

    async def submit(self, envelope_xdr):
        from dataclasses import replace

        self.calls.append("submit")
        answer = await self._inner.submit(envelope_xdr)
        return replace(answer, op_codes=()) if self._hide else answer


async def test_a_failed_transaction_without_operation_codes_pays_nobody_and_blames_nobody(
    world,
):
    await world.disbursement([world.receiver(), world.receiver(trust=False)])
    submitter = world.submitter()
    submitter._horizon = Recorded(world.horizon, hide_op_codes=True)
    await submitter.ensure_lane()
    await submitter.step()
    assert {(p["status"], p["tries"]) for p in await world.rows(payouts)} == {("ready", 1)}
    assert [t["status"] for t in await world.rows(payout_transactions)] == ["failed"]


async def test_past_its_bound_the_ledger_is_read_before_the_hashes_are_looked_up(
    make_settings, engine
):
    clock = Clock()
    w = World(make_settings, engine, clock=clock)
    try:
        await w.disbursement([w.receiver()])
        rule = w.faults.add("timeout", method="POST", path="/transactions")
        submitter = w.submitter()
        await submitter.ensure_lane()
        await submitter.step()
        w.faults.remove(rule.id)
        clock.now += 60
        recorded = Recorded(w.horizon)
        submitter._horizon = recorded
        await submitter.step()
        assert recorded.calls[:2] == ["ledger_state", "transaction"]
        (tx,) = await w.rows(payout_transactions)
        assert tx["status"] == "dead"
    finally:
        await w.client.aclose()


# -- approval on every path that pays: retries and direct payouts --------------------------------


async def test_a_retry_of_failed_payments_pays_them_once_approved_and_completes_again(world):
    good, no_trust = world.receiver(), world.receiver(trust=False)
    did = await world.disbursement([good, no_trust])
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    assert (await world.service.get(did))["status"] == "completed"
    with pytest.raises(Conflict, match="no retry awaits"):
        await world.service.act(did, "drop_retry", "operator:bea")
    asked = await world.service.act(did, "retry", "operator:cai")
    assert (asked["status"], asked["retry_by"]) == ("completed", "operator:cai")
    for who, why in [("operator:cai", "who asked"), ("operator:ana", "the uploader")]:
        with pytest.raises(Conflict, match=why):
            await world.service.act(did, "approve", who)
    await run_until_idle(submitter)
    assert (await world.service.show(did))["payment_rows"][1]["status"] == "failed"
    world.ledger.add_trustline(no_trust, "GWUSD", ISSUER)
    approved = await world.service.act(did, "approve", "operator:bea")
    assert (approved["status"], approved["retry_by"]) == ("started", None)
    await run_until_idle(submitter)
    assert (world.received(good), world.received(no_trust)) == (Decimal("1.25"), Decimal("1.25"))
    shown = await world.service.show(did)
    assert shown["status"] == "completed"
    assert {p["status"] for p in shown["payment_rows"]} == {"success"}
    attempts = Counter((p["attempt"], p["status"]) for p in await world.rows(payouts))
    assert attempts == {(1, "succeeded"): 1, (1, "failed"): 1, (2, "succeeded"): 1}
    reasons = [e["reason"] for e in shown["history"] if e["payment_id"] is None]
    assert "retry of 1 failed payment(s) asked for" in reasons
    assert "started again by an approved retry" in reasons
    with pytest.raises(Conflict, match="no failed payment"):
        await world.service.act(did, "retry", "operator:cai")


async def test_a_retry_is_reserved_like_a_start_and_refused_on_a_shortfall(world):
    no_trust = world.receiver(trust=False)
    did = await world.disbursement([no_trust], amount="600000")
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    # Another disbursement now holds most of the balance: the retry does not fit.
    await world.disbursement([world.receiver()], amount="500000")
    await world.service.act(did, "retry", "operator:cai")
    with pytest.raises(Conflict, match="not enough in the distribution account: GWUSD"):
        await world.service.act(did, "approve", "operator:bea")
    found = await world.service.get(did)
    assert (found["status"], found["retry_by"], found["retry_approvers"]) == (
        "completed",
        "operator:cai",
        "[]",
    )
    dropped = await world.service.act(did, "drop_retry", "operator:bea")
    assert dropped["retry_by"] is None


async def test_direct_payouts_start_at_once_up_to_the_threshold_and_else_wait_for_approval(
    make_settings, engine
):
    w = World(make_settings, engine, GATEWAY_DISBURSEMENT_DIRECT_APPROVAL_ABOVE="100")
    try:
        small_to, big_to = w.receiver(), w.receiver()
        small = await w.service.direct(
            asset_code="GWUSD",
            amount="100",
            destination=small_to,
            external_payment_id="inv-1",
            requested_by="operator:ivy",
        )
        assert (small["kind"], small["status"], small["approvals_needed"]) == (
            "direct",
            "started",
            0,
        )
        big = await w.service.direct(
            asset_code="GWUSD",
            amount="100.01",
            destination=big_to,
            external_payment_id="inv-2",
            requested_by="operator:ivy",
        )
        assert (big["status"], big["approvals_needed"]) == ("ready", 1)
        submitter = w.submitter()
        await submitter.ensure_lane()
        await run_until_idle(submitter)
        assert w.received(small_to) == Decimal(100) and w.received(big_to) == 0
        with pytest.raises(Conflict, match="the uploader cannot approve"):
            await w.service.act(big["id"], "approve", "operator:ivy")
        approved = await w.service.act(big["id"], "approve", "operator:bea")
        assert approved["status"] == "started"  # a direct payout starts at its last approval
        await run_until_idle(submitter)
        assert w.received(big_to) == Decimal("100.01")
        assert (await w.service.get(big["id"]))["status"] == "completed"
        # Checked as a file's row is, and never paid twice under one external id.
        with pytest.raises(RowsRefused) as refused:
            await w.service.direct(
                asset_code="GWUSD",
                amount="1",
                destination=small_to,
                external_payment_id="inv-1",
                requested_by="operator:ivy",
            )
        assert refused.value.extra["problems"] == [
            f"line 2: external_payment_id: is in disbursement {small['id']} already"
        ]
        with pytest.raises(RowsRefused) as bad:
            await w.service.direct(
                asset_code="NOPE",
                amount="-1",
                destination="x",
                external_payment_id="inv-3",
                requested_by="operator:ivy",
            )
        assert len(bad.value.extra["problems"]) == 2
        # Without an external id a request sent again would pay again: refused.
        with pytest.raises(InvalidField, match="external_payment_id: is required"):
            await w.service.direct(
                asset_code="GWUSD", amount="1", destination=small_to, requested_by="operator:ivy"
            )
    finally:
        await w.client.aclose()


async def test_a_low_balance_raises_one_alert_until_it_recovers(make_settings, engine):
    w = World(make_settings, engine, GATEWAY_DISBURSEMENT_LOW_BALANCE="500000")
    try:
        status = await w.service.check_balances()
        assert status["alerts"] == [] and not status["assets"]["GWUSD"]["low"]
        await w.disbursement([w.receiver()], amount="600000")  # promised: 400,000 left
        for _ in range(2):  # raised once, however often it is checked
            status = await w.service.check_balances()
            assert [(a["kind"], a["subject"]) for a in status["alerts"]] == [
                ("low_balance", "GWUSD")
            ]
        assert "400000.00 available" in status["alerts"][0]["message"]
        w.ledger.issue(ISSUER, w.keys.public_key, "GWUSD", 200_000)
        status = await w.service.check_balances()
        assert status["alerts"] == []
        async with w.uow(read_only=True) as uow:
            (alert,) = await uow.alerts.recent()
        assert alert["cleared_at"] is not None
    finally:
        await w.client.aclose()


async def test_a_stale_view_of_a_transaction_never_loses_an_envelope_signed_since(
    make_settings, engine
):
    """Two submitters on one transaction (a lease ran out mid-work): the one holding the older
    view neither drops the other's envelope from the list nor misses it on the ledger."""
    clock = Clock()
    w = World(make_settings, engine, clock=clock)
    try:
        receiver = w.receiver()
        await w.disbursement([receiver])
        rule = w.faults.add("timeout", method="POST", path="/transactions")
        submitter = w.submitter()
        await submitter.ensure_lane()
        await submitter.step()
        w.faults.remove(rule.id)
        (stale,) = await w.rows(payout_transactions)
        lane = (await w.rows(payout_lanes))[0]
        raised = await submitter._raise_fee(dict(stale), lane)  # the other submitter
        assert raised is not None and len(json.loads(raised["hashes"])) == 2
        assert await submitter._raise_fee(dict(stale), lane) is None  # not from the old view
        (stored,) = await w.rows(payout_transactions)
        assert stored["hashes"] == raised["hashes"]
        assert (await w.horizon.submit(raised["envelope"])).successful
        assert await submitter._look_up(dict(stale), lane)
        (settled,) = await w.rows(payout_transactions)
        assert (settled["status"], settled["hash"]) == ("included", raised["hash"])
        await run_until_idle(submitter)
        assert w.received(receiver) == Decimal("1.25")  # once
    finally:
        await w.client.aclose()


async def test_a_failure_reported_again_after_a_retry_leaves_the_retried_payment_alone(world):
    from gateway.disbursement.submitter import _result

    no_trust = world.receiver(trust=False)
    did = await world.disbursement([no_trust])
    submitter = world.submitter()
    await submitter.ensure_lane()
    await run_until_idle(submitter)
    (first,) = await world.rows(payouts)
    world.ledger.add_trustline(no_trust, "GWUSD", ISSUER)
    await world.service.act(did, "retry", "operator:cai")
    await world.service.act(did, "approve", "operator:bea")
    # The first attempt's failure is reported again (a reporter that crashed before it
    # recorded the report): the payment, paid by its second attempt now, stays pending.
    await world.service.payouts_settled([_result(first)])
    (payment,) = (await world.service.show(did))["payment_rows"]
    assert payment["status"] == "pending"
    await run_until_idle(submitter)
    shown = await world.service.show(did)
    assert (shown["status"], shown["payment_rows"][0]["status"]) == ("completed", "success")
    assert world.received(no_trust) == Decimal("1.25")
