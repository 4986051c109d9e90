"""SEP-3 AUTH_SERVER through the app: the published vectors, every refusal with its status,
the sender's stellar.toml and signature, our account/asset/customer checks, sanctions,
sharing the recipient's data, idempotency by nonce, and an operator deciding a pending
request."""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from stellar_sdk import Account, Asset, Keypair, MuxedAccount, Network, TransactionBuilder
from stellar_sdk.memo import HashMemo, TextMemo

from gateway.db.tables import compliance_requests
from tests.fakes.sep12 import rows
from tests.fakes.sep31 import partner_for

pytestmark = pytest.mark.asyncio

# SEP-3's published vectors. V1: the example request of the SEP text (its signature cannot be
# verified: no key for its domain was ever published; it checks parsing and the memo hash).
# V3: a request signed with the retired Go compliance server's fixture key.
V1_FORM = (
    "data=%7B%22sender%22%3A%22aldi%2Abanksender.com%22%2C%22need_info%22%3Atrue%2C%22tx%22%3"
    "A%22AAAAAEhAArfpmUJYq%2FQ9SFAH3YDzNLJEBI9i9TXmJ7s608xbAAAAZAAMon0AAAAJAAAAAAAAAAPUg1%2Fw"
    "DrMDozn8yfiCA8LLC0wF10q5n5lo0GiFQXpPsAAAAAEAAAAAAAAAAQAAAADdvkoXq6TXDV9IpguvNHyAXaUH4AcC"
    "LqhToJpaG6cCyQAAAAAAAAAAAJiWgAAAAAA%3D%22%2C%22attachment%22%3A%22%7B%5C%22nonce%5C%22%3"
    "A%5C%221488805458327055805%5C%22%2C%5C%22transaction%5C%22%3A%7B%5C%22sender_info%5C%22%"
    "3A%7B%5C%22address%5C%22%3A%5C%22678+Mission+St%5C%22%2C%5C%22city%5C%22%3A%5C%22San+Fra"
    "ncisco%5C%22%2C%5C%22country%5C%22%3A%5C%22US%5C%22%2C%5C%22first_name%5C%22%3A%5C%22Ald"
    "i%5C%22%2C%5C%22last_name%5C%22%3A%5C%22Dobbs%5C%22%7D%2C%5C%22route%5C%22%3A%5C%221%5C%"
    "22%2C%5C%22note%5C%22%3A%5C%22%5C%22%2C%5C%22extra%5C%22%3A%5C%22%5C%22%7D%2C%5C%22opera"
    "tions%5C%22%3Anull%7D%22%7D&sig=KgvyQTZsZQoaMy8jdwCUfLayfgfFMUdZJ%2B0BIvEwiH5aJhBXvhV%2B"
    "ipRok1asjSCUS%2FUaGeGKDoizS1%2BtFiiyAA%3D%3D"
)
V3_DATA = (
    '{"sender":"alice*stellar.org","need_info":false,"tx":"AAAAAC3/58Z9rycNLmF6voWX9VmDETFVGh'
    "FoWf66mcMuir/DAAAAZAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAADu3Bux43As7lvX14BJ+cYmevE+c"
    "rYD/MAO9R2WuU7YnkAAAABAAAAAQAAAAAt/+fGfa8nDS5her6Fl/VZgxExVRoRaFn+upnDLoq/wwAAAAEAAAAAGV"
    "L83DJFwH0sKmy6AIgJYD7GexiD0YuzSMioBCAUOJwAAAABVVNEAAAAAAAZUvzcMkXAfSwqbLoAiAlgPsZ7GIPRi7"
    'NIyKgEIBQ4nAAAAAAL68IAAAAAAA==","attachment":"{\\"nonce\\":\\"nonce\\",\\"transaction\\":{\\"se'
    'nder_info\\":{\\"first_name\\":\\"John\\",\\"last_name\\":\\"Doe\\"},\\"route\\":\\"bob\\",\\"note\\":\\'
    '"\\",\\"extra\\":\\"hello world\\"},\\"operations\\":null}"}'
)
V3_SIG = "LOQa6qvm5mZes5pLb0iZK4awAcXo8dHslv9qWLXQv73LC/euSsRF9opy93ZrdlknHRrcWOBWEX6AxzkohGocDQ=="
V3_KEY = Keypair.from_secret("SDWTLFPALQSP225BSMX7HPZ7ZEAYSUYNDLJ5QI3YGVBNRUIIELWH3XUV")
OURS = "GAMVF7G4GJC4A7JMFJWLUAEIBFQD5RT3DCB5DC5TJDEKQBBACQ4JZVEE"  # V3 pays USD here
USD = Asset("USD", OURS)
PATH = "/compliance/auth"
SENDER_INFO = {"first_name": "John", "last_name": "Doe", "country": "US"}


@pytest.fixture
def sanctions(tmp_path) -> Path:
    path = tmp_path / "sanctions.json"
    path.write_text(
        json.dumps(
            {"names": ["Ivan Badguy", "María Núñez"], "addresses": [], "countries": ["KP", "PRK"]}
        )
    )
    return path


@pytest.fixture
def org_toml(tmp_path) -> Path:
    """The organization's stellar.toml with the V3 vector's USD described too."""
    repo = Path(__file__).resolve().parents[2]
    path = tmp_path / "stellar.toml"
    usd = (
        '\n[[CURRENCIES]]\ncode = "USD"\nstatus = "test"\nname = "Test USD"\n'
        'desc = "The asset of the SEP-3 test vectors."\nis_asset_anchored = true\n'
        'anchor_asset_type = "fiat"\nanchor_asset = "USD"\nis_unlimited = true\n'
    )
    path.write_text((repo / "well-known" / "stellar.toml").read_text() + usd)
    return path


@pytest.fixture
def gateway_env(sanctions, org_toml) -> dict[str, str]:
    return {
        "GATEWAY_SEPS_SEP3": "true",
        "GATEWAY_STELLAR_TOML": str(org_toml),
        "GATEWAY_SEP31_RECEIVING_ACCOUNT": OURS,  # also what federation answers
        "GATEWAY_ASSETS": json.dumps(
            [
                {
                    "code": "GWUSD",
                    "issuer": "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC",
                },
                {"code": "USD", "issuer": OURS},
            ]
        ),
        "GATEWAY_SEP3_SANCTIONS_LIST": str(sanctions),
        "GATEWAY_SEP3_REVIEW_ABOVE": "1000",
        "GATEWAY_RATE_LIMITS_SEP3_PER_IP": "0",  # the mangled-request test sends 300
        "GATEWAY_RATE_LIMITS_SEP3_PER_INSTITUTION": "0",  # but in the test of that limit
        "GATEWAY_SEP3_SHARE_WITH": json.dumps(
            [{"domain": "stellar.org", "signing_key": V3_KEY.public_key}]
        ),
    }


@pytest.fixture
async def bob(gateway) -> tuple[str, str]:
    """Our customer bob (a receiver with SEP-9 data): (customer id, memo)."""
    partner = await partner_for(gateway)
    _sender, receiver = await partner.customers()
    record = await gateway.app.state.services.federation.register("bob", receiver)
    return receiver, record.memo


def form(data: str | bytes, sig: str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return b"data=" + quote(raw, safe="").encode() + b"&sig=" + quote(sig, safe="").encode()


async def post(gateway, body: bytes, content_type="application/x-www-form-urlencoded"):
    return await gateway.client.post(PATH, content=body, headers={"Content-Type": content_type})


class Institution:
    """A sending FI: its key, its stellar.toml (served by the fake hosts) and its requests."""

    def __init__(self, gateway, domain="bank.test", keypair: Keypair | None = None):
        self.domain = domain
        self.keypair = keypair or Keypair.random()
        gateway.tomls.serve_signing_key(domain, self.keypair)

    def request(
        self,
        *,
        nonce="n-1",
        route="bob",
        amount="20",
        destination: str = OURS,
        asset: Asset = USD,
        need_info=False,
        sender_info=SENDER_INFO,
        max_time=0,
        memo=None,
        attachment: str | None = None,
    ) -> tuple[str, str]:
        attachment = attachment or json.dumps(
            {
                "nonce": nonce,
                "transaction": {
                    "sender_info": sender_info,
                    "route": route,
                    "note": "",
                    "extra": "",
                },
                "operations": None,
            }
        )
        source = Account(Keypair.random().public_key, 0)
        builder = TransactionBuilder(source, Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
        builder.append_payment_op(destination, asset, amount)
        builder.add_memo(memo or HashMemo(hashlib.sha256(attachment.encode()).digest()))
        builder.add_time_bounds(0, max_time)
        tx = builder.build().transaction
        data = json.dumps(
            {
                "sender": f"alice*{self.domain}",
                "need_info": need_info,
                "tx": tx.to_xdr_object().to_xdr(),
                "attachment": attachment,
            }
        )
        return data, self.sign(data)

    def sign(self, data: str) -> str:
        return base64.b64encode(self.keypair.sign(data.encode())).decode()


# -- the published vectors -----------------------------------------------------------------------


async def test_v3_from_stellar_org_is_authorized(gateway, bob):
    gateway.tomls.serve("stellar.org", {"SIGNING_KEY": V3_KEY.public_key})
    response = await post(gateway, form(V3_DATA, V3_SIG))
    assert response.status_code == 200, response.text
    assert response.json() == {"info_status": "ok", "tx_status": "ok"}
    [row] = await rows(gateway, compliance_requests)
    assert row["sender"] == "alice*stellar.org" and row["customer_id"] == bob[0]
    assert row["memo"] == "bb706ec78dc0b3b96f5f5e0127e71899ebc4f9cad80ff3003bd4765ae53b6279"
    assert row["amount"] == 200_000_000 and (row["asset_code"], row["destination"]) == ("USD", OURS)
    assert b"John" not in row["data_sealed"]  # sender_info is sealed at rest


async def test_an_institution_past_its_rate_is_refused_once_its_signature_is_verified(
    gateway, bob, monkeypatch
):
    from dataclasses import replace

    compliance = gateway.app.state.services.compliance
    limits = replace(gateway.settings.rate_limits, sep3_per_institution=3)
    monkeypatch.setattr(compliance, "_s", replace(gateway.settings, rate_limits=limits))
    gateway.tomls.serve("stellar.org", {"SIGNING_KEY": V3_KEY.public_key})
    bad_sig = "A" + V3_SIG[1:]
    for _ in range(4):  # unverified requests name no institution: they do not count
        assert (await post(gateway, form(V3_DATA, bad_sig))).status_code == 400
    answers = [(await post(gateway, form(V3_DATA, V3_SIG))).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = await post(gateway, form(V3_DATA, V3_SIG))
    assert limited.json()["error"] == "too many requests from stellar.org; try later"
    assert int(limited.headers["retry-after"]) >= 1
    assert len(await rows(gateway, compliance_requests)) == 1  # a repeat, stored once


async def test_v3_tampered_fails_at_the_right_check(gateway, bob):
    served = gateway.tomls.serve("stellar.org", {"SIGNING_KEY": V3_KEY.public_key})
    bad_sig = "A" + V3_SIG[1:]
    response = await post(gateway, form(V3_DATA, bad_sig))
    assert (response.status_code, response.json()["error"].split(":")[0]) == (400, "sig")
    # A changed attachment fails the memo check, before any toml is fetched.
    calls = served.call_count
    response = await post(gateway, form(V3_DATA.replace("hello world", "hello worle"), V3_SIG))
    assert response.status_code == 400
    assert response.json() == {"error": "tx: memo is not the SHA-256 of the attachment"}
    assert served.call_count == calls
    # Another user at the same domain: the signature no longer covers data.
    response = await post(gateway, form(V3_DATA.replace("alice*", "mallory*"), V3_SIG))
    assert response.json()["error"].startswith("sig: ")
    assert await rows(gateway, compliance_requests) == []


async def test_v3_fails_when_the_domain_publishes_another_key(gateway, bob):
    gateway.tomls.serve("stellar.org", {"SIGNING_KEY": Keypair.random().public_key})
    response = await post(gateway, form(V3_DATA, V3_SIG))
    assert response.status_code == 400 and response.json()["error"].startswith("sig: ")


async def test_v1_parses_and_its_memo_matches_but_its_signature_is_unverifiable(gateway):
    gateway.tomls.serve_signing_key("banksender.com")
    response = await post(gateway, V1_FORM.encode())
    assert response.status_code == 400
    assert response.json()["error"].startswith("sig: ")


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "data: is required"),
        (b"data=%7B%7D", "sig: is required"),
        (b"data=x&sig=%%%", "sig: is not base64"),
        (b"data=x&sig=AAAA", "sig: is not an Ed25519 signature (64 bytes)"),
        (b"data=%7B&sig=" + quote(V3_SIG, safe="").encode(), "data: is not valid JSON"),
        (b"data=%5B%5D&sig=" + quote(V3_SIG, safe="").encode(), "data: must be a JSON object"),
        (b"data=1&data=2&sig=x", "data: sent more than once"),
    ],
)
async def test_bad_forms_are_refused_with_400(gateway, body, error):
    response = await post(gateway, body)
    assert (response.status_code, response.json()) == (400, {"error": error})


async def test_bad_data_is_refused_before_any_network_call(gateway, bob):
    fi = Institution(gateway)
    good, _ = fi.request()
    cases = {
        "sender": {"sender": "alice"},
        "need_info": {"need_info": "yes"},
        "tx": {"tx": "AAAA"},
        "attachment": {"attachment": 7},
    }
    for field, change in cases.items():
        data = json.dumps({**json.loads(good), **change})
        response = await post(gateway, form(data, fi.sign(data)))
        assert response.status_code == 400
        assert response.json()["error"].startswith(field + ":"), response.json()
    data, sig = fi.request(memo=TextMemo("hello"))
    response = await post(gateway, form(data, sig))
    assert response.json() == {"error": "tx: memo must be a hash memo of the attachment"}
    data, sig = fi.request(max_time=1_000_000)
    assert (await post(gateway, form(data, sig))).json() == {
        "error": "tx: its time bounds have expired"
    }
    data, sig = fi.request(nonce="")
    assert (await post(gateway, form(data, sig))).json()["error"].startswith("attachment: nonce")
    response = await post(gateway, form(*fi.request()), content_type="application/json")
    assert response.status_code == 400
    assert await rows(gateway, compliance_requests) == []


async def test_unusable_sender_tomls_are_400_naming_sender(gateway, bob):
    fi = Institution(gateway)
    gateway.tomls.serve(fi.domain, {"SIGNING_KEY": "not-a-key"})
    response = await post(gateway, form(*fi.request()))
    assert response.status_code == 400 and response.json()["error"].startswith("sender: ")
    unserved = Institution(gateway, domain="nowhere.test")
    gateway.tomls.serve("nowhere.test", "", status=404)
    response = await post(gateway, form(*unserved.request()))
    assert response.status_code == 400 and response.json()["error"].startswith("sender: ")


async def test_the_payment_must_be_ours_and_for_a_customer(gateway, bob):
    fi = Institution(gateway)
    for i, (kwargs, error) in enumerate(
        [
            (
                {"destination": Keypair.random().public_key},
                "tx: does not pay an account of this anchor",
            ),
            ({"asset": Asset("EUR", OURS)}, "tx: does not pay an asset of this anchor"),
            ({"asset": Asset.native()}, "tx: does not pay an asset of this anchor"),
        ]
    ):
        response = await post(gateway, form(*fi.request(nonce=f"p{i}", **kwargs)))
        assert (response.status_code, response.json()) == (400, {"error": error})
    response = await post(gateway, form(*fi.request(nonce="who", route="nobody")))
    assert response.status_code == 403
    assert response.json() == {
        "info_status": "ok",
        "tx_status": "denied",
        "error": "the recipient is not a customer of this anchor",
    }
    # No operator can make it ok: its payment would be paid out to no one.
    from gateway.errors import Conflict

    [nobody] = [r for r in await rows(gateway, compliance_requests) if r["nonce"] == "who"]
    with pytest.raises(Conflict, match="not a customer"):
        await gateway.app.state.services.compliance.decide(
            nobody["id"], tx="ok", info=None, operator="operator:ana", reason=None
        )
    # The customer named by a muxed destination, or by the memo as route.
    muxed = MuxedAccount(OURS, int(bob[1])).account_muxed
    response = await post(gateway, form(*fi.request(nonce="mux", route="", destination=muxed)))
    assert response.status_code == 200
    response = await post(gateway, form(*fi.request(nonce="memo-route", route=bob[1])))
    assert response.status_code == 200


# -- sanctions, review and data sharing ----------------------------------------------------------


async def test_sanctions_deny_hold_for_review_or_error(gateway, bob, sanctions):
    fi = Institution(gateway)
    cases = [
        ({"first_name": "IVAN", "last_name": "badguy"}, 403, "denied"),
        ({"first_name": "Maria", "last_name": "Nunez"}, 403, "denied"),  # accents, case
        ({"name": "Badguy, Ivan"}, 403, "denied"),  # word order, punctuation
        ({"first_name": "Ivan", "last_name": "Badguv"}, 202, "pending"),  # near match
        ({"first_name": "Ann", "last_name": "Lee", "country": "KP"}, 403, "denied"),
        ({"country": "US"}, 400, "error"),  # no name to screen
    ]
    told = {
        "denied": "the payment was not accepted by compliance review",
        "pending": "the payment waits for compliance review",
        "error": "sender_info: a name is required for screening",
    }
    for i, (info, status, tx_status) in enumerate(cases):
        response = await post(gateway, form(*fi.request(nonce=f"s{i}", sender_info=info)))
        assert response.status_code == status, (info, response.json())
        # The sender learns the outcome, never that a list or a near match was involved.
        assert response.json()["tx_status"] == tx_status
        assert response.json()["error"] == told[tx_status]
    kept = {r["nonce"]: r["reason"] for r in await rows(gateway, compliance_requests)}
    assert kept["s0"] == "the sender's name is listed"  # operators see why
    assert kept["s3"] == "the sender's name is close to a listed one"
    response = await post(gateway, form(*fi.request(nonce="big", amount="1000")))
    assert response.status_code == 202
    assert response.json() == {
        "info_status": "ok",
        "tx_status": "pending",
        "error": "the payment waits for compliance review",
        "pending": 600,
    }
    # The list is read again when it changes.
    sanctions.write_text(json.dumps({"names": ["John Doe"]}))
    response = await post(gateway, form(*fi.request(nonce="reload")))
    assert response.status_code == 403
    sanctions.write_text("not json")  # our fault: held for an operator, asked again later
    response = await post(gateway, form(*fi.request(nonce="broken")))
    assert (response.status_code, response.json()["tx_status"]) == (202, "pending")


async def test_recipient_data_goes_only_to_allow_listed_institutions(gateway, bob):
    gateway.tomls.serve("stellar.org", {"SIGNING_KEY": V3_KEY.public_key})
    listed = Institution(gateway, domain="stellar.org", keypair=V3_KEY)
    response = await post(gateway, form(*listed.request(need_info=True)))
    assert response.status_code == 200
    # Who the recipient is, not their account numbers.
    assert json.loads(response.json()["dest_info"]) == {"first_name": "Lee", "last_name": "Sun"}
    other = Institution(gateway)
    response = await post(gateway, form(*other.request(need_info=True)))
    assert response.status_code == 403
    assert response.json()["info_status"] == "denied" and "dest_info" not in response.json()


async def test_a_listed_domain_under_another_key_gets_no_recipient_data(gateway, bob):
    impostor = Institution(gateway, domain="stellar.org")  # its toml now names another key
    response = await post(gateway, form(*impostor.request(need_info=True)))
    assert response.status_code == 403
    assert response.json()["info_status"] == "denied" and "dest_info" not in response.json()


# -- idempotency and operators -------------------------------------------------------------------


async def test_a_repost_answers_the_stored_decision_and_a_changed_one_is_refused(gateway, bob):
    fi = Institution(gateway)
    data, sig = fi.request(amount="5000")  # pending: above the review threshold
    first = await post(gateway, form(data, sig))
    again = await post(gateway, form(data, sig))
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    changed, changed_sig = fi.request(amount="5001")  # same nonce, other data
    response = await post(gateway, form(changed, changed_sig))
    assert response.json() == {
        "error": "attachment: this nonce was already used with different data"
    }
    forged = await post(gateway, form(data, Institution(gateway, "x.test").sign(data)))
    assert forged.json()["error"].startswith("sig: ")
    [row] = await rows(gateway, compliance_requests)
    compliance = gateway.app.state.services.compliance
    await compliance.decide(row["id"], tx="ok", info=None, operator="operator:ana", reason=None)
    approved = await post(gateway, form(data, sig))
    assert (approved.status_code, approved.json()) == (
        200,
        {"info_status": "ok", "tx_status": "ok"},
    )
    [row] = await rows(gateway, compliance_requests)
    assert row["decided_by"] == "operator:ana"


# -- both sides: our sending side asks our receiving side ----------------------------------------


class Clock:
    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def sending_side(gateway, make_settings):
    """Another institution (sender.test, its own signing key) running our sending side
    against the receiving gateway; its stellar.toml is served to the receiver."""
    import httpx

    from gateway.outbound.compliance_peers import HttpxCompliancePeers
    from gateway.outbound.stellar_toml import HttpxStellarTomls
    from gateway.payouts import DbPayoutQueue
    from gateway.personal_data import Vault
    from gateway.sep3_auth.sending import ComplianceSender
    from tests.conftest import TEST_KYC_KEY

    key = Keypair.random()
    gateway.tomls.serve_signing_key("sender.test", key)
    settings = make_settings(GATEWAY_SIGNING_SECRET=key.secret, GATEWAY_HOME_DOMAIN="sender.test")
    to_receiver = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app))
    gateway.clients.append(to_receiver)
    clock = Clock()
    sender = ComplianceSender(
        settings,
        uow=gateway.app.state.deps.uow,
        tomls=HttpxStellarTomls(to_receiver, insecure_hosts=["localhost"]),
        peers=HttpxCompliancePeers(to_receiver, insecure_hosts=["localhost"]),
        customers=gateway.app.state.services.customers,
        payouts=DbPayoutQueue(),
        vault=Vault.from_texts(TEST_KYC_KEY),
        clock=clock,
    )
    return sender, clock


async def ask_and_pay(sender, customer, amount="20", *, receiver="bob*localhost:8000", **kw):
    """Our sending side paying ``amount`` USD to ``receiver`` for our ``customer``."""
    kw.setdefault("source_account", Keypair.random().public_key)
    return await sender.send(
        receiver=receiver,
        amount=Decimal(amount),
        asset_code="USD",
        asset_issuer=OURS,
        customer_id=customer,
        **kw,
    )


async def test_a_round_trip_between_two_institutions(gateway, bob, sending_side):
    from gateway.db.tables import compliance_outgoing, payouts

    sender, clock = sending_side
    partner = await partner_for(gateway)
    ann = await partner.kyc.put_id({"memo": "7", "first_name": "Ann", "last_name": "Lee"})
    ivan = await partner.kyc.put_id({"memo": "8", "first_name": "Ivan", "last_name": "Badguy"})

    async def send(customer, amount, **kw):
        return await ask_and_pay(sender, customer, amount, **kw)

    ok = await send(ann, Decimal("20"))
    assert ok["status"] == "ok"
    [seen] = await rows(gateway, compliance_requests)
    assert (seen["sender_domain"], seen["customer_id"], seen["tx_status"]) == (
        "sender.test",
        bob[0],
        "ok",
    )
    assert seen["memo"] == ok["memo"]  # what the payment will carry is what was authorized
    [payout] = await rows(gateway, payouts, source="sep3_out")
    assert (payout["destination"], payout["memo_type"], payout["amount"]) == (
        OURS,
        "hash",
        200_000_000,
    )
    assert base64.b64decode(payout["memo"]).hex() == ok["memo"]

    denied = await send(ivan, Decimal("20"))
    assert denied["status"] == "denied"
    assert denied["reason"] == "the payment was not accepted by compliance review"
    # The sender's country goes too (SEP-9 address_country_code as SEP-3's country).
    cho = await partner.kyc.put_id(
        {"memo": "9", "first_name": "Cho", "last_name": "Park", "address_country_code": "PRK"}
    )
    assert (await send(cho, Decimal("20")))["status"] == "denied"
    no_info = await send(ann, Decimal("21"), need_info=True)
    assert no_info["status"] == "denied"

    waiting = await send(ann, Decimal("5000"))  # above the receiver's review threshold
    assert waiting["status"] == "pending"
    assert await sender.post_due() == 0  # not before the time the answer named
    clock.advance(600)
    assert await sender.post_due() == 1  # asked again: still pending
    held = next(r for r in await rows(gateway, compliance_requests) if r["tx_status"] == "pending")
    await gateway.app.state.services.compliance.decide(
        held["id"], tx="ok", info=None, operator="operator:ana", reason=None
    )
    clock.advance(600)
    assert await sender.post_due() == 1
    again = await sender.post(waiting["id"])  # a later post changes nothing
    assert again["status"] == "ok"
    sent = {r["id"]: r for r in await rows(gateway, compliance_outgoing)}
    assert sent[waiting["id"]]["attempts"] == 3
    assert len(await rows(gateway, payouts, source="sep3_out")) == 2
    assert all(b"Ann" not in r["data_sealed"] for r in sent.values())


@pytest.mark.parametrize("domain", ["127.0.0.1", "10.0.0.1:8080", "[::1]", "bank.test/x", "x..y"])
async def test_sender_domains_that_are_addresses_or_not_domains_are_refused(gateway, bob, domain):
    fi = Institution(gateway)
    fi.domain = domain
    response = await post(gateway, form(*fi.request()))
    assert response.status_code == 400
    assert response.json()["error"].startswith("sender: "), response.json()


async def test_key_rotation_reseals_requests_received_and_sent(gateway, bob, sending_side):
    from gateway.db.tables import compliance_outgoing
    from gateway.personal_data import Vault, decode_key, key_id
    from gateway.sep12_customer.rotation import rotate
    from tests.conftest import TEST_KYC_KEY

    sender, _clock = sending_side
    partner = await partner_for(gateway)
    ann = await partner.kyc.put_id({"memo": "7", "first_name": "Ann", "last_name": "Lee"})
    gateway.tomls.serve("stellar.org", {"SIGNING_KEY": V3_KEY.public_key})
    listed = Institution(gateway, domain="stellar.org", keypair=V3_KEY)
    assert (await post(gateway, form(*listed.request(need_info=True)))).status_code == 200
    sent = await ask_and_pay(sender, ann)
    assert sent["status"] == "ok"
    new_key = base64.b64encode(b"k" * 32).decode()
    report = await rotate(gateway.app.state.deps.uow, Vault.from_texts(new_key, [TEST_KYC_KEY]))
    assert report.left is None
    new_id = key_id(decode_key(new_key))
    received = await rows(gateway, compliance_requests)
    out = await rows(gateway, compliance_outgoing)
    assert {r["data_key_id"] for r in received + out} == {new_id}
    vault = Vault.from_texts(new_key)
    from gateway.sep3_auth.service import request_context

    [mine] = [r for r in received if r["sender_domain"] == "stellar.org"]
    opened = vault.open(mine["data_key_id"], mine["data_sealed"], request_context(mine["id"]))
    assert json.loads(opened)["sender"] == "alice*stellar.org"


async def test_a_customer_can_allow_one_institution_their_data(gateway, bob):
    from gateway.errors import NotFound

    compliance = gateway.app.state.services.compliance
    fi = Institution(gateway)  # bank.test: not listed in settings
    response = await post(gateway, form(*fi.request(nonce="before", need_info=True)))
    assert (response.status_code, response.json()["info_status"]) == (403, "denied")
    await compliance.allow(bob[0], "Bank.Test", "operator:ana")
    response = await post(gateway, form(*fi.request(nonce="after", need_info=True)))
    assert response.status_code == 200
    # Who the recipient is, not their account numbers.
    assert json.loads(response.json()["dest_info"]) == {"first_name": "Lee", "last_name": "Sun"}
    other = Institution(gateway, domain="other.test")
    response = await post(gateway, form(*other.request(nonce="other", need_info=True)))
    assert response.json()["info_status"] == "denied"
    await compliance.disallow(bob[0], "bank.test")
    response = await post(gateway, form(*fi.request(nonce="later", need_info=True)))
    assert response.json()["info_status"] == "denied"
    with pytest.raises(NotFound):
        await compliance.allow("no-such-customer", "bank.test", "operator:ana")
    with pytest.raises(NotFound):
        await compliance.disallow(bob[0], "bank.test")


@pytest.mark.parametrize(
    ("status", "answer", "outcome", "wait"),
    [
        (200, {"tx_status": "ok", "info_status": "ok"}, "ok", None),
        (403, {"tx_status": "deny", "info_status": "ok"}, "denied", None),
        (200, {"tx_status": "deny", "info_status": "ok"}, "denied", None),
        (200, {"tx_status": "ok"}, "error", None),  # an answer that does not say ok twice
        (200, {"tx_status": "pending", "info_status": "ok", "pending": 30}, "pending", 30),
        (202, {"tx_status": "pending", "info_status": "ok", "pending": 30}, "pending", 30),
        (202, {"tx_status": "pending", "info_status": "ok", "pending": "soon"}, "pending", 600),
        (400, {"error": "bad"}, "error", None),
        (500, {"error": "Internal server error"}, "error", None),
    ],
)
async def test_the_sending_side_reads_answers_cautiously(
    gateway, bob, sending_side, status, answer, outcome, wait
):
    from datetime import timedelta

    from gateway.db.tables import payouts

    sender, clock = sending_side

    class Scripted:
        def __init__(self, real):
            self.real = real

        async def resolve(self, server, address):
            return await self.real.resolve(server, address)

        async def post_auth(self, server, data, sig):
            return status, answer

    sender._peers = Scripted(sender._peers)
    partner = await partner_for(gateway)
    ann = await partner.kyc.put_id({"memo": "7", "first_name": "Ann", "last_name": "Lee"})
    sent = await ask_and_pay(sender, ann)
    assert sent["status"] == outcome
    queued = await rows(gateway, payouts, source="sep3_out")
    assert len(queued) == (1 if outcome == "ok" else 0)
    if wait is not None:
        assert sent["next_attempt_at"] == clock.now + timedelta(seconds=wait)


# -- what a review found ---------------------------------------------------------------------


async def test_a_route_of_digits_is_a_memo_and_names_are_never_digits(gateway, bob):
    from gateway.errors import InvalidField

    federation = gateway.app.state.services.federation
    partner = await partner_for(gateway)
    _sender, mallory = await partner.customers()
    with pytest.raises(InvalidField, match="may not be all digits"):
        await federation.register(bob[1], mallory)  # a name that is bob's memo
    fi = Institution(gateway)
    for i, route in enumerate(("bob*localhost:8000", "BOB*localhost", bob[1])):
        assert (
            await post(gateway, form(*fi.request(nonce=f"r{i}", route=route)))
        ).status_code == 200
    response = await post(gateway, form(*fi.request(nonce="elsewhere", route="bob*other.test")))
    assert (response.status_code, response.json()["tx_status"]) == (403, "denied")
    assert {
        r["customer_id"] for r in await rows(gateway, compliance_requests) if r["tx_status"] == "ok"
    } == {bob[0]}


@pytest.mark.parametrize("bad", ["\u0000", "\ud800"])
async def test_nul_and_lone_surrogates_are_refused_not_stored(gateway, bob, bad):
    fi = Institution(gateway)
    for kwargs in ({"nonce": f"n{bad}"}, {"route": f"bob{bad}"}):
        response = await post(gateway, form(*fi.request(**kwargs)))
        assert response.status_code == 400
        assert response.json()["error"].startswith("attachment: must not hold NUL")
    data, _ = fi.request()
    data = data.replace("alice*", "al\\u0000ice*")
    response = await post(gateway, form(data, fi.sign(data)))
    assert response.status_code == 400 and response.json()["error"].startswith("data: ")
    assert await rows(gateway, compliance_requests) == []


async def test_the_sending_side_refuses_unusable_receiver_urls_before_storing(
    gateway, bob, sending_side
):
    from gateway.db.tables import compliance_outgoing
    from gateway.outbound.compliance_peers import PeerError

    sender, _clock = sending_side
    partner = await partner_for(gateway)
    ann = await partner.kyc.put_id({"memo": "7", "first_name": "Ann", "last_name": "Lee"})
    for auth in (
        "https://[x/auth",
        "ftp://bank.test/auth",
        "http://10.0.0.1/auth",
        "https://a\tb/",
    ):
        gateway.tomls.serve(
            "bank.test",
            {
                "SIGNING_KEY": Keypair.random().public_key,
                "AUTH_SERVER": auth,
                "FEDERATION_SERVER": "https://bank.test/federation",
            },
        )
        sender._tomls = gateway.app.state.deps.tomls.__class__(
            gateway.tomls.client(), insecure_hosts=["localhost"]
        )
        with pytest.raises(PeerError):
            await ask_and_pay(sender, ann, receiver="bob*bank.test")
    assert await rows(gateway, compliance_outgoing) == []


async def test_an_authorized_payment_that_cannot_be_paid_out_is_held_and_refundable(gateway, bob):
    from gateway.outbound.horizon import Payment
    from gateway.sep3_auth.payments import match_compliance_payments

    fi = Institution(gateway)
    data, sig = fi.request()
    assert (await post(gateway, form(data, sig))).status_code == 200
    [req] = await rows(gateway, compliance_requests)
    memo = base64.b64encode(bytes.fromhex(req["memo"])).decode()
    from datetime import UTC, datetime

    def payment(to=OURS, muxed=None, pid="1"):
        return Payment(
            pid,
            pid,
            "payment",
            "ab" * 32,
            Keypair.random().public_key,
            to,
            muxed,
            "USD",
            OURS,
            Decimal("20"),
            datetime.now(UTC),
            "hash",
            memo,
            1,
        )

    def no_way(_rail, _receiver):
        return None, None, None, None, "the receiver's crypto_memo is not a valid memo"

    async with gateway.app.state.deps.uow() as uow:
        found, queued, _ = await match_compliance_payments(
            uow,
            gateway.app.state.services.customers,
            [payment(muxed="5", pid="2"), payment()],
            no_way,
        )
    assert (found["2"].outcome, found["1"].outcome, queued) == ("wrong_account", "held", [])


async def test_the_payment_watcher_runs_for_sep3_even_without_sep31(gateway):
    import dataclasses

    from gateway.app import background_steps

    s = gateway.settings
    only_sep3 = dataclasses.replace(s, seps=dataclasses.replace(s.seps, sep31=False))
    steps = background_steps(only_sep3, gateway.app.state.deps, gateway.app.state.services)
    assert {"payment-watcher", "compliance-resend"} <= {name for name, _, _ in steps}
    neither = dataclasses.replace(only_sep3, seps=dataclasses.replace(only_sep3.seps, sep3=False))
    steps = background_steps(neither, gateway.app.state.deps, gateway.app.state.services)
    assert "payment-watcher" not in {name for name, _, _ in steps}


async def test_sending_again_with_the_same_key_asks_nothing_new(gateway, bob, sending_side):
    from gateway.db.tables import compliance_outgoing, payouts
    from gateway.errors import Conflict

    sender, _clock = sending_side
    partner = await partner_for(gateway)
    ann = await partner.kyc.put_id({"memo": "7", "first_name": "Ann", "last_name": "Lee"})
    source = Keypair.random().public_key

    async def send(amount="20", key="pay-1"):
        return await ask_and_pay(sender, ann, amount, source_account=source, request_key=key)

    first = await send()
    again = await send()  # e.g. after a timeout, the operator runs the command again
    assert (first["status"], again["id"]) == ("ok", first["id"])
    with pytest.raises(Conflict, match="request_key: already used for another payment"):
        await send(amount="21")
    assert len(await rows(gateway, compliance_outgoing)) == 1
    assert len(await rows(gateway, compliance_requests)) == 1
    assert len(await rows(gateway, payouts, source="sep3_out")) == 1


async def test_sends_with_one_key_at_the_same_time_ask_once(gateway, bob, sending_side):
    import asyncio

    from gateway.db.tables import compliance_outgoing, payouts

    sender, _clock = sending_side
    partner = await partner_for(gateway)
    ann = await partner.kyc.put_id({"memo": "7", "first_name": "Ann", "last_name": "Lee"})
    source = Keypair.random().public_key
    both = asyncio.gather(
        *(ask_and_pay(sender, ann, source_account=source, request_key="pay-1") for _ in range(2))
    )
    first, second = await asyncio.wait_for(both, timeout=30)
    assert first["id"] == second["id"] and first["status"] == second["status"] == "ok"
    assert len(await rows(gateway, compliance_outgoing)) == 1
    assert len(await rows(gateway, payouts, source="sep3_out")) == 1


async def test_no_mangled_request_gets_a_server_error(gateway, bob):
    import random

    fi = Institution(gateway)
    rng = random.Random(3)
    data, sig = fi.request()
    body = form(data, sig)
    seen = set()
    for i in range(300):
        mangled = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(mangled))
            mangled[at] = rng.choice(b'%&=+\x00\xff{}[]"\\AZaz09/')
        if i % 3 == 0:  # also re-signed, so the checks after the signature are reached
            text = bytes(mangled).split(b"&sig=")[0].removeprefix(b"data=")
            from urllib.parse import unquote_to_bytes

            raw = unquote_to_bytes(text.replace(b"+", b" "))
            mangled = bytearray(
                b"data="
                + quote(raw, safe="").encode()
                + b"&sig="
                + quote(base64.b64encode(fi.keypair.sign(raw)).decode(), safe="").encode()
            )
        response = await post(gateway, bytes(mangled))
        assert response.status_code in (200, 202, 400, 403, 413), response.text
        assert response.headers["content-type"].startswith("application/json")
        seen.add(response.status_code)
    assert 400 in seen
