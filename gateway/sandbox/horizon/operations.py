"""Applying operations: each operation's effect on a copy-on-write view of the accounts, with
the result code stellar-core would give it."""

from __future__ import annotations

from typing import Protocol

from stellar_sdk import (
    AccountMerge,
    Asset,
    BumpSequence,
    ChangeTrust,
    CreateAccount,
    ManageData,
    Operation,
    Payment,
    SetOptions,
)

from gateway.sandbox.horizon.amounts import INT64_MAX, to_stroops
from gateway.sandbox.horizon.entries import (
    AUTH_CLAWBACK_ENABLED,
    AUTH_IMMUTABLE,
    AUTH_REQUIRED,
    AUTH_REVOCABLE,
    LedgerAccount,
    Trustline,
)
from gateway.sandbox.horizon.results import _OpResult

MAX_SIGNERS = 20


class _Reserves(Protocol):
    """What applying operations reads from the ledger (FakeLedger provides it)."""

    base_reserve: int

    def min_balance(self, account: LedgerAccount, extra_subentries: int = 0) -> int: ...


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


def _apply_op(
    reserves: _Reserves,
    view: _View,
    source: LedgerAccount,
    op: Operation,
    kind: str,
    ledger: int,
    close_time: int,
) -> _OpResult:
    source.last_modified_ledger, source.last_modified_time = ledger, close_time
    if isinstance(op, Payment):
        return _OpResult(kind, _pay(reserves, view, source, op))
    if isinstance(op, CreateAccount):
        return _OpResult(kind, _create(reserves, view, source, op, ledger, close_time))
    if isinstance(op, ChangeTrust):
        return _OpResult(kind, _change_trust(reserves, view, source, op, ledger))
    if isinstance(op, SetOptions):
        return _OpResult(kind, _set_options(reserves, view, source, op))
    if isinstance(op, ManageData):
        return _OpResult(kind, _manage_data(reserves, source, op))
    if isinstance(op, AccountMerge):
        return _merge(view, source, op, ledger)
    if isinstance(op, BumpSequence):
        if op.bump_to > source.sequence:
            source.sequence = op.bump_to
            source.sequence_ledger, source.sequence_time = ledger, close_time
        return _OpResult(kind, "op_success")
    return _OpResult("unsupported", "op_not_supported")


def _pay(reserves: _Reserves, view: _View, source: LedgerAccount, op: Payment) -> str:
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
        if source.balance - reserves.min_balance(source) < amount:
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
    reserves: _Reserves,
    view: _View,
    source: LedgerAccount,
    op: CreateAccount,
    ledger: int,
    close_time: int,
) -> str:
    starting = to_stroops(op.starting_balance)
    if view.peek(op.destination) is not None:
        return "op_already_exists"
    if starting < 2 * reserves.base_reserve:
        return "op_low_reserve"
    if source.balance - reserves.min_balance(source) < starting:
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
    reserves: _Reserves, view: _View, source: LedgerAccount, op: ChangeTrust, ledger: int
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
    if source.balance < reserves.min_balance(source, 1):
        return "op_low_reserve"
    source.trustlines[(code, issuer)] = Trustline(
        code=code,
        issuer=issuer,
        limit=limit,
        authorized=not issuer_account.flags & AUTH_REQUIRED,
        last_modified_ledger=ledger,
    )
    return "op_success"


def _set_options(reserves: _Reserves, view: _View, source: LedgerAccount, op: SetOptions) -> str:
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
            if source.balance < reserves.min_balance(source, 1):
                return "op_low_reserve"
            source.signers[key] = weight
    return "op_success"


def _manage_data(reserves: _Reserves, source: LedgerAccount, op: ManageData) -> str:
    name, value = op.data_name, op.data_value
    if value is None:
        if name not in source.data:
            return "op_data_name_not_found"
        del source.data[name]
        return "op_success"
    if name not in source.data and source.balance < reserves.min_balance(source, 1):
        return "op_low_reserve"
    source.data[name] = bytes(value)
    return "op_success"


def _merge(view: _View, source: LedgerAccount, op: AccountMerge, ledger: int) -> _OpResult:
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
