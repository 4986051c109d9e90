"""Bulk disbursements: upload (all or nothing), operators' actions (federation destinations
resolved at ready; the total reserved at start), and what operators see of them and of the
distribution account."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from stellar_sdk import Account, Asset, TransactionBuilder

from gateway.disbursement.csv_rows import check_rows, iter_rows
from gateway.disbursement.model import (
    OPERATOR_ACTIONS,
    Disbursement,
    DisbursementPayment,
    DisbursementStatus,
    PaymentStatus,
)
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
from gateway.payouts import DbPayoutQueue, PayoutInstruction, PayoutQueue, PayoutResult
from gateway.settings import Settings
from gateway.types import format_stroops, parse_amount, to_stroops

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("gateway.disbursement")

CHUNK = 65_536
SOURCE = "disbursement"  # payouts of disbursement payments: source id is the payment's


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


def _disbursement(row: dict[str, Any]) -> Disbursement:
    return Disbursement(
        row["id"],
        DisbursementStatus(row["status"]),
        row["uploaded_by"],
        row["approvals_needed"],
        tuple(json.loads(row["approvers"])),
        retry_by=row["retry_by"],
        retry_approvers=tuple(json.loads(row["retry_approvers"] or "[]")),
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
        payouts: PayoutQueue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._s = settings
        self._uow = uow
        self._tomls = tomls
        self._peers = peers
        self._horizon = horizon
        self._clock = clock
        self._payouts = payouts or DbPayoutQueue()
        self._decimals = {a.code: a.decimals for a in settings.assets}
        self._assets = {a.code: a for a in settings.assets}

    async def upload(
        self,
        content: bytes,
        *,
        name: str,
        uploaded_by: str,
        kind: str = "bulk",
        approvals: int | None = None,
    ) -> dict[str, Any]:
        """A new draft disbursement from a CSV file, or RowsRefused listing every problem.
        ``approvals``: approvers it needs (default: the setting); see ``direct``."""
        if not name or len(name) > 128:
            raise InvalidField("name", "must be 1 to 128 characters")
        if not uploaded_by or len(uploaded_by) > 128:
            raise InvalidField("uploaded_by", "must be 1 to 128 characters")
        if len(content) > self._s.disbursement.max_upload_bytes:
            raise PayloadTooLarge(
                f"files are at most {self._s.disbursement.max_upload_bytes} bytes"
            )

        def chunks() -> Iterator[bytes]:
            return (content[i : i + CHUNK] for i in range(0, len(content), CHUNK))

        # The file is read twice, so that its rows are never all in memory: once to check
        # it (keeping its totals and external ids), once more to store its rows as they come.
        checked = check_rows(chunks(), self._decimals)
        if not checked.ok:
            raise RowsRefused(checked.problems, checked.more_problems)
        if not checked.count:
            raise RowsRefused(["line 2: row: the file has no payments"])
        now = self._clock()
        disbursement_id = str(uuid.uuid4())

        def payments() -> Iterator[dict[str, Any]]:
            for r in iter_rows(chunks(), self._decimals):
                resolve = "*" in r.destination  # an account is paid as it is; a federation
                yield {  # address once resolved
                    "id": str(uuid.uuid4()),
                    "disbursement_id": disbursement_id,
                    "line": r.line,
                    "receiver_reference": r.receiver_reference,
                    "amount": r.amount,
                    "asset_code": r.asset_code,
                    "destination": r.destination,
                    "memo_type": r.memo_type,
                    "memo": r.memo,
                    "pay_to": None if resolve else r.destination,
                    "pay_memo_type": None if resolve else r.memo_type,
                    "pay_memo": None if resolve else r.memo,
                    "external_payment_id": r.external_payment_id,
                    "status": str(PaymentStatus.DRAFT),
                    "failure": None,
                    "updated_at": now,
                }

        async with self._uow() as uow:
            # Against every earlier disbursement: a re-upload never pays twice. The unique
            # index is the backstop for two uploads at the same moment.
            lines = checked.external_ids
            paid = await uow.disbursements.paid_ids(list(lines))
            if paid:
                problems = [
                    f"line {lines[e]}: external_payment_id: is in disbursement {d} already"
                    for e, d in sorted(paid.items(), key=lambda item: lines[item[0]])
                ]
                raise RowsRefused(problems)
            checked.external_ids = lines = {}  # storing the rows needs none of them
            row = {
                "id": disbursement_id,
                "name": name,
                "status": str(DisbursementStatus.DRAFT),
                "uploaded_by": uploaded_by,
                "approvals_needed": (
                    self._s.disbursement.approvals if approvals is None else approvals
                ),
                "kind": kind,
                "approvers": "[]",
                "payments": checked.count,
                "total": json.dumps(checked.totals, sort_keys=True),
                "original": content,
                "created_at": now,
                "updated_at": now,
            }
            shown = {k: v for k, v in row.items() if k != "original"}
            action = "payout.direct" if kind == "direct" else "disbursement.upload"
            await uow.audit.record(
                now, uploaded_by, action, "disbursement", disbursement_id, None, shown
            )
            try:
                await uow.disbursements.add(row, payments())
                await uow.commit()
            except IntegrityError:  # an upload at the same moment took some of these ids
                raise Conflict(
                    "another upload has just used some of these external payment ids; "
                    "upload again to see which"
                ) from None
        return shown

    async def act(
        self, disbursement_id: str, action: str, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """An operator's action: ready, approve, start, pause, cancel, retry (the failed
        payments, once approved) or drop_retry. Starting, or a retry going ahead, reserves
        the amount against the distribution account: these take turns, and one that the
        available balance cannot cover is refused with the amounts. ``approve`` approves
        the retry awaiting approval if there is one, else the disbursement; a direct payout
        starts as soon as it is approved."""
        if action not in OPERATOR_ACTIONS:
            raise InvalidField("action", f"must be one of {', '.join(sorted(OPERATOR_ACTIONS))}")
        resolved = await self._resolve(disbursement_id) if action == "ready" else []
        now = self._clock()
        async with self._uow() as uow:
            row = await uow.disbursements.get(disbursement_id, lock=True)
            if row is None:
                raise NotFound("disbursement not found")
            d = _disbursement(row)
            payments_to: tuple[tuple[str, ...], PaymentStatus] | None = None
            payment_events: list[dict[str, Any]] = []
            if action == "ready":
                d = d.mark_ready(actor, now)
                await uow.disbursements.resolved(resolved)
                payments_to = ((PaymentStatus.DRAFT,), PaymentStatus.READY)
            elif action == "approve" and d.retry_by is not None:
                d = d.approve_retry(actor, now)
                if d.retry_approved:
                    d, payment_events = await self._retry(uow, d, now)
            elif action == "approve":
                d = d.approve(actor, now)
                if row["kind"] == "direct" and d.approved and d.status == DisbursementStatus.READY:
                    d, payment_events = await self._start(uow, d, actor, now)
            elif action == "start":
                d, payment_events = await self._start(uow, d, actor, now)
            elif action == "retry":
                d = d.request_retry(actor, await uow.disbursements.failed(disbursement_id), now)
                if d.retry_approved:  # no approvals needed
                    d, payment_events = await self._retry(uow, d, now)
            elif action == "drop_retry":
                d = d.drop_retry(actor, now)
            elif action == "pause":
                d = d.pause(actor, reason, now)
                payment_events = await self._take_back(uow, disbursement_id, actor, now)
            else:
                d = d.cancel(actor, reason, now)
                payments_to = ((PaymentStatus.DRAFT, PaymentStatus.READY), PaymentStatus.CANCELED)
            events = [_event(disbursement_id, None, e) for e in d.events] + payment_events
            if payments_to is not None:
                sources, to = payments_to
                moved = await uow.disbursements.move_payments(
                    disbursement_id, tuple(str(s) for s in sources), str(to), now
                )
                events += [
                    _event(disbursement_id, payment_id, Event(before, str(to), actor, reason, now))
                    for payment_id, before in moved
                ]
            values = {
                "status": str(d.status),
                "approvers": json.dumps(list(d.approvers)),
                "retry_by": d.retry_by,
                "retry_approvers": json.dumps(list(d.retry_approvers)) if d.retry_by else None,
                "updated_at": now,
            }
            await uow.disbursements.save(disbursement_id, values)
            await uow.disbursements.record(events)
            after = {**row, **values}
            await uow.audit.record(
                now, actor, f"disbursement.{action}", "disbursement", disbursement_id, row, after
            )
            await uow.commit()
        return after

    async def _start(
        self, uow: UnitOfWork, d: Disbursement, actor: str, now: datetime
    ) -> tuple[Disbursement, list[dict[str, Any]]]:
        """Start (reserving its total) or resume it: its ready payments go to the engine."""
        resuming = d.status == DisbursementStatus.PAUSED
        started = d.start(actor, now)  # approvals and the state machine first
        if not resuming:
            await uow.disbursements.lock_starts()
            await self._reserve(uow, d.id)
        return started, await self._hand_over(uow, d.id, actor, now)

    async def _retry(
        self, uow: UnitOfWork, d: Disbursement, now: datetime
    ) -> tuple[Disbursement, list[dict[str, Any]]]:
        """The approved retry goes ahead: its failed payments, reserved against the balance
        like a start, become ready, and go to the engine unless the disbursement is paused."""
        assert d.retry_by is not None
        actor = d.retry_by
        await uow.disbursements.lock_starts()
        await self._reserve(uow, d.id, PaymentStatus.FAILED)
        d = d.retried(now)
        events, changes = [], []
        for pid in await uow.disbursements.with_status(d.id, PaymentStatus.FAILED):
            p = DisbursementPayment(pid, PaymentStatus.FAILED).retry(actor, now)
            changes.append({"pid": pid, "st": str(p.status), "why": None, "at": now})
            events += [_event(d.id, pid, e) for e in p.events]
        await uow.disbursements.set_payments(changes)
        if d.status == DisbursementStatus.STARTED:
            events += await self._hand_over(uow, d.id, actor, now)
        return d, events

    async def _hand_over(
        self, uow: UnitOfWork, disbursement_id: str, actor: str, now: datetime
    ) -> list[dict[str, Any]]:
        """Its ready payments become payouts (queued in this transaction) and pending."""
        ready = await uow.disbursements.ready_payments(disbursement_id)
        events, changes = [], []
        for i in range(0, len(ready), 1000):
            batch = ready[i : i + 1000]
            latest = await uow.payouts.latest(SOURCE, [r["id"] for r in batch])
            instructions = [
                PayoutInstruction(
                    source=SOURCE,
                    source_id=r["id"],
                    purpose="payout",
                    asset_code=r["asset_code"],
                    asset_issuer=self._assets[r["asset_code"]].issuer,
                    amount_stroops=r["amount"],
                    destination=r["pay_to"],
                    memo_type=r["pay_memo_type"],
                    memo=r["pay_memo"],
                )
                for r in batch
            ]
            await self._payouts.enqueue_many(uow, instructions, latest)
        for r in ready:
            p = DisbursementPayment(r["id"], PaymentStatus.READY).submitted(actor, now)
            changes.append({"pid": p.id, "st": str(p.status), "why": None, "at": now})
            events += [_event(disbursement_id, p.id, e) for e in p.events]
        await uow.disbursements.set_payments(changes)
        return events

    async def _take_back(
        self, uow: UnitOfWork, disbursement_id: str, actor: str, now: datetime
    ) -> list[dict[str, Any]]:
        """Pending payments whose payouts no submitter has taken go back to ready; those
        in flight finish."""
        events, changes = [], []
        for pid in await uow.disbursements.take_back(disbursement_id, now):
            p = DisbursementPayment(pid, PaymentStatus.PENDING).held_back(actor, now)
            changes.append({"pid": pid, "st": str(p.status), "why": None, "at": now})
            events += [_event(disbursement_id, pid, e) for e in p.events]
        await uow.disbursements.set_payments(changes)
        return events

    async def payouts_settled(self, results: list[PayoutResult]) -> None:
        """Payouts of disbursement payments ended (possibly reported again after a crash:
        a payment no longer pending, or one paid by a later attempt since, is left alone). A
        started disbursement whose payments are all final completes."""
        now = self._clock()
        async with self._uow() as uow:
            ids = [r.source_id for r in results]
            states = await uow.disbursements.payment_states(ids)
            current = await uow.payouts.current(SOURCE, ids, "payout")
            changes, events, touched = [], [], set()
            for r in results:
                found = states.get(r.source_id)
                if found is None or found[0] != PaymentStatus.PENDING:
                    continue
                if current.get(r.source_id) != r.payout_id:  # an attempt a retry replaced
                    continue
                status, disbursement_id = found
                p = DisbursementPayment(r.source_id, PaymentStatus(status))
                if r.succeeded:
                    p = p.succeeded(now, r.stellar_transaction_id or r.external_reference)
                else:
                    p = p.failed(r.reason or "the payout failed", now)
                states[r.source_id] = (str(p.status), disbursement_id)
                changes.append({"pid": p.id, "st": str(p.status), "why": p.failure, "at": now})
                events += [_event(disbursement_id, p.id, e) for e in p.events]
                touched.add(disbursement_id)
            await uow.disbursements.set_payments(changes)
            for disbursement_id in sorted(touched):
                row = await uow.disbursements.get(disbursement_id, lock=True)
                assert row is not None
                d = Disbursement(
                    row["id"], DisbursementStatus(row["status"]), row["uploaded_by"], 0
                )
                left = await uow.disbursements.unfinished(disbursement_id)
                done = d.settle([PaymentStatus(left)] if left else [], now)
                if done is not d:
                    await uow.disbursements.save(
                        disbursement_id, {"status": str(done.status), "updated_at": now}
                    )
                    events += [_event(disbursement_id, None, e) for e in done.events]
            await uow.disbursements.record(events)
            await uow.commit()

    async def payout_settled(self, result: PayoutResult) -> None:
        await self.payouts_settled([result])

    async def _reserve(
        self, uow: UnitOfWork, disbursement_id: str, of: PaymentStatus = PaymentStatus.READY
    ) -> None:
        """Refuse unless the balance, less what is promised already, covers its payments
        of status ``of`` (ready ones for a start, failed ones for a retry)."""
        account = self._s.disbursement.distribution_account
        if not account or self._horizon is None:
            raise InvalidField("disbursement.distribution_account", "is not configured")
        needs = await uow.disbursements.needs(disbursement_id, str(of))
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
        assets: dict[str, dict[str, Any]] = {}
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
                is_low = available < low or available < 0
                if is_low:
                    warnings.append(
                        f"{code}: {format_stroops(available, asset.decimals)} available, "
                        f"below {format_stroops(low, asset.decimals)}"
                    )
                assets[code] = {
                    "balance": format_stroops(held, asset.decimals),
                    "promised": format_stroops(promised, asset.decimals),
                    "available": format_stroops(available, asset.decimals),
                    "low": is_low,
                }
            lanes = await uow.submissions.lanes()
        for lane in lanes:
            if lane["status"] == "halted":
                warnings.append(f"lane {lane['account_id']} is halted: {lane['note']}")
        return {"account": account, "assets": assets, "lanes": lanes, "warnings": warnings}

    async def check_balances(self) -> dict[str, Any]:
        """``accounts_status``, raising a low-balance alert for each asset that has fallen
        below ``low_balance`` (stored, logged, counted in /metrics; once while it stays low)
        and clearing those that recovered. Run by `gateway disburse` every
        ``balance_check_seconds`` and by `gateway accounts status`."""
        status = await self.accounts_status()
        low = {
            code: f"{code}: {amounts['available']} available in the distribution account, "
            f"below {self._s.disbursement.low_balance}"
            for code, amounts in status["assets"].items()
            if amounts["low"]
        }
        now = self._clock()
        try:
            async with self._uow() as uow:
                raised, cleared = await uow.alerts.sync(
                    "low_balance", low, set(status["assets"]), now
                )
                await uow.commit()
        except IntegrityError:  # another checker raised the same alert a moment ago
            raised, cleared = [], []
        for code in raised:
            log.warning("alert raised: low_balance %s", code)
        for code in cleared:
            log.info("alert cleared: low_balance %s", code)
        async with self._uow(read_only=True) as uow:
            status["alerts"] = await uow.alerts.open()
        return status

    async def plan_topup(self, period: timedelta) -> dict[str, Any]:
        """An unsigned transaction from the assets' issuers to the distribution account that
        covers the next ``period`` at the payout volume of the last one, less what is
        available now: for signing offline (the issuer's keys never come here)."""
        status = await self.accounts_status()
        async with self._uow(read_only=True) as uow:
            paid = await uow.submissions.paid_since(self._clock() - period)
        plan: dict[str, str] = {}
        ops: list[tuple[Asset, str, str]] = []
        for code, asset in sorted(self._assets.items()):
            if not asset.issuer:
                continue  # lumens are bought, not issued
            volume = paid.get((code, asset.issuer), 0)
            available = to_stroops(Decimal(status["assets"][code]["available"]))
            short = volume - available
            if short > 0:
                amount = format_stroops(short, 7)
                plan[code] = amount
                ops.append((Asset(code, asset.issuer), asset.issuer, amount))
        if not ops:
            return {"plan": plan, "xdr": None, "note": "available balances cover the period"}
        assert self._horizon is not None  # accounts_status required it
        source = await self._horizon.account(ops[0][1])
        if source is None:
            raise Conflict(f"the issuer {ops[0][1]} does not exist on the network")
        builder = TransactionBuilder(
            Account(source.account_id, source.sequence),
            self._s.network_passphrase,
            base_fee=self._s.disbursement.max_fee_stroops,
        ).set_timeout(7 * 24 * 3600)  # signed offline: give it a week
        for to_pay, issuer, amount in ops:
            builder.append_payment_op(
                status["account"],
                to_pay,
                amount,
                source=None if issuer == source.account_id else issuer,
            )
        return {"plan": plan, "xdr": builder.build().to_xdr(), "note": "unsigned"}

    async def show(self, disbursement_id: str, limit: int = 1000) -> dict[str, Any]:
        """The disbursement, its payments (by line) and its history."""
        async with self._uow(read_only=True) as uow:
            found = await uow.disbursements.get(disbursement_id)
            if found is None:
                raise NotFound("disbursement not found")
            payments = await uow.disbursements.payments(disbursement_id, limit)
            events = await uow.disbursements.events(disbursement_id)
        return {**found, "payment_rows": payments, "history": events}

    async def recent(
        self, limit: int, offset: int, *, status: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Disbursements, newest first."""
        async with self._uow(read_only=True) as uow:
            return await uow.disbursements.recent(limit, offset, status=status, kind=kind)

    async def payouts(
        self, limit: int, offset: int, *, status: str | None = None, source: str | None = None
    ) -> list[dict[str, Any]]:
        """Payouts of every source (disbursements, SEP-31, SEP-3), newest first."""
        async with self._uow(read_only=True) as uow:
            return await uow.payouts.recent(limit, offset, status=status, source=source)

    async def get(self, disbursement_id: str) -> dict[str, Any]:
        async with self._uow(read_only=True) as uow:
            found = await uow.disbursements.get(disbursement_id)
        if found is None:
            raise NotFound("disbursement not found")
        return found

    async def direct(
        self,
        *,
        asset_code: str,
        amount: str,
        destination: str,
        requested_by: str,
        memo: str = "",
        external_payment_id: str = "",
        reference: str = "direct payout",
    ) -> dict[str, Any]:
        """A single payout asked for by an operator: a one-payment disbursement, checked as a
        file's row is. One above ``direct_approval_above`` waits for the approvals a
        disbursement needs (and starts at the last); a smaller one starts at once. The
        external payment id is required: a request sent again (after a lost answer) is
        refused by it instead of paying twice."""
        if not external_payment_id:
            raise InvalidField(
                "external_payment_id", "is required: it keeps a repeated request from paying twice"
            )
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(
            [
                "receiver_reference",
                "amount",
                "asset_code",
                "destination",
                "memo",
                "external_payment_id",
            ]
        )
        writer.writerow([reference, amount, asset_code, destination, memo, external_payment_id])
        try:
            stroops: int | None = to_stroops(
                parse_amount(amount, "amount", self._decimals[asset_code])
            )
        except (KeyError, InvalidField):
            stroops = None  # the upload names the problem
        small = stroops is not None and stroops <= to_stroops(
            self._s.disbursement.direct_approval_above
        )
        made = await self.upload(
            text.getvalue().encode(),
            name="direct payout",
            uploaded_by=requested_by,
            kind="direct",
            approvals=0 if small else self._s.disbursement.approvals,
        )
        await self.act(made["id"], "ready", requested_by)
        if small:
            return await self.act(made["id"], "start", requested_by)
        return await self.get(made["id"])
