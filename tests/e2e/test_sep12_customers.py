"""SEP-12 /kyc/customer through the app: every endpoint's answers, status transitions per type,
ownership of customers (accounts, memos, muxed accounts) and SEP-9 field validation."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from stellar_sdk import Keypair

from gateway.errors import InvalidField, NotFound
from gateway.sep9 import CATALOG
from tests.fakes.sep12 import (
    JPEG,
    PDF,
    PNG,
    Kyc,
    error_of,
    kyc_for,
)

pytestmark = pytest.mark.asyncio

NO_TOKEN = "Authentication required: send 'Authorization: Bearer <token>'"
NOT_FOUND = "customer with `id` not found"
SENDER = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com"}
SENDER_FIELDS = ["first_name", "last_name", "email_address"]
SENDER_OPTIONAL = ["mobile_number", "address", "city", "address_country_code", "birth_date"]
TYPES = "sep31-sender, sep31-large-sender, sep31-receiver, sep31-large-receiver"


def field_doc(name: str, optional: bool = False, **extra: str) -> dict:
    spec = CATALOG[name]
    doc: dict = {"type": spec.kind, "description": spec.description}
    if spec.choices:
        doc["choices"] = list(spec.choices)
    if optional:
        doc["optional"] = True
    doc.update(extra)
    return doc


def sender_fields(*, missing: list[str] = SENDER_FIELDS) -> dict:
    return {
        **{n: field_doc(n) for n in missing},
        **{n: field_doc(n, optional=True) for n in SENDER_OPTIONAL},
    }


async def customer_row(gateway, customer_id: str):
    async with gateway.app.state.deps.uow(read_only=True) as uow:
        return await uow.customers.get(customer_id), await uow.customers.events(customer_id)


def customers(gateway):
    return gateway.app.state.services.customers


# -- authentication on every endpoint -----------------------------------------------------------

ENDPOINTS = [
    ("GET", "/kyc/customer"),
    ("PUT", "/kyc/customer"),
    ("PUT", "/kyc/customer/verification"),
    ("PUT", "/kyc/customer/callback"),
    ("DELETE", f"/kyc/customer/{Keypair.random().public_key}"),
    ("POST", "/kyc/customer/files"),
    ("GET", "/kyc/customer/files"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_refuses_a_request_without_a_token(gateway, method, path):
    response = await gateway.client.request(method, path, json={"first_name": "Ada"})
    assert error_of(response, 403) == NO_TOKEN


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_refuses_a_forged_token(gateway, method, path):
    wallet = gateway.wallet()
    token = await wallet.token()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await gateway.client.request(
        method, path, headers={"Authorization": f"Bearer {forged}"}
    )
    assert error_of(response, 403) == "Invalid token"


# -- GET /customer ------------------------------------------------------------------------------


async def test_unknown_customer_needs_info_with_the_default_types_fields_and_no_id(gateway):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token())
    assert await kyc.status() == {"status": "NEEDS_INFO", "fields": sender_fields()}
    # The same with the type named, with the deprecated account parameter, or a memo.
    for params in ({"type": "sep31-sender"}, {"account": wallet.account}, {"memo": "9"}):
        assert await kyc.status(**params) == {"status": "NEEDS_INFO", "fields": sender_fields()}


async def test_type_selects_the_fields_asked_for(gateway):
    kyc = await kyc_for(gateway)
    body = await kyc.status(type="sep31-receiver")
    assert body["status"] == "NEEDS_INFO" and "id" not in body
    assert body["fields"] == {
        "first_name": field_doc("first_name"),
        "last_name": field_doc("last_name"),
        "bank_account_number": field_doc("bank_account_number"),
        "bank_number": field_doc("bank_number"),
        "email_address": field_doc("email_address", optional=True),
        "mobile_number": field_doc("mobile_number", optional=True),
        "bank_account_type": {
            "type": "string",
            "description": "Type of bank account",
            "choices": ["checking", "savings"],
            "optional": True,
        },
        "bank_name": field_doc("bank_name", optional=True),
        "clabe_number": field_doc("clabe_number", optional=True),
        "address": field_doc("address", optional=True),
        "city": field_doc("city", optional=True),
        "address_country_code": field_doc("address_country_code", optional=True),
    }
    large = await kyc.status(type="sep31-large-sender")
    assert large["fields"]["photo_id_front"] == {
        "type": "binary",
        "description": "Image of the front of the identity document",
    }
    assert large["fields"]["photo_id_back"]["optional"] is True


async def test_unknown_type_is_a_400_naming_the_types(gateway):
    kyc = await kyc_for(gateway)
    error = error_of(await kyc.get(type="sep6"), 400)
    assert error == f"type: is not a customer type of this server; use one of {TYPES}"
    error = error_of(await kyc.put({"type": "sep6", **SENDER}), 400)
    assert error.startswith("type: is not a customer type")
    # Nothing was stored by the refused PUT.
    assert "id" not in await kyc.status()


async def test_transaction_id_needs_a_type_and_a_transaction_of_the_caller(gateway):
    kyc = await kyc_for(gateway)
    await kyc.put_id(SENDER)
    error = error_of(await kyc.get(transaction_id="82fhs729f63dh0v4"), 400)
    assert error == "type: is required with transaction_id"
    response = await kyc.get(transaction_id="82fhs729f63dh0v4", type="sep31-sender")
    assert error_of(response, 404) == "transaction not found"


async def test_get_by_token_by_id_and_by_account(gateway):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token())
    customer_id = await kyc.put_id(SENDER)
    by_token = await kyc.status()
    assert by_token["id"] == customer_id and by_token["status"] == "ACCEPTED"
    assert await kyc.status(id=customer_id) == by_token
    assert await kyc.status(account=wallet.account) == by_token
    assert await kyc.status(id=customer_id, type="sep31-sender") == by_token


async def test_unknown_id_is_a_404_on_get_and_put(gateway):
    kyc = await kyc_for(gateway)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert error_of(await kyc.get(id=unknown), 404) == NOT_FOUND
    assert error_of(await kyc.put({"id": unknown, **SENDER}), 404) == NOT_FOUND
    assert "id" not in await kyc.status()


# -- PUT /customer ------------------------------------------------------------------------------


async def test_put_json_answers_202_with_the_id(gateway):
    kyc = await kyc_for(gateway)
    response = await kyc.put(SENDER)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["id"] and len(body["id"]) == 36


async def test_put_form_urlencoded_is_accepted(gateway):
    kyc = await kyc_for(gateway)
    response = await kyc.put(data=SENDER)
    assert response.status_code == 202, response.text
    body = await kyc.status()
    assert body["id"] == response.json()["id"] and body["status"] == "ACCEPTED"
    assert await customers(gateway).personal_data(body["id"]) == SENDER


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (PDF, "application/pdf")],
    ids=["png", "jpeg", "pdf"],
)
async def test_put_multipart_with_a_file_part(gateway, content, content_type):
    kyc = await kyc_for(gateway)
    large = {
        **SENDER,
        "address": "1 Analytical Engine Row",
        "address_country_code": "GBR",
        "birth_date": "1815-12-10",
        "id_type": "passport",
        "id_number": "P1234567",
        "id_country_code": "GBR",
        "type": "sep31-large-sender",
    }
    response = await kyc.put(data=large, files={"photo_id_front": ("front", content, content_type)})
    assert response.status_code == 202, response.text
    customer_id = response.json()["id"]
    body = await kyc.status(type="sep31-large-sender")
    assert body["status"] == "ACCEPTED"
    assert body["provided_fields"]["photo_id_front"] == field_doc(
        "photo_id_front", status="ACCEPTED"
    )
    files = (await kyc.files(customer_id=customer_id)).json()["files"]
    assert len(files) == 1
    assert files[0]["content_type"] == content_type and files[0]["size"] == len(content)
    assert files[0]["customer_id"] == customer_id and files[0]["expires_at"] is None


async def test_put_is_idempotent(gateway):
    kyc = await kyc_for(gateway)
    first = await kyc.put_id(SENDER)
    row, events = await customer_row(gateway, first)
    assert row.version == 1
    assert [(e["type"], e["to_status"]) for e in events] == [
        ("sep31-sender", "ACCEPTED"),
        ("sep31-large-sender", "NEEDS_INFO"),
        ("sep31-receiver", "NEEDS_INFO"),
        ("sep31-large-receiver", "NEEDS_INFO"),
    ]
    assert await kyc.put_id(SENDER) == first
    assert await kyc.put_id({"id": first, **SENDER}) == first
    # Form-encoded, same values with surrounding blanks: still the same data.
    response = await kyc.put(data={k: f" {v} " for k, v in SENDER.items()})
    assert response.json() == {"id": first}
    again, events_again = await customer_row(gateway, first)
    assert again.version == 1
    assert events_again == events


async def test_put_merges_fields_across_puts(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id({"first_name": "Ada"})
    assert await kyc.put_id({"last_name": "Lovelace"}) == customer_id
    assert await kyc.put_id({"id": customer_id, "email_address": "ada@example.com"}) == (
        customer_id
    )
    assert await kyc.put_id({"first_name": "Augusta"}) == customer_id
    assert await customers(gateway).personal_data(customer_id) == {
        **SENDER,
        "first_name": "Augusta",
    }
    row, _ = await customer_row(gateway, customer_id)
    assert row.version == 4


# -- statuses -----------------------------------------------------------------------------------


async def test_sender_goes_from_needs_info_to_accepted_with_field_statuses(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id({"first_name": "Ada", "city": "London"})
    assert await kyc.status() == {
        "id": customer_id,
        "status": "NEEDS_INFO",
        "fields": {
            "last_name": field_doc("last_name"),
            "email_address": field_doc("email_address"),
            **{n: field_doc(n, optional=True) for n in SENDER_OPTIONAL if n != "city"},
        },
        "provided_fields": {
            "first_name": field_doc("first_name", status="ACCEPTED"),
            "city": field_doc("city", optional=True, status="ACCEPTED"),
        },
    }
    await kyc.put_id({"last_name": "Lovelace", "email_address": "ada@example.com"})
    assert await kyc.status() == {
        "id": customer_id,
        "status": "ACCEPTED",
        "provided_fields": {
            "first_name": field_doc("first_name", status="ACCEPTED"),
            "city": field_doc("city", optional=True, status="ACCEPTED"),
            "last_name": field_doc("last_name", status="ACCEPTED"),
            "email_address": field_doc("email_address", status="ACCEPTED"),
        },
    }


async def test_status_is_per_type(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    assert (await kyc.status(type="sep31-sender"))["status"] == "ACCEPTED"
    large = await kyc.status(type="sep31-large-sender")
    assert large["status"] == "NEEDS_INFO" and large["id"] == customer_id
    assert set(large["fields"]) == {
        "address",
        "address_country_code",
        "birth_date",
        "id_type",
        "id_number",
        "id_country_code",
        "photo_id_front",
        "mobile_number",
        "city",
        "photo_id_back",
    }
    assert set(large["provided_fields"]) == set(SENDER_FIELDS)
    receiver = await kyc.status(type="sep31-receiver")
    assert receiver["status"] == "NEEDS_INFO"
    assert {n for n, f in receiver["fields"].items() if not f.get("optional")} == {
        "bank_account_number",
        "bank_number",
    }
    assert set(receiver["provided_fields"]) == {"first_name", "last_name", "email_address"}


async def test_accepted_customer_needs_info_when_a_larger_type_needs_more(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    assert (await kyc.status())["status"] == "ACCEPTED"
    assert (await kyc.status(type="sep31-large-sender"))["status"] == "NEEDS_INFO"
    await kyc.put_id(
        {
            "address": "1 Analytical Engine Row",
            "address_country_code": "GBR",
            "birth_date": "1815-12-10",
            "id_type": "passport",
            "id_number": "P1234567",
            "id_country_code": "GBR",
        }
    )
    large = await kyc.status(type="sep31-large-sender")
    assert large["status"] == "NEEDS_INFO"
    assert {n for n, f in large["fields"].items() if not f.get("optional")} == {"photo_id_front"}
    response = await kyc.put(data={}, files={"photo_id_front": ("f.png", PNG, "image/png")})
    assert response.json() == {"id": customer_id}
    assert (await kyc.status(type="sep31-large-sender"))["status"] == "ACCEPTED"
    assert (await kyc.status())["status"] == "ACCEPTED"


async def test_rejection_is_final_and_carries_its_message(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    status = await customers(gateway).decide(
        customer_id, "sep31-sender", "REJECTED", "sanctions list match", actor="operator:test"
    )
    assert status == "REJECTED"
    body = await kyc.status()
    assert body["status"] == "REJECTED"
    assert body["message"] == "sanctions list match"
    # The customer is rejected for this type; the fields themselves keep their status
    # (other types may still use them).
    assert {n: f["status"] for n, f in body["provided_fields"].items()} == dict.fromkeys(
        SENDER_FIELDS, "ACCEPTED"
    )
    # New data does not reopen a rejection.
    await kyc.put_id({"first_name": "Augusta", "mobile_number": "+14155552671"})
    again = await kyc.status()
    assert again["status"] == "REJECTED" and again["message"] == "sanctions list match"
    _, events = await customer_row(gateway, customer_id)
    last = [e for e in events if e["type"] == "sep31-sender"][-1]
    assert (last["from_status"], last["to_status"], last["actor"], last["reason"]) == (
        "ACCEPTED",
        "REJECTED",
        "operator:test",
        "sanctions list match",
    )


async def test_needs_info_decision_rejects_a_field_until_it_is_sent_again(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    status = await customers(gateway).decide(
        customer_id,
        "sep31-sender",
        "NEEDS_INFO",
        "bounced",
        actor="operator:test",
        rejected_fields={"email_address": "The mailbox does not exist"},
    )
    assert status == "NEEDS_INFO"
    body = await kyc.status()
    assert body["status"] == "NEEDS_INFO" and "message" not in body
    assert body["fields"]["email_address"] == field_doc("email_address")
    assert body["provided_fields"]["email_address"] == field_doc(
        "email_address", status="REJECTED", error="The mailbox does not exist"
    )
    assert body["provided_fields"]["first_name"]["status"] == "ACCEPTED"
    # The same address again counts as a resubmission.
    await kyc.put_id({"email_address": "ada@example.com"})
    body = await kyc.status()
    assert body["status"] == "ACCEPTED"
    assert body["provided_fields"]["email_address"] == field_doc("email_address", status="ACCEPTED")


async def test_decisions_are_checked(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    service = customers(gateway)
    with pytest.raises(InvalidField, match=r"^status: must be ACCEPTED, REJECTED or NEEDS_INFO$"):
        await service.decide(customer_id, "sep31-sender", "PROCESSING", None, actor="t")
    with pytest.raises(InvalidField, match=r"^reason: is required to reject a customer$"):
        await service.decide(customer_id, "sep31-sender", "REJECTED", None, actor="t")
    with pytest.raises(InvalidField, match=r"^rejected_fields: must name fields of sep31-sender$"):
        await service.decide(customer_id, "sep31-sender", "NEEDS_INFO", "x", actor="t")
    with pytest.raises(InvalidField, match=r"^rejected_fields: must name fields of sep31-sender$"):
        await service.decide(
            customer_id,
            "sep31-sender",
            "NEEDS_INFO",
            "x",
            actor="t",
            rejected_fields={"bank_number": "wrong"},
        )
    with pytest.raises(NotFound):
        await service.decide(
            "00000000-0000-4000-8000-000000000000", "sep31-sender", "ACCEPTED", None, actor="t"
        )
    assert (await kyc.status())["status"] == "ACCEPTED"


# -- ownership ----------------------------------------------------------------------------------


async def test_another_accounts_customer_id_is_not_found(gateway):
    owner = await kyc_for(gateway)
    customer_id = await owner.put_id(SENDER)
    other = await kyc_for(gateway)
    assert error_of(await other.get(id=customer_id), 404) == NOT_FOUND
    assert error_of(await other.put({"id": customer_id, "first_name": "Mallory"}), 404) == (
        NOT_FOUND
    )
    response = await other.callback({"id": customer_id, "url": "https://evil.test/cb"})
    assert error_of(response, 404) == NOT_FOUND
    # SEP-12 GET /customer/files always answers 200: a foreign customer has no files for you.
    response = await other.files(customer_id=customer_id)
    assert response.status_code == 200 and response.json() == {"files": []}
    assert await customers(gateway).personal_data(customer_id) == SENDER


async def test_no_memo_memo_1_and_memo_2_are_three_customers(gateway):
    wallet = gateway.wallet()
    plain = Kyc(gateway.client, await wallet.token())
    one = Kyc(gateway.client, await wallet.token(memo="1"))
    two = Kyc(gateway.client, await wallet.token(memo="2"))
    id_plain = await plain.put_id({"first_name": "Plain"})
    id_one = await one.put_id({"first_name": "One"})
    id_two = await two.put_id({"first_name": "Two"})
    assert len({id_plain, id_one, id_two}) == 3
    assert (await one.status())["id"] == id_one
    assert (await two.status())["id"] == id_two
    assert (await plain.status())["id"] == id_plain
    # A memo token cannot reach its sibling or the memo-less customer.
    assert error_of(await one.get(id=id_two), 404) == NOT_FOUND
    assert error_of(await one.get(id=id_plain), 404) == NOT_FOUND
    assert error_of(await two.put({"id": id_one, "last_name": "X"}), 404) == NOT_FOUND
    # The memo-less token of the account speaks for every memo of it.
    assert (await plain.status(id=id_two))["id"] == id_two
    assert (await plain.status(memo="2"))["id"] == id_two
    assert (await plain.status(memo="1", memo_type="id"))["id"] == id_one
    assert await plain.put_id({"memo": "2", "last_name": "Second"}) == id_two
    assert await customers(gateway).personal_data(id_two) == {
        "first_name": "Two",
        "last_name": "Second",
    }


async def test_memo_less_token_registers_customers_under_any_memo(gateway):
    kyc = await kyc_for(gateway)
    a = await kyc.put_id({"memo": "7", **SENDER})
    b = await kyc.put_id({"memo": "8", **SENDER})
    c = await kyc.put_id({"memo": "AbC", "memo_type": "text", **SENDER})
    assert len({a, b, c}) == 3
    assert "id" not in await kyc.status()
    assert (await kyc.status(memo="7"))["id"] == a
    assert (await kyc.status(memo="AbC", memo_type="text"))["id"] == c
    assert error_of(await kyc.put({"memo": "abc", **SENDER}), 400) == (
        "memo: must be a positive integer (memo_type id)"
    )
    assert error_of(await kyc.put({"memo": "1", "memo_type": "weird", **SENDER}), 400) == (
        "memo_type: must be id, text or hash"
    )


async def test_account_parameter_must_be_the_tokens(gateway):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token())
    other = Keypair.random().public_key
    refused = "account: does not match the authenticated account"
    assert error_of(await kyc.get(account=other), 403) == refused
    assert error_of(await kyc.put({"account": other, **SENDER}), 403) == refused
    assert error_of(await kyc.callback({"account": other, "url": "https://w.test/c"}), 403) == (
        refused
    )
    assert error_of(await kyc.delete(other), 403) == refused
    assert "id" not in await kyc.status()
    customer_id = await kyc.put_id({"account": wallet.account, **SENDER})
    assert (await kyc.status(account=wallet.account))["id"] == customer_id


async def test_memo_parameter_must_match_a_memo_token(gateway):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token(memo="5"))
    refused = "memo: does not match the memo of the authenticated session"
    assert error_of(await kyc.get(memo="6"), 403) == refused
    assert error_of(await kyc.put({"memo": "6", **SENDER}), 403) == refused
    customer_id = await kyc.put_id({"memo": "5", **SENDER})
    assert (await kyc.status(memo="5"))["id"] == customer_id
    assert (await kyc.status())["id"] == customer_id


async def test_muxed_token_is_the_g_account_with_its_muxed_id_as_memo(gateway):
    """What the code does: an M token addresses the customer of (G, memo id = muxed id), the
    same record a G token with that memo addresses."""
    wallet = gateway.wallet()
    muxed = wallet.muxed(42)
    mux = Kyc(gateway.client, await wallet.token(account=muxed))
    customer_id = await mux.put_id(SENDER)
    with_memo = Kyc(gateway.client, await wallet.token(memo="42"))
    assert (await with_memo.status())["id"] == customer_id
    plain = Kyc(gateway.client, await wallet.token())
    assert (await plain.status(memo="42"))["id"] == customer_id
    assert "id" not in await plain.status()
    # The account parameter may be the M address or its G account; memo must be the muxed id.
    assert (await mux.status(account=muxed))["id"] == customer_id
    assert (await mux.status(account=wallet.account))["id"] == customer_id
    assert (await mux.status(memo="42"))["id"] == customer_id
    assert error_of(await mux.get(memo="43"), 403) == (
        "memo: does not match the memo of the authenticated session"
    )
    assert error_of(await mux.get(account=wallet.muxed(43)), 403) == (
        "account: does not match the authenticated account"
    )
    other_mux = Kyc(gateway.client, await wallet.token(account=wallet.muxed(43)))
    assert error_of(await other_mux.get(id=customer_id), 404) == NOT_FOUND


async def test_memo_type_is_ignored_when_the_token_has_a_memo(gateway):
    wallet = gateway.wallet()
    kyc = Kyc(gateway.client, await wallet.token(memo="5"))
    customer_id = await kyc.put_id(SENDER)
    response = await kyc.get(memo="5", memo_type="text")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == customer_id


async def test_account_parameter_is_checked_even_with_an_id(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(SENDER)
    other = Keypair.random().public_key
    response = await kyc.get(id=customer_id, account=other)
    assert error_of(response, 403) == "account: does not match the authenticated account"


# -- SEP-9 field validation ---------------------------------------------------------------------

FUTURE = (date.today() + timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"address_country_code": "US"},
            "address_country_code: must be an ISO 3166-1 alpha-3 country code, e.g. USA",
        ),
        (
            {"address_country_code": "XXX"},
            "address_country_code: must be an ISO 3166-1 alpha-3 country code, e.g. USA",
        ),
        (
            {"id_country_code": "ZZQ"},
            "id_country_code: must be an ISO 3166-1 alpha-3 country code, e.g. USA",
        ),
        ({"birth_date": "10/12/1815"}, "birth_date: must be an ISO 8601 date, YYYY-MM-DD"),
        ({"birth_date": "1815-02-30"}, "birth_date: must be a real calendar date, YYYY-MM-DD"),
        ({"birth_date": FUTURE}, "birth_date: must not be in the future"),
        (
            {"id_expiration_date": "2031-13-01"},
            "id_expiration_date: must be a real calendar date, YYYY-MM-DD",
        ),
        (
            {"mobile_number": "4155552671"},
            "mobile_number: must be an E.164 phone number, e.g. +14155552671",
        ),
        (
            {"mobile_number": "+1 415 555 2671"},
            "mobile_number: must be an E.164 phone number, e.g. +14155552671",
        ),
        (
            {"email_address": "ada.example.com"},
            "email_address: must be an email address, e.g. name@example.com",
        ),
        ({"sex": "yes"}, "sex: must be one of male, female, other"),
        ({"id_type": "library_card"}, "id_type: must be one of passport, drivers_license, id_card"),
        ({"bank_account_type": "brokerage"}, "bank_account_type: must be one of checking, savings"),
        ({"occupation": "pilot"}, "occupation: must be an ISCO-08 occupation code (digits)"),
        ({"language_code": "eng"}, "language_code: must be an ISO 639-1 language code, e.g. en"),
        ({"ip_address": "300.1.1.1"}, "ip_address: must be an IPv4 or IPv6 address"),
        ({"first_name": ""}, "first_name: must not be empty"),
        ({"first_name": {"given": "Ada"}}, "first_name: must be a string"),
        ({"first_name": True}, "first_name: must be a string"),
        ({"first_name": "A" * 257}, "first_name: must be at most 256 characters"),
        ({"first_name": "Ada\nLovelace"}, "first_name: must not contain control characters"),
        (
            {"favourite_colour": "teal", "shoe_size": "38"},
            "not SEP-9 fields this server collects: favourite_colour, shoe_size",
        ),
        ({"card.number": "4242424242424242"}, "not SEP-9 fields this server collects: card.number"),
        (
            {"card.token": "tok_1", "card.cvc": "123"},
            "not SEP-9 fields this server collects: card.cvc, card.token",
        ),
        ({"organization": {"name": "X"}}, "not SEP-9 fields this server collects: organization"),
        (
            {"first_name_verification": "123456"},
            "not SEP-9 fields this server collects: first_name_verification",
        ),
        (
            {"first_name_file_id": "abc"},
            "not SEP-9 fields this server collects: first_name_file_id",
        ),
        (
            {"photo_id_front": "aGVsbG8="},
            "photo_id_front: send it as a file (multipart/form-data) or as photo_id_front_file_id",
        ),
        (
            {"photo_id_front_file_id": ""},
            "photo_id_front_file_id: must be the file_id of an uploaded file",
        ),
        (
            {"email_address": "nope", "birth_date": "soon"},
            "email_address: must be an email address, e.g. name@example.com; "
            "birth_date: must be an ISO 8601 date, YYYY-MM-DD",
        ),
    ],
)
async def test_invalid_fields_are_refused_with_a_message_naming_them(gateway, fields, error):
    kyc = await kyc_for(gateway)
    assert error_of(await kyc.put({**SENDER, **fields}), 400) == error
    assert "id" not in await kyc.status()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("address_country_code", "QZX"),
        ("birth_date", "1815-02-31"),
        ("mobile_number", "0700-LOVELACE"),
        ("email_address", "lovelace-at-analytical-engine"),
        ("sex", "lovelace-sex"),
        ("first_name", "Lovelace\x07Bell"),
        ("organization.phone", "not-a-lovelace-phone"),
        ("tax_id", "L" * 300),
    ],
)
async def test_error_messages_never_repeat_the_value(gateway, name, value):
    kyc = await kyc_for(gateway)
    for response in (
        await kyc.put({**SENDER, name: value}),
        await kyc.put(data={**SENDER, name: value}),
    ):
        error = error_of(response, 400)
        assert error.startswith(f"{name}: ")
        assert value not in error and value.lower() not in error.lower()
        assert "lovelace" not in error.lower()


async def test_well_formed_values_are_stored_normalised(gateway):
    kyc = await kyc_for(gateway)
    customer_id = await kyc.put_id(
        {
            **SENDER,
            "address_country_code": "usa",
            "birth_date": "1815-12-10",
            "mobile_number": "+14155552671",
            "language_code": "EN",
            "ip_address": "2001:DB8::1",
            "occupation": 2511,
            "sex": "female",
            "organization.name": "Analytical Engines Ltd",
            "mobile_money_number": "+447700900123",
        }
    )
    data = await customers(gateway).personal_data(customer_id)
    assert data["address_country_code"] == "USA"
    assert data["language_code"] == "en"
    assert data["ip_address"] == "2001:db8::1"
    assert data["occupation"] == "2511"
    assert data["organization.name"] == "Analytical Engines Ltd"


async def test_hashed_mobile_number_skips_the_e164_rule(gateway):
    kyc = await kyc_for(gateway)
    digest = "a" * 64
    customer_id = await kyc.put_id(
        {**SENDER, "mobile_number": digest, "mobile_number_format": "hash"}
    )
    assert (await customers(gateway).personal_data(customer_id))["mobile_number"] == digest


async def test_bodies_must_be_json_objects_or_forms(gateway):
    kyc = await kyc_for(gateway)
    response = await gateway.client.put(
        "/kyc/customer",
        content=json.dumps(["first_name"]),
        headers={**kyc.headers, "Content-Type": "application/json"},
    )
    assert error_of(response, 400) == "Request body must be a JSON object"
    response = await gateway.client.put(
        "/kyc/customer",
        content=b"first_name=Ada",
        headers={**kyc.headers, "Content-Type": "text/plain"},
    )
    assert error_of(response, 400) == (
        "Content-Type must be application/json, application/x-www-form-urlencoded "
        "or multipart/form-data"
    )
