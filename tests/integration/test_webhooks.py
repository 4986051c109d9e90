"""Webhooks on SQLite and PostgreSQL: domain events written in the transaction of the change
they announce (none when it rolls back), the fan-out to matching active endpoints, and the
signed delivery to a respx receiver: retried on the schedule, dead-lettered, redelivered."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import insert, select

from gateway.db.event_repository import EventRow
from gateway.db.tables import outbox, payouts, transfers, webhook_endpoints
from gateway.db.uow import UnitOfWorkFactory
from gateway.disbursement.service import DisbursementService
from gateway.errors import Conflict, InvalidField, NotFound
from gateway.ops.operators import OperatorService
from gateway.ops.webhooks import WEBHOOK_KIND, SignedWebhooks, WebhookService
from gateway.outbound.callbacks import HttpxCallbackEndpoints
from gateway.outbox import OutboxDispatcher
from gateway.payouts import SUBMITTED
from gateway.personal_data import Vault
from gateway.sep12_customer.rotation import rotate
from gateway.sep31.model import Transfer, TransferStatus
from gateway.sep31.service import replace_events
from tests.conftest import TEST_KYC_KEY
from tests.fakes.sep3 import compliance_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)
HOOK = "https://hooks.example.com/gateway"
RETRIES = (5, 15, 60, 300, 900)


class Clock:
    """One time for the services (datetime) and the dispatcher (seconds)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow(engine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(engine)


@pytest.fixture
def vault() -> Vault:
    return Vault.from_texts(TEST_KYC_KEY)


@pytest.fixture
def webhooks(make_settings, uow, vault, clock) -> WebhookService:
    operators = OperatorService(uow, clock=clock)
    return WebhookService(make_settings(), uow=uow, vault=vault, operators=operators, clock=clock)


async def events_of(uow, subject_id: str) -> list[EventRow]:
    async with uow(read_only=True) as u:
        return await u.events.of(subject_id)


def transfer(**changes) -> Transfer:
    base = Transfer(
        id="t-1",
        partner_account="GPARTNER",
        asset_code="GWUSD",
        asset_issuer="GISSUER",
        decimals=2,
        amount_in=100_0000000,
        amount_fee=1_5000000,
        amount_out=98_5000000,
        funding_method="SEPA",
        sender_id="sender-1",
        receiver_id="receiver-1",
        stellar_account_id="GRECEIVING",
        memo_type="id",
        memo="42",
        status=TransferStatus.PENDING_SENDER,
        started_at=T0,
        updated_at=T0,
    )
    return replace_events(replace(base, **changes), "created", "partner", T0)


# -- events written with their change ---------------------------------------------------------


async def test_a_transfer_announces_its_creation_and_each_status_move_with_the_change(uow):
    async with uow() as u:
        assert await u.transfers.add(transfer())
        # Its memo is taken: nothing is written, the announcement included.
        assert not await u.transfers.add(transfer(id="t-2"))
        await u.commit()
    [created] = await events_of(uow, "t-1")
    assert created.type == "transfer.pending_sender" and created.at == T0
    assert created.data == {
        "transfer_id": "t-1",
        "from_status": None,
        "status": "pending_sender",
        "asset_code": "GWUSD",
        "asset_issuer": "GISSUER",
        "amount_in": "100.0000000",
        "amount_fee": "1.5000000",
        "amount_out": "98.5000000",
        "amount_received": None,
        "stellar_transaction_id": None,
        "external_transaction_id": None,
    }
    assert await events_of(uow, "t-2") == []
    async with uow() as u:
        t = await u.transfers.get("t-1", lock=True)
        t = t.funds_received(
            amount=100_0000000, sender_account="GSENDER", transaction_id="h1", actor="w", at=T0
        )
        t = t.noted("a note within the status", "operator:ana", T0)  # history only
        await u.transfers.save(t)
        await u.commit()
    moves = await events_of(uow, "t-1")
    assert [e.type for e in moves] == ["transfer.pending_sender", "transfer.pending_receiver"]
    assert moves[1].data["from_status"] == "pending_sender"
    assert moves[1].data["amount_received"] == "100.0000000"
    assert moves[1].data["stellar_transaction_id"] == "h1"
    assert "sender-1" not in json.dumps([e.data for e in moves])  # customers are not named


async def test_a_change_that_rolls_back_announces_nothing(uow, engine):
    async with uow() as u:
        assert await u.transfers.add(transfer(id="t-9", memo="99"))
        await u.customers.record_events(
            [
                {
                    "customer_id": "c-9",
                    "type": "sep31-receiver",
                    "from_status": "PROCESSING",
                    "to_status": "ACCEPTED",
                    "actor": "operator:ana",
                    "reason": None,
                    "at": T0,
                }
            ]
        )
        assert len(await u.events.of("t-9")) == 1  # visible inside its transaction
        # not committed
    async with engine.connect() as conn:
        assert (await conn.execute(select(transfers))).all() == []
    assert await events_of(uow, "t-9") == await events_of(uow, "c-9") == []


async def test_payouts_announce_how_they_ended_once(uow):
    rows = [
        {
            "id": f"p-{i}",
            "source": "disbursement",
            "source_id": f"pay-{i}",
            "purpose": "payout",
            "asset_code": "GWUSD",
            "asset_issuer": "GISSUER",
            "amount": 2_5000000,
            "destination": "GDEST",
            "status": SUBMITTED,
            "tries": 2,
            "created_at": T0,
            "updated_at": T0,
        }
        for i in range(4)
    ]
    async with uow() as u:
        await u.connection.execute(insert(payouts), rows)
        await u.submissions.succeed(["p-0"], T0, stellar_transaction_id="h0", fee=100)
        await u.submissions.fail({"p-1": "op_no_trust: the receiver has no trustline"}, T0)
        # p-2 is out of tries and fails; p-3 was not submitted any more and is left alone.
        await u.submissions.succeed(["p-0"], T0, stellar_transaction_id="again")
        assert await u.submissions.requeue(["p-2"], 3, "expired unsent", T0) == 1
        await u.commit()
    found = {s: await events_of(uow, s) for s in ("p-0", "p-1", "p-2", "p-3")}
    assert [e.type for e in found["p-0"]] == ["payout.succeeded"]
    assert [e.type for e in found["p-1"]] == ["payout.failed"]
    assert [e.type for e in found["p-2"]] == ["payout.failed"]
    assert found["p-3"] == []
    assert found["p-0"][0].data == {
        "payout_id": "p-0",
        "source": "disbursement",
        "source_id": "pay-0",
        "purpose": "payout",
        "attempt": 1,
        "status": "succeeded",
        "asset_code": "GWUSD",
        "asset_issuer": "GISSUER",
        "amount": "2.5000000",
        "stellar_transaction_id": "h0",
        "external_reference": None,
    }
    async with uow(read_only=True) as u:
        reasons = {r["id"]: r["reason"] for r in await u.payouts.of("disbursement", "pay-1")}
    assert reasons == {"p-1": "op_no_trust: the receiver has no trustline"}


async def test_disbursement_status_moves_are_announced_and_its_payments_are_not(
    make_settings, uow, clock
):
    service = DisbursementService(make_settings(), uow=uow, clock=clock)
    csv = (
        "receiver_reference,amount,asset_code,destination\n"
        "r1,2.50,GWUSD,GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC\n"
        "r2,1.25,GWUSD,GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC\n"
    )
    made = await service.upload(csv.encode(), name="November", uploaded_by="operator:ivy")
    await service.act(made["id"], "ready", "operator:ivy")
    await service.act(made["id"], "approve", "operator:bea")  # history only
    await service.act(made["id"], "cancel", "operator:bea", "wrong month")
    announced = await events_of(uow, made["id"])
    assert [e.type for e in announced] == ["disbursement.ready", "disbursement.canceled"]
    assert announced[1].data == {
        "disbursement_id": made["id"],
        "kind": "bulk",
        "from_status": "ready",
        "status": "canceled",
        "payments": 2,
        "total": {"GWUSD": "3.7500000"},
    }
    async with uow(read_only=True) as u:
        assert len(await u.events.claim(100)) == 2  # nothing for the payments' moves


async def test_compliance_decisions_and_customer_status_changes_are_announced(uow):
    row = compliance_row(id="r-1", customer_id="c-1", created_at=T0)
    async with uow() as u:
        assert await u.compliance.add(row)
        assert not await u.compliance.add({**row, "id": "r-2"})  # a re-post: no decision
        await u.compliance.decide("r-1", {"tx_status": "denied", "decided_by": "op"}, T0)
        await u.compliance.decide("r-1", {"payout_status": "failed"}, T0)  # not a decision
        history = [
            ("c-1", "sep31-receiver", None, "PROCESSING"),
            ("c-1", "sep31-receiver", "PROCESSING", "PROCESSING"),  # same status: no event
            ("c-1", "sep31-receiver", "PROCESSING", "ACCEPTED"),
        ]
        await u.customers.record_events(
            [
                {
                    "customer_id": c,
                    "type": kind,
                    "from_status": old,
                    "to_status": new,
                    "actor": "kyc",
                    "reason": None,
                    "at": T0,
                }
                for c, kind, old, new in history
            ]
        )
        await u.commit()
    decided = await events_of(uow, "r-1")
    assert [e.type for e in decided] == ["compliance.pending", "compliance.denied"]
    assert decided[1].data == {
        "request_id": "r-1",
        "sender_domain": "bank.test",
        "customer_id": "c-1",
        "tx_status": "denied",
        "info_status": "ok",
        "asset_code": "USD",
        "amount": "20.0000000",
    }
    assert "alice" not in json.dumps([e.data for e in decided])  # the sender is not named
    changed = await events_of(uow, "c-1")
    assert [(e.type, e.data["from_status"], e.data["status"]) for e in changed] == [
        ("customer.status_changed", None, "PROCESSING"),
        ("customer.status_changed", "PROCESSING", "ACCEPTED"),
    ]
    assert changed[0].data["type"] == "sep31-receiver"


# -- endpoints and fan-out --------------------------------------------------------------------


async def add_events(uow, *types: str) -> None:
    async with uow() as u:
        for i, kind in enumerate(types):
            await u.events.add(kind, f"s-{i}", {"n": i}, T0)
        await u.commit()


async def messages(engine) -> list[dict]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox)
            .where(outbox.c.kind == WEBHOOK_KIND)
            .order_by(outbox.c.created_at, outbox.c.id)
        )
        return [dict(r._mapping) for r in rows]


async def test_an_endpoint_secret_is_shown_once_kept_sealed_and_never_audited(
    webhooks, engine, uow
):
    shown, secret = await webhooks.register(HOOK, ["transfer.*"], actor="operator:olga")
    assert secret.startswith("whsec_") and len(secret) > 40 and "secret" not in shown
    assert shown["events"] == ["transfer.*"] and shown["created_by"] == "operator:olga"
    async with engine.connect() as conn:
        stored = (await conn.execute(select(webhook_endpoints))).mappings().one()
    assert secret.encode() not in bytes(stored["secret"])
    assert secret not in json.dumps(await webhooks.listing(), default=str)
    operators = OperatorService(uow)
    [entry] = await operators.audit_log()
    assert (entry["action"], entry["subject_id"]) == ("webhook.create", shown["id"])
    assert secret not in json.dumps(entry, default=str)
    for url, events in [
        ("http://hooks.example.com/x", ["transfer.*"]),  # not https
        ("https://127.0.0.1/x", ["transfer.*"]),  # a private address
        ("https://user:pw@hooks.example.com/x", ["transfer.*"]),
        (HOOK, ["everything"]),
    ]:
        with pytest.raises(InvalidField):
            await webhooks.register(url, events, actor="operator:olga")
    assert len(await webhooks.listing()) == 1  # refused ones changed nothing


async def test_fan_out_gives_each_event_to_the_active_endpoints_that_match(webhooks, uow, engine):
    transfers_hook, _ = await webhooks.register(HOOK + "/t", "transfer.*", actor="cli")
    failures, _ = await webhooks.register(
        HOOK + "/f", ["payout.failed", "customer.status_changed"], actor="cli"
    )
    gone, _ = await webhooks.register(HOOK + "/gone", ["transfer.completed"], actor="cli")
    await webhooks.disable(gone["id"], actor="cli")
    await add_events(
        uow, "transfer.pending_receiver", "payout.succeeded", "payout.failed", "transfer.completed"
    )
    assert await webhooks.fan_out_once() == 4
    assert await webhooks.fan_out_once() == 0  # each event is fanned out once
    sent = [
        (m["subject"], m["target"], json.loads(m["body"])["type"]) for m in await messages(engine)
    ]
    assert sent == [
        (transfers_hook["id"], HOOK + "/t", "transfer.pending_receiver"),
        (failures["id"], HOOK + "/f", "payout.failed"),
        (transfers_hook["id"], HOOK + "/t", "transfer.completed"),
    ]
    body = json.loads((await messages(engine))[1]["body"])
    assert body["id"].startswith("evt_") and body["data"] == {"n": 2}
    assert body["created_at"] == T0.isoformat()


async def test_concurrent_fan_outs_give_each_event_to_an_endpoint_once(webhooks, uow, engine):
    await webhooks.register(HOOK, ["payout.*"], actor="cli")
    await add_events(uow, *["payout.succeeded"] * 120)
    taken = await asyncio.gather(*(webhooks.fan_out_once(batch=25) for _ in range(4)))
    while await webhooks.fan_out_once(batch=25):
        pass
    assert sum(taken) <= 100
    bodies = [json.loads(m["body"]) for m in await messages(engine)]
    assert len(bodies) == 120 and len({b["id"] for b in bodies}) == 120
    ids = [int(b["id"].removeprefix("evt_")) for b in bodies]
    assert ids == sorted(ids)  # the endpoint's messages leave in event order


async def test_a_fan_out_waits_for_the_one_running_before_it_takes_later_events(webhooks, uow):
    await webhooks.register(HOOK, ["payout.*"], actor="cli")
    await add_events(uow, *["payout.succeeded"] * 4)
    async with uow() as u:
        first = await u.events.claim(2)
        second = asyncio.create_task(webhooks.fan_out_once())
        await asyncio.sleep(0.2)
        # Taking events 3 and 4 now could send them before 1 and 2 are in the outbox.
        assert not second.done()
        await u.events.mark_fanned([e.id for e in first])
        await u.commit()
    assert await second == 2


async def test_a_dead_letter_redelivered_twice_at_once_is_queued_and_audited_once(
    webhooks, uow, clock, delivery
):
    shown, secret = await webhooks.register(HOOK, ["payout.failed"], actor="cli")
    receiver, dispatcher = await delivery(secret)
    receiver.answers = [500] * 6
    await add_events(uow, "payout.failed")
    await webhooks.fan_out_once()
    for wait in (0, *RETRIES):
        clock.advance(wait)
        await dispatcher.deliver_once()
    [dead] = await webhooks.deliveries(status="dead")
    async with uow() as u:
        # Held as a disable holds it, while both requests find the delivery dead.
        await u.webhooks.get(shown["id"], lock=True)
        both = asyncio.gather(
            *(webhooks.redeliver(dead["id"], actor="operator:olga") for _ in range(2)),
            return_exceptions=True,
        )
        await asyncio.sleep(0.2)
        await u.commit()
    outcomes = await both
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "dict"]
    assert len(await OperatorService(uow).audit_log(action="webhook.redeliver")) == 1


async def test_disabling_an_endpoint_dead_letters_what_it_was_not_sent(webhooks, uow, engine):
    shown, _ = await webhooks.register(HOOK, ["payout.*"], actor="cli")
    await add_events(uow, "payout.succeeded", "payout.failed")
    await webhooks.fan_out_once()
    disabled = await webhooks.disable(shown["id"], actor="operator:olga")
    assert disabled["disabled_at"] is not None
    assert {m["status"] for m in await messages(engine)} == {"dead"}
    with pytest.raises(Conflict):
        await webhooks.disable(shown["id"], actor="operator:olga")
    with pytest.raises(NotFound):
        await webhooks.disable("no-such-endpoint", actor="operator:olga")
    [dead, _] = await webhooks.deliveries(status="dead")
    with pytest.raises(Conflict, match="disabled"):
        await webhooks.redeliver(dead["id"], actor="operator:olga")


# -- delivery ---------------------------------------------------------------------------------


class Receiver:
    """A respx-served endpoint that checks each delivery's signature with its own HMAC."""

    def __init__(self, secret: str):
        self.secret = secret
        self.router = respx.Router()
        self.answers: list[int] = []
        self.received: list[tuple[int, dict]] = []
        self.router.post(HOOK).mock(side_effect=self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        fields = dict(p.split("=", 1) for p in request.headers["x-gateway-signature"].split(","))
        mine = hmac.new(
            self.secret.encode(), fields["t"].encode() + b"." + request.content, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(mine, fields["v1"])
        event = json.loads(request.content)
        assert request.headers["x-gateway-event-id"] == event["id"]
        assert request.headers["content-type"] == "application/json"
        self.received.append((int(fields["t"]), event))
        return httpx.Response(self.answers.pop(0) if self.answers else 200)


@pytest.fixture
async def delivery(webhooks, uow, vault, clock):
    async def make(secret: str) -> tuple[Receiver, OutboxDispatcher]:
        receiver = Receiver(secret)
        client = httpx.AsyncClient(transport=httpx.MockTransport(receiver.router.handler))
        clients.append(client)
        handler = SignedWebhooks(uow, vault, HttpxCallbackEndpoints(client), clock.seconds)
        return receiver, OutboxDispatcher(
            uow, {WEBHOOK_KIND: handler}, retry_seconds=RETRIES, clock=clock.seconds
        )

    clients: list[httpx.AsyncClient] = []
    yield make
    for c in clients:
        await c.aclose()


async def test_a_delivery_is_signed_with_the_endpoint_secret_at_send_time(
    webhooks, uow, clock, delivery
):
    shown, secret = await webhooks.register(HOOK, ["disbursement.*"], actor="cli")
    receiver, dispatcher = await delivery(secret)
    await add_events(uow, "disbursement.ready", "disbursement.started")
    await webhooks.fan_out_once()
    clock.advance(30)
    while await dispatcher.deliver_once():
        pass
    assert [e["type"] for _, e in receiver.received] == [
        "disbursement.ready",
        "disbursement.started",
    ]
    assert {t for t, _ in receiver.received} == {int(clock.seconds())}  # signed when sent
    sent = await webhooks.deliveries(status="sent", endpoint_id=shown["id"])
    assert [d["event_type"] for d in sent] == ["disbursement.started", "disbursement.ready"]
    assert sent[0]["event_id"] == receiver.received[1][1]["id"]


async def test_failures_follow_the_retry_schedule_then_dead_letter_and_redelivery_sends_again(
    webhooks, uow, engine, clock, delivery
):
    _, secret = await webhooks.register(HOOK, ["payout.failed"], actor="cli")
    receiver, dispatcher = await delivery(secret)
    receiver.answers = [500, 503, 404, 500, 302, 500]
    await add_events(uow, "payout.failed")
    await webhooks.fan_out_once()
    waits = []
    for _ in range(6):
        assert await dispatcher.deliver_once() == 1
        [message] = await messages(engine)
        waits.append((message["next_attempt_at"] - clock.now).total_seconds())
        assert await dispatcher.deliver_once() == 0  # not due again yet
        clock.advance(waits[-1])
    assert waits[:5] == list(RETRIES)
    [message] = await messages(engine)
    assert (message["status"], message["attempts"]) == ("dead", 6)
    assert message["last_error"] == "HTTP 500"
    [dead] = await webhooks.deliveries(status="dead")
    assert dead["event_type"] == "payout.failed" and dead["attempts"] == 6
    with pytest.raises(NotFound):
        await webhooks.redeliver("no-such-delivery", actor="operator:olga")
    again = await webhooks.redeliver(dead["id"], actor="operator:olga")
    assert again["status"] == "pending"
    with pytest.raises(Conflict):  # only a dead one
        await webhooks.redeliver(dead["id"], actor="operator:olga")
    clock.advance(1)
    assert await dispatcher.deliver_once() == 1
    assert len(receiver.received) == 7
    assert len({e["id"] for _, e in receiver.received}) == 1  # one event, sent seven times
    assert receiver.received[-1][0] > receiver.received[0][0]  # signed anew
    [message] = await messages(engine)
    assert message["status"] == "sent"
    audit = await OperatorService(uow).audit_log(action="webhook.redeliver")
    assert [json.loads(a["after"]) for a in audit] == [
        {"delivery": dead["id"], "status": "pending"}
    ]


async def test_a_secret_still_signs_after_the_kyc_key_rotates(webhooks, uow, clock):
    _, secret = await webhooks.register(HOOK, ["payout.*"], actor="cli")
    new_key = "bmV3LWt5Yy1rZXktMzItYnl0ZXMtbG9uZy0tLS0tLS0="
    rotated = Vault.from_texts(new_key, [TEST_KYC_KEY])
    assert (await rotate(uow, rotated)).resealed == 1
    receiver = Receiver(secret)
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver.router.handler)) as c:
        only_new = Vault.from_texts(new_key)
        handler = SignedWebhooks(uow, only_new, HttpxCallbackEndpoints(c), clock.seconds)
        dispatcher = OutboxDispatcher(
            uow, {WEBHOOK_KIND: handler}, retry_seconds=RETRIES, clock=clock.seconds
        )
        await add_events(uow, "payout.succeeded")
        await webhooks.fan_out_once()
        clock.advance(1)
        assert await dispatcher.deliver_once() == 1
    assert [e["type"] for _, e in receiver.received] == ["payout.succeeded"]
