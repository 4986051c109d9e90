"""FakeLedger: the in-memory ledger that owns all state, seeds it directly, submits envelopes
through the checks and operations, and keeps the history Horizon serves."""

from __future__ import annotations

import base64
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from stellar_sdk import Account as SdkAccount
from stellar_sdk import (
    DecoratedSignature,
    FeeBumpTransactionEnvelope,
    Keypair,
    MuxedAccount,
    Network,
    StrKey,
    TransactionBuilder,
)

from gateway.sandbox.horizon.amounts import INT64_MAX, STROOPS_PER_UNIT, _iso, _toid, to_stroops
from gateway.sandbox.horizon.checks import _check_fee_bump, _check_tx, _Signatures
from gateway.sandbox.horizon.entries import (
    _KNOWN_FLAGS,
    JSON,
    AppliedTransaction,
    LedgerAccount,
    PaymentRecord,
    Trustline,
)
from gateway.sandbox.horizon.envelope import MAX_OPS_PER_TX, _decode, _op_kind, _op_source, _Tx
from gateway.sandbox.horizon.operations import _apply_op, _View
from gateway.sandbox.horizon.problems import _problem, malformed_problem
from gateway.sandbox.horizon.records import (
    _memo_fields,
    _op_summary,
    _payment_record,
    _preconditions_json,
)
from gateway.sandbox.horizon.resources import _HorizonResources
from gateway.sandbox.horizon.results import _OpResult, _Outcome, _result_xdr

TESTNET_PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
FRIENDBOT_XLM = Decimal("10000")


class FakeLedger(_HorizonResources):
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
            return _decode(envelope_xdr, self.network_passphrase, self._network_id)[1].hex()
        except Exception:
            return None

    def submit(self, envelope_xdr: str, *, base_url: str = "") -> tuple[int, JSON]:
        """Validate and apply an envelope as Horizon's POST /transactions would.

        Answers (HTTP status, Horizon JSON): 200 with the transaction resource when it
        succeeded, 400 ``transaction_failed`` with result codes otherwise, 400
        ``transaction_malformed`` when undecodable. An envelope whose hash is already in the
        ledger answers its stored result instead of being checked again.
        """
        try:
            envelope, outer_hash, inner = _decode(
                envelope_xdr, self.network_passphrase, self._network_id
            )
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
            rejection = _check_fee_bump(
                self,
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
            rejection = _check_tx(self, inner, inner_sigs, True, close_time, next_ledger)
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
            result = _apply_op(self, view, account, op, kind, ledger, close_time)
            results.append(result)
            record = _payment_record(
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
