"""Signed payment transactions, built straight from stellar-sdk's XDR types.

stellar-sdk's TransactionBuilder decodes every address and asset issuer again for each
operation (a base32 decode and checksum each); a payout batch repeats the same few sources,
assets and destinations, so their XDR forms are cached here and the transaction is assembled
from them. The signature payload and hash are the XDR ``TransactionSignaturePayload`` the
network signs, and a test checks the bytes against TransactionBuilder's.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from stellar_sdk import Asset, HashMemo, IdMemo, Keypair, MuxedAccount, Network, NoneMemo, TextMemo
from stellar_sdk import xdr as sx


@dataclass(frozen=True, slots=True)
class PaymentLine:
    destination: str  # G... or M...
    asset_code: str  # "XLM" with issuer "" for lumens
    asset_issuer: str
    amount: int  # stroops


@lru_cache(maxsize=65_536)
def _account(address: str) -> sx.MuxedAccount:
    return MuxedAccount.from_account(address).to_xdr_object()


@lru_cache(maxsize=256)
def _asset(code: str, issuer: str) -> sx.Asset:
    asset = Asset.native() if code == "XLM" and not issuer else Asset(code, issuer)
    return asset.to_xdr_object()


@lru_cache(maxsize=16)
def _network_id(passphrase: str) -> bytes:
    return Network(passphrase).network_id()


def _memo(memo_type: str | None, memo: str | None) -> sx.Memo:
    if memo is None:
        return NoneMemo().to_xdr_object()
    if memo_type == "id":
        return IdMemo(int(memo)).to_xdr_object()
    if memo_type == "hash":
        return HashMemo(base64.b64decode(memo)).to_xdr_object()
    return TextMemo(memo).to_xdr_object()


def payment_envelope(
    *,
    passphrase: str,
    source: str,
    sequence: int,
    fee_per_op: int,
    max_time: int,
    lines: Sequence[PaymentLine],
    op_source: str | None,
    memo_type: str | None,
    memo: str | None,
    signers: Sequence[Keypair],
) -> tuple[str, str]:
    """(envelope XDR, hash hex) of a transaction from ``source`` at ``sequence`` paying
    ``lines`` in order (each from ``op_source`` when given), valid until ``max_time``."""
    op_account = _account(op_source) if op_source is not None else None
    operations = [
        sx.Operation(
            source_account=op_account,
            body=sx.OperationBody(
                sx.OperationType.PAYMENT,
                payment_op=sx.PaymentOp(
                    destination=_account(line.destination),
                    asset=_asset(line.asset_code, line.asset_issuer),
                    amount=sx.Int64(line.amount),
                ),
            ),
        )
        for line in lines
    ]
    tx = sx.Transaction(
        source_account=_account(source),
        fee=sx.Uint32(fee_per_op * len(operations)),
        seq_num=sx.SequenceNumber(sx.Int64(sequence)),
        cond=sx.Preconditions(
            sx.PreconditionType.PRECOND_TIME,
            time_bounds=sx.TimeBounds(
                min_time=sx.TimePoint(sx.Uint64(0)), max_time=sx.TimePoint(sx.Uint64(max_time))
            ),
        ),
        memo=_memo(memo_type, memo),
        operations=operations,
        ext=sx.TransactionExt(0),
    )
    payload = sx.TransactionSignaturePayload(
        network_id=sx.Hash(_network_id(passphrase)),
        tagged_transaction=sx.TransactionSignaturePayloadTaggedTransaction(
            sx.EnvelopeType.ENVELOPE_TYPE_TX, tx=tx
        ),
    )
    tx_hash = hashlib.sha256(payload.to_xdr_bytes()).digest()
    envelope = sx.TransactionEnvelope(
        sx.EnvelopeType.ENVELOPE_TYPE_TX,
        v1=sx.TransactionV1Envelope(
            tx=tx, signatures=[k.sign_decorated(tx_hash).to_xdr_object() for k in signers]
        ),
    )
    return envelope.to_xdr(), tx_hash.hex()
