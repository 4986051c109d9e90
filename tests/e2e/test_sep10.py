"""SEP-10 through the app: a wallet using stellar-sdk's helpers, and every rejection case."""

from __future__ import annotations

import base64
import os
import time
from decimal import Decimal

import jwt
import pytest
from stellar_sdk import (
    Account,
    Keypair,
    MuxedAccount,
    Network,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk.operation import ManageData
from stellar_sdk.sep.stellar_web_authentication import build_challenge_transaction

from tests.conftest import TEST_JWT_SECRET

pytestmark = pytest.mark.asyncio


def claims(token: str) -> dict:
    return jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})


def craft(
    gateway,
    client: str,
    *,
    home: str = "localhost:8000",
    web_auth: str = "localhost:8000",
    sequence: int = -1,
    min_time: int | None = None,
    max_time: int | None = None,
    extra_ops=(),
    memo: int | None = None,
    nonce: bytes | None = None,
    server: Keypair | None = None,
    passphrase: str | None = None,
) -> str:
    """A challenge-shaped transaction signed by the server key, with one thing wrong."""
    server = server or gateway.settings.signing_keypair
    builder = TransactionBuilder(
        Account(server.public_key, sequence),
        passphrase or gateway.settings.network_passphrase,
        base_fee=100,
    )
    now = int(time.time())
    builder.add_time_bounds(
        now if min_time is None else min_time, now + 900 if max_time is None else max_time
    )
    builder.append_manage_data_op(
        f"{home} auth", nonce or base64.b64encode(os.urandom(48)), source=client
    )
    builder.append_manage_data_op("web_auth_domain", web_auth, source=server.public_key)
    for op in extra_ops:
        builder.append_operation(op)
    if memo is not None:
        builder.add_id_memo(memo)
    tx = builder.build()
    tx.sign(server)
    return tx.to_xdr()


async def post_error(wallet, xdr: str, *signers: Keypair) -> str:
    response = await wallet.post(wallet.sign(xdr, *signers) if signers else xdr)
    assert response.status_code == 400, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert set(body) == {"error"} and body["error"]
    return body["error"]


# -- the wallet's happy paths -------------------------------------------------------------------


async def test_new_account_gets_a_token_with_the_sdk_helpers(gateway):
    wallet = gateway.wallet()
    token = await wallet.token()
    c = claims(token)
    assert c["sub"] == wallet.account
    assert c["iss"] == "http://localhost:8000/auth"
    assert c["exp"] - c["iat"] == gateway.settings.sep10.jwt_lifetime_seconds
    assert len(c["jti"]) == 64 and "client_domain" not in c


async def test_form_encoded_post_works_too(gateway):
    wallet = gateway.wallet()
    assert claims(await wallet.token(as_json=False))["sub"] == wallet.account


async def test_account_with_memo_gets_a_memo_subject(gateway):
    wallet = gateway.wallet()
    token = await wallet.token(memo="18446744073709551615")
    assert claims(token)["sub"] == f"{wallet.account}:18446744073709551615"


async def test_muxed_account_gets_a_muxed_subject(gateway):
    wallet = gateway.wallet()
    muxed = wallet.muxed(42)
    token = await wallet.token(account=muxed)
    assert claims(token)["sub"] == muxed


async def test_client_domain_is_verified_and_carried_in_the_token(gateway):
    wallet = gateway.wallet()
    domain_key = gateway.tomls.serve_signing_key("wallet.test")
    token = await wallet.token(wallet.keypair, domain_key, client_domain="wallet.test")
    assert claims(token)["client_domain"] == "wallet.test"


async def test_client_domain_on_a_local_test_host_over_http(gateway):
    wallet = gateway.wallet()
    domain_key = Keypair.random()
    gateway.tomls.serve("localhost:9999", {"SIGNING_KEY": domain_key.public_key}, scheme="http")
    token = await wallet.token(wallet.keypair, domain_key, client_domain="localhost:9999")
    assert claims(token)["client_domain"] == "localhost:9999"


async def test_existing_account_signed_by_a_non_master_signer(gateway):
    wallet = gateway.wallet()
    signer = Keypair.random()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.add_signer(wallet.account, signer.public_key, 1)
    gateway.ledger.set_master_weight(wallet.account, 0)
    gateway.ledger.set_thresholds(wallet.account, 1, 1, 1)
    assert claims(await wallet.token(signer))["sub"] == wallet.account


async def test_existing_account_with_several_signers_meeting_the_medium_threshold(gateway):
    wallet = gateway.wallet()
    a, b = Keypair.random(), Keypair.random()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.add_signer(wallet.account, a.public_key, 1)
    gateway.ledger.add_signer(wallet.account, b.public_key, 1)
    gateway.ledger.set_thresholds(wallet.account, 1, 2, 3)
    assert claims(await wallet.token(a, b))["sub"] == wallet.account


async def test_existing_account_with_zero_thresholds_still_needs_a_client_signature(gateway):
    wallet = gateway.wallet()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.set_thresholds(wallet.account, 0, 0, 0)
    assert claims(await wallet.token())["sub"] == wallet.account
    xdr = await wallet.challenge()
    assert "not signed by any client signer" in await post_error(wallet, xdr)


async def test_existing_account_with_a_client_domain(gateway):
    wallet = gateway.wallet()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    domain_key = gateway.tomls.serve_signing_key("wallet.test")
    token = await wallet.token(wallet.keypair, domain_key, client_domain="wallet.test")
    assert claims(token)["client_domain"] == "wallet.test"


async def test_challenge_from_the_future_is_refused(gateway):
    wallet = gateway.wallet()
    now = int(time.time())
    xdr = craft(gateway, wallet.account, min_time=now + 400, max_time=now + 1300)
    assert "timebounds" in await post_error(wallet, xdr, wallet.keypair)


async def test_every_challenge_carries_the_required_shape(gateway):
    wallet = gateway.wallet()
    before = int(time.time())
    xdr = await wallet.challenge()
    after = int(time.time())
    envelope = TransactionEnvelope.from_xdr(xdr, gateway.settings.network_passphrase)
    tx = envelope.transaction
    assert tx.sequence == 0
    assert tx.source.account_id == gateway.server_key
    assert before <= tx.preconditions.time_bounds.min_time <= after
    assert tx.preconditions.time_bounds.max_time == tx.preconditions.time_bounds.min_time + 900
    first, second = tx.operations
    assert first.data_name == "localhost:8000 auth" and len(first.data_value) == 64
    assert len(base64.b64decode(first.data_value)) == 48
    assert second.data_name == "web_auth_domain" and second.data_value == b"localhost:8000"
    assert len(envelope.signatures) == 1


# -- GET rejections -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"account": None}, "account: is required"),
        ({"account": "invalid-account"}, "account: must be a valid G... or M... Stellar account"),
        ({"memo": "abc"}, "memo: must be a positive integer"),
        ({"memo": "0"}, "memo: must be between 1 and 18446744073709551615"),
        ({"memo": "18446744073709551616"}, "memo: must be between 1"),
        ({"memo": "-1"}, "memo: must be a positive integer"),
        ({"home_domain": "evil.test"}, "home_domain: is not served here; use localhost:8000"),
        ({"client_domain": "https://wallet.test"}, "client_domain: "),
        (
            {"client_domain": "missing.test"},
            "client_domain: stellar.toml of missing.test could not",
        ),
    ],
)
async def test_bad_challenge_requests_answer_400_json(gateway, params, message):
    response = await gateway.wallet().get_challenge(**params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json()["error"].startswith(message)


async def test_memo_is_refused_with_a_muxed_account(gateway):
    wallet = gateway.wallet()
    response = await wallet.get_challenge(account=wallet.muxed(5), memo="7")
    assert response.status_code == 400
    assert response.json() == {"error": "memo: must not be sent with a muxed (M...) account"}


async def test_server_key_cannot_ask_for_a_challenge(gateway):
    response = await gateway.wallet().get_challenge(account=gateway.server_key)
    assert response.status_code == 400
    assert response.json()["error"] == "account: must not be the server's signing key"


async def test_client_domain_whose_toml_names_our_key_is_refused(gateway):
    gateway.tomls.serve("copycat.test", {"SIGNING_KEY": gateway.server_key})
    response = await gateway.wallet().get_challenge(client_domain="copycat.test")
    assert response.status_code == 400
    assert "this server's own key" in response.json()["error"]


async def test_client_domain_without_a_signing_key_is_refused(gateway):
    gateway.tomls.serve("nokey.test", {"ORG_NAME": "x"})
    response = await gateway.wallet().get_challenge(client_domain="nokey.test")
    assert response.status_code == 400
    assert "no valid SIGNING_KEY" in response.json()["error"]


class TestRequiredClientDomain:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_SEP10_CLIENT_DOMAIN": "required"}

    async def test_challenge_without_client_domain_is_refused(self, gateway):
        response = await gateway.wallet().get_challenge()
        assert response.status_code == 400
        assert response.json() == {"error": "client_domain: is required by this server"}


class TestClientDomainOff:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_SEP10_CLIENT_DOMAIN": "off"}

    async def test_client_domain_is_ignored(self, gateway):
        wallet = gateway.wallet()
        token = await wallet.token(client_domain="unreachable.test")
        assert "client_domain" not in claims(token)


class TestSeveralHomeDomains:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_SEP10_OTHER_HOME_DOMAINS": "pay.anchor.test"}

    async def test_the_requested_home_domain_names_the_challenge(self, gateway):
        wallet = gateway.wallet()
        wallet.home_domain = "pay.anchor.test"
        token = await wallet.token(home_domain="pay.anchor.test")
        assert claims(token)["home_domain"] == "pay.anchor.test"


# -- POST rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "transaction: is required"),
        ({"transaction": {"not a transaction string": True}}, "transaction: is required"),
        ({"transaction": "not base64!"}, "transaction: is not valid base64"),
        ({"transaction": "AAAA"}, "transaction: is not a valid XDR TransactionEnvelope"),
    ],
)
async def test_malformed_token_requests_answer_400(gateway, body, message):
    response = await gateway.client.post("/auth", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


async def test_non_object_or_broken_json_answers_400(gateway):
    for content in (b"[1,2]", b"{bad json", b"\xff"):
        response = await gateway.client.post(
            "/auth", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]


async def test_wrong_content_type_answers_400(gateway):
    response = await gateway.client.post(
        "/auth", content=b"transaction=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("Content-Type must be")


async def test_unsigned_challenge_is_refused(gateway):
    wallet = gateway.wallet()
    error = await post_error(wallet, await wallet.challenge())
    assert error.startswith("invalid challenge:")


async def test_challenge_not_signed_by_the_server_is_refused(gateway):
    wallet = gateway.wallet()
    impostor = Keypair.random()
    xdr = build_challenge_transaction(
        impostor.secret,
        wallet.account,
        "localhost:8000",
        "localhost:8000",
        gateway.settings.network_passphrase,
    )
    assert "source account is not equal" in await post_error(wallet, xdr, wallet.keypair)


async def test_challenge_signed_for_another_network_is_refused(gateway):
    wallet = gateway.wallet()
    xdr = craft(gateway, wallet.account, passphrase=Network.PUBLIC_NETWORK_PASSPHRASE)
    envelope = TransactionEnvelope.from_xdr(xdr, Network.PUBLIC_NETWORK_PASSPHRASE)
    envelope.sign(wallet.keypair)
    assert "not signed by server" in await post_error(wallet, envelope.to_xdr())


async def test_expired_challenge_is_refused(gateway):
    wallet = gateway.wallet()
    now = int(time.time())
    xdr = craft(gateway, wallet.account, min_time=now - 1000, max_time=now - 100)
    assert "timebounds" in await post_error(wallet, xdr, wallet.keypair)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"home": "evil.test"}, "expected home domain"),
        ({"web_auth": "evil.test"}, "'web_auth_domain' operation value does not match"),
        ({"sequence": 5}, "sequence number should be zero"),
        ({"nonce": b"short"}, "64 bytes long"),
    ],
)
async def test_server_signed_but_malformed_challenges_are_refused(gateway, change, message):
    wallet = gateway.wallet()
    xdr = craft(gateway, wallet.account, **change)
    assert message in await post_error(wallet, xdr, wallet.keypair)


async def test_challenge_with_foreign_operations_is_refused(gateway):
    wallet = gateway.wallet()
    extra = ManageData("sneaky", b"x", source=wallet.account)
    xdr = craft(gateway, wallet.account, extra_ops=[extra])
    assert "unrecognized" in await post_error(wallet, xdr, wallet.keypair)


async def test_client_domain_operation_sourced_by_the_server_is_refused(gateway):
    wallet = gateway.wallet()
    extra = ManageData("client_domain", b"wallet.test", source=gateway.server_key)
    xdr = craft(gateway, wallet.account, extra_ops=[extra])
    assert "client_domain operation must be sourced" in await post_error(
        wallet, xdr, wallet.keypair
    )


async def test_client_domain_challenge_without_the_domain_signature_is_refused(gateway):
    wallet = gateway.wallet()
    gateway.tomls.serve_signing_key("wallet.test")
    xdr = await wallet.challenge(client_domain="wallet.test")
    assert "exactly 3 signatures" in await post_error(wallet, xdr, wallet.keypair)
    gateway.ledger.create_account(wallet.account, Decimal(10))
    xdr = await wallet.challenge(client_domain="wallet.test")
    assert "client_domain" in await post_error(wallet, xdr, wallet.keypair)


async def test_client_account_equal_to_the_server_key_is_refused(gateway):
    wallet = gateway.wallet(gateway.settings.signing_keypair)
    xdr = craft(gateway, gateway.server_key)
    assert "server's signing key" in await post_error(wallet, xdr)


async def test_fee_bump_envelope_is_refused(gateway):
    wallet = gateway.wallet()
    inner = TransactionEnvelope.from_xdr(
        wallet.sign(await wallet.challenge()), gateway.settings.network_passphrase
    )
    fee_bump = TransactionBuilder.build_fee_bump_transaction(
        wallet.account, 200, inner, gateway.settings.network_passphrase
    )
    fee_bump.sign(wallet.keypair)
    assert "not a fee bump" in await post_error(wallet, fee_bump.to_xdr())


async def test_new_account_with_an_extra_signature_is_refused(gateway):
    wallet = gateway.wallet()
    xdr = await wallet.challenge()
    assert "exactly 2 signatures" in await post_error(wallet, xdr, wallet.keypair, Keypair.random())


def signed_twice(wallet, xdr: str, signer: Keypair) -> str:
    envelope = TransactionEnvelope.from_xdr(xdr, wallet.passphrase)
    signature = signer.sign_decorated(envelope.hash())
    envelope.signatures.extend([signature, signature])
    return envelope.to_xdr()


async def test_new_account_signed_twice_by_its_key_is_refused(gateway):
    wallet = gateway.wallet()
    xdr = signed_twice(wallet, await wallet.challenge(), wallet.keypair)
    assert "exactly 2 signatures" in await post_error(wallet, xdr)


async def test_existing_account_below_the_medium_threshold_is_refused(gateway):
    wallet = gateway.wallet()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.set_thresholds(wallet.account, 2, 2, 2)
    xdr = await wallet.challenge()
    assert "do not meet threshold" in await post_error(wallet, xdr, wallet.keypair)


async def test_existing_account_signed_twice_by_one_signer_is_refused(gateway):
    wallet = gateway.wallet()
    signer = Keypair.random()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.add_signer(wallet.account, signer.public_key, 1)
    gateway.ledger.set_thresholds(wallet.account, 2, 2, 2)
    xdr = signed_twice(wallet, await wallet.challenge(), signer)
    assert "unrecognized signatures" in await post_error(wallet, xdr)


async def test_disabled_master_key_cannot_authenticate(gateway):
    wallet = gateway.wallet()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.add_signer(wallet.account, Keypair.random().public_key, 1)
    gateway.ledger.set_master_weight(wallet.account, 0)
    xdr = await wallet.challenge()
    assert "invalid challenge" in await post_error(wallet, xdr, wallet.keypair)


async def test_server_key_as_a_signer_of_the_client_account_does_not_help(gateway):
    wallet = gateway.wallet()
    gateway.ledger.create_account(wallet.account, Decimal(100))
    gateway.ledger.add_signer(wallet.account, gateway.server_key, 10)
    gateway.ledger.set_thresholds(wallet.account, 5, 5, 5)
    xdr = await wallet.challenge()
    assert "invalid challenge" in await post_error(wallet, xdr, wallet.keypair)


async def test_a_challenge_yields_one_token_only(gateway):
    wallet = gateway.wallet()
    signed = wallet.sign(await wallet.challenge())
    first = await wallet.post(signed)
    assert first.status_code == 200
    again = await wallet.post(signed)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid challenge: this challenge has already been used"}


async def test_a_failed_attempt_does_not_burn_the_challenge(gateway):
    wallet = gateway.wallet()
    xdr = await wallet.challenge()
    assert (await wallet.post(xdr)).status_code == 400  # unsigned
    assert (await wallet.post(wallet.sign(xdr))).status_code == 200


async def test_horizon_outage_answers_503_and_issues_nothing(gateway):
    wallet = gateway.wallet()
    signed = wallet.sign(await wallet.challenge())
    gateway.horizon_transport.faults.add(
        "status", method="GET", path="/accounts", status=503, count=1
    )
    response = await wallet.post(signed)
    assert response.status_code == 503
    assert response.json() == {"error": "Horizon is unavailable; try again later"}
    assert (await wallet.post(signed)).status_code == 200


async def test_muxed_challenge_with_a_memo_is_refused(gateway):
    wallet = gateway.wallet()
    muxed = MuxedAccount(wallet.account, 9).account_muxed
    xdr = craft(gateway, muxed, memo=5)
    assert "memos are not permitted" in await post_error(wallet, xdr, wallet.keypair)
