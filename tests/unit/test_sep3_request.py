"""SEP-3 request reading: the three forms a transaction may come in, strictly."""

from __future__ import annotations

import base64

import pytest
from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder, TransactionEnvelope
from stellar_sdk.memo import HashMemo

from gateway.errors import InvalidField
from gateway.sep3_auth.request import decode_tx

PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE


def envelope() -> TransactionEnvelope:
    return (
        TransactionBuilder(Account(Keypair.random().public_key, -1), PASSPHRASE, base_fee=100)
        .append_payment_op(
            Keypair.random().public_key, Asset("USD", Keypair.random().public_key), "20"
        )
        .add_memo(HashMemo(b"\x01" * 32))
        .add_time_bounds(0, 0)
        .build()
    )


def test_v1_v0_and_envelopes_read_as_the_same_transaction():
    env = envelope()
    v1 = env.transaction.to_xdr_object().to_xdr_bytes()
    v0 = v1[4:]  # the same transaction without the muxed-account arm
    forms = [
        base64.b64encode(v1).decode(),
        base64.b64encode(v0).decode(),
        env.to_xdr(),
    ]
    for text in forms:
        tx, raw = decode_tx(text)
        assert raw == v1
        assert tx.operations[0].amount == "20"
        assert TransactionEnvelope(tx, PASSPHRASE).hash_hex() == env.hash_hex()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            base64.b64encode(
                envelope().transaction.to_xdr_object().to_xdr_bytes() + b"\1"
            ).decode(),
            "tx: is not a Stellar transaction in XDR",
        ),
        ("AAAA", "tx: is not a Stellar transaction in XDR"),
        ("not base64!", "tx: is not base64"),
        ("", "tx: is not base64"),
    ],
)
def test_anything_else_is_refused(text, reason):
    with pytest.raises(InvalidField) as info:
        decode_tx(text)
    assert info.value.message in (reason, "tx: is empty or too large")
