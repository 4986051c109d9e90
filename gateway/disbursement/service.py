"""Bulk disbursements: upload (all or nothing), operators' actions (federation destinations
resolved at ready; the total reserved at start), and what operators see of them and of the
distribution account."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from gateway.disbursement.csv_rows import read_rows
from gateway.disbursement.model import Disbursement, DisbursementStatus, PaymentStatus
from gateway.errors import (
    BadRequest,
    Conflict,
    GatewayError,
    InvalidField,
    NotFound,
    PayloadTooLarge,
)
from gateway.federation.client import Resolved, resolve_address
from gateway.history import Event
from gateway.outbound.compliance_peers import CompliancePeers
from gateway.outbound.horizon import HorizonAccounts
from gateway.outbound.stellar_toml import StellarTomls
from gateway.settings import Settings
from gateway.types import format_stroops, to_stroops

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory

CHUNK = 65_536


OPERATOR_ACTIONS = frozenset({"ready", "approve", "start", "pause", "cancel"})


def _event(disbursement_id: str, payment_id: str | None, e: Event) -> dict[str, Any]:
    return {
        "disbursement_id": disbursement_id,
        "payment_id": payment_id,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "actor": e.actor[:128],
        "reason": e.reason[:512] if e.reason else None,
        "at": e.at,
    }


class RowsRefused(BadRequest):
    """A file with problems: every one of them, and nothing kept."""

    def __init__(self, problems: list[str], more: int = 0):
        count = len(problems) + more
        super().__init__(
            f"the file has {count} problem(s); nothing was kept",
            problems=problems,
            more_problems=more,
        )


class DisbursementService:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        tomls: StellarTomls | None = None,
        peers: CompliancePeers | None = None,
        horizon: HorizonAccounts | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._s = settings
        self._uow = uow
        self._tomls = tomls
        self._peers = peers
        self._horizon = horizon
        self._clock = clock
        self._decimals = {a.code: a.decimals for a in settings.assets}
        self._assets = {a.code: a for a in settings.assets}

    async def upload(self, content: bytes, *, name: str, uploaded_by: str) -> dict[str, Any]:
        """A new draft disbursement from a CSV file, or RowsRefused listing every problem."""
        if not name or len(name) > 128:
            raise InvalidField("name", "must be 1 to 128 characters")
        if not uploaded_by or len(uploaded_by) > 128:
            raise InvalidField("uploaded_by", "must be 1 to 128 characters")
        if len(content) > self._s.disbursement.max_upload_bytes:
            raise PayloadTooLarge(
                f"files are at most {self._s.disbursement.max_upload_bytes} bytes"
            )
        chunks = (content[i : i + CHUNK] for i in range(0, len(content), CHUNK))
        reading = read_rows(chunks, self._decimals)
        if not reading.ok:
            raise RowsRefused(reading.problems, reading.more_problems)
        if not reading.rows:
            raise RowsRefused(["line 2: row: the file has no payments"])
        now = self._clock()
        disbursement_id = str(uuid.uuid4())
        totals: dict[str, int] = defaultdict(int)
        payments = []
        for r in reading.rows:
            totals[r.asset_code] += r.amount
            payments.append(
                {
                    "id": str(uuid.uuid4()),
                    "disbursement_id": disbursement_id,
                    "line": r.line,
                    "receiver_reference": r.receiver_reference,
                    "amount": r.amount,
                    "asset_code": r.asset_code,
                    "destination": r.destination,
                    "memo_type": r.memo_type,
                    "memo": r.memo,
                    # An account is paid as it is; a federation address once resolved.
                    "pay_to": None if "*" in r.destination else r.destination,
                    "pay_memo_type": None if "*" in r.destination else r.memo_type,
                    "pay_memo": None if "*" in r.destination else r.memo,
                    "external_payment_id": r.external_payment_id,
                    "status": str(PaymentStatus.DRAFT),
                    "failure": None,
                    "updated_at": now,
                }
            )
        external = [r.external_payment_id for r in reading.rows if r.external_payment_id]
        async with self._uow() as uow:
            # Against every earlier disbursement: a re-upload never pays twice. The unique
            # index is the backstop for two uploads at the same moment.
            paid = await uow.disbursements.paid_ids(external)
            if paid:
                lines = {r.external_payment_id: r.line for r in reading.rows}
                problems = [
                    f"line {lines[e]}: external_payment_id: is in disbursement {d} already"
                    for e, d in sorted(paid.items(), key=lambda item: lines[item[0]])
                ]
                raise RowsRefused(problems)
            row = {
                "id": disbursement_id,
                "name": name,
                "status": str(DisbursementStatus.DRAFT),
                "uploaded_by": uploaded_by,
                "approvals_needed": self._s.disbursement.approvals,
                "approvers": "[]",
                "payments": len(payments),
                "total": json.dumps(dict(totals), sort_keys=True),
                "original": content,
                "created_at": now,
                "updated_at": now,
            }
            try:
                await uow.disbursements.add(row, payments)
                await uow.commit()
            except IntegrityError:  # an upload at the same moment took some of these ids
                raise Conflict(
                    "another upload has just used some of these external payment ids; "
                    "upload again to see which"
                ) from None
        return {k: v for k, v in row.items() if k != "original"}

    async def act(
        self, disbursement_id: str, action: str, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """An operator's action: ready, approve, start, pause or cancel. Starting reserves
        the total against the distribution account: starts take turns, and one that the
        available balance cannot cover is refused with the amounts."""
        if action not in OPERATOR_ACTIONS:
            raise InvalidField("action", f"must be one of {', '.join(sorted(OPERATOR_ACTIONS))}")
        resolved = await self._resolve(disbursement_id) if action == "ready" else []
        now = self._clock()
        async with self._uow() as uow:
            row = await uow.disbursements.get(disbursement_id, lock=True)
            if row is None:
                raise NotFound("disbursement not found")
            d = Disbursement(
                row["id"],
                DisbursementStatus(row["status"]),
                row["uploaded_by"],
                row["approvals_needed"],
                tuple(json.loads(row["approvers"])),
            )
            payments_to: tuple[tuple[str, ...], PaymentStatus] | None = None
            if action == "ready":
                d = d.mark_ready(actor, now)
                await uow.disbursements.resolved(resolved)
                payments_to = ((PaymentStatus.DRAFT,), PaymentStatus.READY)
            elif action == "approve":
                d = d.approve(actor, now)
            elif action == "start":
                resuming = d.status == DisbursementStatus.PAUSED
                d = d.start(actor, now)  # approvals and the state machine first
                if not resuming:
                    await uow.disbursements.lock_starts()
                    await self._reserve(uow, disbursement_id)
            elif action == "pause":
                d = d.pause(actor, reason, now)
            else:
                d = d.cancel(actor, reason, now)
                payments_to = ((PaymentStatus.DRAFT, PaymentStatus.READY), PaymentStatus.CANCELED)
            events = [_event(disbursement_id, None, e) for e in d.events]
            if payments_to is not None:
                sources, to = payments_to
                moved = await uow.disbursements.move_payments(
                    disbursement_id, tuple(str(s) for s in sources), str(to), now
                )
                events += [
                    {
                        "disbursement_id": disbursement_id,
                        "payment_id": payment_id,
                        "from_status": before,
                        "to_status": str(to),
                        "actor": actor[:128],
                        "reason": reason[:512] if reason else None,
                        "at": now,
                    }
                    for payment_id, before in moved
                ]
            values = {
                "status": str(d.status),
                "approvers": json.dumps(list(d.approvers)),
                "updated_at": now,
            }
            await uow.disbursements.save(disbursement_id, values)
            await uow.disbursements.record(events)
            await uow.commit()
        return {**row, **values}

    async def _reserve(self, uow: UnitOfWork, disbursement_id: str) -> None:
        """Refuse the start unless the balance, less what is promised already, covers it."""
        account = self._s.disbursement.distribution_account
        if not account or self._horizon is None:
            raise InvalidField("disbursement.distribution_account", "is not configured")
        needs = await uow.disbursements.needs(disbursement_id)
        found = await self._horizon.account(account)
        if found is None:
            raise Conflict("the distribution account does not exist on the network")
        short = []
        for code, need in sorted(needs.items()):
            asset = self._assets[code]
            balance = found.balance(code, asset.issuer)
            held = to_stroops(balance.amount) if balance is not None else 0
            reserved = await uow.disbursements.reserved(code, asset.issuer)
            if need > held - reserved:
                short.append(
                    f"{code}: needs {format_stroops(need, asset.decimals)}, "
                    f"{format_stroops(max(held - reserved, 0), asset.decimals)} available "
                    f"(balance {format_stroops(held, asset.decimals)}, "
                    f"promised {format_stroops(reserved, asset.decimals)})"
                )
        if short:
            raise Conflict("not enough in the distribution account: " + "; ".join(short))

    async def _resolve(self, disbursement_id: str) -> list[dict[str, Any]]:
        """Where each payment to a federation address is paid, resolved through SEP-2 before
        the disbursement becomes ready; RowsRefused lists every one that cannot be."""
        async with self._uow(read_only=True) as uow:
            pending = await uow.disbursements.to_resolve(disbursement_id)
        if not pending:
            return []
        if self._tomls is None or self._peers is None:
            raise RowsRefused(
                [f"line {r['line']}: destination: cannot be resolved here" for r in pending]
            )
        done: dict[str, Resolved | str] = {}
        out, problems = [], []
        for r in sorted(pending, key=lambda row: row["line"]):
            address = r["destination"]
            if address not in done:
                try:
                    done[address] = await resolve_address(
                        address,
                        tomls=self._tomls,
                        peers=self._peers,
                        insecure_hosts=self._s.outbound.insecure_hosts,
                    )
                except GatewayError as exc:
                    done[address] = exc.message
            found = done[address]
            if isinstance(found, str):
                problems.append(f"line {r['line']}: destination: {found}")
            elif found.memo is not None and r["memo"] is not None:
                problems.append(
                    f"line {r['line']}: memo: the federation address carries its own memo; "
                    "leave the row's memo empty"
                )
            else:
                memo_type = found.memo_type if found.memo is not None else r["memo_type"]
                memo = found.memo if found.memo is not None else r["memo"]
                out.append(
                    {
                        "id": r["id"],
                        "pay_to": found.account_id,
                        "pay_memo_type": memo_type,
                        "pay_memo": memo,
                    }
                )
        if problems:
            raise RowsRefused(problems)
        return out

    async def accounts_status(self) -> dict[str, Any]:
        """The distribution account: per asset its balance, what is promised and what is
        available, with warnings (missing account or trustline, low balance)."""
        account = self._s.disbursement.distribution_account
        if not account or self._horizon is None:
            raise InvalidField("disbursement.distribution_account", "is not configured")
        found = await self._horizon.account(account)
        warnings: list[str] = []
        assets: dict[str, dict[str, str]] = {}
        if found is None:
            warnings.append("the distribution account does not exist on the network")
        low = to_stroops(self._s.disbursement.low_balance)
        async with self._uow(read_only=True) as uow:
            for code, asset in sorted(self._assets.items()):
                balance = found.balance(code, asset.issuer) if found is not None else None
                if found is not None and balance is None:
                    warnings.append(f"{code}: the distribution account has no trustline")
                held = to_stroops(balance.amount) if balance is not None else 0
                promised = await uow.disbursements.reserved(code, asset.issuer)
                available = held - promised
                if available < low or available < 0:
                    warnings.append(
                        f"{code}: {format_stroops(available, asset.decimals)} available, "
                        f"below {format_stroops(low, asset.decimals)}"
                    )
                assets[code] = {
                    "balance": format_stroops(held, asset.decimals),
                    "promised": format_stroops(promised, asset.decimals),
                    "available": format_stroops(available, asset.decimals),
                }
        return {"account": account, "assets": assets, "warnings": warnings}

    async def show(self, disbursement_id: str, limit: int = 1000) -> dict[str, Any]:
        """The disbursement, its payments (by line) and its history."""
        async with self._uow(read_only=True) as uow:
            found = await uow.disbursements.get(disbursement_id)
            if found is None:
                raise NotFound("disbursement not found")
            payments = await uow.disbursements.payments(disbursement_id, limit)
            events = await uow.disbursements.events(disbursement_id)
        return {**found, "payment_rows": payments, "history": events}

    async def get(self, disbursement_id: str) -> dict[str, Any]:
        async with self._uow(read_only=True) as uow:
            found = await uow.disbursements.get(disbursement_id)
        if found is None:
            raise NotFound("disbursement not found")
        return found
