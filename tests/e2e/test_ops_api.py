"""The operator API through the whole app: keys and roles, a disbursement uploaded,
approved, started and paid on the fake Horizon, every action in the audit log, and lists
that refuse bad filters."""

from __future__ import annotations

import json

import pytest
from stellar_sdk import Keypair

from tests.e2e.conftest import fund_receivers, operator_key, pay_out, upload_disbursement

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
DISTRIBUTION = Keypair.random()


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {
        "GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT": DISTRIBUTION.public_key,
        "GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET": DISTRIBUTION.secret,
    }


async def test_keys_are_checked_on_every_operator_route(gateway):
    viewer = await operator_key(gateway, "vic", "viewer")
    me = await gateway.client.get("/ops/me", headers=viewer)
    assert me.json()["actor"] == "operator:vic" and me.json()["role"] == "viewer"
    for headers in ({}, {"Authorization": "Bearer gwop_nope"}, {"Authorization": "Basic x"}):
        refused = await gateway.client.get("/ops/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {
            "error": "the operator key is missing, unknown, expired or revoked"
        }
        assert refused.headers["www-authenticate"].startswith("Bearer")
    forbidden = await gateway.client.get("/ops/audit", headers=viewer)
    assert forbidden.status_code == 403 and "the viewer role may not do this" in forbidden.text


async def test_owners_make_and_revoke_keys_and_read_the_audit_log(gateway):
    owner = await operator_key(gateway, "olga", "owner")
    made = await gateway.client.post(
        "/ops/operators",
        json={"name": "ivy", "role": "initiator", "expires_in_days": 30},
        headers=owner,
    )
    assert made.status_code == 201 and made.json()["key"].startswith("gwop_")
    ivy = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await gateway.client.get("/ops/me", headers=ivy)).status_code == 200
    listed = (await gateway.client.get("/ops/operators", headers=owner)).json()["operators"]
    assert "key_hash" not in listed[0] and "key" not in listed[0]
    revoked = await gateway.client.post(f"/ops/operators/{made.json()['id']}/revoke", headers=owner)
    assert revoked.json()["revoked_at"] is not None
    assert (await gateway.client.get("/ops/me", headers=ivy)).status_code == 401
    bad = await gateway.client.post(
        "/ops/operators", json={"name": "x", "role": "god"}, headers=owner
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("role:")
    audit = (await gateway.client.get("/ops/audit", headers=owner)).json()["entries"]
    assert [e["action"] for e in audit][:2] == ["operator.revoke", "operator.create"]
    assert made.json()["key"] not in json.dumps(audit)
    only_mine = await gateway.client.get("/ops/audit?actor=operator:olga&limit=1", headers=owner)
    assert len(only_mine.json()["entries"]) == 1 and only_mine.json()["next_before_id"]


async def test_a_disbursement_goes_from_upload_to_paid_through_the_operator_api(gateway):
    gw = gateway
    receivers = fund_receivers(gw.ledger, ISSUER, DISTRIBUTION, 3)
    ivy, bea = await operator_key(gw, "ivy", "initiator"), await operator_key(gw, "bea", "approver")
    rows = "".join(f"r{i},2.50,GWUSD,{r},,inv-{i}\n" for i, r in enumerate(receivers))
    upload = await upload_disbursement(gw, "November", rows, ivy)
    assert upload.status_code == 201, upload.text
    did = upload.json()["id"]
    assert (await gw.client.post(f"/ops/disbursements/{did}/ready", headers=ivy)).status_code == 200
    # An initiator cannot approve (not their role), nor start.
    for action in ("approve", "start"):
        refused = await gw.client.post(f"/ops/disbursements/{did}/{action}", headers=ivy)
        assert refused.status_code == 403
    approved = await gw.client.post(f"/ops/disbursements/{did}/approve", headers=bea)
    assert json.loads(approved.json()["approvers"]) == ["operator:bea"]
    started = await gw.client.post(f"/ops/disbursements/{did}/start", headers=bea)
    assert started.json()["status"] == "started"
    await pay_out(gw, DISTRIBUTION)
    shown = (await gw.client.get(f"/ops/disbursements/{did}", headers=ivy)).json()
    assert shown["status"] == "completed" and "original" not in shown
    assert {p["status"] for p in shown["payment_rows"]} == {"success"}
    paid = (await gw.client.get("/ops/payouts?status=succeeded", headers=ivy)).json()["payouts"]
    assert len(paid) == 3 and all(p["stellar_transaction_id"] for p in paid)
    assert {p["destination"] for p in paid} == set(receivers)  # the operators' own file
    status = (await gw.client.get("/ops/accounts", headers=ivy)).json()
    assert status["assets"]["GWUSD"]["balance"] == "992.50"
    owner = await operator_key(gw, "olga", "owner")
    audit = (await gw.client.get(f"/ops/audit?subject_id={did}", headers=owner)).json()["entries"]
    assert [(e["action"], e["actor"]) for e in reversed(audit)] == [
        ("disbursement.upload", "operator:ivy"),
        ("disbursement.ready", "operator:ivy"),
        ("disbursement.approve", "operator:bea"),
        ("disbursement.start", "operator:bea"),
    ]
    assert json.loads(audit[0]["before"])["status"] == "ready"
    assert json.loads(audit[0]["after"])["status"] == "started"
    # A direct payout above the threshold (0) waits for an approver.
    direct = await gw.client.post(
        "/ops/payouts",
        json={
            "asset_code": "GWUSD",
            "amount": "1",
            "destination": receivers[0],
            "external_payment_id": "bonus-1",
        },
        headers=ivy,
    )
    assert direct.status_code == 201 and direct.json()["status"] == "ready"


@pytest.mark.parametrize(
    "query",
    ["status=nope", "kind=x", "limit=0", "limit=501", "offset=-1", "limit=1e3", "colour=red"],
)
async def test_bad_list_filters_are_refused(gateway, query):
    viewer = await operator_key(gateway, "vic", "viewer")
    refused = await gateway.client.get(f"/ops/disbursements?{query}", headers=viewer)
    assert refused.status_code == 400 and refused.json()["error"]


async def test_an_audit_page_past_the_largest_entry_id_is_refused(gateway):
    owner = await operator_key(gateway, "olga", "owner")
    last = await gateway.client.get(f"/ops/audit?before_id={2**31 - 1}", headers=owner)
    assert last.status_code == 200
    # audit_log.id is a 32-bit integer: PostgreSQL cannot even be asked about a larger one.
    past = await gateway.client.get(f"/ops/audit?before_id={2**31}", headers=owner)
    assert past.status_code == 400 and past.json()["error"].startswith("before_id:")
