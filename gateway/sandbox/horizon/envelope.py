"""Decoding signed envelopes: the hash stellar-core signs, the (inner) transaction the checks
work on, and what kind each operation is."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from stellar_sdk import (
    AccountMerge,
    Asset,
    BumpSequence,
    ChangeTrust,
    CreateAccount,
    DecoratedSignature,
    FeeBumpTransactionEnvelope,
    ManageData,
    MuxedAccount,
    Operation,
    Payment,
    SetOptions,
    Transaction,
    TransactionEnvelope,
)
from stellar_sdk import xdr as sx

MAX_OPS_PER_TX = 100

_Envelope = TransactionEnvelope | FeeBumpTransactionEnvelope
_ENVELOPE_TX_TAG = sx.EnvelopeType.ENVELOPE_TYPE_TX.to_xdr_bytes()


def _signatures_size(signatures: list[sx.DecoratedSignature]) -> int:
    """Bytes taken by an XDR DecoratedSignature<20> array: count, then hint + padded opaque."""
    return 4 + sum(4 + 4 + (len(s.signature.signature) + 3) // 4 * 4 for s in signatures)


@dataclass(slots=True)
class _Tx:
    """A decoded (inner) transaction with what validation needs at hand."""

    tx: Transaction
    hash: bytes
    signatures: list[DecoratedSignature]
    source: str
    source_muxed: str | None
    ops: list[Operation]


def _decode(
    envelope_xdr: str, network_passphrase: str, network_id: bytes
) -> tuple[_Envelope, bytes, _Tx]:
    """The envelope, its hash, and its (inner) transaction; raises when malformed."""
    data = base64.b64decode(envelope_xdr, validate=True)
    raw = sx.TransactionEnvelope.from_xdr_bytes(data)
    if raw.type == sx.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP:
        fee_bump = FeeBumpTransactionEnvelope.from_xdr_object(raw, network_passphrase)
        inner = fee_bump.transaction.inner_transaction_envelope
        return fee_bump, fee_bump.hash(), _inner(inner, inner.hash())
    envelope = TransactionEnvelope.from_xdr_object(raw, network_passphrase)
    if raw.type == sx.EnvelopeType.ENVELOPE_TYPE_TX and raw.v1 is not None:
        # The signed payload is the transaction's own bytes inside the envelope; hashing
        # them directly avoids re-encoding up to 100 operations.
        tx_bytes = data[4 : len(data) - _signatures_size(raw.v1.signatures)]
        tx_hash = hashlib.sha256(network_id + _ENVELOPE_TX_TAG + tx_bytes).digest()
    else:
        tx_hash = envelope.hash()
    return envelope, tx_hash, _inner(envelope, tx_hash)


def _inner(envelope: TransactionEnvelope, tx_hash: bytes) -> _Tx:
    tx = envelope.transaction
    return _Tx(
        tx=tx,
        hash=tx_hash,
        signatures=list(envelope.signatures),
        source=tx.source.account_id,
        source_muxed=tx.source.account_muxed,
        ops=list(tx.operations),
    )


def _op_kind(op: Operation) -> str | None:
    if isinstance(op, Payment):
        return "payment"
    if isinstance(op, CreateAccount):
        return "create_account"
    if isinstance(op, ChangeTrust):
        return "change_trust" if isinstance(op.asset, Asset) else None
    if isinstance(op, SetOptions):
        return "set_options"
    if isinstance(op, ManageData):
        return "manage_data"
    if isinstance(op, AccountMerge):
        return "account_merge"
    if isinstance(op, BumpSequence):
        return "bump_sequence"
    return None


def _op_source(op: Operation, tx: _Tx) -> MuxedAccount:
    return op.source if op.source is not None else tx.tx.source
