"""SEP-31 through the app: /info, POST /transactions with every refusal, per-amount customer
checks, partners, idempotency, GET, callbacks and the deprecated PATCH."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jwt
import pytest
from stellar_sdk import Keypair

from gateway.db.tables import payouts, transfer_events, transfers
from tests.fakes.callbacks import verify_signature
from tests.fakes.sep12 import error_of, kyc_for, rows
from tests.fakes.sep31 import RECEIVER, SENDER, Partner, partner_for

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
RECEIVING = "GBJ53BGBBOXH6IGA7RFD6PIVKX2M7JYQIWSQ4BG4BWXTX6NP3RFT3JSF"
ASSET = f"stellar:GWUSD:{ISSUER}"
HOOK = "https://sender.test/sep31-hook"
NO_TOKEN = "Authentication required: send 'Authorization: Bearer <token>'"


def body(sender_id: str | None, receiver_id: str | None, /, **changes) -> dict:
    b = {
        "amount": 100,
        "asset_code": "GWUSD",
        "funding_method": "SEPA",
        "sender_id": sender_id,
        "receiver_id": receiver_id,
    }
    b.update(changes)
    return {k: v for k, v in b.items() if v is not None}


@pytest.fixture
async def partner(gateway) -> Partner:
    return await partner_for(gateway)


@pytest.fixture
async def ready(partner) -> tuple[Partner, str, str]:
    sender_id, receiver_id = await partner.customers()
    return partner, sender_id, receiver_id


def transfers_service(gateway):
    return gateway.app.state.services.transfers


# -- GET /info --------------------------------------------------------------------------------


async def test_info_lists_the_asset_with_fees_limits_methods_and_per_amount_types(gateway):
    response = await gateway.client.get("/sep31/info")  # public: no token needed
    assert response.status_code == 200
    assert response.json() == {
        "receive": {
            "GWUSD": {
                "enabled": True,
                "quotes_supported": False,
                "quotes_required": False,
                "fee_fixed": 0.5,
                "fee_percent": 1.0,
                "min_amount": 1.0,
                "max_amount": 10000.0,
                "funding_methods": ["SEPA", "SWIFT"],
                "sep12": {
                    "sender": {
                        "types": {
                            "sep31-sender": {"description": "Sender of a cross-border payment"},
                            "sep31-large-sender": {
                                "description": "Sender of a large cross-border payment "
                                "(for 1000 GWUSD or more)"
                            },
                        }
                    },
                    "receiver": {
                        "types": {
                            "sep31-receiver": {
                                "description": "Receiver of a cross-border payment, paid to a "
                                "bank account"
                            },
                            "sep31-large-receiver": {
                                "description": "Receiver of a large cross-border payment "
                                "(for 1000 GWUSD or more)"
                            },
                        }
                    },
                },
            }
        }
    }
    # With a token it answers the same.
    partner = await partner_for(gateway)
    assert (await partner.info()).json() == response.json()


class TestWithoutKyc:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_KYC_VALIDATION": "off"}

    async def test_info_lists_no_types_and_transfers_need_no_customers(self, gateway, partner):
        info = (await partner.info()).json()["receive"]["GWUSD"]
        assert info["sep12"] == {"sender": {"types": {}}, "receiver": {"types": {}}}
        created = await partner.create(body(None, None))
        assert (await partner.transaction(created["id"]))["status"] == "pending_sender"


# -- authentication and partners --------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/sep31/transactions"),
    ("GET", "/sep31/transactions/00000000-0000-0000-0000-000000000000"),
    ("PATCH", "/sep31/transactions/00000000-0000-0000-0000-000000000000"),
    ("PUT", "/sep31/transactions/00000000-0000-0000-0000-000000000000/callback"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_but_info_needs_a_token(gateway, method, path):
    response = await gateway.client.request(method, path, json={"amount": 1})
    assert error_of(response, 403) == NO_TOKEN
    response = await gateway.client.request(
        method, path, json={"amount": 1}, headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert response.status_code == 403


PARTNER_KEY = Keypair.random()


class TestPartners:
    @pytest.fixture
    def gateway_env(self):
        return {
            "GATEWAY_SEP31_PARTNER_ACCOUNTS": PARTNER_KEY.public_key,
            "GATEWAY_SEP31_PARTNER_DOMAINS": "partner.test",
        }

    async def test_only_listed_accounts_and_domains_may_send(self, gateway):
        listed = await partner_for(gateway, PARTNER_KEY)
        sender_id, receiver_id = await listed.customers()
        created = await listed.create(body(sender_id, receiver_id))

        stranger = await partner_for(gateway)
        refused = "this account is not an allowed sending anchor"
        for response in (
            await stranger.post(body(None, None)),
            await stranger.get(created["id"]),
            await stranger.callback(created["id"], {"url": HOOK}),
            await stranger.patch(created["id"], {"fields": {"transaction": {"x": "1"}}}),
        ):
            assert error_of(response, 403) == refused
        # GET /info stays public.
        assert (await stranger.info()).status_code == 200

        # An account signing for a listed client_domain is a partner too.
        domain_key = gateway.tomls.serve_signing_key("partner.test")
        by_domain = await partner_for(gateway, domain_key=domain_key, client_domain="partner.test")
        assert (await by_domain.get(created["id"])).status_code == 404  # not theirs
        other_domain_key = gateway.tomls.serve_signing_key("other.test")
        other = await partner_for(gateway, domain_key=other_domain_key, client_domain="other.test")
        assert error_of(await other.get(created["id"]), 403) == refused


# -- POST /transactions -----------------------------------------------------------------------


async def test_a_transfer_is_created_with_only_its_payment_instructions(gateway, ready):
    partner, sender_id, receiver_id = ready
    response = await partner.post(body(sender_id, receiver_id, fields={"transaction": {}}))
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "stellar_account_id", "stellar_memo_type", "stellar_memo"}
    assert created["stellar_account_id"] == RECEIVING
    assert created["stellar_memo_type"] == "id"
    assert 0 < int(created["stellar_memo"]) < 2**63

    tx = await partner.transaction(created["id"])
    assert tx["id"] == created["id"] and tx["status"] == "pending_sender"
    assert (tx["stellar_account_id"], tx["stellar_memo_type"], tx["stellar_memo"]) == (
        RECEIVING,
        "id",
        created["stellar_memo"],
    )
    # 100 GWUSD; fee 0.50 + 1 % = 1.50; every amount a string.
    assert (tx["amount_in"], tx["amount_fee"], tx["amount_out"]) == ("100.00", "1.50", "98.50")
    assert tx["amount_in_asset"] == tx["amount_out_asset"] == tx["amount_fee_asset"] == ASSET
    assert tx["fee_details"] == {"total": "1.50", "asset": ASSET}
    assert tx["refunded"] is False
    assert tx["started_at"].endswith("Z") and tx["completed_at"] is None
    assert "refunds" not in tx and "required_info_updates" not in tx

    [row] = await rows(gateway, transfers, id=created["id"])
    assert (row["amount_in"], row["amount_fee"], row["amount_out"]) == (
        1_000_000_000,
        15_000_000,
        985_000_000,
    )
    assert (row["sender_id"], row["receiver_id"], row["funding_method"]) == (
        sender_id,
        receiver_id,
        "SEPA",
    )
    [event] = await rows(gateway, transfer_events, transfer_id=created["id"])
    assert (event["from_status"], event["to_status"], event["reason"]) == (
        None,
        "pending_sender",
        "created",
    )
    assert event["actor"] == partner_account(partner)


def partner_account(partner: Partner) -> str:
    return str(jwt.decode(partner.token, options={"verify_signature": False})["sub"])


async def test_every_transfer_gets_its_own_memo(ready):
    partner, sender_id, receiver_id = ready
    memos = [
        (await partner.create(body(sender_id, receiver_id, amount=10 + i)))["stellar_memo"]
        for i in range(25)
    ]
    assert len(set(memos)) == 25


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"amount": None}, "amount: is required"),
        ({"asset_code": None}, "asset_code: is required"),
        ({"asset_code": "EURT"}, "asset_code: EURT is not an asset this anchor receives"),
        ({"asset_code": 7}, "asset_code: is required"),
        ({"asset_issuer": RECEIVING}, "asset_issuer: is not the issuer of GWUSD here"),
        ({"amount": "ten"}, "amount: must be a positive decimal number with at most 7 decimals"),
        ({"amount": "1.001"}, "amount: must have at most 2 decimals"),
        ({"amount": 0}, "amount: must be greater than zero"),
        ({"amount": -5}, "amount: must be a positive decimal number with at most 7 decimals"),
        ({"amount": "NaN"}, "amount: must be a positive decimal number with at most 7 decimals"),
        ({"amount": 1e20}, "amount: must be a positive decimal number with at most 7 decimals"),
        ({"amount": True}, "amount: must be a number"),
        ({"amount": 0.5}, "amount: must be at least 1 GWUSD"),
        ({"amount": 10000.01}, "amount: must be at most 10000 GWUSD"),
        ({"funding_method": None}, "funding_method: is required; one of SEPA, SWIFT"),
        ({"funding_method": "CASH"}, "funding_method: must be one of SEPA, SWIFT"),
        ({"quote_id": "q1"}, "quotes are not offered: send neither quote_id nor destination_asset"),
        (
            {"destination_asset": "iso4217:EUR"},
            "quotes are not offered: send neither quote_id nor destination_asset",
        ),
        ({"fields": ["x"]}, "fields: must be an object (it is deprecated and ignored)"),
        ({"refund_memo": "5"}, "refund_memo and refund_memo_type go together"),
        ({"refund_memo_type": "id"}, "refund_memo and refund_memo_type go together"),
        (
            {"refund_memo": "x", "refund_memo_type": "id"},
            "refund_memo: must be a positive integer (memo_type id)",
        ),
        (
            {"refund_memo": "x", "refund_memo_type": "bogus"},
            "refund_memo_type: must be id, text or hash",
        ),
        ({"sender_id": 5}, "sender_id: must be the id of a SEP-12 customer"),
    ],
)
async def test_bad_requests_are_refused_with_400_and_create_nothing(gateway, ready, changes, error):
    partner, sender_id, receiver_id = ready
    response = await partner.post(body(sender_id, receiver_id, **changes))
    assert error_of(response, 400) == error
    assert await rows(gateway, transfers) == []


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'{"amount": 1e999999}', b'{"amount": {"x": 1}}'],
)
async def test_unreadable_bodies_answer_400(gateway, partner, raw):
    response = await gateway.client.post(
        "/sep31/transactions",
        content=raw,
        headers={**partner.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}


class TestOneFundingMethod:
    @pytest.fixture
    def gateway_env(self):
        return {
            "GATEWAY_SEP31_ASSETS": json.dumps(
                [
                    {
                        "code": "GWUSD",
                        "funding_methods": ["SWIFT"],
                        "fee_fixed": "0",
                        "fee_percent": "0",
                    }
                ]
            )
        }

    async def test_it_is_the_default_for_senders_before_v3_1(self, ready):
        partner, sender_id, receiver_id = ready
        created = await partner.create(body(sender_id, receiver_id, funding_method=None))
        tx = await partner.transaction(created["id"])
        assert (tx["amount_fee"], tx["amount_out"]) == ("0.00", "100.00")
        response = await partner.post(body(sender_id, receiver_id, funding_method="SEPA"))
        assert error_of(response, 400) == "funding_method: must be one of SWIFT"


async def test_a_missing_or_unfinished_customer_needs_info_of_the_right_type(partner):
    needed = {"error": "customer_info_needed", "type": "sep31-sender"}
    response = await partner.post(body(None, None))
    assert response.status_code == 400 and response.json() == needed

    incomplete = await partner.kyc.put_id({"first_name": "Allie"})
    response = await partner.post(body(incomplete, None))
    assert response.status_code == 400 and response.json() == needed

    sender_id = await partner.kyc.put_id({"id": incomplete, **SENDER})
    response = await partner.post(body(sender_id, None))
    assert response.json() == {"error": "customer_info_needed", "type": "sep31-receiver"}
    receiver_id = await partner.kyc.put_id({"memo": "2", **RECEIVER})
    assert (await partner.post(body(sender_id, receiver_id))).status_code == 201


async def test_a_large_amount_needs_the_large_types(partner):
    sender_id, receiver_id = await partner.customers()
    response = await partner.post(body(sender_id, receiver_id, amount=999.99))
    assert response.status_code == 201
    response = await partner.post(body(sender_id, receiver_id, amount=1000))
    assert response.json() == {"error": "customer_info_needed", "type": "sep31-large-sender"}

    big_sender, big_receiver = await partner.customers(large=True)
    response = await partner.post(body(big_sender, receiver_id, amount=1000))
    assert response.json() == {"error": "customer_info_needed", "type": "sep31-large-receiver"}
    assert (await partner.post(body(big_sender, big_receiver, amount=1000))).status_code == 201


async def test_customers_of_another_account_are_never_usable(gateway, ready):
    _, sender_id, receiver_id = ready
    other = await partner_for(gateway)
    response = await other.post(body(sender_id, receiver_id))
    assert response.json() == {"error": "customer_info_needed", "type": "sep31-sender"}
    own_sender, _ = await other.customers()
    response = await other.post(body(own_sender, receiver_id))
    assert response.json() == {"error": "customer_info_needed", "type": "sep31-receiver"}
    response = await other.post(body(own_sender, "no-such-customer"))
    assert response.json() == {"error": "customer_info_needed", "type": "sep31-receiver"}


async def test_a_customer_registered_under_a_memo_of_the_account_counts(gateway):
    wallet = gateway.wallet()
    memo_one = await partner_for(gateway, wallet.keypair, memo="1")
    sender_id = await memo_one.kyc.put_id(SENDER)
    memo_two = await kyc_for(gateway, memo="2", wallet=wallet)
    receiver_id = await memo_two.put_id(RECEIVER)
    assert (await memo_one.post(body(sender_id, receiver_id))).status_code == 201


# -- idempotency ------------------------------------------------------------------------------


async def test_a_repeated_request_id_answers_the_first_transfer(gateway, ready):
    partner, sender_id, receiver_id = ready
    first = await partner.create(body(sender_id, receiver_id), key="req-1")
    again = await partner.post(body(sender_id, receiver_id), key="req-1")
    assert again.status_code == 201 and again.json() == first
    # The first answer stands even once the receiver's data is gone: the replay does not
    # check again what the first request was created on.
    erased = await partner.kyc.delete(partner.keypair.public_key, {"memo": "2", "memo_type": "id"})
    assert erased.status_code == 200
    late = await partner.post(body(sender_id, receiver_id), key="req-1")
    assert late.status_code == 201 and late.json() == first
    fresh = await partner.post(body(sender_id, receiver_id), key="req-2")
    assert fresh.status_code == 400
    assert fresh.json() == {"error": "customer_info_needed", "type": "sep31-receiver"}
    changed = await partner.post(body(sender_id, receiver_id, amount=101), key="req-1")
    assert error_of(changed, 409) == "Idempotency-Key was already used with a different request"
    other = await partner_for(gateway)
    o_sender, o_receiver = await other.customers()
    theirs = await other.create(body(o_sender, o_receiver), key="req-1")
    assert theirs["id"] != first["id"]
    assert len(await rows(gateway, transfers)) == 2
    too_long = await partner.post(body(sender_id, receiver_id), key="k" * 129)
    assert error_of(too_long, 400) == (
        "Idempotency-Key: must be 1 to 128 printable ASCII characters"
    )


# -- GET /transactions/{id} -------------------------------------------------------------------


async def test_a_transfer_is_visible_only_to_the_partner_that_created_it(gateway, ready):
    partner, sender_id, receiver_id = ready
    created = await partner.create(body(sender_id, receiver_id))
    other = await partner_for(gateway)
    assert error_of(await other.get(created["id"]), 404) == "transaction not found"
    assert error_of(await partner.get("nope"), 404) == "transaction not found"
    assert error_of(await other.callback(created["id"], {"url": HOOK}), 404)
    assert error_of(await other.patch(created["id"], {"fields": {"transaction": {"a": 1}}}), 404)


# -- callbacks --------------------------------------------------------------------------------


async def test_a_registered_callback_gets_each_status_change_signed(gateway, ready):
    partner, sender_id, receiver_id = ready
    created = await partner.create(body(sender_id, receiver_id))
    response = await partner.callback(created["id"], {"url": HOOK})
    assert response.status_code == 204 and response.content == b""
    service = transfers_service(gateway)
    await service.operate(created["id"], "fail", "operator:test", "sender cancelled")
    assert await gateway.app.state.services.callbacks.deliver_once() == 1
    [received] = gateway.callbacks.received
    assert received.url == HOOK
    verify_signature(gateway, received, HOOK)
    assert json.loads(received.body) == {"transaction": await partner.transaction(created["id"])}
    assert json.loads(received.body)["transaction"]["status"] == "error"


async def test_a_new_callback_url_replaces_the_old_one(gateway, ready):
    partner, sender_id, receiver_id = ready
    created = await partner.create(body(sender_id, receiver_id))
    await partner.callback(created["id"], {"url": HOOK})
    await transfers_service(gateway).operate(created["id"], "fail", "op", "x")
    await partner.callback(created["id"], {"url": "https://sender.test/new-hook"})
    assert await gateway.app.state.services.callbacks.deliver_once() == 1
    assert [r.url for r in gateway.callbacks.received] == ["https://sender.test/new-hook"]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (None, "url: is required"),
        ("ftp://sender.test/x", "url: must use https"),
        ("http://sender.test/x", "url: must use https"),
        ("https://user:pw@sender.test/x", "url: must be an absolute https URL"),
        ("/relative", "url: must be an absolute https URL"),
        ("https://[::1]/x", "url: must not point to a local or private address"),
        ("https://169.254.169.254/x", "url: must not point to a local or private address"),
        ("https://localhost/x", "url: must not point to a local or private address"),
        ("https://10.0.0.1/x", "url: must not point to a local or private address"),
    ],
)
async def test_bad_callback_urls_are_refused(ready, url, error):
    partner, sender_id, receiver_id = ready
    created = await partner.create(body(sender_id, receiver_id))
    response = await partner.callback(created["id"], {} if url is None else {"url": url})
    assert error_of(response, 400).startswith(error)


# -- the deprecated PATCH ---------------------------------------------------------------------


async def test_patch_updates_only_the_fields_an_operator_asked_for(gateway, ready):
    partner, sender_id, receiver_id = ready
    created = await partner.create(body(sender_id, receiver_id))
    tid = created["id"]
    response = await partner.patch(tid, {"fields": {"transaction": {"reference": "x"}}})
    assert error_of(response, 400) == "no update of this transaction's fields was requested"

    service = transfers_service(gateway)
    # The payment arrived and was held; then the operator asks for a field.
    async with gateway.app.state.deps.uow() as uow:
        t = await uow.transfers.get(tid, lock=True)
        t = t.funds_received(
            amount=t.amount_in,
            sender_account=Keypair.random().public_key,
            transaction_id="ab" * 32,
            actor="test",
            at=datetime.now(UTC),
            hold="held for the test",
        )
        await uow.transfers.save(t)
        await uow.commit()
    wanted = {
        "reference": {"description": "the payment reference"},
        "note": {"description": "n", "optional": True},
    }
    await service.operate(tid, "need_transaction_info", "operator:ana", "reference missing", wanted)
    tx = await partner.transaction(tid)
    assert tx["status"] == "pending_transaction_info_update"
    assert tx["required_info_message"] == "reference missing"
    assert tx["required_info_updates"] == {"transaction": wanted}

    for patch, error in [
        ({}, 'fields: must be {"transaction": {...}}'),
        ({"fields": {"transaction": {}}}, 'fields: must be {"transaction": {...}}'),
        ({"fields": {"transaction": {"note": "n"}}}, "requested fields missing: reference"),
        (
            {"fields": {"transaction": {"reference": "r", "iban": "x"}}},
            "fields that were not requested: iban",
        ),
    ]:
        assert error_of(await partner.patch(tid, patch), 400) == error
        assert (await partner.transaction(tid))["status"] == "pending_transaction_info_update"

    response = await partner.patch(tid, {"fields": {"transaction": {"reference": "INV-7"}}})
    assert response.status_code == 200
    assert response.json() == {"transaction": await partner.transaction(tid)}
    assert response.json()["transaction"]["status"] == "pending_receiver"
    assert "required_info_updates" not in response.json()["transaction"]
    assert error_of(await partner.patch("nope", {"fields": {"transaction": {"a": 1}}}), 404)
    # Kept for operators, sealed; the held payment stays held (no payout).
    assert await service.sent_info(tid) == {"reference": "INV-7"}
    [row] = await rows(gateway, transfers, id=tid)
    assert b"INV-7" not in row["info_sealed"] and row["info_key_id"]
    assert await rows(gateway, payouts, source_id=tid) == []
    assert response.json()["transaction"]["status_message"] == "held for the test"


async def test_patched_information_sends_a_received_payment_to_payout_again(gateway, ready):
    partner, sender_id, receiver_id = ready
    tid = (await partner.create(body(sender_id, receiver_id)))["id"]
    service = transfers_service(gateway)
    async with gateway.app.state.deps.uow() as uow:
        t = await uow.transfers.get(tid, lock=True)
        t = t.funds_received(
            amount=t.amount_in,
            sender_account=Keypair.random().public_key,
            transaction_id="ab" * 32,
            actor="test",
            at=datetime.now(UTC),
        )
        await service._pay_out(uow, t, datetime.now(UTC))
        await uow.commit()
    wanted = {"reference": {"description": "the payment reference"}}
    await service.operate(tid, "need_transaction_info", "operator:ana", "reference?", wanted)
    [canceled] = await rows(gateway, payouts, source_id=tid)
    assert canceled["status"] == "canceled"
    response = await partner.patch(tid, {"fields": {"transaction": {"reference": "INV-8"}}})
    assert response.status_code == 200
    again = [r for r in await rows(gateway, payouts, source_id=tid) if r["status"] == "ready"]
    assert [(r["attempt"], r["amount"]) for r in again] == [(2, canceled["amount"])]


@pytest.mark.parametrize(
    ("request_args", "status", "error"),
    [
        (
            {"method": "POST", "url": "/sep31/transactions", "json": {"amount": "x\u0000"}},
            400,
            "Request body must not contain NUL characters",
        ),
        (
            {"method": "GET", "url": "/sep31/transactions/%00"},
            400,
            "the URL must not contain NUL",
        ),
        (
            {"method": "GET", "url": "/sep31/transactions/x", "params": {"lang": "\x00"}},
            400,
            "the URL must not contain NUL",
        ),
        ({"method": "GET", "url": "/sep31/transactions/not-a-uuid"}, 404, "transaction not found"),
        (
            {"method": "PUT", "url": "/sep31/transactions/1'; --/callback", "json": {"url": HOOK}},
            404,
            "transaction not found",
        ),
    ],
)
async def test_odd_identifiers_and_nul_characters_are_refused_cleanly(
    gateway, partner, request_args, status, error
):
    response = await gateway.client.request(headers=partner.headers, **request_args)
    assert error_of(response, status) == error


async def test_amounts_beyond_stellars_largest_are_refused(ready):
    partner, sender_id, receiver_id = ready
    for amount in ("922337203685.4775808", "999999999999999"):
        response = await partner.post(body(sender_id, receiver_id, amount=amount))
        assert error_of(response, 400) == (
            "amount: must be at most 922337203685.4775807 (Stellar's largest amount)"
        )
