"""The Horizon port: accounts, payments, submission and fees, plus its httpx adapter.

The adapter turns transport failures, timeouts, 429 and 5xx answers into HorizonUnavailable,
and answers it cannot read into HorizonBadResponse. A 404 for an account or transaction is
not an error: it answers None.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx

from gateway.errors import HorizonBadResponse, HorizonUnavailable

log = logging.getLogger("gateway.horizon")


@dataclass(frozen=True, slots=True)
class Signer:
    key: str
    weight: int


@dataclass(frozen=True, slots=True)
class Balance:
    asset_code: str | None  # None for XLM
    asset_issuer: str | None
    amount: Decimal
    limit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class HorizonAccount:
    account_id: str
    sequence: int
    low_threshold: int
    med_threshold: int
    high_threshold: int
    signers: tuple[Signer, ...]
    balances: tuple[Balance, ...] = ()

    def balance(self, code: str | None, issuer: str | None = None) -> Balance | None:
        return next(
            (b for b in self.balances if b.asset_code == code and b.asset_issuer == issuer), None
        )


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment-like operation (payment, path payment, create_account) to or from an account.
    Horizon also lists merges and contract calls; their amounts are not on the record, so
    they are skipped (the cursor still moves past them)."""

    id: str
    paging_token: str
    type: str
    transaction_hash: str
    source: str
    to: str
    to_muxed_id: str | None
    asset_code: str | None  # None for XLM
    asset_issuer: str | None
    amount: Decimal
    created_at: datetime
    memo_type: str | None
    memo: str | None
    ledger: int | None
    source_muxed: str | None = None  # the payer's M... address when it paid as one


@dataclass(frozen=True, slots=True)
class PaymentsPage:
    records: tuple[Payment, ...]
    next_cursor: str | None
    full: bool = False  # the page held ``limit`` records: more may be waiting


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    hash: str
    successful: bool
    ledger: int
    created_at: datetime
    result_xdr: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Horizon's definite answer to a submission. ``successful`` False means the network
    rejected it; ``tx_code``/``op_codes`` say why (e.g. tx_bad_seq, op_underfunded)."""

    hash: str | None
    successful: bool
    ledger: int | None = None
    tx_code: str | None = None
    op_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeeStats:
    last_ledger_base_fee: int
    p50: int
    p90: int
    p99: int


@dataclass(frozen=True, slots=True)
class LedgerState:
    latest_ledger: int
    closed_at: datetime | None
    network_passphrase: str | None


class HorizonAccounts(Protocol):
    async def account(self, account_id: str) -> HorizonAccount | None:
        """The account's signers, thresholds and balances, or None when it does not exist."""


class HorizonSubmitter(Protocol):
    async def submit(self, envelope_xdr: str) -> SubmitResult:
        """Submit a signed envelope. Raises HorizonUnavailable when the outcome is unknown."""

    async def transaction(self, tx_hash: str) -> TransactionRecord | None:
        """The ledger record of a transaction hash, or None when Horizon does not know it."""

    async def fee_stats(self) -> FeeStats: ...


class HorizonPayments(Protocol):
    async def payments(self, account_id: str, cursor: str | None, limit: int) -> PaymentsPage:
        """Successful payments to and from ``account_id`` after ``cursor``, oldest first."""

    async def ledger_state(self) -> LedgerState: ...


class Horizon(HorizonAccounts, HorizonSubmitter, HorizonPayments, Protocol):
    """Every Horizon capability the gateway uses."""


def _dec(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError) as exc:
        raise HorizonBadResponse(f"Horizon sent an unreadable {what}") from exc


def _time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise HorizonBadResponse("Horizon sent an unreadable time") from exc


class HttpxHorizon:
    """Horizon over HTTP. ``client`` carries the base URL and timeouts."""

    def __init__(self, client: httpx.AsyncClient):
        self._client = client

    async def _request(
        self,
        method: str,
        path: str,
        *,
        label: str | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        allow_404: bool = False,
    ) -> dict[str, Any] | None:
        # ``label`` names the endpoint in logs without the account or hash in the path.
        what = f"{method} {label or path}"
        try:
            response = await self._client.request(method, path, params=params, data=data)
        except httpx.TimeoutException as exc:
            raise HorizonUnavailable(detail=f"{what}: timed out") from exc
        except httpx.HTTPError as exc:
            raise HorizonUnavailable(detail=f"{what}: {type(exc).__name__}") from exc
        if response.status_code == 404 and allow_404:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            raise HorizonUnavailable(detail=f"{what}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise HorizonBadResponse() from exc
        if not isinstance(body, dict):
            raise HorizonBadResponse()
        if response.status_code == 400 and method == "POST":
            return body  # a rejected submission; the caller reads its result codes
        if response.status_code != 200:
            raise HorizonBadResponse(detail=f"{what}: HTTP {response.status_code}")
        return body

    async def account(self, account_id: str) -> HorizonAccount | None:
        body = await self._request(
            "GET", f"/accounts/{account_id}", label="/accounts/{id}", allow_404=True
        )
        if body is None:
            return None
        try:
            thresholds = body["thresholds"]
            signers = tuple(
                Signer(key=s["key"], weight=int(s["weight"]))
                for s in body.get("signers", ())
                if s.get("type", "ed25519_public_key") == "ed25519_public_key"
            )
            balances = tuple(
                Balance(
                    asset_code=None if b["asset_type"] == "native" else b["asset_code"],
                    asset_issuer=None if b["asset_type"] == "native" else b["asset_issuer"],
                    amount=_dec(b["balance"], "balance"),
                    limit=_dec(b["limit"], "limit") if "limit" in b else None,
                )
                for b in body.get("balances", ())
                if b.get("asset_type") in ("native", "credit_alphanum4", "credit_alphanum12")
            )
            return HorizonAccount(
                account_id=body["account_id"],
                sequence=int(body["sequence"]),
                low_threshold=int(thresholds["low_threshold"]),
                med_threshold=int(thresholds["med_threshold"]),
                high_threshold=int(thresholds["high_threshold"]),
                signers=signers,
                balances=balances,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HorizonBadResponse("Horizon sent an unreadable account") from exc

    async def submit(self, envelope_xdr: str) -> SubmitResult:
        body = await self._request("POST", "/transactions", data={"tx": envelope_xdr})
        assert body is not None
        if "successful" in body and "hash" in body:
            return SubmitResult(
                hash=body["hash"], successful=bool(body["successful"]), ledger=body.get("ledger")
            )
        if str(body.get("type", "")).endswith("/transaction_malformed"):
            return SubmitResult(hash=None, successful=False, tx_code="tx_malformed")
        extras = body.get("extras") or {}
        codes = extras.get("result_codes") or {}
        tx_code = codes.get("transaction")
        if not isinstance(tx_code, str):
            raise HorizonBadResponse("Horizon rejected a submission without result codes")
        op_codes = tuple(str(c) for c in codes.get("operations") or ())
        return SubmitResult(
            hash=extras.get("hash"), successful=False, tx_code=tx_code, op_codes=op_codes
        )

    async def transaction(self, tx_hash: str) -> TransactionRecord | None:
        body = await self._request(
            "GET", f"/transactions/{tx_hash}", label="/transactions/{hash}", allow_404=True
        )
        if body is None:
            return None
        try:
            return TransactionRecord(
                hash=body["hash"],
                successful=bool(body["successful"]),
                ledger=int(body["ledger"]),
                created_at=_time(body["created_at"]),
                result_xdr=body.get("result_xdr"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HorizonBadResponse("Horizon sent an unreadable transaction") from exc

    async def fee_stats(self) -> FeeStats:
        body = await self._request("GET", "/fee_stats")
        assert body is not None
        try:
            charged = body["fee_charged"]
            return FeeStats(
                last_ledger_base_fee=int(body["last_ledger_base_fee"]),
                p50=int(charged["p50"]),
                p90=int(charged["p90"]),
                p99=int(charged["p99"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HorizonBadResponse("Horizon sent unreadable fee stats") from exc

    async def payments(self, account_id: str, cursor: str | None, limit: int) -> PaymentsPage:
        params: dict[str, Any] = {"order": "asc", "limit": limit, "join": "transactions"}
        if cursor:
            params["cursor"] = cursor
        body = await self._request(
            "GET",
            f"/accounts/{account_id}/payments",
            label="/accounts/{id}/payments",
            params=params,
            allow_404=True,
        )
        if body is None:  # the account does not exist yet: nothing was paid to it
            return PaymentsPage(records=(), next_cursor=cursor)
        try:
            raw_records = body["_embedded"]["records"]
            records = tuple(_payment(r) for r in raw_records if r["type"] in PAYMENT_TYPES)
            # The cursor moves past records we do not read (merges, contract calls) too.
            next_cursor = str(raw_records[-1]["paging_token"]) if raw_records else cursor
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise HorizonBadResponse("Horizon sent unreadable payments") from exc
        return PaymentsPage(
            records=records, next_cursor=next_cursor, full=len(raw_records) >= limit
        )

    async def ledger_state(self) -> LedgerState:
        body = await self._request("GET", "/")
        assert body is not None
        try:
            closed = body.get("history_latest_ledger_closed_at")
            return LedgerState(
                latest_ledger=int(body["history_latest_ledger"]),
                closed_at=_time(closed) if closed else None,
                network_passphrase=body.get("network_passphrase"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HorizonBadResponse("Horizon sent an unreadable root document") from exc


PAYMENT_TYPES = frozenset(
    {"payment", "path_payment_strict_receive", "path_payment_strict_send", "create_account"}
)


def _payment(r: Mapping[str, Any]) -> Payment:
    kind = r["type"]
    if kind == "create_account":
        to, amount, code, issuer = r["account"], r["starting_balance"], None, None
        source, source_muxed = r["funder"], r.get("funder_muxed")
    else:
        to, amount, source, source_muxed = r["to"], r["amount"], r["from"], r.get("from_muxed")
        native = r["asset_type"] == "native"
        code = None if native else r["asset_code"]
        issuer = None if native else r["asset_issuer"]
    tx = r.get("transaction") or {}
    return Payment(
        id=str(r["id"]),
        paging_token=str(r["paging_token"]),
        type=kind,
        transaction_hash=r["transaction_hash"],
        source=source,
        to=to,
        to_muxed_id=r.get("to_muxed_id"),
        asset_code=code,
        asset_issuer=issuer,
        amount=_dec(amount, "amount"),
        created_at=_time(r["created_at"]),
        memo_type=tx.get("memo_type"),
        memo=tx.get("memo"),
        ledger=tx.get("ledger"),
        source_muxed=source_muxed,
    )
