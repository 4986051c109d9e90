"""SEP-12 status callbacks (signed, from the outbox, retried, dead-lettered, redelivered), KYC
provider reviews, and personal data kept out of the logs — through the app, on a clock the
tests move."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from gateway.__main__ import main
from gateway.db.tables import customer_callbacks, customer_events, outbox
from gateway.outbound.kyc_provider import KycProviderUnavailable, ReviewDecision
from tests.conftest import REPO
from tests.fakes.callbacks import verify_signature
from tests.fakes.sep12 import (
    PNG,
    FakeKycProvider,
    Kyc,
    ManualClock,
    error_of,
    kyc_for,
    log_everything,
    record_text,
    rows,
    running_gateway,
)

pytestmark = pytest.mark.asyncio

NOT_FOUND = "customer with `id` not found"
SENDER = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com"}
HOOK = "https://wallet.test:8443/kyc-hook?customer=ada"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def kyc_provider():
    return None


@pytest.fixture
async def gateway(make_settings, sqlite_engine, gateway_env, clock, kyc_provider):
    """The e2e gateway on a clock the tests move, with the KYC provider the test chose."""
    settings = make_settings(**gateway_env)
    async with running_gateway(
        settings, sqlite_engine, clock=clock, kyc_provider=kyc_provider
    ) as gw:
        yield gw


def service(gateway):
    return gateway.app.state.services.customers


async def deliver(gateway) -> int:
    services = gateway.app.state.services
    return int(await services.callbacks.deliver_once()) + int(await services.reviews.deliver_once())


async def deliver_all(gateway) -> int:
    """Deliver until nothing is due (a subject's messages go out one after another)."""
    total = 0
    while n := await deliver(gateway):
        total += n
    return total


# -- registration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://wallet.test/cb", "url: must use https"),
        ("ftp://wallet.test/cb", "url: must use https"),
        ("http://127.0.0.1:9000/cb", "url: must not point to a local or private address"),
        ("https://user:secret@wallet.test/cb", "url: must be an absolute https URL"),
        ("https://:pw@wallet.test/cb", "url: must be an absolute https URL"),
        ("/kyc-hook", "url: must be an absolute https URL"),
        ("https://wallet.test/" + "a" * 2048, "url: must be an absolute https URL"),
        ("", "url: is required"),
        (None, "url: is required"),
    ],
)
async def test_callback_urls_must_be_https(gateway, url, error):
    kyc = await kyc_for(gateway)
    await kyc.put_id(SENDER)
    body = {} if url is None else {"url": url}
    assert error_of(await kyc.callback(body), 400) == error
    assert await rows(gateway, customer_callbacks) == []


async def test_https_callbacks_are_registered_and_local_ones_refused_by_default(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    # A callback to localhost could reach any local service (the sandbox Horizon's admin
    # routes, say): refused unless the operator lists the host for callbacks.
    local = await kyc.callback({"url": "http://localhost:9000/cb"})
    assert error_of(local, 400) == "url: must not point to a local or private address"
    response = await kyc.callback({"url": "https://wallet.test/cb"})
    assert response.status_code == 200 and response.json() == {}
    [row] = await rows(gateway, customer_callbacks)
    assert (row["customer_id"], row["url"], row["type"]) == (
        customer_id,
        "https://wallet.test/cb",
        "sep31-sender",
    )


class TestLocalCallbackReceiver:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_OUTBOUND_INSECURE_CALLBACK_HOSTS": "localhost"}

    async def test_a_listed_local_host_may_receive_callbacks_over_http(self, gateway):
        kyc = await kyc_for(gateway)
        await kyc.put_id(SENDER)
        response = await kyc.callback({"url": "http://localhost:9000/cb"})
        assert response.status_code == 200


async def test_callback_needs_a_customer_and_a_known_type(gateway):
    kyc = await kyc_for(gateway)
    assert error_of(await kyc.callback({"url": HOOK}), 404) == NOT_FOUND
    await kyc.put_id(SENDER)
    assert error_of(await kyc.callback({"url": HOOK, "type": "sep6"}), 400).startswith(
        "type: is not a customer type"
    )
    response = await gateway.client.put(
        "/kyc/customer/callback", data={"url": HOOK}, headers=kyc.headers
    )
    assert response.status_code == 200


# -- delivery -----------------------------------------------------------------------------------


async def test_status_change_is_posted_signed_with_the_get_body(gateway, clock):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id({"first_name": "Ada"})
    assert (await kyc.callback({"id": customer_id, "url": HOOK})).status_code == 200
    assert await deliver(gateway) == 0
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    assert await deliver(gateway) == 1
    [received] = gateway.callbacks.received
    assert received.url == HOOK
    t = verify_signature(gateway, received, HOOK)
    assert abs(t - clock()) <= 2
    assert json.loads(received.body) == await kyc.status() == await kyc.status(type="sep31-sender")
    assert json.loads(received.body)["status"] == "ACCEPTED"
    [message] = await rows(gateway, outbox)
    assert (message["kind"], message["status"], message["attempts"]) == (
        "sep12_callback",
        "sent",
        1,
    )
    assert message["subject"] == customer_id and message["target"] == HOOK
    # A signature over another host does not verify.
    with pytest.raises(Exception, match="Signature verification failed"):
        verify_signature(gateway, received, "https://wallet.test/kyc-hook")


async def test_no_more_callbacks_after_accepted_until_registered_again(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id({"first_name": "Ada"})
    await kyc.callback({"url": HOOK})
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    assert await rows(gateway, customer_callbacks) == []
    await service(gateway).decide(
        customer_id,
        "sep31-sender",
        "NEEDS_INFO",
        "bounced",
        actor="operator:test",
        rejected_fields={"email_address": "bounced"},
    )
    assert await deliver(gateway) == 1
    assert [json.loads(r.body)["status"] for r in gateway.callbacks.received] == ["ACCEPTED"]
    await kyc.callback({"url": HOOK})
    await kyc.put_id({"email_address": "ada@example.org"})
    assert await deliver(gateway) == 1
    assert [json.loads(r.body)["status"] for r in gateway.callbacks.received] == [
        "ACCEPTED",
        "ACCEPTED",
    ]


async def test_changes_before_a_final_status_are_all_posted(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    await kyc.callback({"url": HOOK})
    await service(gateway).decide(
        customer_id,
        "sep31-sender",
        "NEEDS_INFO",
        "bounced",
        actor="operator:test",
        rejected_fields={"email_address": "The mailbox does not exist"},
    )
    assert len(await rows(gateway, customer_callbacks)) == 1  # NEEDS_INFO is not final
    needs_info = await kyc.status()
    await kyc.put_id({"email_address": "ada@example.org"})
    assert await deliver(gateway) == 1  # one at a time, in order
    assert await deliver_all(gateway) == 1
    bodies = [json.loads(r.body) for r in gateway.callbacks.received]
    assert [b["status"] for b in sorted(bodies, key=lambda b: b["status"] != "NEEDS_INFO")] == [
        "NEEDS_INFO",
        "ACCEPTED",
    ]
    assert needs_info in bodies
    assert needs_info["provided_fields"]["email_address"]["error"] == "The mailbox does not exist"
    assert await rows(gateway, customer_callbacks) == []


async def test_rejection_is_posted_with_its_message(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    await kyc.callback({"url": HOOK})
    await service(gateway).decide(
        customer_id, "sep31-sender", "REJECTED", "sanctions list match", actor="operator:test"
    )
    assert await deliver(gateway) == 1
    [received] = gateway.callbacks.received
    verify_signature(gateway, received, HOOK)
    body = json.loads(received.body)
    assert body == await kyc.status()
    assert (body["status"], body["message"]) == ("REJECTED", "sanctions list match")
    assert await rows(gateway, customer_callbacks) == []


async def test_only_the_registered_type_is_posted_and_a_new_url_replaces_the_old(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id({"first_name": "Ada"})
    await kyc.callback({"url": "https://old.test/cb", "type": "sep31-large-sender"})
    await kyc.callback({"url": HOOK, "type": "sep31-large-sender"})
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    assert (await kyc.status())["status"] == "ACCEPTED"
    assert await deliver(gateway) == 0  # sep31-sender changed; the large type did not
    await service(gateway).decide(
        customer_id, "sep31-large-sender", "REJECTED", "too large", actor="operator:test"
    )
    assert await deliver(gateway) == 1
    [received] = gateway.callbacks.received
    assert received.url == HOOK
    assert json.loads(received.body) == await kyc.status(type="sep31-large-sender")


async def test_a_failing_receiver_is_retried_on_schedule_then_dead_lettered_and_redelivered(
    gateway, clock, sqlite_database, monkeypatch
):
    kyc = await kyc_for(gateway)
    await kyc.put_id({"first_name": "Ada"})
    await kyc.callback({"url": HOOK})
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    gateway.callbacks.answers = [500, 503, Exception("connection refused"), 500, 500, 500]
    assert await deliver(gateway) == 1
    for attempt, delay in enumerate(gateway.settings.outbox.retry_seconds, start=1):
        [message] = await rows(gateway, outbox)
        assert message["status"] == "pending" and message["attempts"] == attempt
        due = datetime.fromtimestamp(clock() + delay, UTC)
        assert abs((message["next_attempt_at"] - due).total_seconds()) < 2
        clock.advance(delay - 2)
        assert await deliver(gateway) == 0
        clock.advance(2)
        assert await deliver(gateway) == 1
    [message] = await rows(gateway, outbox)
    assert (message["status"], message["attempts"], message["last_error"]) == (
        "dead",
        6,
        "HTTP 500",
    )
    assert [m for m in gateway.callbacks.received if m.url != HOOK] == []
    assert len(gateway.callbacks.received) == 6
    assert len({r.body for r in gateway.callbacks.received}) == 1
    clock.advance(100_000)  # a dead message does not come back by itself
    assert await deliver(gateway) == 0

    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_database)
    config = str(REPO / "config/testnet.toml")
    code = await asyncio.to_thread(main, ["outbox", "redeliver", message["id"], "--config", config])
    assert code == 0
    [again] = await rows(gateway, outbox)
    assert (again["status"], again["attempts"]) == ("pending", 0)
    assert await deliver(gateway) == 1
    assert (await rows(gateway, outbox))[0]["status"] == "sent"
    assert len(gateway.callbacks.received) == 7
    for received in gateway.callbacks.received:
        verify_signature(gateway, received, HOOK)
    code = await asyncio.to_thread(main, ["outbox", "redeliver", message["id"], "--config", config])
    assert code == 1


async def test_a_callback_endpoint_that_cannot_be_reached_is_retried(gateway):
    kyc = await kyc_for(gateway)
    await kyc.put_id({"first_name": "Ada"})
    await kyc.callback({"url": HOOK})
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    gateway.callbacks.answers = [Exception("connection refused")]
    assert await deliver(gateway) == 1
    [message] = await rows(gateway, outbox)
    assert (message["status"], message["attempts"]) == ("pending", 1)
    assert message["last_error"] == (
        "The callback endpoint could not be reached (connection refused)"
    )


async def test_a_deleted_customer_has_no_callbacks_left_to_send(gateway):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token())
    await kyc.put_id({"first_name": "Ada"})
    await kyc.callback({"url": HOOK})
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    [message] = await rows(gateway, outbox)
    for value in SENDER.values():
        assert value not in message["body"].decode()  # callbacks never carry the data
    assert (await kyc.delete(wallet.account)).status_code == 200
    assert await rows(gateway, outbox) == []
    assert await deliver(gateway) == 0


# -- the KYC provider ---------------------------------------------------------------------------

ACCEPT = ReviewDecision("ACCEPTED")


class TestProviderReviews:
    @pytest.fixture
    def gateway_env(self):
        return {
            "GATEWAY_KYC_VALIDATION": "provider",
            "GATEWAY_KYC_PROVIDER_URL": "https://kyc.test/reviews",
            "GATEWAY_KYC_PROVIDER_SECRET": "s",
        }

    @pytest.fixture
    def kyc_provider(self):
        return FakeKycProvider()

    async def reviews(self, gateway):
        return [m for m in await rows(gateway, outbox) if m["kind"] == "kyc_review"]

    async def test_processing_until_the_provider_accepts(self, gateway, kyc_provider):
        wallet = gateway.wallet()
        kyc = Kyc(gateway.client, await wallet.token())
        customer_id = await kyc.put_id(SENDER)
        body = await kyc.status()
        assert body["status"] == "PROCESSING"
        assert {n: f["status"] for n, f in body["provided_fields"].items()} == dict.fromkeys(
            SENDER, "PROCESSING"
        )
        [review] = await self.reviews(gateway)
        assert (review["target"], review["subject"], review["status"]) == (
            "kyc-provider",
            customer_id,
            "pending",
        )
        assert json.loads(review["body"]) == {
            "customer_id": customer_id,
            "type": "sep31-sender",
            "version": 1,
        }
        kyc_provider.answers = [ACCEPT]
        assert await deliver(gateway) == 1
        [request] = kyc_provider.requests
        assert request.review_id == f"{customer_id}:sep31-sender:1"
        assert (request.customer_id, request.type) == (customer_id, "sep31-sender")
        assert dict(request.fields) == SENDER and request.files == ()
        body = await kyc.status()
        assert body["status"] == "ACCEPTED"
        assert {n: f["status"] for n, f in body["provided_fields"].items()} == dict.fromkeys(
            SENDER, "ACCEPTED"
        )
        assert (await self.reviews(gateway))[0]["status"] == "sent"
        events = await rows(gateway, customer_events, customer_id=customer_id, type="sep31-sender")
        assert [(e["from_status"], e["to_status"], e["actor"]) for e in events] == [
            (None, "PROCESSING", wallet.account),
            ("PROCESSING", "ACCEPTED", "kyc-provider"),
        ]

    async def test_the_provider_rejects(self, gateway, kyc_provider):
        kyc = await kyc_for(gateway)
        await kyc.put_id(SENDER)
        kyc_provider.answers = [ReviewDecision("REJECTED", "document forged")]
        assert await deliver(gateway) == 1
        body = await kyc.status()
        assert (body["status"], body["message"]) == ("REJECTED", "document forged")
        await kyc.put_id({"first_name": "Augusta"})
        assert (await kyc.status())["status"] == "REJECTED"
        assert len(await self.reviews(gateway)) == 1  # a rejection is final: no new review

    async def test_the_provider_asks_for_a_field_again(self, gateway, kyc_provider):
        kyc = await kyc_for(gateway)
        customer_id = await kyc.put_id(SENDER)
        kyc_provider.answers = [
            ReviewDecision("NEEDS_INFO", "mismatch", {"last_name": "does not match the ID"}),
            ACCEPT,
        ]
        assert await deliver(gateway) == 1
        body = await kyc.status()
        assert body["status"] == "NEEDS_INFO"
        assert body["provided_fields"]["last_name"]["status"] == "REJECTED"
        assert body["provided_fields"]["last_name"]["error"] == "does not match the ID"
        assert "last_name" in body["fields"]
        await kyc.put_id({"last_name": "King"})
        assert (await kyc.status())["status"] == "PROCESSING"
        assert await deliver(gateway) == 1
        assert kyc_provider.requests[-1].review_id == f"{customer_id}:sep31-sender:2"
        assert kyc_provider.requests[-1].fields["last_name"] == "King"
        assert (await kyc.status())["status"] == "ACCEPTED"

    async def test_a_provider_still_reviewing_is_asked_again_later(
        self, gateway, kyc_provider, clock
    ):
        kyc = await kyc_for(gateway)
        await kyc.put_id(SENDER)
        assert await deliver(gateway) == 1  # the default answer: PROCESSING
        [review] = await self.reviews(gateway)
        assert (review["status"], review["attempts"]) == ("pending", 0)
        assert review["last_error"] == "the KYC provider is still reviewing"
        due = datetime.fromtimestamp(clock() + 600, UTC)
        assert abs((review["next_attempt_at"] - due).total_seconds()) < 2
        assert (await kyc.status())["status"] == "PROCESSING"
        clock.advance(598)
        assert await deliver(gateway) == 0
        clock.advance(2)
        kyc_provider.answers = [ACCEPT]
        assert await deliver(gateway) == 1
        assert len(kyc_provider.requests) == 2
        assert (await kyc.status())["status"] == "ACCEPTED"

    async def test_a_provider_outage_is_retried_per_the_outbox_schedule(
        self, gateway, kyc_provider, clock
    ):
        kyc = await kyc_for(gateway)
        await kyc.put_id(SENDER)
        outage = KycProviderUnavailable(detail="HTTP 503")
        kyc_provider.answers = [outage, outage, ACCEPT]
        assert await deliver(gateway) == 1
        for attempts, delay in ((1, 5), (2, 15)):
            [review] = await self.reviews(gateway)
            assert (review["status"], review["attempts"]) == ("pending", attempts)
            assert review["last_error"] == (
                "The KYC provider did not give a usable answer (HTTP 503)"
            )
            due = datetime.fromtimestamp(clock() + delay, UTC)
            assert abs((review["next_attempt_at"] - due).total_seconds()) < 2
            assert (await kyc.status())["status"] == "PROCESSING"
            clock.advance(delay)
            assert await deliver(gateway) == 1
        assert (await kyc.status())["status"] == "ACCEPTED"
        assert len(kyc_provider.requests) == 3

    async def test_the_provider_gets_the_files(self, gateway, kyc_provider):
        kyc = await kyc_for(gateway)
        response = await kyc.put(
            data={
                **SENDER,
                "address": "1 Analytical Engine Row",
                "address_country_code": "GBR",
                "birth_date": "1815-12-10",
                "id_type": "passport",
                "id_number": "P1234567",
                "id_country_code": "GBR",
            },
            files={"photo_id_front": ("a.png", PNG, "image/png")},
        )
        assert response.status_code == 202
        assert {json.loads(m["body"])["type"] for m in await self.reviews(gateway)} == {
            "sep31-sender",
            "sep31-large-sender",
        }
        kyc_provider.default = ACCEPT
        assert await deliver_all(gateway) == 2
        [large] = [r for r in kyc_provider.requests if r.type == "sep31-large-sender"]
        assert large.files == (("photo_id_front", "image/png", PNG),)
        assert large.fields["id_number"] == "P1234567"
        assert (await kyc.status(type="sep31-large-sender"))["status"] == "ACCEPTED"

    async def test_only_the_latest_data_is_reviewed(self, gateway, kyc_provider):
        kyc = await kyc_for(gateway)
        customer_id = await kyc.put_id(SENDER)
        await kyc.put_id({"first_name": "Augusta"})
        assert len(await self.reviews(gateway)) == 2
        kyc_provider.default = ACCEPT
        assert await deliver_all(gateway) == 2
        [request] = kyc_provider.requests
        assert request.review_id == f"{customer_id}:sep31-sender:2"
        assert request.fields["first_name"] == "Augusta"
        assert (await kyc.status())["status"] == "ACCEPTED"

    async def test_callbacks_follow_the_review(self, gateway, kyc_provider):
        kyc = await kyc_for(gateway)
        await kyc.put_id({"first_name": "Ada"})
        await kyc.callback({"url": HOOK})
        await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
        kyc_provider.answers = [ACCEPT]
        # The PROCESSING callback and the review go out; the review queues the ACCEPTED one.
        assert await deliver(gateway) == 2
        assert await deliver(gateway) == 1
        statuses = [json.loads(r.body)["status"] for r in gateway.callbacks.received]
        assert statuses == ["PROCESSING", "ACCEPTED"]
        assert await rows(gateway, customer_callbacks) == []

    async def test_an_answer_about_old_data_does_not_accept_new_data(self, gateway, kyc_provider):
        kyc = await kyc_for(gateway)
        await kyc.put_id(SENDER)

        async def customer_changes_data():
            await kyc.put_id({"last_name": "Unreviewed"})

        kyc_provider.during_review = customer_changes_data
        kyc_provider.answers = [ACCEPT]
        assert await deliver(gateway) == 1
        assert kyc_provider.requests[0].fields["last_name"] == "Lovelace"
        assert (await kyc.status())["status"] == "PROCESSING"


# -- logs ---------------------------------------------------------------------------------------

SECRETS = [
    "Zephyrine",
    "Quillfeather",
    "zephyrine.q@mailhost.example",
    "+14155550177",
    "77 Obsidianwick Lane",
    "P55667788",
    "ZQ-SCAN-BYTES",
]


async def test_personal_data_never_reaches_the_logs(gateway, caplog):
    log_everything(caplog)
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token())
    scan = PNG + b"ZQ-SCAN-BYTES" * 4
    response = await kyc.put(
        data={
            "first_name": "Zephyrine",
            "last_name": "Quillfeather",
            "email_address": "zephyrine.q@mailhost.example",
            "mobile_number": "+14155550177",
            "address": "77 Obsidianwick Lane",
            "id_number": "P55667788",
        },
        files={"photo_id_front": ("Zephyrine.png", scan, "image/png")},
    )
    assert response.status_code == 202
    customer_id = response.json()["id"]
    await kyc.upload(scan)
    # Refused values must not be logged either.
    assert (await kyc.put({"email_address": "Zephyrine at mailhost"})).status_code == 400
    assert (await kyc.put({"mobile_number": "Quillfeather"})).status_code == 400
    await kyc.get()
    await kyc.get(type="sep31-large-sender")
    await kyc.callback({"url": HOOK})
    await service(gateway).decide(
        customer_id, "sep31-sender", "REJECTED", "operator reason", actor="operator:test"
    )
    gateway.callbacks.answers = [500]
    await deliver(gateway)
    assert (await kyc.delete(wallet.account)).status_code == 200
    assert caplog.records
    for record in caplog.records:
        text = record_text(record)
        for secret in SECRETS:
            assert secret not in text, (record.name, secret)
