"""Horizon's JSON resources for the ledger's state (root, accounts, transactions, payments,
fee stats) and the admin snapshot, mixed into FakeLedger."""

from __future__ import annotations

import base64
from collections import Counter, deque
from collections.abc import Callable

from stellar_sdk import MuxedAccount

from gateway.sandbox.horizon.amounts import _asset_label, _asset_type, _iso, _toid, format_amount
from gateway.sandbox.horizon.entries import (
    AUTH_CLAWBACK_ENABLED,
    AUTH_IMMUTABLE,
    AUTH_REQUIRED,
    AUTH_REVOCABLE,
    JSON,
    AppliedTransaction,
    LedgerAccount,
    PaymentRecord,
)

HORIZON_VERSION = "fake-horizon-2.32"
CORE_VERSION = "stellar-core (fake) 22.0.0"
PROTOCOL_VERSION = 22


class _HorizonResources:
    """FakeLedger's Horizon JSON views; reads only the ledger state declared here."""

    network_passphrase: str
    accounts: dict[str, LedgerAccount]
    ledger_sequence: int
    closed_at: int
    clock: Callable[[], float]
    base_fee: int
    min_base_fee: int
    base_reserve: int
    transactions: list[AppliedTransaction]
    _by_hash: dict[str, AppliedTransaction]
    _recent_bids: deque[int]

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
            # Empty ledgers close as time passes: a time bound in the past is over.
            "history_latest_ledger_closed_at": _iso(max(self.closed_at, int(self.clock()))),
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
