"""The payout engine's transactions are byte for byte what stellar-sdk's TransactionBuilder
makes of the same payments."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from stellar_sdk import Account, Asset, Keypair, MuxedAccount, Network, TransactionBuilder

from gateway.disbursement.envelopes import PaymentLine, payment_envelope

ISSUER = Keypair.random().public_key
PASS = Network.TESTNET_NETWORK_PASSPHRASE


@pytest.mark.parametrize(
    ("memo_type", "memo"),
    [
        (None, None),
        ("id", "18446744073709551615"),
        ("text", "payroll 11"),
        ("hash", base64.b64encode(b"h" * 32).decode()),
    ],
)
def test_the_envelope_and_hash_match_the_sdk_builder(memo_type, memo):
    lane, distribution = Keypair.random(), Keypair.random()
    lines = [
        PaymentLine(Keypair.random().public_key, "GWUSD", ISSUER, 1_250_000),
        PaymentLine(MuxedAccount(Keypair.random().public_key, 42).account_muxed, "XLM", "", 1),
        PaymentLine(Keypair.random().public_key, "LONGASSET12", ISSUER, 9_000_000_000_000),
    ]
    built, tx_hash = payment_envelope(
        passphrase=PASS,
        source=lane.public_key,
        sequence=1234,
        fee_per_op=250,
        max_time=1_800_000_030,
        lines=lines,
        op_source=distribution.public_key,
        memo_type=memo_type,
        memo=memo,
        signers=[lane, distribution],
    )
    builder = TransactionBuilder(Account(lane.public_key, 1233), PASS, base_fee=250)
    builder.add_time_bounds(0, 1_800_000_030)
    for line in lines:
        asset = Asset.native() if line.asset_code == "XLM" else Asset(line.asset_code, ISSUER)
        amount = str(Decimal(line.amount) / 10_000_000)
        builder.append_payment_op(line.destination, asset, amount, source=distribution.public_key)
    if memo_type == "id":
        builder.add_id_memo(int(memo))
    elif memo_type == "text":
        builder.add_text_memo(memo)
    elif memo_type == "hash":
        builder.add_hash_memo(base64.b64decode(memo))
    expected = builder.build()
    expected.sign(lane)
    expected.sign(distribution)
    assert (built, tx_hash) == (expected.to_xdr(), expected.hash_hex())
