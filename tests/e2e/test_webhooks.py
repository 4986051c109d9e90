"""Webhooks through the whole app: an owner registers an endpoint at /ops/webhooks, a
disbursement is uploaded, approved, started and paid through /ops, and a respx receiver gets
its signed disbursement.* events, checks them as the README's receiver does and drops a
repeat; deliveries are listed and bad requests refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from stellar_sdk import Keypair

from gateway.outbound.callbacks import HttpxCallbackEndpoints
from tests.e2e.conftest import (
    Gateway,
    fund_receivers,
    operator_key,
    pay_out,
    upload_disbursement,
)
from tests.fakes.sep12 import ManualClock, running_gateway

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
DISTRIBUTION = Keypair.random()
HOOK = "https://erp.example.com/gateway-events"


class Receiver:
    """The organization's system: verifies each delivery with the secret it was shown, keeps
    the events it has not seen, and answers what the test queued (then 200)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.secret = ""
        self.answers: list[int] = []
        self.deliveries: list[str] = []  # event ids, as they arrive
        self.events: list[dict] = []  # each event once
        self.router = respx.Router()
        self.router.post(HOOK).mock(side_effect=self.receive)

    def receive(self, request: httpx.Request) -> httpx.Response:
        fields = dict(p.split("=", 1) for p in request.headers["X-Gateway-Signature"].split(","))
        t, body = int(fields["t"]), request.content
        mac = hmac.new(self.secret.encode(), f"{t}.".encode() + body, hashlib.sha256)
        if not hmac.compare_digest(mac.hexdigest(), fields["v1"]) or abs(self.clock() - t) > 300:
            return httpx.Response(401)
        event = json.loads(body)
        self.deliveries.append(event["id"])
        if event["id"] not in {e["id"] for e in self.events}:
            self.events.append(event)
        return httpx.Response(self.answers.pop(0) if self.answers else 204)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def receiver(clock) -> Receiver:
    return Receiver(clock)


@pytest.fixture
async def gw(make_settings, sqlite_engine, clock, receiver) -> AsyncIterator[Gateway]:
    settings = make_settings(
        GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=DISTRIBUTION.public_key,
        GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET=DISTRIBUTION.secret,
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver.router.handler)) as hooks:
        async with running_gateway(
            settings, sqlite_engine, clock=clock, webhooks=HttpxCallbackEndpoints(hooks)
        ) as g:
            yield g


async def deliver(gw: Gateway) -> None:
    services = gw.app.state.services
    while await services.webhooks.fan_out_once():
        pass
    while await services.webhook_deliveries.deliver_once():
        pass


async def test_a_registered_endpoint_gets_signed_disbursement_events_once_each(gw, receiver, clock):
    owner = await operator_key(gw, "olga", "owner")
    ivy, bea = await operator_key(gw, "ivy", "initiator"), await operator_key(gw, "bea", "approver")
    made = await gw.client.post(
        "/ops/webhooks", json={"url": HOOK, "events": ["disbursement.*"]}, headers=owner
    )
    assert made.status_code == 201, made.text
    receiver.secret = made.json()["secret"]
    assert receiver.secret.startswith("whsec_")
    listed = (await gw.client.get("/ops/webhooks", headers=owner)).json()["webhooks"]
    assert [w["url"] for w in listed] == [HOOK] and receiver.secret not in json.dumps(listed)

    receivers = fund_receivers(gw.ledger, ISSUER, DISTRIBUTION, 2)
    rows = "".join(f"r{i},2.50,GWUSD,{r},,inv-{i}\n" for i, r in enumerate(receivers))
    upload = await upload_disbursement(gw, "November", rows, ivy)
    did = upload.json()["id"]
    assert (await gw.client.post(f"/ops/disbursements/{did}/ready", headers=ivy)).is_success
    assert (await gw.client.post(f"/ops/disbursements/{did}/approve", headers=bea)).is_success
    # The first delivery of the next event is received but its answer is lost (a 502 from
    # a proxy in front of the receiver): it comes again, and the receiver drops the repeat.
    await deliver(gw)
    receiver.answers = [502]
    assert (await gw.client.post(f"/ops/disbursements/{did}/start", headers=bea)).is_success
    await deliver(gw)
    clock.advance(5)  # the first retry is due 5 s later
    await deliver(gw)
    await pay_out(gw, DISTRIBUTION)
    await deliver(gw)

    assert [e["type"] for e in receiver.events] == [
        "disbursement.ready",
        "disbursement.started",
        "disbursement.completed",
    ]
    started = receiver.events[1]
    assert receiver.deliveries.count(started["id"]) == 2 and len(receiver.deliveries) == 4
    assert started["data"] == {
        "disbursement_id": did,
        "kind": "bulk",
        "from_status": "ready",
        "status": "started",
        "payments": 2,
        "total": {"GWUSD": "5.0000000"},
    }
    # The payouts' own events (payout.succeeded) went to no endpoint: none subscribes.
    sent = await gw.client.get("/ops/webhooks/deliveries?status=sent", headers=owner)
    assert [d["event_type"] for d in sent.json()["deliveries"]] == [
        "disbursement.completed",
        "disbursement.started",
        "disbursement.ready",
    ]
    assert sent.json()["deliveries"][1]["attempts"] == 2
    audit = (await gw.client.get("/ops/audit?action=webhook.create", headers=owner)).json()
    assert [e["subject_id"] for e in audit["entries"]] == [made.json()["id"]]
    assert receiver.secret not in json.dumps(audit)


async def test_an_owner_disables_an_endpoint_and_redelivers_a_dead_letter(gw, receiver, clock):
    owner = await operator_key(gw, "olga", "owner")
    made = (
        await gw.client.post(
            "/ops/webhooks", json={"url": HOOK, "events": "payout.*,disbursement.*"}, headers=owner
        )
    ).json()
    receiver.secret = made["secret"]
    receiver.answers = [500] * 6
    ivy = await operator_key(gw, "ivy", "initiator")
    rows = f"r1,1,GWUSD,{Keypair.random().public_key},,inv-1\n"
    upload = await upload_disbursement(gw, "December", rows, ivy)
    await gw.client.post(f"/ops/disbursements/{upload.json()['id']}/ready", headers=ivy)
    for wait in (0, 5, 15, 60, 300, 900):
        clock.advance(wait)
        await deliver(gw)
    dead = await gw.client.get("/ops/webhooks/deliveries?status=dead", headers=owner)
    [letter] = dead.json()["deliveries"]
    assert (letter["event_type"], letter["attempts"], letter["last_error"]) == (
        "disbursement.ready",
        6,
        "HTTP 500",
    )
    assert len(receiver.deliveries) == 6 and len(receiver.events) == 1
    again = await gw.client.post(
        f"/ops/webhooks/deliveries/{letter['id']}/redeliver", headers=owner
    )
    assert again.status_code == 200 and again.json()["status"] == "pending"
    assert again.json()["event_type"] == "disbursement.ready"
    await deliver(gw)
    assert len(receiver.deliveries) == 7 and len(receiver.events) == 1
    twice = await gw.client.post(
        f"/ops/webhooks/deliveries/{letter['id']}/redeliver", headers=owner
    )
    assert twice.status_code == 409 and twice.json()["error"]

    disabled = await gw.client.post(f"/ops/webhooks/{made['id']}/disable", headers=owner)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"]
    await gw.client.post(f"/ops/disbursements/{upload.json()['id']}/cancel", headers=owner)
    await deliver(gw)
    assert len(receiver.deliveries) == 7  # nothing more after it was disabled
    assert (
        await gw.client.post(f"/ops/webhooks/{made['id']}/disable", headers=owner)
    ).status_code == 409
    assert (await gw.client.post("/ops/webhooks/nope/disable", headers=owner)).status_code == 404
    actions = (await gw.client.get("/ops/audit", headers=owner)).json()["entries"]
    assert [e["action"] for e in actions if e["action"].startswith("webhook.")] == [
        "webhook.disable",
        "webhook.redeliver",
        "webhook.create",
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"url": "http://erp.example.com/x", "events": ["transfer.*"]}, "url: must use https"),
        ({"url": "https://10.0.0.7/x", "events": ["transfer.*"]}, "url: must not point"),
        ({"url": HOOK, "events": ["transfer.nonsense"]}, "events: 'transfer.nonsense'"),
        ({"url": HOOK, "events": []}, "events: name at least one"),
        ({"url": HOOK}, "events: must be a list"),
        ({"events": ["transfer.*"]}, "url: is required"),
        ({"url": HOOK, "events": ["transfer.*"], "secret": "mine"}, "secret: is not a field"),
    ],
)
async def test_bad_registrations_are_refused_and_change_nothing(gw, body, error):
    owner = await operator_key(gw, "olga", "owner")
    refused = await gw.client.post("/ops/webhooks", json=body, headers=owner)
    assert refused.status_code == 400 and refused.json()["error"].startswith(error)
    assert (await gw.client.get("/ops/webhooks", headers=owner)).json()["webhooks"] == []


@pytest.mark.parametrize(
    "query", ["status=failed", "colour=red", "limit=0", "endpoint_id=" + "x" * 65]
)
async def test_bad_delivery_filters_are_refused(gw, query):
    owner = await operator_key(gw, "olga", "owner")
    refused = await gw.client.get(f"/ops/webhooks/deliveries?{query}", headers=owner)
    assert refused.status_code == 400 and refused.json()["error"]


async def test_only_owners_manage_webhooks(gw):
    bea = await operator_key(gw, "bea", "approver")
    for method, path in [
        ("POST", "/ops/webhooks"),
        ("GET", "/ops/webhooks"),
        ("GET", "/ops/webhooks/deliveries"),
        ("POST", "/ops/webhooks/x/disable"),
        ("POST", "/ops/webhooks/deliveries/x/redeliver"),
    ]:
        refused = await gw.client.request(
            method, path, json={"url": HOOK, "events": ["transfer.*"]}, headers=bea
        )
        assert refused.status_code == 403, path
    assert (await gw.client.get("/ops/webhooks")).status_code == 401
