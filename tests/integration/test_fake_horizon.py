"""The fake Horizon: stellar-core's result codes for real envelopes, Horizon's JSON, paging,
fault injection, the admin API and the standalone server."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from stellar_sdk import Account as SdkAccount
from stellar_sdk import (
    AccountMerge,
    Asset,
    ChangeTrust,
    CreateAccount,
    IdMemo,
    Keypair,
    ManageData,
    ManageSellOffer,
    Memo,
    MuxedAccount,
    Network,
    Operation,
    Payment,
    SetOptions,
    Signer,
    TextMemo,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk import xdr as sx

from gateway.sandbox.horizon import (
    FakeHorizonTransport,
    FakeLedger,
    FaultInjector,
    create_fake_horizon_app,
)
from tests.fakes.horizon import funded

PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
NOW = 1_700_000_000
BASE = "http://horizon.test"


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> FakeLedger:
    return FakeLedger(PASSPHRASE, clock=clock)


@pytest.fixture
async def client(ledger: FakeLedger) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=FakeHorizonTransport(ledger), base_url=BASE) as c:
        yield c


def build(
    ledger: FakeLedger,
    source: Keypair,
    *ops: Operation,
    signers: Iterable[Keypair] | None = None,
    fee: int = 100,
    sequence: int | None = None,
    memo: Memo | None = None,
    time_bounds: tuple[int, int] = (0, 0),
    ledger_bounds: tuple[int, int] | None = None,
    muxed_id: int | None = None,
    passphrase: str = PASSPHRASE,
) -> TransactionEnvelope:
    """A signed envelope from ``source`` (signed by ``source`` unless ``signers`` given)."""
    account_id = source.public_key
    current = ledger.sequence_of(account_id) if sequence is None else sequence
    muxed = MuxedAccount(account_id, muxed_id) if muxed_id is not None else account_id
    builder = TransactionBuilder(SdkAccount(muxed, current), passphrase, base_fee=fee)
    for op in ops:
        builder.append_operation(op)
    if memo is not None:
        builder.add_memo(memo)
    builder.add_time_bounds(*time_bounds)
    if ledger_bounds is not None:
        builder.set_ledger_bounds(*ledger_bounds)
    envelope = builder.build()
    for keypair in [source] if signers is None else signers:
        envelope.sign(keypair)
    return envelope


def pay(dest: str, amount: str, asset: Asset | None = None, source: str | None = None) -> Payment:
    return Payment(dest, asset or Asset.native(), amount, source=source)


def codes(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = body["extras"]["result_codes"]
    return result


def submit(ledger: FakeLedger, envelope: TransactionEnvelope) -> tuple[int, dict[str, Any]]:
    return ledger.submit(envelope.to_xdr())


# ----------------------------------------------------------------------------- success


def test_payment_moves_xlm_closes_a_ledger_and_answers_horizon_json(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger, "5")
    before_seq = ledger.sequence_of(alice.public_key)
    envelope = build(ledger, alice, pay(bob.public_key, "10.5"), memo=TextMemo("invoice 7"))

    status, body = submit(ledger, envelope)

    assert status == 200
    assert body["hash"] == body["id"] == envelope.hash_hex()
    assert body["successful"] is True
    assert body["ledger"] == 2 == ledger.ledger_sequence
    assert body["created_at"] == "2023-11-14T22:13:20Z"
    assert body["fee_charged"] == "100" and body["max_fee"] == "100"
    assert body["source_account"] == alice.public_key
    assert body["source_account_sequence"] == str(before_seq + 1)
    assert body["memo_type"] == "text" and body["memo"] == "invoice 7"
    assert body["memo_bytes"] == base64.b64encode(b"invoice 7").decode()
    assert body["envelope_xdr"] == envelope.to_xdr()
    assert body["paging_token"] == str((2 << 32) | (1 << 12))
    result = sx.TransactionResult.from_xdr(body["result_xdr"])
    assert result.result.code == sx.TransactionResultCode.txSUCCESS
    assert result.fee_charged.int64 == 100
    assert result.result.results is not None
    tr = result.result.results[0].tr
    assert tr is not None and tr.payment_result is not None
    assert tr.payment_result.code == sx.PaymentResultCode.PAYMENT_SUCCESS
    assert ledger.balance_of(alice.public_key) == Decimal("89.49999")
    assert ledger.balance_of(bob.public_key) == Decimal("15.5")
    assert ledger.sequence_of(alice.public_key) == before_seq + 1


def test_resubmitting_an_applied_envelope_returns_the_original_success(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger)
    envelope = build(ledger, alice, pay(bob.public_key, "1"))
    first = submit(ledger, envelope)
    other = build(ledger, alice, pay(bob.public_key, "1"))
    assert submit(ledger, other)[0] == 200  # the account moved on since

    again = submit(ledger, envelope)

    assert again == first
    assert ledger.balance_of(bob.public_key) == Decimal("102")


def test_a_batch_of_100_payments_moves_every_balance(ledger: FakeLedger) -> None:
    issuer, dist = funded(ledger), funded(ledger)
    usdc = Asset("USDC", issuer.public_key)
    ledger.issue(issuer.public_key, dist.public_key, "USDC", "100000")
    recipients = [funded(ledger, "2").public_key for _ in range(100)]
    for account_id in recipients:
        ledger.add_trustline(account_id, "USDC", issuer.public_key)
    ops = [pay(r, f"{i + 1}.0000001", usdc) for i, r in enumerate(recipients)]

    status, body = submit(ledger, build(ledger, dist, *ops))

    assert status == 200 and body["operation_count"] == 100 and body["fee_charged"] == "10000"
    for i, account_id in enumerate(recipients):
        assert ledger.balance_of(account_id, "USDC", issuer.public_key) == Decimal(i + 1) + Decimal(
            "0.0000001"
        )
    sent = sum(Decimal(i + 1) + Decimal("0.0000001") for i in range(100))
    assert ledger.balance_of(dist.public_key, "USDC", issuer.public_key) == 100000 - sent
    assert ledger.balance_of(dist.public_key) == Decimal("99.999")


def test_muxed_source_and_destination_resolve_to_their_accounts(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger)
    to_muxed = MuxedAccount(bob.public_key, 42)
    envelope = build(ledger, alice, Payment(to_muxed, Asset.native(), "3"), muxed_id=7)

    status, body = submit(ledger, envelope)

    assert status == 200
    assert body["source_account"] == alice.public_key
    assert body["account_muxed"] == MuxedAccount(alice.public_key, 7).account_muxed
    assert body["account_muxed_id"] == "7"
    assert ledger.balance_of(bob.public_key) == Decimal("103")
    [record] = ledger.payments(bob.public_key)
    assert record.body["to"] == bob.public_key
    assert record.body["to_muxed"] == to_muxed.account_muxed
    assert record.body["to_muxed_id"] == "42"
    assert record.body["from_muxed_id"] == "7"


def test_fee_bump_charges_the_fee_source_and_consumes_the_inner_sequence(
    ledger: FakeLedger,
) -> None:
    alice, bob, sponsor = funded(ledger), funded(ledger), funded(ledger)
    inner = build(ledger, alice, pay(bob.public_key, "1"))
    bump = TransactionBuilder.build_fee_bump_transaction(sponsor.public_key, 300, inner, PASSPHRASE)
    bump.sign(sponsor)

    status, body = ledger.submit(bump.to_xdr())

    assert status == 200, body
    assert body["hash"] == bump.hash_hex()
    assert body["fee_account"] == sponsor.public_key
    assert body["fee_charged"] == "200"  # base fee x (1 operation + 1)
    assert body["inner_transaction"]["hash"] == inner.hash_hex()
    assert ledger.balance_of(sponsor.public_key) == Decimal("99.99998")
    assert ledger.balance_of(alice.public_key) == Decimal("99")
    assert ledger.applied(inner.hash_hex()) is ledger.applied(bump.hash_hex())
    result = sx.TransactionResult.from_xdr(body["result_xdr"])
    assert result.result.code == sx.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS

    stale = build(ledger, alice, pay(bob.public_key, "1"), sequence=1)
    bump2 = TransactionBuilder.build_fee_bump_transaction(
        sponsor.public_key, 300, stale, PASSPHRASE
    )
    bump2.sign(sponsor)
    status, body = ledger.submit(bump2.to_xdr())
    assert status == 400
    assert codes(body) == {
        "transaction": "tx_fee_bump_inner_failed",
        "inner_transaction": "tx_bad_seq",
    }


# ----------------------------------------------------------------------------- rejections


def test_bad_sequence_is_rejected_without_charging(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger)
    current = ledger.sequence_of(alice.public_key)

    for sequence in (current + 1, current - 1):  # one too far ahead, one already used
        status, body = submit(
            ledger, build(ledger, alice, pay(bob.public_key, "1"), sequence=sequence)
        )
        assert status == 400
        assert body["type"] == "https://stellar.org/horizon-errors/transaction_failed"
        assert body["title"] == "Transaction Failed"
        assert codes(body) == {"transaction": "tx_bad_seq"}
        assert body["extras"]["envelope_xdr"]
        result = sx.TransactionResult.from_xdr(body["extras"]["result_xdr"])
        assert result.result.code == sx.TransactionResultCode.txBAD_SEQ
    assert ledger.balance_of(alice.public_key) == Decimal("100")
    assert ledger.sequence_of(alice.public_key) == current
    assert ledger.ledger_sequence == 1


def test_fee_must_cover_the_current_base_fee_per_operation(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger)
    low = build(ledger, alice, pay(bob.public_key, "1"), pay(bob.public_key, "1"), fee=99)
    assert codes(submit(ledger, low)[1]) == {"transaction": "tx_insufficient_fee"}

    ledger.set_base_fee(250)  # surge pricing
    normal = build(ledger, alice, pay(bob.public_key, "1"), fee=100)
    assert codes(submit(ledger, normal)[1]) == {"transaction": "tx_insufficient_fee"}
    status, body = submit(ledger, build(ledger, alice, pay(bob.public_key, "1"), fee=400))
    assert status == 200 and body["fee_charged"] == "250" and body["max_fee"] == "400"


def test_unknown_source_account(ledger: FakeLedger) -> None:
    ghost, bob = Keypair.random(), funded(ledger)
    envelope = build(ledger, ghost, pay(bob.public_key, "1"), sequence=5)
    assert codes(submit(ledger, envelope)[1]) == {"transaction": "tx_no_source_account"}


def test_signatures_are_checked_against_the_network_and_the_signers(ledger: FakeLedger) -> None:
    alice, bob, mallory = funded(ledger), funded(ledger), Keypair.random()
    op = pay(bob.public_key, "1")

    assert codes(submit(ledger, build(ledger, alice, op, signers=[mallory]))[1]) == {
        "transaction": "tx_bad_auth"
    }
    assert codes(submit(ledger, build(ledger, alice, op, signers=[]))[1]) == {
        "transaction": "tx_bad_auth"
    }
    public_net = build(ledger, alice, op, passphrase=Network.PUBLIC_NETWORK_PASSPHRASE)
    assert codes(submit(ledger, public_net)[1]) == {"transaction": "tx_bad_auth"}
    extra = build(ledger, alice, op, signers=[alice, mallory])
    assert codes(submit(ledger, extra)[1]) == {"transaction": "tx_bad_auth_extra"}
    assert ledger.balance_of(alice.public_key) == Decimal("100")


def test_time_and_ledger_bounds(ledger: FakeLedger, clock: Clock) -> None:
    alice, bob = funded(ledger), funded(ledger)
    op = pay(bob.public_key, "1")
    late = build(ledger, alice, op, time_bounds=(0, NOW - 1))
    early = build(ledger, alice, op, time_bounds=(NOW + 60, 0))
    past_ledger = build(ledger, alice, op, ledger_bounds=(0, 2))  # valid before ledger 2 only

    assert codes(submit(ledger, late)[1]) == {"transaction": "tx_too_late"}
    assert codes(submit(ledger, early)[1]) == {"transaction": "tx_too_early"}
    assert codes(submit(ledger, past_ledger)[1]) == {"transaction": "tx_too_late"}
    clock.now = NOW + 61
    assert submit(ledger, early)[0] == 200


def test_fee_cannot_eat_into_the_reserve(ledger: FakeLedger) -> None:
    poor, bob = funded(ledger, "1.0000099"), funded(ledger)  # minimum balance is 1 XLM
    envelope = build(ledger, poor, pay(bob.public_key, "0.0000001"))
    assert codes(submit(ledger, envelope)[1]) == {"transaction": "tx_insufficient_balance"}


def test_malformed_envelopes_get_horizons_malformed_problem(ledger: FakeLedger) -> None:
    for junk in ("", "not base64!", base64.b64encode(b"\x00\x00\x00\x02hello").decode()):
        status, body = ledger.submit(junk)
        assert status == 400
        assert body["type"] == "https://stellar.org/horizon-errors/transaction_malformed"
        assert body["title"] == "Transaction Malformed"
        assert body["extras"] == {"envelope_xdr": junk}


# ----------------------------------------------------------------------------- failed operations


def test_failed_operation_charges_fee_consumes_sequence_and_replays(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger, "10"), funded(ledger)
    sequence = ledger.sequence_of(alice.public_key)
    envelope = build(ledger, alice, pay(bob.public_key, "9.5"))  # would leave < 1 XLM reserve

    status, body = submit(ledger, envelope)

    assert status == 400
    assert codes(body) == {"transaction": "tx_failed", "operations": ["op_underfunded"]}
    result = sx.TransactionResult.from_xdr(body["extras"]["result_xdr"])
    assert result.result.code == sx.TransactionResultCode.txFAILED
    assert ledger.balance_of(alice.public_key) == Decimal("9.99999")
    assert ledger.balance_of(bob.public_key) == Decimal("100")
    assert ledger.sequence_of(alice.public_key) == sequence + 1
    record = ledger.applied(envelope.hash_hex())
    assert record is not None and not record.successful and record.ledger == 2
    assert submit(ledger, envelope) == (status, body)  # stored result, not tx_bad_seq


def test_operations_are_atomic_and_every_result_is_reported(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger)
    nobody = Keypair.random().public_key
    envelope = build(
        ledger, alice, pay(bob.public_key, "1"), pay(nobody, "1"), pay(bob.public_key, "1")
    )

    body = submit(ledger, envelope)[1]

    assert codes(body)["operations"] == ["op_success", "op_no_destination", "op_success"]
    assert ledger.balance_of(bob.public_key) == Decimal("100")
    assert ledger.balance_of(alice.public_key) == Decimal("99.99997")
    assert ledger.payments(bob.public_key) == []


def test_credit_payment_result_codes(ledger: FakeLedger) -> None:
    issuer, alice, bob = funded(ledger), funded(ledger), funded(ledger)
    usdc = Asset("USDC", issuer.public_key)
    ghost_asset = Asset("GHOST", Keypair.random().public_key)
    ledger.add_trustline(alice.public_key, "USDC", issuer.public_key, balance="50")
    ledger.add_trustline(alice.public_key, "GHOST", ghost_asset.issuer or "", balance="5")

    def one(source: Keypair, op: Operation) -> str:
        body = submit(ledger, build(ledger, source, op))[1]
        return "op_success" if "extras" not in body else codes(body)["operations"][0]

    assert one(alice, pay(bob.public_key, "1", usdc)) == "op_no_trust"
    ledger.add_trustline(bob.public_key, "USDC", issuer.public_key, limit="10")
    assert one(alice, pay(bob.public_key, "11", usdc)) == "op_line_full"
    assert one(alice, pay(bob.public_key, "60", usdc)) == "op_line_full"
    assert one(bob, pay(alice.public_key, "1", usdc)) == "op_underfunded"
    assert one(alice, pay(bob.public_key, "1", ghost_asset)) == "op_no_issuer"
    carol = funded(ledger)
    assert one(carol, pay(bob.public_key, "1", usdc)) == "op_src_no_trust"
    ledger.authorize(bob.public_key, "USDC", issuer.public_key, False)
    assert one(alice, pay(bob.public_key, "1", usdc)) == "op_not_authorized"
    ledger.authorize(bob.public_key, "USDC", issuer.public_key, True)
    assert one(issuer, pay(bob.public_key, "10", usdc)) == "op_success"  # issuers mint
    assert one(bob, pay(issuer.public_key, "4", usdc)) == "op_success"  # and burn
    assert ledger.balance_of(bob.public_key, "USDC", issuer.public_key) == Decimal("6")
    assert ledger.balance_of(alice.public_key, "USDC", issuer.public_key) == Decimal("50")


def test_create_account_result_codes(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger, "20"), funded(ledger)
    fresh = Keypair.random().public_key

    def one(op: Operation) -> str:
        body = submit(ledger, build(ledger, alice, op))[1]
        return "op_success" if "extras" not in body else codes(body)["operations"][0]

    assert one(CreateAccount(bob.public_key, "5")) == "op_already_exists"
    assert one(CreateAccount(fresh, "0.9999999")) == "op_low_reserve"
    assert one(CreateAccount(fresh, "19")) == "op_underfunded"
    assert one(CreateAccount(fresh, "1")) == "op_success"
    assert ledger.balance_of(fresh) == Decimal("1")
    assert ledger.sequence_of(fresh) == ledger.ledger_sequence << 32
    [record] = ledger.payments(fresh)
    assert record.body["type"] == "create_account" and record.body["type_i"] == 0
    assert record.body["funder"] == alice.public_key
    assert record.body["starting_balance"] == "1.0000000"


def test_trustlines_data_and_merge(ledger: FakeLedger) -> None:
    issuer, alice, bob = funded(ledger), funded(ledger, "1.6"), funded(ledger)
    usdc = Asset("USDC", issuer.public_key)

    def one(source: Keypair, *ops: Operation) -> list[str]:
        body = submit(ledger, build(ledger, source, *ops))[1]
        return ["op_success"] * len(ops) if "extras" not in body else codes(body)["operations"]

    assert one(alice, ChangeTrust(usdc, "1000")) == ["op_success"]
    account = ledger.account(alice.public_key)
    assert account is not None and account.subentry_count == 1
    # 1.6 XLM minus fees cannot carry a fourth reserve (2 + 2 subentries = 2 XLM).
    assert one(alice, ManageData("k", b"v")) == ["op_low_reserve"]
    ledger.set_balance(alice.public_key, "10")
    assert one(alice, ManageData("k", b"v")) == ["op_success"]
    assert one(alice, ManageData("missing", None)) == ["op_data_name_not_found"]
    assert one(alice, AccountMerge(bob.public_key)) == ["op_has_sub_entries"]
    assert one(alice, ChangeTrust(usdc, "0"), ManageData("k", None)) == ["op_success"] * 2
    assert one(alice, ChangeTrust(usdc, "0")) == ["op_trust_line_missing"]

    before = ledger.balance_of(bob.public_key)
    assert one(alice, AccountMerge(bob.public_key)) == ["op_success"]
    assert ledger.account(alice.public_key) is None
    assert ledger.balance_of(bob.public_key) == before + Decimal("9.99993")  # 10 - 7 fees
    merges = [r for r in ledger.payments(bob.public_key) if r.body["type"] == "account_merge"]
    assert merges[0].body["into"] == bob.public_key and merges[0].body["type_i"] == 8
    assert one(bob, ManageSellOffer(Asset.native(), usdc, "1", "1")) == ["op_not_supported"]


def test_multisig_thresholds(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger), funded(ledger)
    cosigner, third = Keypair.random(), Keypair.random()
    ledger.add_signer(alice.public_key, cosigner.public_key, 1)
    ledger.set_thresholds(alice.public_key, low=1, med=2, high=3)
    sequence = ledger.sequence_of(alice.public_key)
    payment = pay(bob.public_key, "1")

    # Low threshold passes, so the transaction is valid, but the payment needs medium (2):
    # stellar-core rejects it at validation, without fee or sequence.
    body = submit(ledger, build(ledger, alice, payment))[1]
    assert codes(body) == {"transaction": "tx_failed", "operations": ["op_bad_auth"]}
    assert ledger.sequence_of(alice.public_key) == sequence
    assert ledger.balance_of(alice.public_key) == Decimal("100")

    assert submit(ledger, build(ledger, alice, payment, signers=[alice, cosigner]))[0] == 200
    assert submit(ledger, build(ledger, alice, payment, signers=[cosigner, alice]))[0] == 200

    add_third = SetOptions(signer=Signer.ed25519_public_key(third.public_key, 1))
    body = submit(ledger, build(ledger, alice, add_third, signers=[alice, cosigner]))[1]
    assert codes(body)["operations"] == ["op_bad_auth"]  # signers need high (3)
    ledger.set_thresholds(alice.public_key, high=2)
    assert submit(ledger, build(ledger, alice, add_third, signers=[alice, cosigner]))[0] == 200
    account = ledger.account(alice.public_key)
    assert account is not None
    assert account.signers == {cosigner.public_key: 1, third.public_key: 1}

    ledger.set_master_weight(alice.public_key, 0)
    assert codes(submit(ledger, build(ledger, alice, payment))[1]) == {"transaction": "tx_bad_auth"}
    assert submit(ledger, build(ledger, alice, payment, signers=[cosigner, third]))[0] == 200
    # The same signature twice still counts once.
    twice = build(ledger, alice, payment, signers=[cosigner])
    twice.signatures.append(twice.signatures[0])
    assert codes(submit(ledger, twice)[1]) == {
        "transaction": "tx_failed",
        "operations": ["op_bad_auth"],
    }


def test_operation_source_accounts_need_their_own_signatures(ledger: FakeLedger) -> None:
    alice, bob, carol = funded(ledger), funded(ledger), funded(ledger)
    from_bob = pay(carol.public_key, "2", source=bob.public_key)

    body = submit(ledger, build(ledger, alice, from_bob))[1]
    assert codes(body) == {"transaction": "tx_failed", "operations": ["op_bad_auth"]}
    assert submit(ledger, build(ledger, alice, from_bob, signers=[alice, bob]))[0] == 200
    assert ledger.balance_of(bob.public_key) == Decimal("98")
    assert ledger.balance_of(alice.public_key) == Decimal("99.99999")


# ----------------------------------------------------------------------------- HTTP reads


async def test_account_resource_and_not_found(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    issuer, alice = funded(ledger), funded(ledger)
    ledger.add_trustline(alice.public_key, "USDC", issuer.public_key, limit="500", balance="12.5")
    ledger.add_signer(alice.public_key, issuer.public_key, 2)
    ledger.set_thresholds(alice.public_key, 1, 2, 3)

    response = await client.get(f"/accounts/{alice.public_key}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/hal+json")
    body = response.json()
    assert body["id"] == body["account_id"] == alice.public_key
    assert body["sequence"] == str(1 << 32)
    assert body["subentry_count"] == 2
    assert body["thresholds"] == {"low_threshold": 1, "med_threshold": 2, "high_threshold": 3}
    assert body["balances"][0] == {
        "balance": "12.5000000",
        "limit": "500.0000000",
        "buying_liabilities": "0.0000000",
        "selling_liabilities": "0.0000000",
        "last_modified_ledger": 1,
        "is_authorized": True,
        "is_authorized_to_maintain_liabilities": True,
        "asset_type": "credit_alphanum4",
        "asset_code": "USDC",
        "asset_issuer": issuer.public_key,
    }
    assert body["balances"][-1]["asset_type"] == "native"
    assert body["balances"][-1]["balance"] == "100.0000000"
    assert {"weight": 2, "key": issuer.public_key, "type": "ed25519_public_key"} in body["signers"]
    assert body["signers"][-1] == {
        "weight": 1,
        "key": alice.public_key,
        "type": "ed25519_public_key",
    }

    missing = await client.get(f"/accounts/{Keypair.random().public_key}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["type"] == "https://stellar.org/horizon-errors/not_found"
    assert missing.json()["title"] == "Resource Missing"
    invalid = await client.get("/accounts/GNOTANACCOUNT")
    assert invalid.status_code == 400
    assert invalid.json()["extras"]["invalid_field"] == "account_id"


async def test_submit_and_lookup_over_http(ledger: FakeLedger, client: httpx.AsyncClient) -> None:
    alice, bob = funded(ledger), funded(ledger)
    envelope = build(ledger, alice, pay(bob.public_key, "1"), memo=IdMemo(99))

    posted = await client.post("/transactions", data={"tx": envelope.to_xdr()})
    fetched = await client.get(f"/transactions/{envelope.hash_hex()}")

    assert posted.status_code == 200 and fetched.status_code == 200
    assert fetched.json() == posted.json()
    assert fetched.json()["memo"] == "99" and fetched.json()["memo_type"] == "id"
    assert (await client.get(f"/transactions/{'ab' * 32}")).status_code == 404
    assert (await client.get("/transactions/xyz")).status_code == 400
    failed = await client.post("/transactions", data={"tx": envelope.to_xdr()[:-8]})
    assert failed.status_code == 400
    assert failed.json()["type"].endswith("transaction_malformed")
    json_body = await client.post("/transactions", json={"tx": envelope.to_xdr()})
    assert json_body.status_code == 415


async def test_root_fee_stats_and_friendbot(ledger: FakeLedger, client: httpx.AsyncClient) -> None:
    newcomer = Keypair.random().public_key

    funded_ = await client.get("/friendbot", params={"addr": newcomer})
    root = (await client.get("/")).json()
    ledger.set_base_fee(1000)
    stats = (await client.get("/fee_stats")).json()
    again = await client.get("/friendbot", params={"addr": newcomer})

    assert funded_.status_code == 200 and funded_.json()["successful"] is True
    assert ledger.balance_of(newcomer) == Decimal("10000")
    [record] = ledger.payments(newcomer)
    assert record.body["type"] == "create_account"
    assert root["history_latest_ledger"] == root["core_latest_ledger"] == 2
    assert root["history_latest_ledger_closed_at"] == "2023-11-14T22:13:20Z"
    assert root["network_passphrase"] == PASSPHRASE
    assert stats["last_ledger_base_fee"] == "100"  # the network minimum, as in a real surge
    assert stats["fee_charged"]["p50"] == stats["fee_charged"]["p99"] == "1000"
    assert stats["ledger_capacity_usage"] == "1.00"
    assert again.status_code == 400
    assert codes(again.json())["operations"] == ["op_already_exists"]
    assert (await client.get("/friendbot", params={"addr": "nope"})).status_code == 400
    assert (await client.get("/no/such/route")).json()["status"] == 404


# ----------------------------------------------------------------------------- payments paging


def seed_payments(ledger: FakeLedger) -> tuple[Keypair, list[str]]:
    """Three transactions of payments to and from ``hub``, each with a different memo."""
    hub, other = funded(ledger, "1000"), funded(ledger, "1000")
    hashes = []
    memos: list[Memo] = [TextMemo("first"), IdMemo(12345), TextMemo("third")]
    for i, memo in enumerate(memos):
        ops = [pay(hub.public_key, f"{i + 1}.{n:07d}") for n in range(1, 8)]
        ops.append(pay(other.public_key, "1", source=hub.public_key))
        envelope = build(ledger, other, *ops, memo=memo, signers=[other, hub])
        status, body = submit(ledger, envelope)
        assert status == 200, body
        hashes.append(envelope.hash_hex())
    return hub, hashes


async def test_paging_has_no_gaps_or_duplicates(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    hub, hashes = seed_payments(ledger)
    seen: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(10):
        response = await client.get(
            f"/accounts/{hub.public_key}/payments",
            params={"cursor": cursor, "limit": 5, "order": "asc", "join": "transactions"},
        )
        assert response.status_code == 200
        page = response.json()
        records = page["_embedded"]["records"]
        if not records:
            break
        assert page["_links"]["next"]["href"].endswith(
            f"cursor={records[-1]['paging_token']}&limit=5&order=asc&join=transactions"
        )
        seen.extend(records)
        cursor = records[-1]["paging_token"]

    tokens = [int(r["paging_token"]) for r in seen]
    assert len(seen) == 24 and tokens == sorted(set(tokens))
    assert [r["id"] for r in seen] == [r["paging_token"] for r in seen]
    assert {r["transaction_hash"] for r in seen} == set(hashes)
    memos = {r["transaction"]["memo_type"] + ":" + r["transaction"]["memo"] for r in seen}
    assert memos == {"text:first", "id:12345", "text:third"}
    first = seen[0]
    assert first["type"] == "payment" and first["type_i"] == 1
    assert first["transaction_successful"] is True
    assert first["asset_type"] == "native" and first["amount"] == "1.0000001"
    assert first["to"] == hub.public_key and first["created_at"] == "2023-11-14T22:13:20Z"
    assert first["transaction"]["hash"] == hashes[0] and first["transaction"]["ledger"] == 2

    desc = await client.get(
        f"/accounts/{hub.public_key}/payments", params={"order": "desc", "limit": 200}
    )
    assert [int(r["paging_token"]) for r in desc.json()["_embedded"]["records"]] == tokens[::-1]
    assert "transaction" not in desc.json()["_embedded"]["records"][0]
    now = await client.get(f"/accounts/{hub.public_key}/payments", params={"cursor": "now"})
    assert now.json()["_embedded"]["records"] == []
    everyone = await client.get("/payments", params={"limit": 200})
    assert len(everyone.json()["_embedded"]["records"]) == 24
    unknown = await client.get(f"/accounts/{Keypair.random().public_key}/payments")
    assert unknown.status_code == 200 and unknown.json()["_embedded"]["records"] == []
    for bad in ({"limit": "201"}, {"limit": "0"}, {"order": "up"}, {"cursor": "x"}):
        response = await client.get(f"/accounts/{hub.public_key}/payments", params=bad)
        assert response.status_code == 400


def test_failed_transactions_are_only_listed_with_include_failed(ledger: FakeLedger) -> None:
    alice, bob = funded(ledger, "5"), funded(ledger)
    assert submit(ledger, build(ledger, alice, pay(bob.public_key, "50")))[0] == 400
    assert ledger.payments(bob.public_key) == []
    [failed] = ledger.payments(bob.public_key, include_failed=True)
    assert failed.body["transaction_successful"] is False


# ----------------------------------------------------------------------------- faults


async def test_status_faults_answer_horizon_problems_then_stop(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    transport = client._transport
    assert isinstance(transport, FakeHorizonTransport)
    transport.faults.add("status", method="GET", path="/accounts", status=503, count=2)
    transport.faults.add("status", path="/fee_stats", status=429, retry_after=7)
    alice = funded(ledger)

    first = await client.get(f"/accounts/{alice.public_key}")
    second = await client.get(f"/accounts/{alice.public_key}")
    third = await client.get(f"/accounts/{alice.public_key}")
    limited = await client.get("/fee_stats")
    root = await client.get("/")

    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.json()["type"] == "https://stellar.org/horizon-errors/service_unavailable"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["title"] == "Rate Limit Exceeded"
    assert root.status_code == 200
    assert transport.faults.rules[0].hits == 2 and transport.faults.rules[0].count == 0


async def test_timeout_fault_raises_without_applying(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    transport = client._transport
    assert isinstance(transport, FakeHorizonTransport)
    alice, bob = funded(ledger), funded(ledger)
    envelope = build(ledger, alice, pay(bob.public_key, "1"))
    transport.faults.add("timeout", method="POST", path="/transactions", count=1)

    with pytest.raises(httpx.ReadTimeout):
        await client.post("/transactions", data={"tx": envelope.to_xdr()})

    assert ledger.applied(envelope.hash_hex()) is None
    assert (await client.post("/transactions", data={"tx": envelope.to_xdr()})).status_code == 200


async def test_lost_answer_applies_then_times_out(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    transport = client._transport
    assert isinstance(transport, FakeHorizonTransport)
    alice, bob = funded(ledger), funded(ledger)
    envelope = build(ledger, alice, pay(bob.public_key, "1"))
    transport.faults.add("lost_answer", method="POST", path="/transactions", count=1)

    with pytest.raises(httpx.ReadTimeout):
        await client.post("/transactions", data={"tx": envelope.to_xdr()})

    assert ledger.balance_of(bob.public_key) == Decimal("101")  # applied all the same
    lookup = await client.get(f"/transactions/{envelope.hash_hex()}")
    assert lookup.status_code == 200 and lookup.json()["successful"] is True
    retry = await client.post("/transactions", data={"tx": envelope.to_xdr()})
    assert retry.status_code == 200 and retry.json()["ledger"] == lookup.json()["ledger"]
    assert ledger.balance_of(bob.public_key) == Decimal("101")


async def test_lost_answer_with_504_is_horizons_submission_timeout(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    transport = client._transport
    assert isinstance(transport, FakeHorizonTransport)
    alice, bob = funded(ledger), funded(ledger)
    envelope = build(ledger, alice, pay(bob.public_key, "1"))
    transport.faults.add("lost_answer", method="POST", path="/transactions", status=504)

    response = await client.post("/transactions", data={"tx": envelope.to_xdr()})

    assert response.status_code == 504
    body = response.json()
    assert body["type"] == "https://stellar.org/horizon-errors/transaction_submission_timeout"
    assert body["extras"] == {"hash": envelope.hash_hex(), "envelope_xdr": envelope.to_xdr()}
    assert ledger.applied(envelope.hash_hex()) is not None


async def test_probabilistic_faults_repeat_with_the_same_seed(ledger: FakeLedger) -> None:
    async def pattern(seed: int) -> list[int]:
        faults = FaultInjector(seed)
        faults.add("status", path="/", status=503, probability=0.3)
        transport = FakeHorizonTransport(ledger, faults)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            return [(await c.get("/")).status_code for _ in range(40)]

    first, second, other = await pattern(7), await pattern(7), await pattern(8)

    assert first == second
    assert first != other
    assert 0 < first.count(503) < 40 and set(first) == {200, 503}


async def test_server_mode_timeout_waits_then_answers_504(ledger: FakeLedger) -> None:
    faults = FaultInjector()
    app = create_fake_horizon_app(ledger, faults, fault_timeout=0.05)
    faults.add("timeout", path="/fee_stats", count=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        started = time.monotonic()
        response = await c.get("/fee_stats")
        waited = time.monotonic() - started

    assert response.status_code == 504 and waited >= 0.05
    assert response.json()["type"] == "https://stellar.org/horizon-errors/timeout"


# ----------------------------------------------------------------------------- admin API


async def test_admin_endpoints_seed_tune_inspect_and_reset(
    ledger: FakeLedger, client: httpx.AsyncClient
) -> None:
    issuer, cosigner = Keypair.random(), Keypair.random()
    await client.post("/_fake/accounts", json={"account_id": issuer.public_key})
    created = await client.post(
        "/_fake/accounts",
        json={
            "xlm": "50",
            "trustlines": [{"asset_code": "USDC", "asset_issuer": issuer.public_key}],
            "signers": [{"key": cosigner.public_key, "weight": 1}],
            "thresholds": {"low": 1, "med": 1, "high": 2},
        },
    )
    assert created.status_code == 201
    account_id, secret = created.json()["account_id"], created.json()["secret"]
    assert Keypair.from_secret(secret).public_key == account_id
    assert created.json()["thresholds"]["high_threshold"] == 2

    balance = await client.post(
        "/_fake/balances",
        json={
            "account_id": account_id,
            "amount": "25.5",
            "asset_code": "USDC",
            "asset_issuer": issuer.public_key,
        },
    )
    assert balance.json()["balances"][f"USDC:{issuer.public_key}"] == "25.5000000"
    assert (await client.post("/_fake/config", json={"base_fee": 300})).json()["base_fee"] == 300
    assert ledger.base_fee == 300
    bad = await client.post("/_fake/balances", json={"account_id": account_id, "amount": "x"})
    assert bad.status_code == 400
    unknown = await client.post(
        "/_fake/balances", json={"account_id": Keypair.random().public_key, "amount": "1"}
    )
    assert unknown.status_code == 404

    rule = await client.post(
        "/_fake/faults", json={"mode": "status", "status": 503, "path": "/fee_stats", "count": 1}
    )
    assert rule.status_code == 201
    assert (await client.get("/fee_stats")).status_code == 503
    assert (await client.get("/_fake/faults")).json()["rules"][0]["hits"] == 1
    assert (await client.delete(f"/_fake/faults/{rule.json()['id']}")).json()["rules"] == []
    assert (await client.post("/_fake/faults", json={"mode": "explode"})).status_code == 400

    envelope = build(
        ledger,
        Keypair.from_secret(secret),
        pay(issuer.public_key, "1"),
        fee=300,
    )
    assert (await client.post("/transactions", data={"tx": envelope.to_xdr()})).status_code == 200
    snapshot = (await client.get("/_fake/snapshot")).json()
    [tx] = snapshot["transactions"]
    assert tx["hash"] == envelope.hash_hex() and tx["successful"] is True
    assert tx["operations"] == [
        {
            "type": "payment",
            "source": account_id,
            "to": issuer.public_key,
            "asset": "native",
            "amount": "1.0000000",
        }
    ]
    assert snapshot["accounts"][account_id]["balances"]["native"] == "48.9999700"

    reset = await client.post("/_fake/reset")
    assert reset.json()["accounts"] == {} and reset.json()["ledger"] == 1
    assert ledger.base_fee == 100 and ledger.transactions == []


# ----------------------------------------------------------------------------- standalone server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_standalone_server_keeps_state_and_serves_faults(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "gateway.sandbox.horizon",
        "--port",
        str(port),
        "--passphrase",
        PASSPHRASE,
        "--fault-timeout",
        "5",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
            for _ in range(100):
                try:
                    if http.get("/").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                pytest.fail((tmp_path / "server.log").read_text())
            alice, bob = Keypair.random(), Keypair.random()
            http.post("/_fake/accounts", json={"account_id": alice.public_key, "xlm": "20"})
            assert http.get("/friendbot", params={"addr": bob.public_key}).status_code == 200
            account = http.get(f"/accounts/{alice.public_key}").json()
            envelope = (
                TransactionBuilder(
                    SdkAccount(alice.public_key, int(account["sequence"])), PASSPHRASE, base_fee=100
                )
                .append_payment_op(bob.public_key, Asset.native(), "2")
                .add_time_bounds(0, 0)
                .build()
            )
            envelope.sign(alice)
            http.post("/_fake/faults", json={"mode": "lost_answer", "path": "/transactions"})
            with pytest.raises(httpx.ReadTimeout):
                http.post("/transactions", data={"tx": envelope.to_xdr()}, timeout=0.3)
            http.delete("/_fake/faults")
            snapshot = http.get("/_fake/snapshot").json()
            assert snapshot["accounts"][bob.public_key]["balances"]["native"] == "10002.0000000"
            assert snapshot["transactions"][-1]["hash"] == envelope.hash_hex()
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
