"""SEP-2 federation through the app: name and reverse lookups, errors in SEP-2's shape, CORS
on every answer, and the operators' side (names, memos, erasure with the customer)."""

from __future__ import annotations

import pytest
from stellar_sdk import MuxedAccount

from gateway.db.tables import federation_names
from gateway.errors import Conflict, InvalidField, NotFound
from gateway.federation.service import MEMO_FLOOR, NOT_FOUND
from tests.fakes.sep12 import error_of, rows
from tests.fakes.sep31 import partner_for

pytestmark = pytest.mark.asyncio

RECEIVING = "GBJ53BGBBOXH6IGA7RFD6PIVKX2M7JYQIWSQ4BG4BWXTX6NP3RFT3JSF"
OTHER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"


def federation(gateway):
    return gateway.app.state.services.federation


async def lookup(gateway, **params):
    response = await gateway.client.get("/federation", params=params)
    assert response.headers["access-control-allow-origin"] == "*"
    return response


@pytest.fixture
async def bob(gateway) -> tuple[str, str]:
    """A customer with the name Bob: (customer id, memo)."""
    partner = await partner_for(gateway)
    _sender, receiver = await partner.customers()
    record = await federation(gateway).register("Bob", receiver)
    return receiver, record.memo


async def test_a_name_resolves_to_the_account_and_the_customers_memo(gateway, bob):
    _, memo = bob
    for q in ("bob*localhost:8000", "BOB*LocalHost:8000", "bob*localhost"):
        response = await lookup(gateway, type="name", q=q)
        assert response.status_code == 200, q
        assert response.json() == {
            "stellar_address": "bob*localhost:8000",
            "account_id": RECEIVING,
            "memo_type": "id",
            "memo": memo,
        }
        assert response.headers["cache-control"] == "no-store"
    assert isinstance(response.json()["memo"], str) and int(memo) >= MEMO_FLOOR
    toml = (await gateway.client.get("/.well-known/stellar.toml")).text
    assert 'FEDERATION_SERVER = "http://localhost:8000/federation"' in toml


@pytest.mark.parametrize(
    "q",
    ["alice*localhost:8000", "bob*example.com", "bob", "*localhost:8000", "bob**localhost:8000"],
)
async def test_unknown_addresses_answer_404_json(gateway, bob, q):
    response = await lookup(gateway, type="name", q=q)
    assert error_of(response, 404) == NOT_FOUND


async def test_reverse_lookup_needs_the_muxed_address_of_a_customer(gateway, bob):
    _, memo = bob
    mine = MuxedAccount(RECEIVING, int(memo)).account_muxed
    response = await lookup(gateway, type="id", q=mine)
    assert response.status_code == 200
    assert response.json()["stellar_address"] == "bob*localhost:8000"
    # The shared account alone names no one; other accounts and other ids are not ours.
    for q in (
        RECEIVING,
        MuxedAccount(RECEIVING, int(memo) - 1).account_muxed,
        MuxedAccount(OTHER, int(memo)).account_muxed,
        "not-an-account",
    ):
        assert error_of(await lookup(gateway, type="id", q=q), 404) == NOT_FOUND


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"q": "bob*localhost:8000"}, 400, "type: must be one of name, id, txid, forward"),
        ({"type": "nick", "q": "bob"}, 400, "type: must be one of name, id, txid, forward"),
        ({"type": "name"}, 400, "q: is required"),
        ({"type": "id", "q": ""}, 400, "q: is required"),
        (
            {"type": "forward", "forward_type": "bank_account"},
            400,
            "forward: this server does not forward payments",
        ),
        ({"type": "txid", "q": "ab" * 32}, 404, NOT_FOUND),
    ],
)
async def test_bad_queries_answer_in_sep2s_error_shape(gateway, params, status, error):
    assert error_of(await lookup(gateway, **params), status) == error


async def test_operators_name_customers_with_unique_names_and_memos(gateway, bob):
    customer_id, memo = bob
    service = federation(gateway)
    for bad in ("", "b ob", "b*ob", "b>ob", "x" * 65, "tab\there", "nul\x00"):
        with pytest.raises(InvalidField):
            await service.register(bad, customer_id)
    with pytest.raises(Conflict, match="bob\\*localhost:8000 is already taken"):
        await service.register("BOB", customer_id)
    with pytest.raises(NotFound):
        await service.register("carol", "no-such-customer")
    more = [await service.register(f"user{i}", customer_id) for i in range(20)]
    memos = {memo, *(r.memo for r in more)}
    assert len(memos) == 21 and all(MEMO_FLOOR <= int(m) < 2**64 for m in memos)
    named = await service.register("maria@gmail.com", customer_id)
    assert named.stellar_address == "maria@gmail.com*localhost:8000"
    await service.remove("User3")
    assert error_of(await lookup(gateway, type="name", q="user3*localhost:8000"), 404)
    with pytest.raises(NotFound):
        await service.remove("user3")


async def test_erasing_the_customer_erases_their_names(gateway):
    partner = await partner_for(gateway)
    _sender, receiver = await partner.customers()
    await federation(gateway).register("leaving", receiver)
    erased = await partner.kyc.delete(partner.keypair.public_key, {"memo": "2", "memo_type": "id"})
    assert erased.status_code == 200
    assert await rows(gateway, federation_names) == []
    response = await lookup(gateway, type="name", q="leaving*localhost:8000")
    assert error_of(response, 404) == NOT_FOUND
