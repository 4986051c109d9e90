"""The operator API's views and actions through the app, on SQLite and PostgreSQL: customers
(statuses, decisions, personal data only to approvers and owners, every read audited),
SEP-31 transfers with their history and actions, SEP-3 requests and allow-lists, and
incoming payments that matched no transfer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from stellar_sdk import Asset

from gateway.db.tables import audit_log, compliance_requests, customer_type_status, transfers
from tests.e2e.conftest import operator_key
from tests.fakes.sep3 import compliance_row
from tests.fakes.sep12 import error_of, log_everything, record_text, rows, running_gateway
from tests.fakes.sep31 import (
    RECEIVER,
    SENDER,
    Partner,
    open_receiving_account,
    partner_for,
    payer,
)

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
RECEIVING = "GBJ53BGBBOXH6IGA7RFD6PIVKX2M7JYQIWSQ4BG4BWXTX6NP3RFT3JSF"
GWUSD = Asset("GWUSD", ISSUER)
VALUES = [*SENDER.values(), *RECEIVER.values()]


@pytest.fixture
async def gateway(make_settings, engine) -> AsyncIterator[Any]:
    """The app on both databases (the views' queries are the subject here)."""
    async with running_gateway(make_settings(), engine) as gw:
        open_receiving_account(gw.ledger, RECEIVING, ISSUER, "GWUSD")
        yield gw


@pytest.fixture
async def partner(gateway) -> Partner:
    return await partner_for(gateway)


@pytest.fixture
async def people(partner) -> tuple[str, str]:
    """A sender and a receiver, both ACCEPTED (testnet validation is automatic)."""
    return await partner.customers()


async def as_role(gateway, role: str, name: str | None = None) -> dict[str, str]:
    return await operator_key(gateway, name or role, role)


async def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def audit(gateway, **filters: Any) -> list[dict[str, Any]]:
    return await gateway.app.state.services.operators.audit_log(**filters)


async def new_transfer(partner: Partner, people: tuple[str, str], amount: str = "100") -> dict:
    sender_id, receiver_id = people
    return await partner.create(
        {
            "amount": amount,
            "asset_code": "GWUSD",
            "funding_method": "SEPA",
            "sender_id": sender_id,
            "receiver_id": receiver_id,
        }
    )


async def drain(gateway) -> None:
    while await gateway.app.state.services.watcher.watch_once():
        pass


# -- customers --------------------------------------------------------------------------------


async def test_customers_are_listed_with_their_kyc_status_filtered_and_paged(gateway, people):
    sender_id, receiver_id = people
    viewer = await as_role(gateway, "viewer")
    listed = await ok(await gateway.client.get("/ops/customers", headers=viewer))
    by_id = {c["id"]: c for c in listed["customers"]}
    assert set(by_id) == {sender_id, receiver_id}
    assert by_id[sender_id]["types"]["sep31-sender"] == {"status": "ACCEPTED", "decision": None}
    assert by_id[receiver_id]["types"]["sep31-receiver"]["status"] == "ACCEPTED"
    assert by_id[receiver_id]["types"]["sep31-sender"]["status"] == "NEEDS_INFO"
    assert (by_id[receiver_id]["memo_type"], by_id[receiver_id]["memo"]) == ("id", "2")
    text = json.dumps(listed)
    assert not [v for v in VALUES if v in text]  # KYC status only, never a value

    async def ids(**params: str) -> list[str]:
        found = await ok(await gateway.client.get("/ops/customers", params=params, headers=viewer))
        return [c["id"] for c in found["customers"]]

    assert await ids(status="ACCEPTED", type="sep31-receiver") == [receiver_id]
    assert await ids(status="ACCEPTED", type="sep31-sender") == [sender_id]
    assert sorted(await ids(status="ACCEPTED")) == sorted(people)
    assert await ids(status="REJECTED") == []
    first, second = await ids(limit="1"), await ids(limit="1", offset="1")
    assert len(first) == len(second) == 1 and {*first, *second} == {sender_id, receiver_id}


async def test_a_customer_shows_statuses_field_states_and_history_but_no_values(gateway, people):
    _, receiver_id = people
    viewer = await as_role(gateway, "viewer")
    shown = await ok(await gateway.client.get(f"/ops/customers/{receiver_id}", headers=viewer))
    assert shown["id"] == receiver_id and shown["version"] == 1
    assert shown["types"]["sep31-receiver"] == {
        "status": "ACCEPTED",
        "decision": None,
        "decision_current": False,
        "message": None,
    }
    assert set(shown["fields"]) == set(RECEIVER)
    assert {f["status"] for f in shown["fields"].values()} == {"ACCEPTED"}
    assert [e["to_status"] for e in shown["events"] if e["type"] == "sep31-receiver"] == [
        "ACCEPTED"
    ]
    assert not [v for v in VALUES if v in json.dumps(shown)]
    missing = await gateway.client.get("/ops/customers/nobody", headers=viewer)
    assert error_of(missing, 404) == "customer not found"


@pytest.mark.parametrize("role", ["viewer", "initiator"])
async def test_viewers_and_initiators_are_refused_personal_data(gateway, people, role):
    _, receiver_id = people
    headers = await as_role(gateway, role)
    response = await gateway.client.get(
        f"/ops/customers/{receiver_id}/personal-data", headers=headers
    )
    assert "may not do this" in error_of(response, 403)
    assert not [v for v in VALUES if v in response.text]
    assert await audit(gateway, action="customer.read_personal") == []
    transfer_info = await gateway.client.get(
        "/ops/transfers/00000000-0000-0000-0000-000000000000/sent-info", headers=headers
    )
    assert transfer_info.status_code == 403


async def test_an_approver_reads_personal_data_and_the_read_is_audited_without_values(
    gateway, people, caplog
):
    _, receiver_id = people
    approver = await as_role(gateway, "approver", "ana")
    log_everything(caplog)
    caplog.clear()
    response = await gateway.client.get(
        f"/ops/customers/{receiver_id}/personal-data", headers=approver
    )
    body = await ok(response)
    assert body == {"id": receiver_id, "fields": RECEIVER, "files": {}}
    [entry] = await audit(gateway, action="customer.read_personal")
    assert (entry["actor"], entry["subject_type"], entry["subject_id"]) == (
        "operator:ana",
        "customer",
        receiver_id,
    )
    assert json.loads(entry["after"]) == {"fields": sorted(RECEIVER), "files": []}
    stored = json.dumps(await rows(gateway, audit_log), default=str)
    assert not [v for v in RECEIVER.values() if v in stored]
    logged = "".join(record_text(r) for r in caplog.records)
    assert not [v for v in RECEIVER.values() if v in logged]
    # No customer, no read and nothing on record.
    missing = await gateway.client.get("/ops/customers/nobody/personal-data", headers=approver)
    assert error_of(missing, 404) == "customer not found"
    assert len(await audit(gateway, action="customer.read_personal")) == 1


async def test_a_decision_changes_the_customers_status_and_is_audited(gateway, partner, people):
    _, receiver_id = people
    url = f"/ops/customers/{receiver_id}/decision"
    decision = {"type": "sep31-receiver", "status": "REJECTED", "reason": "document mismatch"}
    for role in ("viewer", "initiator"):
        refused = await gateway.client.post(
            url, json=decision, headers=await as_role(gateway, role)
        )
        assert refused.status_code == 403
    approver = await as_role(gateway, "approver", "ana")
    after = await ok(await gateway.client.post(url, json=decision, headers=approver))
    assert after["types"]["sep31-receiver"] == {
        "status": "REJECTED",
        "decision": "REJECTED",
        "decision_current": True,
        "message": "document mismatch",
    }
    # The customer's own SEP-12 view says so too.
    seen = await partner.kyc.status(id=receiver_id, type="sep31-receiver")
    assert seen["status"] == "REJECTED"
    [entry] = await audit(gateway, action="customer.decision")
    assert (entry["actor"], entry["subject_id"]) == ("operator:ana", receiver_id)
    before = json.loads(entry["before"])["types"]["sep31-receiver"]
    assert (before["status"], json.loads(entry["after"])["types"]["sep31-receiver"]["status"]) == (
        "ACCEPTED",
        "REJECTED",
    )
    event = [e for e in after["events"] if e["to_status"] == "REJECTED"]
    assert [(e["actor"], e["reason"]) for e in event] == [("operator:ana", "document mismatch")]


async def test_asking_for_fields_again_marks_them_rejected(gateway, people):
    _, receiver_id = people
    approver = await as_role(gateway, "owner", "olga")
    after = await ok(
        await gateway.client.post(
            f"/ops/customers/{receiver_id}/decision",
            json={
                "type": "sep31-receiver",
                "status": "NEEDS_INFO",
                "reason": "unreadable",
                "rejected_fields": {"bank_number": "not a routing number"},
            },
            headers=approver,
        )
    )
    assert after["types"]["sep31-receiver"]["status"] == "NEEDS_INFO"
    assert after["fields"]["bank_number"] == {
        "status": "REJECTED",
        "error": "not a routing number",
        "file_id": None,
    }
    [entry] = await audit(gateway, action="customer.decision")
    assert json.loads(entry["before"])["fields"]["bank_number"] == "ACCEPTED"
    assert json.loads(entry["after"])["fields"]["bank_number"] == "REJECTED"


BAD_DECISIONS = [
    ({"status": "REJECTED", "reason": "x"}, "type: is required"),
    ({"type": "sep31-receiver"}, "status: is required"),
    ({"type": "nope", "status": "ACCEPTED"}, "type: is not a customer type"),
    ({"type": "sep31-receiver", "status": "MAYBE"}, "status: must be ACCEPTED"),
    ({"type": "sep31-receiver", "status": "REJECTED"}, "reason: is required to reject"),
    ({"type": "sep31-receiver", "status": "ACCEPTED", "reason": 7}, "reason: must be a string"),
    ({"type": "sep31-receiver", "status": "NEEDS_INFO"}, "rejected_fields: must name fields"),
    (
        {"type": "sep31-receiver", "status": "NEEDS_INFO", "rejected_fields": ["bank_number"]},
        "rejected_fields: must be an object",
    ),
    (
        {"type": "sep31-receiver", "status": "NEEDS_INFO", "rejected_fields": {"iban": "x"}},
        "rejected_fields: must name fields of sep31-receiver",
    ),
]


async def test_bad_decisions_are_400_and_change_nothing(gateway, people):
    _, receiver_id = people
    approver = await as_role(gateway, "approver")
    before = await rows(gateway, customer_type_status, customer_id=receiver_id)
    for body, error in BAD_DECISIONS:
        response = await gateway.client.post(
            f"/ops/customers/{receiver_id}/decision", json=body, headers=approver
        )
        assert error_of(response, 400).startswith(error), (body, response.text)
    not_json = await gateway.client.post(
        f"/ops/customers/{receiver_id}/decision", content=b"[1]", headers=approver
    )
    assert not_json.status_code == 400
    assert await rows(gateway, customer_type_status, customer_id=receiver_id) == before
    assert await audit(gateway, action="customer.decision") == []


BAD_FILTERS = [
    ("/ops/customers", {"status": "accepted"}, "status: must be one of ACCEPTED"),
    ("/ops/customers", {"type": "nope"}, "type: must be one of sep31-sender"),
    ("/ops/customers", {"colour": "red"}, "colour: is not a filter of this list"),
    ("/ops/customers", {"limit": "0"}, "limit: must be a whole number from 1 to 500"),
    ("/ops/customers", {"offset": "-1"}, "offset: must be a whole number"),
    ("/ops/transfers", {"status": "done"}, "status: must be one of pending_sender"),
    ("/ops/transfers", {"sender_id": "x"}, "sender_id: is not a filter of this list"),
    ("/ops/compliance", {"status": "PENDING"}, "status: must be one of ok"),
    ("/ops/compliance", {"decided": "maybe"}, "decided: must be one of true, false"),
    ("/ops/compliance", {"tx_status": "ambiguous"}, "tx_status: must be one of ok"),
    ("/ops/compliance/allow-list", {"domain": "x" * 254}, "domain: must be 1 to 253"),
    ("/ops/compliance/allow-list", {"customer": "x"}, "customer: is not a filter"),
    ("/ops/payments/unmatched", {"outcome": "matched"}, "outcome: must be one of short"),
    ("/ops/payments/unmatched", {"limit": "many"}, "limit: must be a whole number"),
]


@pytest.mark.parametrize(("path", "params", "error"), BAD_FILTERS)
async def test_bad_filters_are_400_naming_the_filter(gateway, path, params, error):
    viewer = await as_role(gateway, "viewer")
    response = await gateway.client.get(path, params=params, headers=viewer)
    assert error_of(response, 400).startswith(error)
    assert await audit(gateway, actor="operator:viewer") == []


async def test_every_view_needs_an_operator_key(gateway):
    for path in (
        "/ops/customers",
        "/ops/transfers",
        "/ops/compliance",
        "/ops/compliance/allow-list",
        "/ops/payments/unmatched",
    ):
        response = await gateway.client.get(path)
        assert response.status_code == 401, path
        wrong = await gateway.client.get(path, headers={"Authorization": "Bearer gwop_nope"})
        assert wrong.status_code == 401, path


# -- transfers and incoming payments ----------------------------------------------------------


async def test_a_transfer_is_listed_and_shown_with_its_history(gateway, partner, people):
    created = await new_transfer(partner, people)
    tid = created["id"]
    viewer = await as_role(gateway, "viewer")
    listed = await ok(await gateway.client.get("/ops/transfers", headers=viewer))
    [row] = listed["transfers"]
    assert (row["id"], row["status"], row["amount_in"]) == (tid, "pending_sender", "100.00")
    assert (row["sender_id"], row["receiver_id"]) == people
    assert row["partner_account"] == partner.keypair.public_key
    params = {"status": "completed"}
    done = await ok(await gateway.client.get("/ops/transfers", params=params, headers=viewer))
    assert done == {"transfers": []}

    shown = await ok(await gateway.client.get(f"/ops/transfers/{tid}", headers=viewer))
    assert shown["stellar_memo"] == created["stellar_memo"]
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in shown["events"]] == [
        (None, "pending_sender", "created")
    ]
    assert shown["payouts"] == []
    assert not [v for v in VALUES if v in json.dumps(shown)]
    missing = await gateway.client.get("/ops/transfers/nope", headers=viewer)
    assert error_of(missing, 404) == "transaction not found"


async def test_a_held_transfer_is_released_by_an_approver_and_audited(gateway, partner, people):
    created = await new_transfer(partner, people)
    tid = created["id"]
    sending = payer(gateway.ledger, gateway.settings.network_passphrase, ISSUER, "GWUSD", "500")
    status, _ = sending.pay(RECEIVING, "60", created["stellar_memo"], GWUSD)
    assert status == 200
    await drain(gateway)
    url = f"/ops/transfers/{tid}/release"
    for role in ("viewer", "initiator"):
        refused = await gateway.client.post(
            url, json={"reason": "ok"}, headers=await as_role(gateway, role)
        )
        assert refused.status_code == 403
    approver = await as_role(gateway, "approver", "ana")
    no_reason = await gateway.client.post(url, json={}, headers=approver)
    assert error_of(no_reason, 400) == "reason: is required"
    fields = await gateway.client.post(
        url, json={"reason": "ok", "fields": {"a": "b"}}, headers=approver
    )
    assert error_of(fields, 400) == "fields: release takes no fields"
    held = await rows(gateway, transfers, id=tid)
    assert held[0]["hold_reason"] == "held for an operator: paid 60.00, expected 100.00"

    released = await ok(
        await gateway.client.post(url, json={"reason": "sender confirmed"}, headers=approver)
    )
    assert released["hold_reason"] is None and released["amount_out"] == "58.90"
    [entry] = await audit(gateway, action="transfer.release")
    assert (entry["actor"], entry["subject_type"], entry["subject_id"]) == (
        "operator:ana",
        "transfer",
        tid,
    )
    assert json.loads(entry["before"])["hold_reason"].startswith("held for an operator")
    assert json.loads(entry["after"])["hold_reason"] is None
    shown = await ok(await gateway.client.get(f"/ops/transfers/{tid}", headers=approver))
    assert ("operator:ana", "sender confirmed") in [
        (e["actor"], e["reason"]) for e in shown["events"]
    ]
    [payout] = shown["payouts"]
    assert (payout["purpose"], payout["amount"], payout["status"]) == (
        "payout",
        589_000_000,
        "ready",
    )
    assert "destination" not in payout
    # The payout list shows where a transfer is paid only to those who may read personal data.
    viewer = await as_role(gateway, "viewer", "vic")
    for headers, shown_to in ((viewer, False), (approver, True)):
        listed = await ok(await gateway.client.get("/ops/payouts?source=sep31", headers=headers))
        [row] = listed["payouts"]
        assert (row["customer_id"] is not None) is shown_to

    again = await gateway.client.post(url, json={"reason": "again"}, headers=approver)
    assert again.status_code == 409
    assert len(await audit(gateway, action="transfer.release")) == 1


async def test_transfer_actions_ask_for_fields_in_the_shape_each_needs(gateway, partner, people):
    tid = (await new_transfer(partner, people))["id"]
    approver = await as_role(gateway, "approver")
    url = f"/ops/transfers/{tid}/need_transaction_info"
    for fields, error in [
        (None, "fields: must be an object naming 1 to 50 fields"),
        ({}, "fields: must be an object naming 1 to 50 fields"),
        ({"ref": 7}, "fields: each is a description"),
        ({"ref": {"description": "d", "colour": "red"}}, "fields: each is a description"),
    ]:
        response = await gateway.client.post(
            url, json={"reason": "r", "fields": fields}, headers=approver
        )
        assert error_of(response, 400).startswith(error)
    # A transfer waiting for its payment cannot wait for information as well.
    response = await gateway.client.post(
        url, json={"reason": "r", "fields": {"ref": "the reference"}}, headers=approver
    )
    assert error_of(response, 409).startswith("a transfer in pending_sender cannot become")
    assert (await rows(gateway, transfers, id=tid))[0]["status"] == "pending_sender"
    assert await audit(gateway, subject_type="transfer") == []

    failed = await ok(
        await gateway.client.post(
            f"/ops/transfers/{tid}/fail", json={"reason": "fraud suspected"}, headers=approver
        )
    )
    assert failed["status"] == "error"
    [entry] = await audit(gateway, action="transfer.fail")
    assert json.loads(entry["before"])["status"] == "pending_sender"
    assert json.loads(entry["after"])["status"] == "error"


async def test_payments_that_matched_no_transfer_are_listed_and_refundable(
    gateway, partner, people
):
    short = await new_transfer(partner, people)
    exact = await new_transfer(partner, people, "20")
    sending = payer(gateway.ledger, gateway.settings.network_passphrase, ISSUER, "GWUSD", "500")
    for memo, amount in ((short["stellar_memo"], "60"), (exact["stellar_memo"], "20"), ("9", "5")):
        assert sending.pay(RECEIVING, amount, memo, GWUSD)[0] == 200
    await drain(gateway)

    viewer = await as_role(gateway, "viewer")
    listed = await ok(await gateway.client.get("/ops/payments/unmatched", headers=viewer))
    found = [(p["outcome"], p["transfer_id"], p["memo"]) for p in listed["payments"]]
    assert found == [("short", short["id"], short["stellar_memo"]), ("unknown_memo", None, "9")]
    only = await ok(
        await gateway.client.get(
            "/ops/payments/unmatched", params={"outcome": "unknown_memo"}, headers=viewer
        )
    )
    [unknown] = only["payments"]
    assert (unknown["amount"], unknown["source"]) == (50_000_000, sending.account)
    paged = await ok(
        await gateway.client.get("/ops/payments/unmatched", params={"offset": "1"}, headers=viewer)
    )
    assert [p["id"] for p in paged["payments"]] == [unknown["id"]]

    url = f"/ops/payments/{unknown['id']}/refund"
    assert (await gateway.client.post(url, json={"reason": "x"}, headers=viewer)).status_code == 403
    approver = await as_role(gateway, "approver", "ana")
    refunded = await ok(
        await gateway.client.post(url, json={"reason": "nobody's memo"}, headers=approver)
    )
    assert refunded["resolution"] == "refund_queued"
    [entry] = await audit(gateway, action="payment.refund")
    assert (json.loads(entry["before"]), json.loads(entry["after"])) == (
        {"resolution": None},
        {"resolution": "refund_queued"},
    )
    # The short one belongs to its transfer: it is refunded with it.
    short_id = listed["payments"][0]["id"]
    refused = await gateway.client.post(
        f"/ops/payments/{short_id}/refund", json={"reason": "x"}, headers=approver
    )
    assert refused.status_code == 409


async def test_sent_transaction_info_is_for_approvers_and_its_read_is_audited(
    gateway, partner, people
):
    tid = (await new_transfer(partner, people))["id"]
    approver = await as_role(gateway, "approver", "ana")
    body = await ok(await gateway.client.get(f"/ops/transfers/{tid}/sent-info", headers=approver))
    assert body == {"id": tid, "fields": {}}
    [entry] = await audit(gateway, action="transfer.read_personal")
    assert (entry["subject_id"], json.loads(entry["after"])) == (tid, {"fields": []})
    missing = await gateway.client.get("/ops/transfers/nope/sent-info", headers=approver)
    assert missing.status_code == 404
    assert len(await audit(gateway, action="transfer.read_personal")) == 1


# -- compliance -------------------------------------------------------------------------------


async def stored_requests(gateway, *changes: dict[str, Any]) -> list[dict[str, Any]]:
    made = []
    async with gateway.app.state.deps.uow() as uow:
        for i, change in enumerate(changes):
            row = compliance_row(nonce=f"n-{i}", **change)
            assert await uow.compliance.add(row)
            made.append(row)
        await uow.commit()
    return made


async def test_compliance_requests_are_listed_by_status_and_decided_by_approvers(gateway, people):
    pending, settled = await stored_requests(
        gateway, {"customer_id": people[1]}, {"tx_status": "ok", "decided_by": "operator:x"}
    )
    viewer = await as_role(gateway, "viewer")

    async def ids(**params: str) -> list[str]:
        found = await ok(await gateway.client.get("/ops/compliance", params=params, headers=viewer))
        for r in found["requests"]:
            assert "data_sealed" not in r and "data_key_id" not in r
        return [r["id"] for r in found["requests"]]

    assert sorted(await ids()) == sorted([pending["id"], settled["id"]])
    assert await ids(status="pending") == [pending["id"]]
    assert await ids(tx_status="ok") == [settled["id"]]
    assert await ids(decided="false") == [pending["id"]]
    assert await ids(decided="true", info_status="ok") == [settled["id"]]

    url = f"/ops/compliance/{pending['id']}/decision"
    assert (await gateway.client.post(url, json={"tx": "ok"}, headers=viewer)).status_code == 403
    approver = await as_role(gateway, "approver", "ana")
    for body, error in [
        ({}, "send tx, info or both: ok or denied"),
        ({"tx": "maybe"}, "tx: must be ok or denied"),
        ({"info": ["ok"]}, "info: must be a string"),
    ]:
        response = await gateway.client.post(url, json=body, headers=approver)
        assert error_of(response, 400).startswith(error)
    assert (await rows(gateway, compliance_requests, id=pending["id"]))[0]["tx_status"] == "pending"

    decided = await ok(
        await gateway.client.post(
            url, json={"tx": "ok", "reason": "checked by phone"}, headers=approver
        )
    )
    assert (decided["tx_status"], decided["decided_by"]) == ("ok", "operator:ana")
    assert "data_sealed" not in decided
    [entry] = await audit(gateway, action="compliance.decision")
    assert (entry["subject_type"], entry["subject_id"]) == ("compliance_request", pending["id"])
    assert json.loads(entry["before"])["tx_status"] == "pending"
    assert json.loads(entry["after"])["tx_status"] == "ok"
    assert await ids(status="pending") == []
    shown = await ok(await gateway.client.get(f"/ops/compliance/{pending['id']}", headers=viewer))
    assert shown["reason"] == "checked by phone"


async def test_a_request_for_no_customer_cannot_be_authorized(gateway):
    [orphan] = await stored_requests(gateway, {})
    approver = await as_role(gateway, "approver")
    response = await gateway.client.post(
        f"/ops/compliance/{orphan['id']}/decision", json={"tx": "ok"}, headers=approver
    )
    assert error_of(response, 409).startswith("the recipient is not a customer")
    assert (await rows(gateway, compliance_requests, id=orphan["id"]))[0]["decided_by"] is None
    assert await audit(gateway, action="compliance.decision") == []
    missing = await gateway.client.post(
        "/ops/compliance/nope/decision", json={"tx": "denied"}, headers=approver
    )
    assert error_of(missing, 404) == "compliance request not found"


async def test_institutions_allowed_a_customers_data_are_listed_added_and_removed(gateway, people):
    _, receiver_id = people
    viewer = await as_role(gateway, "viewer")
    url = "/ops/compliance/allow-list"
    empty = await ok(await gateway.client.get(url, headers=viewer))
    assert empty == {"institutions": [], "consents": []}
    allow = {"customer_id": receiver_id, "domain": "Bank.Test"}
    assert (await gateway.client.post(url, json=allow, headers=viewer)).status_code == 403
    approver = await as_role(gateway, "approver", "ana")
    for body, status in [
        ({"customer_id": receiver_id, "domain": "https://bank.test/x"}, 400),
        ({"customer_id": "nobody", "domain": "bank.test"}, 404),
        ({"domain": "bank.test"}, 400),
    ]:
        assert (await gateway.client.post(url, json=body, headers=approver)).status_code == status
    added = await ok(await gateway.client.post(url, json=allow, headers=approver))
    assert added == {"customer_id": receiver_id, "domain": "bank.test", "allowed": True}
    listed = await ok(await gateway.client.get(url, params={"domain": "BANK.test"}, headers=viewer))
    [consent] = listed["consents"]
    assert (consent["customer_id"], consent["recorded_by"]) == (receiver_id, "operator:ana")
    other = await ok(await gateway.client.get(url, params={"customer_id": "x"}, headers=viewer))
    assert other["consents"] == []

    removed = f"{url}/{receiver_id}/bank.test"
    assert (await gateway.client.delete(removed, headers=viewer)).status_code == 403
    gone = await ok(await gateway.client.delete(removed, headers=approver))
    assert gone == {"customer_id": receiver_id, "domain": "bank.test", "allowed": False}
    assert (await ok(await gateway.client.get(url, headers=viewer)))["consents"] == []
    assert error_of(await gateway.client.delete(removed, headers=approver), 404)
    entries = await audit(gateway, subject_id=receiver_id)
    assert [(e["action"], e["before"], e["after"]) for e in entries] == [
        ("compliance.disallow", '{"domain": "bank.test"}', None),
        ("compliance.allow", None, '{"domain": "bank.test"}'),
    ]


class TestInstitutionsInSettings:
    @pytest.fixture
    async def gateway(self, make_settings, engine) -> AsyncIterator[Any]:
        settings = make_settings(
            GATEWAY_SEP3_SHARE_WITH='[{"domain": "bank.test", "signing_key": "' + RECEIVING + '"}]'
        )
        async with running_gateway(settings, engine) as gw:
            yield gw

    async def test_institutions_from_settings_are_listed(self, gateway):
        viewer = await as_role(gateway, "viewer")
        listed = await ok(await gateway.client.get("/ops/compliance/allow-list", headers=viewer))
        assert listed["institutions"] == [{"domain": "bank.test", "signing_key": RECEIVING}]
