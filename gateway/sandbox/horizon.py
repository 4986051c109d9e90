"""A fake Stellar Horizon for tests, benchmarks and the local sandbox.

An in-memory ledger checks and applies real signed envelopes in stellar-core's order, a small
Starlette app serves it with Horizon's JSON, and runtime fault rules make it misbehave on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import random
import time
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlencode

import httpx
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from stellar_sdk import Account as SdkAccount
from stellar_sdk import (
    AccountMerge,
    Asset,
    BumpSequence,
    ChangeTrust,
    CreateAccount,
    DecoratedSignature,
    FeeBumpTransactionEnvelope,
    HashMemo,
    IdMemo,
    Keypair,
    ManageData,
    MuxedAccount,
    Network,
    Operation,
    Payment,
    ReturnHashMemo,
    SetOptions,
    StrKey,
    TextMemo,
    Transaction,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk import xdr as sx

TESTNET_PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
STROOPS_PER_UNIT = 10_000_000
INT64_MAX = 2**63 - 1
MAX_OPS_PER_TX = 100
MAX_SIGNERS = 20
FRIENDBOT_XLM = Decimal("10000")
HORIZON_VERSION = "fake-horizon-2.32"
CORE_VERSION = "stellar-core (fake) 22.0.0"
PROTOCOL_VERSION = 22
PROBLEM_URL = "https://stellar.org/horizon-errors/"

AUTH_REQUIRED = 1
AUTH_REVOCABLE = 2
AUTH_IMMUTABLE = 4
AUTH_CLAWBACK_ENABLED = 8
_KNOWN_FLAGS = AUTH_REQUIRED | AUTH_REVOCABLE | AUTH_IMMUTABLE | AUTH_CLAWBACK_ENABLED

# Request header set by FakeHorizonTransport, and response header the app answers it with.
TRANSPORT_HEADER = "x-fake-horizon-transport"
FAULT_HEADER = "x-fake-horizon-fault"

JSON = dict[str, Any]
_Envelope = TransactionEnvelope | FeeBumpTransactionEnvelope
_ENVELOPE_TX_TAG = sx.EnvelopeType.ENVELOPE_TYPE_TX.to_xdr_bytes()


# ----------------------------------------------------------------------------- amounts


def to_stroops(value: Decimal | int | str) -> int:
    """Exact stroops for an amount in units (Decimal, int or decimal text); never a float."""
    if isinstance(value, bool | float):
        raise TypeError("amounts must be Decimal, int or decimal text, never float")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    stroops = amount * STROOPS_PER_UNIT
    if stroops != stroops.to_integral_value():
        raise ValueError(f"{value} has more than 7 decimal places")
    return int(stroops)


def format_amount(stroops: int) -> str:
    """Horizon's 7-decimal amount text, e.g. ``"100.0000000"``."""
    sign = "-" if stroops < 0 else ""
    whole, frac = divmod(abs(stroops), STROOPS_PER_UNIT)
    return f"{sign}{whole}.{frac:07d}"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _toid(ledger: int, tx_order: int, op_index: int) -> int:
    """Horizon's total order id: ledger, transaction and operation packed into an int64."""
    return (ledger << 32) | (tx_order << 12) | op_index


def _signatures_size(signatures: list[sx.DecoratedSignature]) -> int:
    """Bytes taken by an XDR DecoratedSignature<20> array: count, then hint + padded opaque."""
    return 4 + sum(4 + 4 + (len(s.signature.signature) + 3) // 4 * 4 for s in signatures)


def _asset_type(code: str) -> str:
    return "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12"


def _asset_label(code: str | None, issuer: str | None) -> str:
    return "native" if code is None else f"{code}:{issuer}"


# ----------------------------------------------------------------------------- ledger state


@dataclass(slots=True)
class Trustline:
    """One trustline: balance and limit in stroops."""

    code: str
    issuer: str
    balance: int = 0
    limit: int = INT64_MAX
    authorized: bool = True
    last_modified_ledger: int = 0


@dataclass(slots=True)
class LedgerAccount:
    """An account entry. Balances are stroops; ``signers`` maps a signer strkey to its weight."""

    account_id: str
    sequence: int
    balance: int
    master_weight: int = 1
    low_threshold: int = 0
    med_threshold: int = 0
    high_threshold: int = 0
    flags: int = 0
    home_domain: str = ""
    inflation_destination: str | None = None
    signers: dict[str, int] = field(default_factory=dict)
    trustlines: dict[tuple[str, str], Trustline] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    last_modified_ledger: int = 0
    last_modified_time: int = 0
    sequence_ledger: int = 0
    sequence_time: int = 0

    @property
    def subentry_count(self) -> int:
        """Signers, trustlines and data entries: each one raises the minimum balance."""
        return len(self.signers) + len(self.trustlines) + len(self.data)

    def clone(self) -> LedgerAccount:
        """A deep copy safe to mutate while applying a transaction."""
        return replace(
            self,
            signers=dict(self.signers),
            trustlines={key: replace(line) for key, line in self.trustlines.items()},
            data=dict(self.data),
        )


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment-like operation as Horizon lists it, minus links and the joined transaction."""

    id: int
    tx_hash: str
    successful: bool
    participants: tuple[str, ...]
    body: JSON


@dataclass(slots=True)
class AppliedTransaction:
    """A transaction that made it into a ledger, whether its operations succeeded or not."""

    hash: str
    ledger: int
    closed_at: int
    envelope_xdr: str
    result_xdr: str
    successful: bool
    fee_charged: int
    max_fee: int
    source_account: str
    source_muxed: str | None
    sequence: int
    fee_account: str
    fee_account_muxed: str | None
    operation_count: int
    memo_type: str
    memo: str | None
    memo_bytes: str | None
    signatures: list[str]
    preconditions: JSON | None
    result_codes: JSON
    operations: list[JSON]
    inner_hash: str | None = None
    inner_signatures: list[str] | None = None
    inner_max_fee: int | None = None

    def summary(self) -> JSON:
        """The admin snapshot's view: who, what, and how it ended."""
        return {
            "hash": self.hash,
            "inner_hash": self.inner_hash,
            "ledger": self.ledger,
            "successful": self.successful,
            "source_account": self.source_account,
            "fee_account": self.fee_account,
            "sequence": str(self.sequence),
            "fee_charged": str(self.fee_charged),
            "memo_type": self.memo_type,
            "memo": self.memo,
            "result_codes": self.result_codes,
            "operations": self.operations,
        }


class _View:
    """Copy-on-write accounts, so a transaction's operations commit all together or not at all."""

    def __init__(self, base: dict[str, LedgerAccount]):
        self._base = base
        self._changes: dict[str, LedgerAccount | None] = {}

    def peek(self, account_id: str) -> LedgerAccount | None:
        """Read-only access: never mutate what this returns."""
        if account_id in self._changes:
            return self._changes[account_id]
        return self._base.get(account_id)

    def get(self, account_id: str) -> LedgerAccount | None:
        if account_id in self._changes:
            return self._changes[account_id]
        account = self._base.get(account_id)
        if account is None:
            return None
        copy = account.clone()
        self._changes[account_id] = copy
        return copy

    def create(self, account: LedgerAccount) -> None:
        self._changes[account.account_id] = account

    def delete(self, account_id: str) -> None:
        self._changes[account_id] = None

    def commit(self) -> None:
        for account_id, account in self._changes.items():
            if account is None:
                self._base.pop(account_id, None)
            else:
                self._base[account_id] = account


# ----------------------------------------------------------------------------- validation


@dataclass(slots=True)
class _OpResult:
    kind: str  # our operation kind ("payment", ...) or "unsupported"
    code: str  # Horizon's name, e.g. "op_success", "op_underfunded"
    merged: int = 0  # account_merge: the stroops moved


@dataclass(slots=True)
class _Outcome:
    code: str  # Horizon's name, e.g. "tx_success", "tx_bad_seq"
    fee: int
    ops: list[_OpResult] = field(default_factory=list)
    inner: _Outcome | None = None

    @property
    def successful(self) -> bool:
        return self.code in ("tx_success", "tx_fee_bump_inner_success")

    def result_codes(self) -> JSON:
        codes: JSON = {"transaction": self.code}
        ops = self.ops
        if self.inner is not None:
            codes["inner_transaction"] = self.inner.code
            ops = self.inner.ops
        if ops:
            codes["operations"] = [r.code for r in ops]
        return codes


@dataclass(slots=True)
class _Tx:
    """A decoded (inner) transaction with what validation needs at hand."""

    tx: Transaction
    hash: bytes
    signatures: list[DecoratedSignature]
    source: str
    source_muxed: str | None
    ops: list[Operation]


class _Signatures:
    """stellar-core's signature checker: each signature counts once per check, and every
    signature must have been used by some check (otherwise tx_bad_auth_extra)."""

    def __init__(self, contents_hash: bytes, signatures: list[DecoratedSignature]):
        self._hash = contents_hash
        self._sigs = [(s.signature_hint, s.signature) for s in signatures]
        self._used = [False] * len(self._sigs)
        self._verified: dict[tuple[int, str], bool] = {}
        self.used_pre_auth: set[str] = set()

    def all_used(self) -> bool:
        return all(self._used)

    def _matches(self, index: int, key: str) -> bool:
        cached = self._verified.get((index, key))
        if cached is not None:
            return cached
        hint, signature = self._sigs[index]
        ok = False
        if key[0] == "G":
            raw = StrKey.decode_ed25519_public_key(key)
            if raw[-4:] == hint:
                try:
                    VerifyKey(raw).verify(self._hash, signature)
                    ok = True
                except BadSignatureError:
                    ok = False
        elif key[0] == "X":
            digest = StrKey.decode_sha256_hash(key)
            ok = digest[-4:] == hint and hashlib.sha256(signature).digest() == digest
        self._verified[(index, key)] = ok
        return ok

    def check(self, signers: Iterable[tuple[str, int]], needed: int) -> bool:
        """True when matching signatures reach ``needed`` weight (at least one must match)."""
        total = 0
        remaining: list[tuple[str, int]] = []
        for key, weight in signers:
            if key[0] == "T":
                if StrKey.decode_pre_auth_tx(key) == self._hash:
                    self.used_pre_auth.add(key)
                    total += min(weight, 255)
                    if total >= needed:
                        return True
            else:
                remaining.append((key, weight))
        for index in range(len(self._sigs)):
            for position, (key, weight) in enumerate(remaining):
                if self._matches(index, key):
                    self._used[index] = True
                    total += min(weight, 255)
                    if total >= needed:
                        return True
                    del remaining[position]
                    break
        return False


_TX_CODES: dict[str, sx.TransactionResultCode] = {
    "tx_fee_bump_inner_success": sx.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
    "tx_success": sx.TransactionResultCode.txSUCCESS,
    "tx_failed": sx.TransactionResultCode.txFAILED,
    "tx_too_early": sx.TransactionResultCode.txTOO_EARLY,
    "tx_too_late": sx.TransactionResultCode.txTOO_LATE,
    "tx_missing_operation": sx.TransactionResultCode.txMISSING_OPERATION,
    "tx_bad_seq": sx.TransactionResultCode.txBAD_SEQ,
    "tx_bad_auth": sx.TransactionResultCode.txBAD_AUTH,
    "tx_insufficient_balance": sx.TransactionResultCode.txINSUFFICIENT_BALANCE,
    "tx_no_source_account": sx.TransactionResultCode.txNO_ACCOUNT,
    "tx_insufficient_fee": sx.TransactionResultCode.txINSUFFICIENT_FEE,
    "tx_bad_auth_extra": sx.TransactionResultCode.txBAD_AUTH_EXTRA,
    "tx_internal_error": sx.TransactionResultCode.txINTERNAL_ERROR,
    "tx_not_supported": sx.TransactionResultCode.txNOT_SUPPORTED,
    "tx_fee_bump_inner_failed": sx.TransactionResultCode.txFEE_BUMP_INNER_FAILED,
    "tx_bad_minseq_age_or_gap": sx.TransactionResultCode.txBAD_MIN_SEQ_AGE_OR_GAP,
    "tx_malformed": sx.TransactionResultCode.txMALFORMED,
}
_GENERIC_OP_CODES: dict[str, sx.OperationResultCode] = {
    "op_bad_auth": sx.OperationResultCode.opBAD_AUTH,
    "op_no_source_account": sx.OperationResultCode.opNO_ACCOUNT,
    "op_not_supported": sx.OperationResultCode.opNOT_SUPPORTED,
    "op_too_many_subentries": sx.OperationResultCode.opTOO_MANY_SUBENTRIES,
}
# kind -> (operation type, result class, result code enum, enum prefix, OperationResultTr field)
_OP_XDR: dict[str, tuple[sx.OperationType, type, type, str, str]] = {
    "create_account": (
        sx.OperationType.CREATE_ACCOUNT,
        sx.CreateAccountResult,
        sx.CreateAccountResultCode,
        "CREATE_ACCOUNT",
        "create_account_result",
    ),
    "payment": (
        sx.OperationType.PAYMENT,
        sx.PaymentResult,
        sx.PaymentResultCode,
        "PAYMENT",
        "payment_result",
    ),
    "set_options": (
        sx.OperationType.SET_OPTIONS,
        sx.SetOptionsResult,
        sx.SetOptionsResultCode,
        "SET_OPTIONS",
        "set_options_result",
    ),
    "change_trust": (
        sx.OperationType.CHANGE_TRUST,
        sx.ChangeTrustResult,
        sx.ChangeTrustResultCode,
        "CHANGE_TRUST",
        "change_trust_result",
    ),
    "account_merge": (
        sx.OperationType.ACCOUNT_MERGE,
        sx.AccountMergeResult,
        sx.AccountMergeResultCode,
        "ACCOUNT_MERGE",
        "account_merge_result",
    ),
    "manage_data": (
        sx.OperationType.MANAGE_DATA,
        sx.ManageDataResult,
        sx.ManageDataResultCode,
        "MANAGE_DATA",
        "manage_data_result",
    ),
    "bump_sequence": (
        sx.OperationType.BUMP_SEQUENCE,
        sx.BumpSequenceResult,
        sx.BumpSequenceResultCode,
        "BUMP_SEQUENCE",
        "bump_sequence_result",
    ),
}
# Horizon names whose XDR enum member is not simply the upper-cased remainder.
_ENUM_SUFFIX = {
    "op_already_exists": "ALREADY_EXIST",
    "op_data_name_not_found": "NAME_NOT_FOUND",
    "op_data_invalid_name": "INVALID_NAME",
    "op_seq_num_too_far": "SEQNUM_TOO_FAR",
}
_PAYMENT_TYPE_I = {"create_account": 0, "payment": 1, "account_merge": 8}


def _op_result_xdr(result: _OpResult) -> sx.OperationResult:
    generic = _GENERIC_OP_CODES.get(result.code)
    if generic is not None or result.kind not in _OP_XDR:
        return sx.OperationResult(generic or sx.OperationResultCode.opNOT_SUPPORTED)
    op_type, result_cls, code_cls, prefix, attr = _OP_XDR[result.kind]
    suffix = _ENUM_SUFFIX.get(result.code, result.code.removeprefix("op_").upper())
    code = getattr(code_cls, f"{prefix}_{suffix}")
    if result.kind == "account_merge" and result.code == "op_success":
        inner = result_cls(code, sx.Int64(result.merged))
    else:
        inner = result_cls(code)
    return sx.OperationResult(
        sx.OperationResultCode.opINNER, sx.OperationResultTr(op_type, **{attr: inner})
    )


def _result_xdr(outcome: _Outcome, inner_hash: bytes | None) -> str:
    """The TransactionResult XDR stellar-core would report for ``outcome``."""

    def op_results(o: _Outcome) -> list[sx.OperationResult] | None:
        if o.code in ("tx_success", "tx_failed"):
            return [_op_result_xdr(r) for r in o.ops]
        return None

    if outcome.inner is not None and inner_hash is not None:
        inner = sx.InnerTransactionResult(
            sx.Int64(outcome.inner.fee),
            sx.InnerTransactionResultResult(
                _TX_CODES[outcome.inner.code], op_results(outcome.inner)
            ),
            sx.InnerTransactionResultExt(0),
        )
        result = sx.TransactionResultResult(
            _TX_CODES[outcome.code],
            inner_result_pair=sx.InnerTransactionResultPair(sx.Hash(inner_hash), inner),
        )
    else:
        result = sx.TransactionResultResult(_TX_CODES[outcome.code], results=op_results(outcome))
    return sx.TransactionResult(sx.Int64(outcome.fee), result, sx.TransactionResultExt(0)).to_xdr()


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


def _needed_level(op: Operation, kind: str) -> Literal["low", "med", "high"]:
    """The threshold stellar-core asks of an operation's source account."""
    if kind == "bump_sequence":
        return "low"
    if kind == "account_merge":
        return "high"
    if kind == "set_options":
        assert isinstance(op, SetOptions)
        touches_auth = (
            op.master_weight is not None
            or op.low_threshold is not None
            or op.med_threshold is not None
            or op.high_threshold is not None
            or op.signer is not None
        )
        return "high" if touches_auth else "med"
    return "med"


def _threshold(account: LedgerAccount, level: str) -> int:
    if level == "low":
        return account.low_threshold
    if level == "high":
        return account.high_threshold
    return account.med_threshold


def _signers(account: LedgerAccount) -> list[tuple[str, int]]:
    signers = [(account.account_id, account.master_weight)] if account.master_weight else []
    signers.extend(account.signers.items())
    return signers


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


def _op_source(op: Operation, tx: _Tx) -> MuxedAccount:
    return op.source if op.source is not None else tx.tx.source


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


# ----------------------------------------------------------------------------- problems


def _problem(kind: str, title: str, status: int, detail: str, extras: JSON | None = None) -> JSON:
    body: JSON = {"type": PROBLEM_URL + kind, "title": title, "status": status, "detail": detail}
    if extras is not None:
        body["extras"] = extras
    return body


def not_found_problem() -> JSON:
    """Horizon's 404 for an unknown resource."""
    return _problem(
        "not_found",
        "Resource Missing",
        404,
        "The requested resource was not found: the URL is not valid, or nothing in the "
        "database matches the parameters given.",
    )


def bad_request_problem(field_name: str, reason: str) -> JSON:
    """Horizon's 400 for a query or path parameter it cannot accept."""
    return _problem(
        "bad_request",
        "Bad Request",
        400,
        "The request you sent was invalid in some way.",
        {"invalid_field": field_name, "reason": reason},
    )


def malformed_problem(envelope_xdr: str) -> JSON:
    """Horizon's 400 for an envelope it cannot decode."""
    return _problem(
        "transaction_malformed",
        "Transaction Malformed",
        400,
        "Horizon could not decode the transaction envelope in this request: it should be a "
        "base64-encoded XDR TransactionEnvelope. The envelope received is echoed in "
        "`extras.envelope_xdr`.",
        {"envelope_xdr": envelope_xdr},
    )


def submission_timeout_problem(tx_hash: str | None, envelope_xdr: str | None) -> JSON:
    """Horizon's 504 when a submission was not seen in a ledger in time (outcome unknown)."""
    extras: JSON = {}
    if tx_hash is not None:
        extras["hash"] = tx_hash
    if envelope_xdr is not None:
        extras["envelope_xdr"] = envelope_xdr
    return _problem(
        "transaction_submission_timeout",
        "Transaction Submission Timeout",
        504,
        "The submission timed out. That does not mean it failed: poll GET /transactions with "
        "the hash in `extras.hash` for a while before submitting again.",
        extras,
    )


def status_problem(status: int) -> JSON:
    """The problem document Horizon answers with for a bare HTTP status."""
    if status == 429:
        return _problem(
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
            429,
            "The rate limit for this client is used up; the X-RateLimit-* response headers "
            "say the allowance and when it resets.",
        )
    if status == 503:
        return _problem(
            "service_unavailable",
            "Service Unavailable",
            503,
            "The request cannot be serviced right now. Please try again later.",
        )
    if status == 504:
        return _problem(
            "timeout",
            "Timeout",
            504,
            "The request timed out before completing. Try again; when submitting a transaction, "
            "send exactly the same one (same sequence number).",
        )
    if status == 500:
        return _problem(
            "server_error",
            "Internal Server Error",
            500,
            "An error occurred while processing this request.",
        )
    if status == 404:
        return not_found_problem()
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    kind = "bad_request" if 400 <= status < 500 else "server_error"
    return _problem(kind, title, status, "Injected by the fake Horizon's fault rules.")


# ----------------------------------------------------------------------------- the ledger


class FakeLedger:
    """An in-memory Stellar ledger that validates and applies real transaction envelopes.

    Every accepted transaction closes its own ledger. Nothing here does I/O; all state lives
    in this object, so one process (one event loop) must own it.
    """

    def __init__(
        self,
        network_passphrase: str = TESTNET_PASSPHRASE,
        base_reserve: Decimal = Decimal("0.5"),
        base_fee: int = 100,
        clock: Callable[[], float] = time.time,
        *,
        min_base_fee: int = 100,
    ):
        self.network_passphrase = network_passphrase
        self._network_id = Network(network_passphrase).network_id()
        self.clock = clock
        if base_fee < min_base_fee:
            raise ValueError(f"base fee must be at least {min_base_fee} stroops")
        self._initial = (to_stroops(base_reserve), int(base_fee), int(min_base_fee))
        self.reset()

    # -- state management -------------------------------------------------------------

    def reset(self) -> None:
        """Forget every account and transaction and go back to the genesis ledger."""
        self.base_reserve, self.base_fee, self.min_base_fee = self._initial
        self.accounts: dict[str, LedgerAccount] = {}
        self.ledger_sequence = 1
        self.closed_at = int(self.clock())
        self._by_hash: dict[str, AppliedTransaction] = {}
        self.transactions: list[AppliedTransaction] = []
        self._payments: list[PaymentRecord] = []
        self._payment_ids: list[int] = []
        self._by_account: dict[str, tuple[list[int], list[PaymentRecord]]] = {}
        self._recent_bids: deque[int] = deque(maxlen=500)
        self._friendbot: Keypair | None = None

    def set_base_fee(self, base_fee: int) -> None:
        """The per-operation fee a transaction must bid now; above the minimum means surge."""
        if base_fee < self.min_base_fee:
            raise ValueError(f"base fee must be at least {self.min_base_fee} stroops")
        self.base_fee = int(base_fee)

    def _require(self, account_id: str) -> LedgerAccount:
        account = self.accounts.get(account_id)
        if account is None:
            raise KeyError(f"no account {account_id}")
        return account

    def account(self, account_id: str) -> LedgerAccount | None:
        """The live account entry (treat as read-only), or None."""
        return self.accounts.get(account_id)

    def create_account(
        self,
        account_id: str,
        xlm: Decimal | int | str = Decimal("10000"),
        *,
        sequence: int | None = None,
    ) -> LedgerAccount:
        """Seed an account directly (no transaction); sequence defaults to ledger << 32."""
        if not StrKey.is_valid_ed25519_public_key(account_id):
            raise ValueError(f"not a G... account id: {account_id!r}")
        if account_id in self.accounts:
            raise ValueError(f"account {account_id} already exists")
        account = LedgerAccount(
            account_id=account_id,
            sequence=self.ledger_sequence << 32 if sequence is None else int(sequence),
            balance=to_stroops(xlm),
            last_modified_ledger=self.ledger_sequence,
            last_modified_time=self.closed_at,
        )
        self.accounts[account_id] = account
        return account

    def add_trustline(
        self,
        account_id: str,
        code: str,
        issuer: str,
        *,
        limit: Decimal | int | str | None = None,
        balance: Decimal | int | str = 0,
        authorized: bool = True,
    ) -> Trustline:
        """Seed a trustline (replacing one for the same asset)."""
        account = self._require(account_id)
        if not StrKey.is_valid_ed25519_public_key(issuer):
            raise ValueError(f"not a G... issuer: {issuer!r}")
        if not 1 <= len(code) <= 12 or not code.isalnum():
            raise ValueError(f"not an asset code: {code!r}")
        line = Trustline(
            code=code,
            issuer=issuer,
            balance=to_stroops(balance),
            limit=INT64_MAX if limit is None else to_stroops(limit),
            authorized=authorized,
            last_modified_ledger=self.ledger_sequence,
        )
        account.trustlines[(code, issuer)] = line
        return line

    def set_balance(
        self,
        account_id: str,
        amount: Decimal | int | str,
        code: str | None = None,
        issuer: str | None = None,
    ) -> None:
        """Overwrite a native balance, or a trustline's balance when ``code`` is given."""
        account = self._require(account_id)
        if code is None:
            account.balance = to_stroops(amount)
            return
        line = account.trustlines.get((code, issuer or ""))
        if line is None:
            raise KeyError(f"{account_id} has no trustline for {code}:{issuer}")
        line.balance = to_stroops(amount)

    def issue(self, issuer: str, account_id: str, code: str, amount: Decimal | int | str) -> None:
        """Credit ``amount`` of ``code:issuer`` to an account, opening its trustline if needed."""
        account = self._require(account_id)
        line = account.trustlines.get((code, issuer))
        if line is None:
            line = self.add_trustline(account_id, code, issuer)
        line.balance += to_stroops(amount)

    def authorize(self, account_id: str, code: str, issuer: str, authorized: bool = True) -> None:
        """Set a trustline's authorized flag (as the issuer's SetTrustLineFlags would)."""
        line = self._require(account_id).trustlines.get((code, issuer))
        if line is None:
            raise KeyError(f"{account_id} has no trustline for {code}:{issuer}")
        line.authorized = authorized

    def add_signer(self, account_id: str, key: str, weight: int) -> None:
        """Add or re-weight a signer (G..., T... or X... key); weight 0 removes it."""
        account = self._require(account_id)
        if not 0 <= weight <= 255:
            raise ValueError("signer weight must be 0..255")
        if key == account_id:
            raise ValueError("the master key is set with set_master_weight")
        if not (
            StrKey.is_valid_ed25519_public_key(key)
            or StrKey.is_valid_pre_auth_tx(key)
            or StrKey.is_valid_sha256_hash(key)
        ):
            raise ValueError(f"not a signer key: {key!r}")
        if weight == 0:
            account.signers.pop(key, None)
        else:
            account.signers[key] = weight

    def set_thresholds(
        self,
        account_id: str,
        low: int | None = None,
        med: int | None = None,
        high: int | None = None,
    ) -> None:
        """Set any of the low/medium/high thresholds (0..255)."""
        account = self._require(account_id)
        for value in (low, med, high):
            if value is not None and not 0 <= value <= 255:
                raise ValueError("thresholds must be 0..255")
        if low is not None:
            account.low_threshold = low
        if med is not None:
            account.med_threshold = med
        if high is not None:
            account.high_threshold = high

    def set_master_weight(self, account_id: str, weight: int) -> None:
        """Set the master key's weight (0 disables the master key)."""
        if not 0 <= weight <= 255:
            raise ValueError("master weight must be 0..255")
        self._require(account_id).master_weight = weight

    def set_flags(self, account_id: str, flags: int) -> None:
        """Set the account's auth flags (AUTH_REQUIRED etc.), as an issuer would."""
        if flags & ~_KNOWN_FLAGS:
            raise ValueError("unknown account flags")
        self._require(account_id).flags = flags

    def balance_of(
        self, account_id: str, code: str | None = None, issuer: str | None = None
    ) -> Decimal:
        """The XLM balance, or the balance of ``code:issuer``; KeyError when absent."""
        account = self._require(account_id)
        if code is None:
            stroops = account.balance
        else:
            line = account.trustlines.get((code, issuer or ""))
            if line is None:
                raise KeyError(f"{account_id} has no trustline for {code}:{issuer}")
            stroops = line.balance
        return Decimal(stroops) / STROOPS_PER_UNIT

    def sequence_of(self, account_id: str) -> int:
        """The account's current sequence number."""
        return self._require(account_id).sequence

    def min_balance(self, account: LedgerAccount, extra_subentries: int = 0) -> int:
        """(2 + subentries) base reserves, in stroops."""
        return (2 + account.subentry_count + extra_subentries) * self.base_reserve

    def applied(self, tx_hash: str) -> AppliedTransaction | None:
        """The applied transaction with this (outer or inner) hash, or None."""
        return self._by_hash.get(tx_hash.lower())

    # -- submission -------------------------------------------------------------------

    def hash_of(self, envelope_xdr: str) -> str | None:
        """The hex hash Horizon would give the envelope, or None when it is undecodable."""
        try:
            return self._decode(envelope_xdr)[1].hex()
        except Exception:
            return None

    def _decode(self, envelope_xdr: str) -> tuple[_Envelope, bytes, _Tx]:
        """The envelope, its hash, and its (inner) transaction; raises when malformed."""
        data = base64.b64decode(envelope_xdr, validate=True)
        raw = sx.TransactionEnvelope.from_xdr_bytes(data)
        if raw.type == sx.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP:
            fee_bump = FeeBumpTransactionEnvelope.from_xdr_object(raw, self.network_passphrase)
            inner = fee_bump.transaction.inner_transaction_envelope
            return fee_bump, fee_bump.hash(), self._inner(inner, inner.hash())
        envelope = TransactionEnvelope.from_xdr_object(raw, self.network_passphrase)
        if raw.type == sx.EnvelopeType.ENVELOPE_TYPE_TX and raw.v1 is not None:
            # The signed payload is the transaction's own bytes inside the envelope; hashing
            # them directly avoids re-encoding up to 100 operations.
            tx_bytes = data[4 : len(data) - _signatures_size(raw.v1.signatures)]
            tx_hash = hashlib.sha256(self._network_id + _ENVELOPE_TX_TAG + tx_bytes).digest()
        else:
            tx_hash = envelope.hash()
        return envelope, tx_hash, self._inner(envelope, tx_hash)

    @staticmethod
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

    def submit(self, envelope_xdr: str, *, base_url: str = "") -> tuple[int, JSON]:
        """Validate and apply an envelope as Horizon's POST /transactions would.

        Answers (HTTP status, Horizon JSON): 200 with the transaction resource when it
        succeeded, 400 ``transaction_failed`` with result codes otherwise, 400
        ``transaction_malformed`` when undecodable. An envelope whose hash is already in the
        ledger answers its stored result instead of being checked again.
        """
        try:
            envelope, outer_hash, inner = self._decode(envelope_xdr)
        except Exception:
            return 400, malformed_problem(envelope_xdr)
        if len(inner.ops) > MAX_OPS_PER_TX:
            return 400, malformed_problem(envelope_xdr)  # the XDR array is capped at 100

        known = self._by_hash.get(outer_hash.hex())
        if known is not None:
            return self._answer(known, base_url, as_hash=outer_hash.hex())

        close_time = max(int(self.clock()), self.closed_at)
        next_ledger = self.ledger_sequence + 1
        inner_sigs = _Signatures(inner.hash, inner.signatures)
        if isinstance(envelope, FeeBumpTransactionEnvelope):
            fee_bump = envelope.transaction
            fee_account = fee_bump.fee_source
            outer_sigs = _Signatures(outer_hash, list(envelope.signatures))
            rejection = self._check_fee_bump(
                fee_bump.fee,
                fee_account.account_id,
                outer_sigs,
                inner,
                inner_sigs,
                close_time,
                next_ledger,
            )
            if rejection is not None:
                return 400, self._failed_body(envelope_xdr, rejection, inner.hash)
            charge = self.base_fee * (len(inner.ops) + 1)
            inner_outcome = self._apply(inner, fee_account.account_id, charge, close_time)
            inner_outcome.fee = 0
            code = (
                "tx_fee_bump_inner_success"
                if inner_outcome.successful
                else "tx_fee_bump_inner_failed"
            )
            outcome = _Outcome(code, charge, inner=inner_outcome)
            max_fee, signatures = fee_bump.fee, list(envelope.signatures)
        else:
            rejection = self._check_tx(inner, inner_sigs, True, close_time, next_ledger)
            if rejection is not None:
                return 400, self._failed_body(envelope_xdr, rejection, None)
            charge = self.base_fee * len(inner.ops)
            outcome = self._apply(inner, inner.source, charge, close_time)
            fee_account, max_fee, signatures = inner.tx.source, inner.tx.fee, inner.signatures
        record = self._record(
            envelope_xdr,
            outer_hash,
            outcome,
            inner,
            close_time,
            fee_account=fee_account,
            max_fee=max_fee,
            signatures=signatures,
        )
        self._remove_pre_auth(inner, inner_sigs)
        return self._answer(record, base_url, as_hash=record.hash)

    def _failed_body(self, envelope_xdr: str, outcome: _Outcome, inner_hash: bytes | None) -> JSON:
        return _problem(
            "transaction_failed",
            "Transaction Failed",
            400,
            "The transaction failed when submitted to the Stellar network; "
            "`extras.result_codes` says why.",
            {
                "envelope_xdr": envelope_xdr,
                "result_xdr": _result_xdr(outcome, inner_hash),
                "result_codes": outcome.result_codes(),
            },
        )

    def _answer(self, record: AppliedTransaction, base_url: str, as_hash: str) -> tuple[int, JSON]:
        if record.successful:
            return 200, self.transaction_json(record, base_url, as_hash=as_hash)
        body = _problem(
            "transaction_failed",
            "Transaction Failed",
            400,
            "The transaction failed when submitted to the Stellar network; "
            "`extras.result_codes` says why.",
            {
                "envelope_xdr": record.envelope_xdr,
                "result_xdr": record.result_xdr,
                "result_codes": record.result_codes,
            },
        )
        return 400, body

    def _check_fee_bump(
        self,
        fee: int,
        fee_source_id: str,
        sigs: _Signatures,
        inner: _Tx,
        inner_sigs: _Signatures,
        close_time: int,
        next_ledger: int,
    ) -> _Outcome | None:
        ops = len(inner.ops)
        due = self.base_fee * (ops + 1)
        if fee < due or fee * max(ops, 1) < inner.tx.fee * (ops + 1):
            return _Outcome("tx_insufficient_fee", due)
        payer = self.accounts.get(fee_source_id)
        if payer is None:
            return _Outcome("tx_no_source_account", due)
        if not sigs.check(_signers(payer), payer.low_threshold):
            return _Outcome("tx_bad_auth", due)
        if payer.balance - self.min_balance(payer) < fee:
            return _Outcome("tx_insufficient_balance", due)
        if not sigs.all_used():
            return _Outcome("tx_bad_auth_extra", due)
        inner_rejection = self._check_tx(inner, inner_sigs, False, close_time, next_ledger)
        if inner_rejection is not None:
            inner_rejection.fee = 0
            return _Outcome("tx_fee_bump_inner_failed", due, inner=inner_rejection)
        return None

    def _check_tx(
        self, t: _Tx, sigs: _Signatures, charge_fee: bool, close_time: int, next_ledger: int
    ) -> _Outcome | None:
        """stellar-core's checkValid: None when the transaction may be applied."""
        due = self.base_fee * len(t.ops)
        if not t.ops:
            return _Outcome("tx_missing_operation", 0)
        pre = t.tx.preconditions
        if pre is not None:
            bounds = pre.time_bounds
            if bounds is not None:
                if bounds.min_time and close_time < bounds.min_time:
                    return _Outcome("tx_too_early", due)
                if bounds.max_time and close_time > bounds.max_time:
                    return _Outcome("tx_too_late", due)
            ledgers = pre.ledger_bounds
            if ledgers is not None:
                if ledgers.min_ledger and next_ledger < ledgers.min_ledger:
                    return _Outcome("tx_too_early", due)
                if ledgers.max_ledger and next_ledger >= ledgers.max_ledger:
                    return _Outcome("tx_too_late", due)
        if charge_fee and t.tx.fee < due:
            return _Outcome("tx_insufficient_fee", due)
        source = self.accounts.get(t.source)
        if source is None:
            return _Outcome("tx_no_source_account", due)
        if pre is not None and pre.min_sequence_number is not None:
            seq_ok = pre.min_sequence_number <= source.sequence < t.tx.sequence
        else:
            seq_ok = t.tx.sequence == source.sequence + 1
        if not seq_ok:
            return _Outcome("tx_bad_seq", due)
        if pre is not None and (
            (pre.min_sequence_age and close_time - source.sequence_time < pre.min_sequence_age)
            or (
                pre.min_sequence_ledger_gap
                and next_ledger - source.sequence_ledger < pre.min_sequence_ledger_gap
            )
        ):
            return _Outcome("tx_bad_minseq_age_or_gap", due)
        if not sigs.check(_signers(source), source.low_threshold):
            return _Outcome("tx_bad_auth", due)
        if charge_fee and source.balance - self.min_balance(source) < t.tx.fee:
            return _Outcome("tx_insufficient_balance", due)
        for index, op in enumerate(t.ops):
            failure = self._check_op(op, t, sigs)
            if failure is not None:
                # Like stellar-core, stop at the first invalid operation; the rest keep the
                # default (success) result.
                results = [_OpResult(_op_kind(o) or "unsupported", "op_success") for o in t.ops]
                results[index] = failure
                return _Outcome("tx_failed", due, results)
        if not sigs.all_used():
            return _Outcome("tx_bad_auth_extra", due)
        return None

    def _check_op(self, op: Operation, t: _Tx, sigs: _Signatures) -> _OpResult | None:
        kind = _op_kind(op)
        if kind is None:
            return _OpResult("unsupported", "op_not_supported")
        source_id = _op_source(op, t).account_id
        source = self.accounts.get(source_id)
        if source is None:
            # The account may be created by an earlier operation; only its own key can
            # authorize it meanwhile (stellar-core's checkSignatureNoAccount).
            if not sigs.check([(source_id, 1)], 0):
                return _OpResult(kind, "op_bad_auth")
        elif not sigs.check(_signers(source), _threshold(source, _needed_level(op, kind))):
            return _OpResult(kind, "op_bad_auth")
        code = self._malformed(op, source_id)
        return None if code is None else _OpResult(kind, code)

    @staticmethod
    def _malformed(op: Operation, source_id: str) -> str | None:
        """The operation's stateless checks (stellar-core's doCheckValid)."""
        if isinstance(op, Payment):
            return "op_malformed" if to_stroops(op.amount) <= 0 else None
        if isinstance(op, CreateAccount):
            if to_stroops(op.starting_balance) < 0 or op.destination == source_id:
                return "op_malformed"
            return None
        if isinstance(op, ChangeTrust):
            asset = op.asset
            if not isinstance(asset, Asset) or asset.is_native() or to_stroops(op.limit) < 0:
                return "op_malformed"
            return None
        if isinstance(op, SetOptions):
            values = (op.master_weight, op.low_threshold, op.med_threshold, op.high_threshold)
            if any(v is not None and not 0 <= v <= 255 for v in values):
                return "op_threshold_out_of_range"
            set_flags = int(op.set_flags or 0)
            clear_flags = int(op.clear_flags or 0)
            if (set_flags | clear_flags) & ~_KNOWN_FLAGS:
                return "op_unknown_flag"
            if set_flags & clear_flags:
                return "op_bad_flags"
            if op.signer is not None:
                if not 0 <= op.signer.weight <= 255:
                    return "op_threshold_out_of_range"
                if op.signer.signer_key.encoded_signer_key == source_id:
                    return "op_bad_signer"
            if op.home_domain is not None and len(op.home_domain) > 32:
                return "op_invalid_home_domain"
            return None
        if isinstance(op, ManageData):
            name = op.data_name
            if not name or len(name.encode()) > 64 or not name.isprintable():
                return "op_data_invalid_name"
            return None
        if isinstance(op, AccountMerge):
            return "op_malformed" if op.destination.account_id == source_id else None
        if isinstance(op, BumpSequence):
            return "op_bad_seq" if op.bump_to < 0 else None
        return None

    # -- applying ---------------------------------------------------------------------

    def _apply(self, t: _Tx, fee_payer_id: str, fee: int, close_time: int) -> _Outcome:
        """Charge the fee and consume the sequence for good, then apply the operations on a
        scratch view committed only if every one of them succeeds."""
        ledger = self.ledger_sequence + 1
        payer = self.accounts[fee_payer_id]
        payer.balance -= min(fee, payer.balance)
        payer.last_modified_ledger, payer.last_modified_time = ledger, close_time
        source = self.accounts[t.source]
        source.sequence = t.tx.sequence
        source.sequence_ledger, source.sequence_time = ledger, close_time
        source.last_modified_ledger, source.last_modified_time = ledger, close_time

        view = _View(self.accounts)
        results: list[_OpResult] = []
        records: list[PaymentRecord] = []
        tx_hash = t.hash.hex()
        created_at = _iso(close_time)
        for index, op in enumerate(t.ops):
            kind = _op_kind(op) or "unsupported"
            muxed_source = _op_source(op, t)
            account = view.get(muxed_source.account_id)
            if account is None:
                results.append(_OpResult(kind, "op_no_source_account"))
                continue
            result = self._apply_op(view, account, op, kind, ledger, close_time)
            results.append(result)
            record = self._payment_record(
                op, kind, muxed_source, _toid(ledger, 1, index + 1), tx_hash, created_at
            )
            if record is not None:
                records.append(record)
        successful = all(r.code == "op_success" for r in results)
        if successful:
            view.commit()
        self.ledger_sequence, self.closed_at = ledger, close_time
        for record in records:
            self._index_payment(
                record
                if successful
                else replace(
                    record,
                    successful=False,
                    body={**record.body, "transaction_successful": False},
                )
            )
        return _Outcome("tx_success" if successful else "tx_failed", fee, results)

    def _apply_op(
        self,
        view: _View,
        source: LedgerAccount,
        op: Operation,
        kind: str,
        ledger: int,
        close_time: int,
    ) -> _OpResult:
        source.last_modified_ledger, source.last_modified_time = ledger, close_time
        if isinstance(op, Payment):
            return _OpResult(kind, self._pay(view, source, op))
        if isinstance(op, CreateAccount):
            return _OpResult(kind, self._create(view, source, op, ledger, close_time))
        if isinstance(op, ChangeTrust):
            return _OpResult(kind, self._change_trust(view, source, op, ledger))
        if isinstance(op, SetOptions):
            return _OpResult(kind, self._set_options(view, source, op))
        if isinstance(op, ManageData):
            return _OpResult(kind, self._manage_data(source, op))
        if isinstance(op, AccountMerge):
            return self._merge(view, source, op, ledger)
        if isinstance(op, BumpSequence):
            if op.bump_to > source.sequence:
                source.sequence = op.bump_to
                source.sequence_ledger, source.sequence_time = ledger, close_time
            return _OpResult(kind, "op_success")
        return _OpResult("unsupported", "op_not_supported")

    def _pay(self, view: _View, source: LedgerAccount, op: Payment) -> str:
        amount = to_stroops(op.amount)
        dest_id = op.destination.account_id
        if op.asset.is_native():
            if dest_id == source.account_id:
                return "op_success"
            dest = view.get(dest_id)
            if dest is None:
                return "op_no_destination"
            if dest.balance > INT64_MAX - amount:
                return "op_line_full"
            if source.balance - self.min_balance(source) < amount:
                return "op_underfunded"
            dest.balance += amount
            source.balance -= amount
            return "op_success"

        code, issuer = op.asset.code, op.asset.issuer or ""
        dest = source if dest_id == source.account_id else view.get(dest_id)
        if dest is None:
            return "op_no_destination"
        if issuer not in (source.account_id, dest_id) and view.peek(issuer) is None:
            return "op_no_issuer"
        line = None
        if dest_id != issuer:  # an issuer receiving its own asset simply burns it
            line = dest.trustlines.get((code, issuer))
            if line is None:
                return "op_no_trust"
            if not line.authorized:
                return "op_not_authorized"
            if line.balance > line.limit - amount:
                return "op_line_full"
        source_line = None
        if source.account_id != issuer:  # issuers mint their own asset without limit
            source_line = source.trustlines.get((code, issuer))
            if source_line is None:
                return "op_src_no_trust"
            if not source_line.authorized:
                return "op_src_not_authorized"
            if source_line.balance < amount:
                return "op_underfunded"
        if line is not None:
            line.balance += amount
        if source_line is not None:
            source_line.balance -= amount
        return "op_success"

    def _create(
        self, view: _View, source: LedgerAccount, op: CreateAccount, ledger: int, close_time: int
    ) -> str:
        starting = to_stroops(op.starting_balance)
        if view.peek(op.destination) is not None:
            return "op_already_exists"
        if starting < 2 * self.base_reserve:
            return "op_low_reserve"
        if source.balance - self.min_balance(source) < starting:
            return "op_underfunded"
        source.balance -= starting
        view.create(
            LedgerAccount(
                account_id=op.destination,
                sequence=ledger << 32,
                balance=starting,
                last_modified_ledger=ledger,
                last_modified_time=close_time,
            )
        )
        return "op_success"

    def _change_trust(
        self, view: _View, source: LedgerAccount, op: ChangeTrust, ledger: int
    ) -> str:
        asset = op.asset
        assert isinstance(asset, Asset)
        code, issuer = asset.code, asset.issuer or ""
        limit = to_stroops(op.limit)
        if issuer == source.account_id:
            return "op_self_not_allowed"
        line = source.trustlines.get((code, issuer))
        if line is not None:
            if limit < line.balance:
                return "op_invalid_limit"
            if limit == 0:
                del source.trustlines[(code, issuer)]
            else:
                line.limit = limit
                line.last_modified_ledger = ledger
            return "op_success"
        if limit == 0:
            return "op_trust_line_missing"
        issuer_account = view.peek(issuer)
        if issuer_account is None:
            return "op_no_issuer"
        if source.balance < self.min_balance(source, 1):
            return "op_low_reserve"
        source.trustlines[(code, issuer)] = Trustline(
            code=code,
            issuer=issuer,
            limit=limit,
            authorized=not issuer_account.flags & AUTH_REQUIRED,
            last_modified_ledger=ledger,
        )
        return "op_success"

    def _set_options(self, view: _View, source: LedgerAccount, op: SetOptions) -> str:
        if op.inflation_dest is not None:
            if view.peek(op.inflation_dest) is None:
                return "op_invalid_inflation"
            source.inflation_destination = op.inflation_dest
        set_flags, clear_flags = int(op.set_flags or 0), int(op.clear_flags or 0)
        if set_flags or clear_flags:
            if source.flags & AUTH_IMMUTABLE:
                return "op_cant_change"
            flags = (source.flags & ~clear_flags) | set_flags
            if flags & AUTH_CLAWBACK_ENABLED and not flags & AUTH_REVOCABLE:
                return "op_auth_revocable_required"
            source.flags = flags
        if op.home_domain is not None:
            source.home_domain = op.home_domain
        if op.master_weight is not None:
            source.master_weight = op.master_weight
        if op.low_threshold is not None:
            source.low_threshold = op.low_threshold
        if op.med_threshold is not None:
            source.med_threshold = op.med_threshold
        if op.high_threshold is not None:
            source.high_threshold = op.high_threshold
        if op.signer is not None:
            key = op.signer.signer_key.encoded_signer_key
            weight = op.signer.weight
            if weight == 0:
                source.signers.pop(key, None)
            elif key in source.signers:
                source.signers[key] = weight
            else:
                if len(source.signers) >= MAX_SIGNERS:
                    return "op_too_many_signers"
                if source.balance < self.min_balance(source, 1):
                    return "op_low_reserve"
                source.signers[key] = weight
        return "op_success"

    def _manage_data(self, source: LedgerAccount, op: ManageData) -> str:
        name, value = op.data_name, op.data_value
        if value is None:
            if name not in source.data:
                return "op_data_name_not_found"
            del source.data[name]
            return "op_success"
        if name not in source.data and source.balance < self.min_balance(source, 1):
            return "op_low_reserve"
        source.data[name] = bytes(value)
        return "op_success"

    def _merge(
        self, view: _View, source: LedgerAccount, op: AccountMerge, ledger: int
    ) -> _OpResult:
        dest = view.get(op.destination.account_id)
        if dest is None:
            return _OpResult("account_merge", "op_no_account")
        if source.flags & AUTH_IMMUTABLE:
            return _OpResult("account_merge", "op_immutable_set")
        if source.trustlines or source.data:
            return _OpResult("account_merge", "op_has_sub_entries")
        if source.sequence >= ledger << 32:
            return _OpResult("account_merge", "op_seq_num_too_far")
        if dest.balance > INT64_MAX - source.balance:
            return _OpResult("account_merge", "op_dest_full")
        moved = source.balance
        dest.balance += moved
        view.delete(source.account_id)
        return _OpResult("account_merge", "op_success", merged=moved)

    def _remove_pre_auth(self, t: _Tx, sigs: _Signatures) -> None:
        """Pre-authorized transaction signers are one-shot: drop them once used."""
        if not sigs.used_pre_auth:
            return
        for account_id in {t.source, *(_op_source(op, t).account_id for op in t.ops)}:
            account = self.accounts.get(account_id)
            if account is not None:
                for key in sigs.used_pre_auth:
                    account.signers.pop(key, None)

    # -- history ----------------------------------------------------------------------

    def _record(
        self,
        envelope_xdr: str,
        outer_hash: bytes,
        outcome: _Outcome,
        t: _Tx,
        close_time: int,
        *,
        fee_account: MuxedAccount,
        max_fee: int,
        signatures: list[DecoratedSignature],
    ) -> AppliedTransaction:
        memo_type, memo, memo_bytes = _memo_fields(t.tx)
        is_fee_bump = outcome.inner is not None
        record = AppliedTransaction(
            hash=outer_hash.hex(),
            ledger=self.ledger_sequence,
            closed_at=close_time,
            envelope_xdr=envelope_xdr,
            result_xdr=_result_xdr(outcome, t.hash if is_fee_bump else None),
            successful=outcome.successful,
            fee_charged=outcome.fee,
            max_fee=max_fee,
            source_account=t.source,
            source_muxed=t.source_muxed,
            sequence=t.tx.sequence,
            fee_account=fee_account.account_id,
            fee_account_muxed=fee_account.account_muxed,
            operation_count=len(t.ops),
            memo_type=memo_type,
            memo=memo,
            memo_bytes=memo_bytes,
            signatures=[base64.b64encode(s.signature).decode() for s in signatures],
            preconditions=_preconditions_json(t.tx),
            result_codes=outcome.result_codes(),
            operations=[_op_summary(op, t) for op in t.ops],
            inner_hash=t.hash.hex() if is_fee_bump else None,
            inner_signatures=(
                [base64.b64encode(s.signature).decode() for s in t.signatures]
                if is_fee_bump
                else None
            ),
            inner_max_fee=t.tx.fee if is_fee_bump else None,
        )
        self.transactions.append(record)
        self._by_hash[record.hash] = record
        if record.inner_hash is not None:
            self._by_hash[record.inner_hash] = record
        self._recent_bids.append(max_fee // max(len(t.ops) + int(is_fee_bump), 1))
        return record

    @staticmethod
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

    def _index_payment(self, record: PaymentRecord) -> None:
        self._payments.append(record)
        self._payment_ids.append(record.id)
        for account_id in record.participants:
            ids, records = self._by_account.setdefault(account_id, ([], []))
            ids.append(record.id)
            records.append(record)

    def payments(
        self,
        account_id: str | None = None,
        *,
        cursor: int | None = None,
        limit: int = 10,
        descending: bool = False,
        include_failed: bool = False,
    ) -> list[PaymentRecord]:
        """Payment-like operations (of ``account_id``, or all) strictly after ``cursor``
        in the chosen order; binary search over per-account lists, no scans of history."""
        if account_id is None:
            ids, records = self._payment_ids, self._payments
        else:
            ids, records = self._by_account.get(account_id, ([], []))
        page: list[PaymentRecord] = []
        if descending:
            index = len(ids) if cursor is None else bisect_left(ids, cursor)
            while index > 0 and len(page) < limit:
                index -= 1
                if include_failed or records[index].successful:
                    page.append(records[index])
        else:
            index = 0 if cursor is None else bisect_right(ids, cursor)
            while index < len(ids) and len(page) < limit:
                if include_failed or records[index].successful:
                    page.append(records[index])
                index += 1
        return page

    # -- friendbot --------------------------------------------------------------------

    def friendbot(self, account_id: str, *, base_url: str = "") -> tuple[int, JSON]:
        """Fund a new account with 10,000 XLM through a real create_account transaction."""
        if self._friendbot is None or self._friendbot.public_key not in self.accounts:
            self._friendbot = Keypair.random()
            self.create_account(self._friendbot.public_key, Decimal("100000000000"))
        bot = self._friendbot
        source = SdkAccount(bot.public_key, self.accounts[bot.public_key].sequence)
        envelope = (
            TransactionBuilder(source, self.network_passphrase, base_fee=self.base_fee)
            .append_create_account_op(account_id, str(FRIENDBOT_XLM))
            .add_time_bounds(0, 0)
            .build()
        )
        envelope.sign(bot)
        return self.submit(envelope.to_xdr(), base_url=base_url)

    # -- Horizon JSON -----------------------------------------------------------------

    def root_json(self, base_url: str = "") -> JSON:
        """GET / — versions, latest ledger and network passphrase."""
        return {
            "_links": {
                "account": {"href": f"{base_url}/accounts/{{account_id}}", "templated": True},
                "fee_stats": {"href": f"{base_url}/fee_stats"},
                "friendbot": {"href": f"{base_url}/friendbot{{?addr}}", "templated": True},
                "payments": {
                    "href": f"{base_url}/payments{{?cursor,limit,order}}",
                    "templated": True,
                },
                "self": {"href": f"{base_url}/"},
                "transaction": {"href": f"{base_url}/transactions/{{hash}}", "templated": True},
            },
            "horizon_version": HORIZON_VERSION,
            "core_version": CORE_VERSION,
            "ingest_latest_ledger": self.ledger_sequence,
            "history_latest_ledger": self.ledger_sequence,
            "history_latest_ledger_closed_at": _iso(self.closed_at),
            "history_elder_ledger": 1,
            "core_latest_ledger": self.ledger_sequence,
            "network_passphrase": self.network_passphrase,
            "current_protocol_version": PROTOCOL_VERSION,
            "supported_protocol_version": PROTOCOL_VERSION,
            "core_supported_protocol_version": PROTOCOL_VERSION,
        }

    def account_json(self, account: LedgerAccount, base_url: str = "") -> JSON:
        """GET /accounts/{id} — Horizon's account resource."""
        self_url = f"{base_url}/accounts/{account.account_id}"
        balances: list[JSON] = []
        for line in account.trustlines.values():
            balances.append(
                {
                    "balance": format_amount(line.balance),
                    "limit": format_amount(line.limit),
                    "buying_liabilities": "0.0000000",
                    "selling_liabilities": "0.0000000",
                    "last_modified_ledger": line.last_modified_ledger,
                    "is_authorized": line.authorized,
                    "is_authorized_to_maintain_liabilities": line.authorized,
                    "asset_type": _asset_type(line.code),
                    "asset_code": line.code,
                    "asset_issuer": line.issuer,
                }
            )
        balances.append(
            {
                "balance": format_amount(account.balance),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "asset_type": "native",
            }
        )
        signers = [
            {"weight": weight, "key": key, "type": _signer_type(key)}
            for key, weight in sorted(account.signers.items())
        ]
        signers.append(
            {
                "weight": account.master_weight,
                "key": account.account_id,
                "type": "ed25519_public_key",
            }
        )
        body: JSON = {
            "_links": {
                "self": {"href": self_url},
                "transactions": {
                    "href": f"{self_url}/transactions{{?cursor,limit,order}}",
                    "templated": True,
                },
                "operations": {
                    "href": f"{self_url}/operations{{?cursor,limit,order}}",
                    "templated": True,
                },
                "payments": {
                    "href": f"{self_url}/payments{{?cursor,limit,order}}",
                    "templated": True,
                },
                "effects": {
                    "href": f"{self_url}/effects{{?cursor,limit,order}}",
                    "templated": True,
                },
                "offers": {"href": f"{self_url}/offers{{?cursor,limit,order}}", "templated": True},
                "trades": {"href": f"{self_url}/trades{{?cursor,limit,order}}", "templated": True},
                "data": {"href": f"{self_url}/data/{{key}}", "templated": True},
            },
            "id": account.account_id,
            "account_id": account.account_id,
            "sequence": str(account.sequence),
            "subentry_count": account.subentry_count,
            "last_modified_ledger": account.last_modified_ledger,
            "last_modified_time": _iso(account.last_modified_time),
            "thresholds": {
                "low_threshold": account.low_threshold,
                "med_threshold": account.med_threshold,
                "high_threshold": account.high_threshold,
            },
            "flags": {
                "auth_required": bool(account.flags & AUTH_REQUIRED),
                "auth_revocable": bool(account.flags & AUTH_REVOCABLE),
                "auth_immutable": bool(account.flags & AUTH_IMMUTABLE),
                "auth_clawback_enabled": bool(account.flags & AUTH_CLAWBACK_ENABLED),
            },
            "balances": balances,
            "signers": signers,
            "data": {k: base64.b64encode(v).decode() for k, v in account.data.items()},
            "num_sponsoring": 0,
            "num_sponsored": 0,
            "paging_token": account.account_id,
        }
        if account.sequence_ledger:
            body["sequence_ledger"] = account.sequence_ledger
            body["sequence_time"] = str(account.sequence_time)
        if account.home_domain:
            body["home_domain"] = account.home_domain
        if account.inflation_destination:
            body["inflation_destination"] = account.inflation_destination
        return body

    def transaction_json(
        self, record: AppliedTransaction, base_url: str = "", *, as_hash: str | None = None
    ) -> JSON:
        """GET /transactions/{hash} — Horizon's transaction resource. A fee bump looked up by
        its inner hash shows the inner hash and signatures, as Horizon does."""
        shown = as_hash or record.hash
        by_inner = record.inner_hash is not None and shown == record.inner_hash
        self_url = f"{base_url}/transactions/{shown}"
        token = str(_toid(record.ledger, 1, 0))
        body: JSON = {
            "_links": {
                "self": {"href": self_url},
                "account": {"href": f"{base_url}/accounts/{record.source_account}"},
                "ledger": {"href": f"{base_url}/ledgers/{record.ledger}"},
                "operations": {
                    "href": f"{self_url}/operations{{?cursor,limit,order}}",
                    "templated": True,
                },
                "effects": {
                    "href": f"{self_url}/effects{{?cursor,limit,order}}",
                    "templated": True,
                },
                "precedes": {"href": f"{base_url}/transactions?order=asc&cursor={token}"},
                "succeeds": {"href": f"{base_url}/transactions?order=desc&cursor={token}"},
                "transaction": {"href": self_url},
            },
            "id": shown,
            "paging_token": token,
            "successful": record.successful,
            "hash": shown,
            "ledger": record.ledger,
            "created_at": _iso(record.closed_at),
            "source_account": record.source_account,
        }
        if record.source_muxed:
            body["account_muxed"] = record.source_muxed
            body["account_muxed_id"] = str(
                MuxedAccount.from_account(record.source_muxed).account_muxed_id
            )
        body["source_account_sequence"] = str(record.sequence)
        body["fee_account"] = record.fee_account
        if record.fee_account_muxed:
            body["fee_account_muxed"] = record.fee_account_muxed
            body["fee_account_muxed_id"] = str(
                MuxedAccount.from_account(record.fee_account_muxed).account_muxed_id
            )
        body.update(
            {
                "fee_charged": str(record.fee_charged),
                "max_fee": str(record.max_fee),
                "operation_count": record.operation_count,
                "envelope_xdr": record.envelope_xdr,
                "result_xdr": record.result_xdr,
                "memo_type": record.memo_type,
            }
        )
        if record.memo_bytes is not None:
            body["memo_bytes"] = record.memo_bytes
        if record.memo is not None:
            body["memo"] = record.memo
        body["signatures"] = (
            record.inner_signatures if by_inner and record.inner_signatures else record.signatures
        )
        if record.preconditions:
            body["preconditions"] = record.preconditions
        if record.inner_hash is not None:
            body["fee_bump_transaction"] = {"hash": record.hash, "signatures": record.signatures}
            body["inner_transaction"] = {
                "hash": record.inner_hash,
                "signatures": record.inner_signatures or [],
                "max_fee": str(record.inner_max_fee),
            }
        return body

    def payment_json(self, record: PaymentRecord, base_url: str = "", join: bool = False) -> JSON:
        """One record of GET /payments, optionally with its transaction embedded."""
        self_url = f"{base_url}/operations/{record.id}"
        body: JSON = {
            "_links": {
                "self": {"href": self_url},
                "transaction": {"href": f"{base_url}/transactions/{record.tx_hash}"},
                "effects": {"href": f"{self_url}/effects"},
                "succeeds": {"href": f"{base_url}/effects?order=desc&cursor={record.id}"},
                "precedes": {"href": f"{base_url}/effects?order=asc&cursor={record.id}"},
            },
            **record.body,
        }
        if join:
            tx = self._by_hash.get(record.tx_hash)
            if tx is not None:
                body["transaction"] = self.transaction_json(tx, base_url, as_hash=record.tx_hash)
        return body

    def fee_stats_json(self) -> JSON:
        """GET /fee_stats. While the base fee is above the minimum (surge), every included
        transaction paid it, so the charged percentiles all sit at the current base fee."""
        charged = {key: str(self.base_fee) for key in _FEE_KEYS}
        bids = sorted(self._recent_bids) or [self.base_fee]

        def pct(p: int) -> str:
            return str(bids[min(len(bids) - 1, (len(bids) * p) // 100)])

        max_fee = {f"p{p}": pct(p) for p in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)}
        max_fee.update(
            max=str(bids[-1]), min=str(bids[0]), mode=str(Counter(bids).most_common(1)[0][0])
        )
        usage = "1.00" if self.base_fee > self.min_base_fee else "0.10"
        return {
            "last_ledger": str(self.ledger_sequence),
            "last_ledger_base_fee": str(self.min_base_fee),
            "ledger_capacity_usage": usage,
            "fee_charged": charged,
            "max_fee": max_fee,
        }

    def snapshot(self, *, transactions: bool = True) -> JSON:
        """Balances, sequences and (optionally) applied transactions, for the admin API."""
        accounts: JSON = {}
        for account_id, account in self.accounts.items():
            balances = {"native": format_amount(account.balance)}
            for (code, issuer), line in account.trustlines.items():
                balances[_asset_label(code, issuer)] = format_amount(line.balance)
            accounts[account_id] = {
                "sequence": str(account.sequence),
                "subentry_count": account.subentry_count,
                "balances": balances,
                "master_weight": account.master_weight,
                "signers": dict(account.signers),
                "thresholds": {
                    "low": account.low_threshold,
                    "med": account.med_threshold,
                    "high": account.high_threshold,
                },
            }
        body: JSON = {
            "ledger": self.ledger_sequence,
            "closed_at": _iso(self.closed_at),
            "network_passphrase": self.network_passphrase,
            "base_fee": self.base_fee,
            "min_base_fee": self.min_base_fee,
            "base_reserve": format_amount(self.base_reserve),
            "accounts": accounts,
            "transaction_count": len(self.transactions),
        }
        if transactions:
            body["transactions"] = [tx.summary() for tx in self.transactions]
        return body


_FEE_KEYS = (
    "max",
    "min",
    "mode",
    "p10",
    "p20",
    "p30",
    "p40",
    "p50",
    "p60",
    "p70",
    "p80",
    "p90",
    "p95",
    "p99",
)


def _signer_type(key: str) -> str:
    return {"T": "preauth_tx", "X": "sha256_hash", "P": "ed25519_signed_payload"}.get(
        key[0], "ed25519_public_key"
    )


# ----------------------------------------------------------------------------- faults

FaultMode = Literal["status", "timeout", "lost_answer"]
_MODES = ("status", "timeout", "lost_answer")


@dataclass(slots=True)
class FaultRule:
    """One fault: requests matching ``method`` and the ``path`` prefix misbehave.

    ``count`` limits it to the next N matching requests, ``probability`` makes each matching
    request misbehave with that chance (both may be combined; neither means always).
    ``status`` is the HTTP status for ``status`` mode, and for ``lost_answer`` the status
    answered after applying the request (None: the client times out instead).
    """

    mode: FaultMode
    method: str = "*"
    path: str = "/"
    status: int | None = None
    count: int | None = None
    probability: float | None = None
    retry_after: int | None = None
    delay: float | None = None
    id: int = 0
    hits: int = 0

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "mode": self.mode,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "count": self.count,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "hits": self.hits,
        }


class FaultInjector:
    """The runtime fault rules, first match wins; probabilities draw from a seeded RNG."""

    def __init__(self, seed: int | None = 0):
        self.rules: list[FaultRule] = []
        self._next_id = 1
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random draws from ``seed`` so probabilistic runs repeat exactly."""
        self._random = random.Random(seed)  # noqa: S311 - fault sampling, not cryptography

    def add(
        self,
        mode: str,
        *,
        method: str = "*",
        path: str = "/",
        status: int | None = None,
        count: int | None = None,
        probability: float | None = None,
        retry_after: int | None = None,
        delay: float | None = None,
    ) -> FaultRule:
        """Add a rule (see FaultRule); ``status`` mode defaults to 503."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        if mode == "status" and status is None:
            status = 503
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        if count is not None and int(count) < 0:
            raise ValueError("count must not be negative")
        if probability is not None and not 0.0 <= float(probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        if path.startswith("/_fake"):
            raise ValueError("admin paths cannot be faulted")
        rule = FaultRule(
            mode=cast(FaultMode, mode),
            method=method.upper(),
            path=path,
            status=None if status is None else int(status),
            count=None if count is None else int(count),
            probability=None if probability is None else float(probability),
            retry_after=None if retry_after is None else int(retry_after),
            delay=None if delay is None else float(delay),
            id=self._next_id,
        )
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        """Drop one rule; False when there was none with that id."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        """Drop every rule."""
        self.rules.clear()

    def match(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, consuming one of its count, or None."""
        for rule in self.rules:
            if rule.method not in ("*", method.upper()) or not path.startswith(rule.path):
                continue
            if rule.count is not None and rule.count <= 0:
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
            rule.hits += 1
            return rule
        return None


# ----------------------------------------------------------------------------- the app


class HalResponse(JSONResponse):
    """Horizon's resource media type."""

    media_type = "application/hal+json"


class ProblemResponse(JSONResponse):
    """Horizon's error media type (RFC 7807 problem documents)."""

    media_type = "application/problem+json"


def _respond(status: int, body: JSON, headers: Mapping[str, str] | None = None) -> Response:
    cls = HalResponse if status < 400 else ProblemResponse
    return cls(body, status_code=status, headers=dict(headers or {}))


@dataclass(slots=True)
class _Settings:
    fault_timeout: float
    close_delay: float


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _paging(request: Request) -> tuple[int | None, int, bool, bool, bool] | Response:
    """cursor, limit, descending, join, include_failed — or a 400 problem."""
    q = request.query_params
    order = q.get("order", "asc") or "asc"
    if order not in ("asc", "desc"):
        return _respond(400, bad_request_problem("order", "order must be asc or desc"))
    descending = order == "desc"
    raw_limit = q.get("limit", "") or "10"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
        return _respond(400, bad_request_problem("limit", "limit must be between 1 and 200"))
    raw_cursor = q.get("cursor", "")
    cursor: int | None
    if raw_cursor in ("", None):
        cursor = None
    elif raw_cursor == "now":
        cursor = None if descending else INT64_MAX
    elif raw_cursor.isdigit() and int(raw_cursor) <= INT64_MAX:
        cursor = int(raw_cursor)
    else:
        return _respond(400, bad_request_problem("cursor", "cursor must be a paging token"))
    join = q.get("join", "")
    if join not in ("", "transactions"):
        return _respond(400, bad_request_problem("join", "join may only be transactions"))
    include_failed = q.get("include_failed", "false").lower() == "true"
    return cursor, int(raw_limit), descending, join == "transactions", include_failed


def _page_url(base: str, path: str, cursor: str, limit: int, order: str, join: bool) -> str:
    params = {"cursor": cursor, "limit": limit, "order": order}
    if join:
        params["join"] = "transactions"
    return f"{base}{path}?{urlencode(params)}"


def create_fake_horizon_app(
    ledger: FakeLedger,
    faults: FaultInjector | None = None,
    *,
    fault_timeout: float = 30.0,
    close_delay: float = 0.0,
) -> Starlette:
    """The fake Horizon as a Starlette app: Horizon's routes plus the ``/_fake/`` admin API.

    ``fault_timeout`` is how long a ``timeout`` fault holds a real connection before its
    504; ``close_delay`` makes each submission wait that long, like a ledger close.
    """
    faults = faults if faults is not None else FaultInjector()
    settings = _Settings(fault_timeout=fault_timeout, close_delay=close_delay)

    # Handlers never await while touching the ledger, so on one event loop every mutation
    # is atomic without a lock.

    async def root(request: Request) -> Response:
        return _respond(200, ledger.root_json(_base_url(request)))

    async def get_account(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        if not StrKey.is_valid_ed25519_public_key(account_id):
            return _respond(400, bad_request_problem("account_id", "invalid address"))
        account = ledger.account(account_id)
        if account is None:
            return _respond(404, not_found_problem())
        return _respond(200, ledger.account_json(account, _base_url(request)))

    async def list_payments(request: Request) -> Response:
        account_id = request.path_params.get("account_id")
        if account_id is not None and not StrKey.is_valid_ed25519_public_key(account_id):
            return _respond(400, bad_request_problem("account_id", "invalid address"))
        parsed = _paging(request)
        if isinstance(parsed, Response):
            return parsed
        cursor, limit, descending, join, include_failed = parsed
        records = ledger.payments(
            account_id,
            cursor=cursor,
            limit=limit,
            descending=descending,
            include_failed=include_failed,
        )
        base = _base_url(request)
        order = "desc" if descending else "asc"
        raw_cursor = request.query_params.get("cursor", "")
        first = records[0].body["paging_token"] if records else raw_cursor
        last = records[-1].body["paging_token"] if records else raw_cursor
        path = request.url.path
        body = {
            "_links": {
                "self": {"href": _page_url(base, path, raw_cursor, limit, order, join)},
                "next": {"href": _page_url(base, path, last, limit, order, join)},
                "prev": {
                    "href": _page_url(
                        base, path, first, limit, "asc" if descending else "desc", join
                    )
                },
            },
            "_embedded": {"records": [ledger.payment_json(r, base, join) for r in records]},
        }
        return _respond(200, body)

    async def get_transaction(request: Request) -> Response:
        tx_hash = request.path_params["tx_hash"].lower()
        if len(tx_hash) != 64 or any(c not in "0123456789abcdef" for c in tx_hash):
            return _respond(400, bad_request_problem("tx_id", "invalid hash format"))
        record = ledger.applied(tx_hash)
        if record is None:
            return _respond(404, not_found_problem())
        return _respond(200, ledger.transaction_json(record, _base_url(request), as_hash=tx_hash))

    async def submit(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type and content_type not in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            return _respond(
                415,
                _problem(
                    "unsupported_media_type",
                    "Unsupported Media Type",
                    415,
                    "Send the envelope form-encoded, as the field tx.",
                ),
            )
        form = await request.form()
        value = form.get("tx") or request.query_params.get("tx") or ""
        envelope_xdr = value if isinstance(value, str) else ""
        status, body = ledger.submit(envelope_xdr, base_url=_base_url(request))
        if settings.close_delay > 0:
            await asyncio.sleep(settings.close_delay)
        return _respond(status, body)

    async def fee_stats(request: Request) -> Response:
        return _respond(200, ledger.fee_stats_json())

    async def friendbot(request: Request) -> Response:
        addr = request.query_params.get("addr", "")
        if not addr and request.method == "POST":
            form = await request.form()
            value = form.get("addr")
            addr = value if isinstance(value, str) else ""
        if not StrKey.is_valid_ed25519_public_key(addr):
            return _respond(400, bad_request_problem("addr", "addr must be a G... account id"))
        status, body = ledger.friendbot(addr, base_url=_base_url(request))
        return _respond(status, body)

    routes = [
        Route("/", root, methods=["GET"]),
        Route("/accounts/{account_id}", get_account, methods=["GET"]),
        Route("/accounts/{account_id}/payments", list_payments, methods=["GET"]),
        Route("/payments", list_payments, methods=["GET"]),
        Route("/transactions/{tx_hash}", get_transaction, methods=["GET"]),
        Route("/transactions", submit, methods=["POST"]),
        Route("/fee_stats", fee_stats, methods=["GET"]),
        Route("/friendbot", friendbot, methods=["GET", "POST"]),
        *_admin_routes(ledger, faults, settings),
    ]

    async def http_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _respond(404, not_found_problem())
        if exc.status_code == 405:
            return _respond(
                405,
                _problem(
                    "method_not_allowed",
                    "Method Not Allowed",
                    405,
                    "This resource does not support that HTTP method.",
                ),
            )
        return _respond(exc.status_code, status_problem(exc.status_code))

    async def server_error(request: Request, exc: Exception) -> Response:
        return _respond(500, status_problem(500))

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_problem, Exception: server_error},
    )
    app.state.ledger = ledger
    app.state.faults = faults
    app.state.settings = settings
    app.add_middleware(_FaultMiddleware, ledger=ledger, faults=faults, settings=settings)
    return app


class _FaultMiddleware:
    """Applies the fault rules to Horizon's routes (never to ``/_fake/``)."""

    def __init__(
        self, app: ASGIApp, ledger: FakeLedger, faults: FaultInjector, settings: _Settings
    ):
        self.app = app
        self.ledger = ledger
        self.faults = faults
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fake/"):
            await self.app(scope, receive, send)
            return
        rule = self.faults.match(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        in_process = any(name.decode().lower() == TRANSPORT_HEADER for name, _ in scope["headers"])
        if rule.mode == "lost_answer":

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, _replay(body), discard)
            if rule.status is not None:
                await self._status(scope, rule, body, send)
            else:
                await self._timeout(scope, rule, body, receive, send, in_process)
        elif rule.mode == "timeout":
            await self._timeout(scope, rule, body, receive, send, in_process)
        else:
            await self._status(scope, rule, body, send)

    def _is_submission(self, scope: Scope) -> bool:
        return scope["method"] == "POST" and scope["path"].rstrip("/") == "/transactions"

    def _problem_for(self, scope: Scope, status: int, body: bytes) -> JSON:
        if status == 504 and self._is_submission(scope):
            envelope = _form_field(body, "tx")
            tx_hash = self.ledger.hash_of(envelope) if envelope else None
            return submission_timeout_problem(tx_hash, envelope)
        return status_problem(status)

    async def _status(self, scope: Scope, rule: FaultRule, body: bytes, send: Send) -> None:
        status = rule.status or 503
        headers: dict[str, str] = {}
        if status == 429:
            headers = {
                "Retry-After": str(rule.retry_after if rule.retry_after is not None else 1),
                "X-RateLimit-Limit": "3600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(rule.retry_after if rule.retry_after is not None else 1),
            }
        elif rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        response = _respond(status, self._problem_for(scope, status, body), headers)
        await response(scope, _replay(b""), send)

    async def _timeout(
        self,
        scope: Scope,
        rule: FaultRule,
        body: bytes,
        receive: Receive,
        send: Send,
        in_process: bool,
    ) -> None:
        headers = {}
        if in_process:
            # FakeHorizonTransport turns this marker into httpx.ReadTimeout without waiting.
            headers[FAULT_HEADER] = "timeout"
        else:
            delay = rule.delay if rule.delay is not None else self.settings.fault_timeout
            # A client that gave up has seen its timeout; stop holding the connection then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_disconnected(receive), timeout=delay)
        response = _respond(504, self._problem_for(scope, 504, body), headers)
        await response(scope, _replay(b""), send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            # Never-ending requests would wait here; a finished one reports disconnect.
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _form_field(body: bytes, name: str) -> str | None:
    try:
        values = parse_qs(body.decode(), keep_blank_values=True).get(name)
    except UnicodeDecodeError:
        return None
    return values[0] if values else None


# ----------------------------------------------------------------------------- admin API


def _admin_routes(ledger: FakeLedger, faults: FaultInjector, settings: _Settings) -> list[Route]:
    """JSON endpoints under ``/_fake/`` to seed, tune, inspect and reset the fake."""

    async def read_json(request: Request) -> JSON:
        raw = await request.body()
        if not raw:
            return {}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    def admin(
        handler: Callable[[Request, JSON], Response],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return handler(request, await read_json(request))
            except KeyError as exc:
                return JSONResponse({"error": str(exc.args[0]) if exc.args else "not found"}, 404)
            except (ValueError, TypeError, InvalidOperation) as exc:
                return JSONResponse({"error": str(exc)}, 400)

        return endpoint

    def required(data: JSON, name: str) -> Any:
        if name not in data:
            raise ValueError(f"{name} is required")
        return data[name]

    def seed_account(request: Request, data: JSON) -> Response:
        secret = None
        account_id = data.get("account_id")
        if account_id is None:
            keypair = Keypair.random()
            account_id, secret = keypair.public_key, keypair.secret
        sequence = data.get("sequence")
        ledger.create_account(
            account_id,
            str(data.get("xlm", "10000")),
            sequence=None if sequence is None else int(sequence),
        )
        for line in data.get("trustlines", ()):
            ledger.add_trustline(
                account_id,
                required(line, "asset_code"),
                required(line, "asset_issuer"),
                limit=None if line.get("limit") is None else str(line["limit"]),
                balance=str(line.get("balance", "0")),
                authorized=bool(line.get("authorized", True)),
            )
        for signer in data.get("signers", ()):
            ledger.add_signer(account_id, required(signer, "key"), int(required(signer, "weight")))
        thresholds = data.get("thresholds") or {}
        ledger.set_thresholds(
            account_id, thresholds.get("low"), thresholds.get("med"), thresholds.get("high")
        )
        if data.get("master_weight") is not None:
            ledger.set_master_weight(account_id, int(data["master_weight"]))
        if data.get("flags") is not None:
            ledger.set_flags(account_id, int(data["flags"]))
        account = ledger.account(account_id)
        assert account is not None
        body = ledger.account_json(account, _base_url(request))
        if secret is not None:
            body["secret"] = secret
        return JSONResponse(body, 201)

    def seed_trustline(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        limit = data.get("limit")
        ledger.add_trustline(
            account_id,
            required(data, "asset_code"),
            required(data, "asset_issuer"),
            limit=None if limit is None else str(limit),
            balance=str(data.get("balance", "0")),
            authorized=bool(data.get("authorized", True)),
        )
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id], 201)

    def seed_balance(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        ledger.set_balance(
            account_id,
            str(required(data, "amount")),
            data.get("asset_code"),
            data.get("asset_issuer"),
        )
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id])

    def seed_signer(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        ledger.add_signer(account_id, required(data, "key"), int(required(data, "weight")))
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id])

    def seed_thresholds(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        ledger.set_thresholds(account_id, data.get("low"), data.get("med"), data.get("high"))
        if data.get("master_weight") is not None:
            ledger.set_master_weight(account_id, int(data["master_weight"]))
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id])

    def config_json() -> JSON:
        return {
            "network_passphrase": ledger.network_passphrase,
            "base_fee": ledger.base_fee,
            "min_base_fee": ledger.min_base_fee,
            "base_reserve": format_amount(ledger.base_reserve),
            "fault_timeout": settings.fault_timeout,
            "close_delay": settings.close_delay,
        }

    def config(request: Request, data: JSON) -> Response:
        if request.method == "POST":
            if data.get("base_fee") is not None:
                ledger.set_base_fee(int(data["base_fee"]))
            if data.get("base_reserve") is not None:
                ledger.base_reserve = to_stroops(str(data["base_reserve"]))
            if data.get("fault_timeout") is not None:
                settings.fault_timeout = float(data["fault_timeout"])
            if data.get("close_delay") is not None:
                settings.close_delay = float(data["close_delay"])
            if "fault_seed" in data:
                faults.reseed(None if data["fault_seed"] is None else int(data["fault_seed"]))
        return JSONResponse(config_json())

    def fault_rules(request: Request, data: JSON) -> Response:
        if request.method == "POST":
            rule = faults.add(
                str(required(data, "mode")),
                method=str(data.get("method", "*")),
                path=str(data.get("path", "/")),
                status=data.get("status"),
                count=data.get("count"),
                probability=data.get("probability"),
                retry_after=data.get("retry_after"),
                delay=data.get("delay"),
            )
            return JSONResponse(rule.to_json(), 201)
        if request.method == "DELETE":
            faults.clear()
        return JSONResponse({"rules": [r.to_json() for r in faults.rules]})

    def fault_rule(request: Request, data: JSON) -> Response:
        rule_id = request.path_params["rule_id"]
        if not faults.remove(rule_id):
            raise KeyError(f"no fault rule {rule_id}")
        return JSONResponse({"rules": [r.to_json() for r in faults.rules]})

    def snapshot(request: Request, data: JSON) -> Response:
        include = request.query_params.get("transactions", "true").lower() != "false"
        return JSONResponse(ledger.snapshot(transactions=include))

    def reset(request: Request, data: JSON) -> Response:
        ledger.reset()
        faults.clear()
        return JSONResponse(ledger.snapshot())

    return [
        Route("/_fake/accounts", admin(seed_account), methods=["POST"]),
        Route("/_fake/trustlines", admin(seed_trustline), methods=["POST"]),
        Route("/_fake/balances", admin(seed_balance), methods=["POST"]),
        Route("/_fake/signers", admin(seed_signer), methods=["POST"]),
        Route("/_fake/thresholds", admin(seed_thresholds), methods=["POST"]),
        Route("/_fake/config", admin(config), methods=["GET", "POST"]),
        Route("/_fake/faults", admin(fault_rules), methods=["GET", "POST", "DELETE"]),
        Route("/_fake/faults/{rule_id:int}", admin(fault_rule), methods=["DELETE"]),
        Route("/_fake/snapshot", admin(snapshot), methods=["GET"]),
        Route("/_fake/reset", admin(reset), methods=["POST"]),
    ]


# ----------------------------------------------------------------------------- transport


class FakeHorizonTransport(httpx.AsyncBaseTransport):
    """An httpx transport serving the fake Horizon in-process.

    Give it a FakeLedger (an app is built around it) or an app from create_fake_horizon_app.
    ``timeout`` faults raise httpx.ReadTimeout at once instead of waiting; ``lost_answer``
    faults apply the request first, then raise it (or answer their status).
    """

    def __init__(self, target: FakeLedger | Starlette, faults: FaultInjector | None = None):
        if isinstance(target, FakeLedger):
            app = create_fake_horizon_app(target, faults)
        else:
            if faults is not None:
                raise ValueError("an app brings its own FaultInjector")
            app = target
        self.app = app
        self.ledger: FakeLedger = app.state.ledger
        self.faults: FaultInjector = app.state.faults
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers[TRANSPORT_HEADER] = "in-process"
        response = await self._asgi.handle_async_request(request)
        if response.headers.get(FAULT_HEADER) == "timeout":
            await response.aclose()
            raise httpx.ReadTimeout("fake Horizon: simulated timeout", request=request)
        return response

    async def aclose(self) -> None:
        await self._asgi.aclose()


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    """Run the fake Horizon as a server: ``python -m gateway.sandbox.horizon --port 8100``."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.sandbox.horizon",
        description="A fake Stellar Horizon with an admin API under /_fake/.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--passphrase", default=TESTNET_PASSPHRASE)
    parser.add_argument("--base-fee", type=int, default=100, help="stroops per operation")
    parser.add_argument("--base-reserve", default="0.5", help="XLM")
    parser.add_argument(
        "--fault-timeout", type=float, default=30.0, help="seconds a timeout fault holds on"
    )
    parser.add_argument(
        "--close-delay", type=float, default=0.0, help="seconds each submission waits"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    ledger = FakeLedger(
        args.passphrase, base_reserve=Decimal(args.base_reserve), base_fee=args.base_fee
    )
    app = create_fake_horizon_app(
        ledger,
        FaultInjector(args.seed),
        fault_timeout=args.fault_timeout,
        close_delay=args.close_delay,
    )
    # One worker only: the ledger lives in this process's memory.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
