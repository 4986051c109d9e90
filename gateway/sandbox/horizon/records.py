"""What history keeps of an applied transaction: memo and precondition fields, operation
summaries, and the payment records Horizon lists under /payments."""

from __future__ import annotations

import base64

from stellar_sdk import (
    AccountMerge,
    Asset,
    BumpSequence,
    ChangeTrust,
    CreateAccount,
    HashMemo,
    IdMemo,
    ManageData,
    MuxedAccount,
    Operation,
    Payment,
    ReturnHashMemo,
    TextMemo,
    Transaction,
)

from gateway.sandbox.horizon.amounts import _asset_type, format_amount, to_stroops
from gateway.sandbox.horizon.entries import JSON, PaymentRecord
from gateway.sandbox.horizon.envelope import _op_source, _Tx

_PAYMENT_TYPE_I = {"create_account": 0, "payment": 1, "account_merge": 8}


def _muxed_fields(muxed: MuxedAccount, name: str) -> JSON:
    if muxed.account_muxed_id is None:
        return {}
    return {f"{name}_muxed": muxed.account_muxed, f"{name}_muxed_id": str(muxed.account_muxed_id)}


def _memo_fields(tx: Transaction) -> tuple[str, str | None, str | None]:
    memo = tx.memo
    if isinstance(memo, TextMemo):
        raw = memo.memo_text
        return "text", raw.decode("utf-8", errors="replace"), base64.b64encode(raw).decode()
    if isinstance(memo, IdMemo):
        return "id", str(memo.memo_id), None
    if isinstance(memo, HashMemo):
        return "hash", base64.b64encode(memo.memo_hash).decode(), None
    if isinstance(memo, ReturnHashMemo):
        return "return", base64.b64encode(memo.memo_return).decode(), None
    return "none", None, None


def _preconditions_json(tx: Transaction) -> JSON | None:
    pre = tx.preconditions
    if pre is None:
        return None
    out: JSON = {}
    # Horizon leaves out the zero (unbounded) maxima.
    if pre.time_bounds is not None:
        out["timebounds"] = {"min_time": str(pre.time_bounds.min_time)}
        if pre.time_bounds.max_time:
            out["timebounds"]["max_time"] = str(pre.time_bounds.max_time)
    if pre.ledger_bounds is not None:
        out["ledgerbounds"] = {"min_ledger": pre.ledger_bounds.min_ledger}
        if pre.ledger_bounds.max_ledger:
            out["ledgerbounds"]["max_ledger"] = pre.ledger_bounds.max_ledger
    if pre.min_sequence_number is not None:
        out["min_account_sequence"] = str(pre.min_sequence_number)
    if pre.min_sequence_age:
        out["min_account_sequence_age"] = str(pre.min_sequence_age)
    if pre.min_sequence_ledger_gap:
        out["min_account_sequence_ledger_gap"] = pre.min_sequence_ledger_gap
    return out or None


def _op_summary(op: Operation, tx: _Tx) -> JSON:
    source = _op_source(op, tx).account_id
    if isinstance(op, Payment):
        out: JSON = {
            "type": "payment",
            "source": source,
            "to": op.destination.account_id,
            "asset": "native" if op.asset.is_native() else f"{op.asset.code}:{op.asset.issuer}",
            "amount": format_amount(to_stroops(op.amount)),
        }
        if op.destination.account_muxed_id is not None:
            out["to_muxed_id"] = str(op.destination.account_muxed_id)
        return out
    if isinstance(op, CreateAccount):
        return {
            "type": "create_account",
            "source": source,
            "account": op.destination,
            "starting_balance": format_amount(to_stroops(op.starting_balance)),
        }
    if isinstance(op, AccountMerge):
        return {"type": "account_merge", "source": source, "into": op.destination.account_id}
    if isinstance(op, ManageData):
        return {"type": "manage_data", "source": source, "name": op.data_name}
    if isinstance(op, BumpSequence):
        return {"type": "bump_sequence", "source": source, "bump_to": str(op.bump_to)}
    if isinstance(op, ChangeTrust) and isinstance(op.asset, Asset):
        return {
            "type": "change_trust",
            "source": source,
            "asset": f"{op.asset.code}:{op.asset.issuer}",
            "limit": op.limit,
        }
    name = "".join(f"_{c.lower()}" if c.isupper() else c for c in type(op).__name__)
    return {"type": name.lstrip("_"), "source": source}


def _payment_record(
    op: Operation,
    kind: str,
    source: MuxedAccount,
    op_id: int,
    tx_hash: str,
    created_at: str,
) -> PaymentRecord | None:
    if kind not in _PAYMENT_TYPE_I:
        return None
    body: JSON = {
        "id": str(op_id),
        "paging_token": str(op_id),
        "transaction_successful": True,
        "source_account": source.account_id,
        **_muxed_fields(source, "source_account"),
        "type": kind,
        "type_i": _PAYMENT_TYPE_I[kind],
        "created_at": created_at,
        "transaction_hash": tx_hash,
    }
    if isinstance(op, Payment):
        if op.asset.is_native():
            body["asset_type"] = "native"
        else:
            body["asset_type"] = _asset_type(op.asset.code)
            body["asset_code"] = op.asset.code
            body["asset_issuer"] = op.asset.issuer
        body["from"] = source.account_id
        body.update(_muxed_fields(source, "from"))
        body["to"] = op.destination.account_id
        body.update(_muxed_fields(op.destination, "to"))
        body["amount"] = format_amount(to_stroops(op.amount))
        parties: tuple[str, ...] = (source.account_id, op.destination.account_id)
    elif isinstance(op, CreateAccount):
        body["starting_balance"] = format_amount(to_stroops(op.starting_balance))
        body["funder"] = source.account_id
        body.update(_muxed_fields(source, "funder"))
        body["account"] = op.destination
        parties = (source.account_id, op.destination)
    else:
        assert isinstance(op, AccountMerge)
        body["account"] = source.account_id
        body.update(_muxed_fields(source, "account"))
        body["into"] = op.destination.account_id
        body.update(_muxed_fields(op.destination, "into"))
        parties = (source.account_id, op.destination.account_id)
    return PaymentRecord(
        id=op_id,
        tx_hash=tx_hash,
        successful=True,
        participants=tuple(dict.fromkeys(parties)),
        body=body,
    )
