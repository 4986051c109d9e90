"""stellar-core's checkValid: the signature checker, threshold levels, and the stateless and
stateful checks a transaction (or fee bump) must pass before it is applied."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal, Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from stellar_sdk import (
    AccountMerge,
    Asset,
    BumpSequence,
    ChangeTrust,
    CreateAccount,
    DecoratedSignature,
    ManageData,
    Operation,
    Payment,
    SetOptions,
    StrKey,
)

from gateway.sandbox.horizon.amounts import to_stroops
from gateway.sandbox.horizon.entries import _KNOWN_FLAGS, LedgerAccount
from gateway.sandbox.horizon.envelope import _op_kind, _op_source, _Tx
from gateway.sandbox.horizon.results import _OpResult, _Outcome


class _Ledger(Protocol):
    """What the checks read from the ledger (FakeLedger provides it)."""

    base_fee: int
    accounts: dict[str, LedgerAccount]

    def min_balance(self, account: LedgerAccount, extra_subentries: int = 0) -> int: ...


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


def _check_fee_bump(
    ledger: _Ledger,
    fee: int,
    fee_source_id: str,
    sigs: _Signatures,
    inner: _Tx,
    inner_sigs: _Signatures,
    close_time: int,
    next_ledger: int,
) -> _Outcome | None:
    ops = len(inner.ops)
    due = ledger.base_fee * (ops + 1)
    if fee < due or fee * max(ops, 1) < inner.tx.fee * (ops + 1):
        return _Outcome("tx_insufficient_fee", due)
    payer = ledger.accounts.get(fee_source_id)
    if payer is None:
        return _Outcome("tx_no_source_account", due)
    if not sigs.check(_signers(payer), payer.low_threshold):
        return _Outcome("tx_bad_auth", due)
    if payer.balance - ledger.min_balance(payer) < fee:
        return _Outcome("tx_insufficient_balance", due)
    if not sigs.all_used():
        return _Outcome("tx_bad_auth_extra", due)
    inner_rejection = _check_tx(ledger, inner, inner_sigs, False, close_time, next_ledger)
    if inner_rejection is not None:
        inner_rejection.fee = 0
        return _Outcome("tx_fee_bump_inner_failed", due, inner=inner_rejection)
    return None


def _check_tx(
    ledger: _Ledger, t: _Tx, sigs: _Signatures, charge_fee: bool, close_time: int, next_ledger: int
) -> _Outcome | None:
    """stellar-core's checkValid: None when the transaction may be applied."""
    due = ledger.base_fee * len(t.ops)
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
    source = ledger.accounts.get(t.source)
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
    if charge_fee and source.balance - ledger.min_balance(source) < t.tx.fee:
        return _Outcome("tx_insufficient_balance", due)
    for index, op in enumerate(t.ops):
        failure = _check_op(ledger, op, t, sigs)
        if failure is not None:
            # Like stellar-core, stop at the first invalid operation; the rest keep the
            # default (success) result.
            results = [_OpResult(_op_kind(o) or "unsupported", "op_success") for o in t.ops]
            results[index] = failure
            return _Outcome("tx_failed", due, results)
    if not sigs.all_used():
        return _Outcome("tx_bad_auth_extra", due)
    return None


def _check_op(ledger: _Ledger, op: Operation, t: _Tx, sigs: _Signatures) -> _OpResult | None:
    kind = _op_kind(op)
    if kind is None:
        return _OpResult("unsupported", "op_not_supported")
    source_id = _op_source(op, t).account_id
    source = ledger.accounts.get(source_id)
    if source is None:
        # The account may be created by an earlier operation; only its own key can
        # authorize it meanwhile (stellar-core's checkSignatureNoAccount).
        if not sigs.check([(source_id, 1)], 0):
            return _OpResult(kind, "op_bad_auth")
    elif not sigs.check(_signers(source), _threshold(source, _needed_level(op, kind))):
        return _OpResult(kind, "op_bad_auth")
    code = _malformed(op, source_id)
    return None if code is None else _OpResult(kind, code)


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
