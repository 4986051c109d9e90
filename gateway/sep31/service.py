"""SEP-31 receiving-anchor use cases: /info, creating and reading transfers, callbacks, the
deprecated PATCH, and applying what happens to the money (payments seen by the watcher,
payout and refund outcomes, expiry). Every status change goes through the Transfer model,
is recorded with its actor and reason, and queues the partner's signed callback in the same
transaction."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from stellar_sdk import MuxedAccount, StrKey

from gateway.errors import BadRequest, Conflict, Forbidden, InvalidField, NotFound
from gateway.outbound.callbacks import check_callback_url
from gateway.outbound.horizon import Payment
from gateway.payouts import LIVE, PayoutInstruction, PayoutQueue, PayoutResult
from gateway.personal_data import Vault
from gateway.sep3_auth import Matched as MatchedPayment
from gateway.sep3_auth import match_compliance_payments
from gateway.sep10 import AuthSession
from gateway.sep12_customer import CALLBACK_KIND, CustomerService, Status, select_type
from gateway.sep31.model import (
    FINAL,
    Event,
    IllegalTransition,
    Refund,
    Transfer,
    TransferStatus,
    clip,
    fee_for,
    transfer_info_context,
)
from gateway.settings import AssetSettings, CustomerTypeSettings, Settings
from gateway.types import (
    STROOPS_PER_UNIT,
    format_stroops,
    normalize_memo,
    parse_amount,
    to_stroops,
)

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("gateway.sep31")

SOURCE = "sep31"  # payouts of transfers: source id is the transfer's
PAYMENT_SOURCE = "sep31_payment"  # refunds of single payments: source id is the payment's
REFUNDABLE_OUTCOMES = frozenset({"unknown_memo", "wrong_asset", "duplicate", "late"})
OPERATOR_ACTIONS = frozenset(
    {"release", "refund", "fail", "need_customer_info", "need_transaction_info", "info_updated"}
)
# Horizon lists a payment some seconds after its ledger closes: the watcher's "caught up at"
# is trusted only this long before.
INGESTION_MARGIN = 60
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
S = TransferStatus


class CustomerInfoNeeded(BadRequest):
    def __init__(self, type_name: str):
        super().__init__("customer_info_needed", type=type_name)


@dataclass(frozen=True)
class CustomerCheck:
    direction: str  # sender | receiver
    customer_id: str | None
    spec: CustomerTypeSettings | None  # the type this amount needs of this customer
    needed: bool  # whether it must be ACCEPTED in that type


def _now() -> datetime:
    return datetime.now(UTC)


class TransferService:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        customers: CustomerService,
        payouts: PayoutQueue,
        vault: Vault,
        clock: Callable[[], datetime] = _now,
    ):
        self._s = settings.sep31
        self._validation = settings.kyc.validation
        self._types = settings.sep12.types
        self._assets = {a.code: a for a in settings.assets}
        self._receive = {a.code: a for a in settings.sep31.assets if a.code in self._assets}
        self._uow = uow
        self._customers = customers
        self._payouts = payouts
        self._vault = vault
        self._clock = clock
        self._insecure_hosts = (
            frozenset(settings.outbound.insecure_callback_hosts)
            if not settings.is_mainnet
            else frozenset()
        )

    # -- partners ----------------------------------------------------------------------------

    def check_partner(self, session: AuthSession) -> None:
        """Only sending anchors with an agreement (settings) may use SEP-31."""
        if not self._s.partner_accounts and not self._s.partner_domains:
            return  # testnet: any authenticated account (validation refuses this on mainnet)
        if session.account in self._s.partner_accounts:
            return
        if session.client_domain and session.client_domain in self._s.partner_domains:
            return
        raise Forbidden("this account is not an allowed sending anchor")

    # -- GET /info ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        receive: dict[str, Any] = {}
        for code, r in self._receive.items():
            asset = self._assets[code]
            entry: dict[str, Any] = {
                "enabled": r.enabled,
                "quotes_supported": False,
                "quotes_required": False,
                "fee_fixed": float(r.fee_fixed),
                "fee_percent": float(r.fee_percent),
                "funding_methods": list(r.funding_methods),
                "sep12": {
                    "sender": {"types": self._sep12_types("sender", code)},
                    "receiver": {"types": self._sep12_types("receiver", code)},
                },
            }
            if asset.min_amount is not None:
                entry["min_amount"] = float(asset.min_amount)
            if asset.max_amount is not None:
                entry["max_amount"] = float(asset.max_amount)
            receive[code] = entry
        return {"receive": receive}

    def _sep12_types(self, direction: str, code: str) -> dict[str, Any]:
        if self._validation == "off":
            return {}
        out: dict[str, Any] = {}
        for t in self._types:
            if t.direction != direction or (t.min_amount and code not in t.min_amount):
                continue
            description = t.description
            if t.min_amount:
                description += f" (for {t.min_amount[code]} {code} or more)"
            out[t.name] = {"description": description}
        return out

    # -- POST /transactions ------------------------------------------------------------------

    async def create(
        self, session: AuthSession, body: Mapping[str, Any], idempotency_key: str | None
    ) -> dict[str, Any]:
        self.check_partner(session)
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidField("Idempotency-Key", "must be 1 to 128 printable ASCII characters")
        code = body.get("asset_code")
        if not isinstance(code, str) or not code:
            raise InvalidField("asset_code", "is required")
        receive = self._receive.get(code)
        if receive is None or not receive.enabled:
            raise InvalidField("asset_code", f"{code[:12]} is not an asset this anchor receives")
        asset = self._assets[code]
        issuer = body.get("asset_issuer")
        if issuer not in (None, "", asset.issuer):
            raise InvalidField("asset_issuer", f"is not the issuer of {code} here")
        if body.get("amount") in (None, ""):
            raise InvalidField("amount", "is required")
        amount = parse_amount(body["amount"], "amount", asset.decimals)
        self._check_limits(asset, amount)
        funding = self._funding_method(body.get("funding_method"), receive.funding_methods)
        if body.get("quote_id") not in (None, "") or body.get("destination_asset") not in (
            None,
            "",
        ):
            raise BadRequest("quotes are not offered: send neither quote_id nor destination_asset")
        fields = body.get("fields")
        if fields is not None and not isinstance(fields, dict):
            raise InvalidField("fields", "must be an object (it is deprecated and ignored)")
        refund_memo_type, refund_memo = _refund_memo(body)
        sender, receiver = self._customer_checks(
            body.get("sender_id"), body.get("receiver_id"), code, amount
        )
        digest = _digest(body)
        amount_in = to_stroops(amount)
        fee = min(
            fee_for(amount_in, receive.fee_fixed, receive.fee_percent, asset.decimals), amount_in
        )
        now = self._clock()
        for _ in range(5):
            async with self._uow() as uow:
                if idempotency_key is not None:
                    earlier = await self._replay(uow, session, idempotency_key, digest)
                    if earlier is not None:
                        return earlier
                # In the transaction that inserts: the check holds for what is written.
                await self._customers_ok(uow, session, [sender, receiver])
                transfer = Transfer(
                    id=str(uuid.uuid4()),
                    partner_account=session.account,
                    client_domain=session.client_domain,
                    asset_code=code,
                    asset_issuer=asset.issuer,
                    decimals=asset.decimals,
                    amount_in=amount_in,
                    amount_fee=fee,
                    amount_out=amount_in - fee,
                    funding_method=funding,
                    sender_id=sender.customer_id,
                    receiver_id=receiver.customer_id,
                    stellar_account_id=self._s.receiving_account,
                    memo_type="id",
                    # Random, so unique and not guessable; the unique index is the backstop.
                    memo=str(secrets.randbelow(2**63 - 1) + 1),
                    status=S.PENDING_SENDER,
                    started_at=now,
                    updated_at=now,
                    refund_memo_type=refund_memo_type,
                    refund_memo=refund_memo,
                )
                created = replace_events(transfer, "created", session.sub, now)
                if await uow.transfers.add(
                    created, idempotency_key=idempotency_key, request_digest=digest
                ):
                    await uow.commit()
                    return _created(created)
        raise Conflict("could not create the transfer; try again")

    async def _replay(
        self, uow: UnitOfWork, session: AuthSession, key: str, digest: str
    ) -> dict[str, Any] | None:
        found = await uow.transfers.by_idempotency_key(session.account, key)
        if found is None:
            return None
        transfer, earlier_digest = found
        if earlier_digest != digest:
            raise Conflict("Idempotency-Key was already used with a different request")
        return _created(transfer)

    def _check_limits(self, asset: AssetSettings, amount: Decimal) -> None:
        if asset.min_amount is not None and amount < asset.min_amount:
            raise InvalidField("amount", f"must be at least {asset.min_amount} {asset.code}")
        if asset.max_amount is not None and amount > asset.max_amount:
            raise InvalidField("amount", f"must be at most {asset.max_amount} {asset.code}")

    @staticmethod
    def _funding_method(value: object, methods: tuple[str, ...]) -> str:
        if value in (None, ""):
            if len(methods) == 1:
                return methods[0]  # senders of SEP-31 before v3.1 do not send it
            raise InvalidField("funding_method", "is required; one of " + ", ".join(methods))
        if value not in methods:
            raise InvalidField("funding_method", "must be one of " + ", ".join(methods))
        return str(value)

    def _customer_checks(
        self, sender_id: object, receiver_id: object, code: str, amount: Decimal
    ) -> list[CustomerCheck]:
        """What each customer must be for this amount: the type, and whether it must be
        ACCEPTED. Ids that cannot be a SEP-12 customer's are refused here."""
        checks = []
        for direction, customer_id in (("sender", sender_id), ("receiver", receiver_id)):
            spec = select_type(self._types, direction, code, amount)
            needed = spec is not None and self._validation != "off" and bool(spec.required)
            if customer_id not in (None, "") and (not isinstance(customer_id, str) or not spec):
                raise InvalidField(f"{direction}_id", "must be the id of a SEP-12 customer")
            checks.append(CustomerCheck(direction, str(customer_id or "") or None, spec, needed))
        return checks

    async def _customers_ok(
        self, uow: UnitOfWork, session: AuthSession, checks: list[CustomerCheck]
    ) -> None:
        """Pass when the customers are the caller's and ACCEPTED for the types the amount
        needs; otherwise 400 customer_info_needed naming the first type missing."""
        asked = [(c.customer_id, c.spec.name) for c in checks if c.customer_id and c.spec]
        found = iter(await self._customers.statuses_for(session, asked, same_account=True, uow=uow))
        for c in checks:
            status = next(found) if c.customer_id and c.spec else None
            if c.needed and status != Status.ACCEPTED:
                assert c.spec is not None
                raise CustomerInfoNeeded(c.spec.name)
            if c.customer_id is not None and status is None:
                raise InvalidField(f"{c.direction}_id", "no such customer of yours")

    async def _owned(
        self, uow: UnitOfWork, session: AuthSession, transfer_id: str, *, lock: bool = False
    ) -> Transfer:
        if not _UUID.fullmatch(transfer_id):
            raise NotFound("transaction not found")
        transfer = await uow.transfers.get(transfer_id, lock=lock)
        if transfer is None or transfer.partner_account != session.account:
            raise NotFound("transaction not found")
        return transfer

    async def get(self, session: AuthSession, transfer_id: str) -> dict[str, Any]:
        self.check_partner(session)
        async with self._uow(read_only=True) as uow:
            transfer = await self._owned(uow, session, transfer_id)
        return render(transfer)

    async def set_callback(
        self, session: AuthSession, transfer_id: str, body: Mapping[str, Any]
    ) -> None:
        self.check_partner(session)
        url = check_callback_url(body.get("url"), self._insecure_hosts)
        async with self._uow() as uow:
            transfer = await self._owned(uow, session, transfer_id, lock=True)
            await uow.transfers.save(_with(transfer, callback_url=url))
            await uow.outbox.retarget(transfer.id, CALLBACK_KIND, url)
            await uow.commit()

    async def patch(
        self, session: AuthSession, transfer_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Deprecated SEP-31 PATCH: the transaction fields an operator asked to be fixed."""
        self.check_partner(session)
        fields = body.get("fields")
        values = fields.get("transaction") if isinstance(fields, dict) else None
        if not isinstance(values, dict) or not values:
            raise InvalidField("fields", 'must be {"transaction": {...}}')
        async with self._uow() as uow:
            transfer = await self._owned(uow, session, transfer_id, lock=True)
            if transfer.status != S.PENDING_TRANSACTION_INFO_UPDATE:
                raise BadRequest("no update of this transaction's fields was requested")
            wanted = (transfer.required_info_updates or {}).get("transaction", {})
            extra = sorted(set(values) - set(wanted))
            if extra:
                raise BadRequest("fields that were not requested: " + ", ".join(extra))
            missing = sorted(
                n
                for n, spec in wanted.items()
                if n not in values and not (isinstance(spec, dict) and spec.get("optional"))
            )
            if missing:
                raise BadRequest("requested fields missing: " + ", ".join(missing))
            updated = transfer.info_updated(session.sub, self._clock())
            # Kept for operators, sealed like SEP-12 data: these may be account numbers.
            kid, sealed = self._vault.seal(
                json.dumps(values, default=str).encode(), transfer_info_context(transfer.id)
            )
            await uow.transfers.store_info(transfer.id, kid, sealed)
            updated = await self._resume(uow, updated, self._clock())
            await uow.commit()
        return render(updated)

    async def sent_info(self, transfer_id: str) -> dict[str, Any] | None:
        """The values the sender last sent with PATCH, opened (operators only)."""
        async with self._uow(read_only=True) as uow:
            found = await uow.transfers.info(transfer_id)
        if found is None:
            return None
        kid, blob = found
        data: dict[str, Any] = json.loads(
            self._vault.open(kid, blob, transfer_info_context(transfer_id))
        )
        return data

    # -- the money ---------------------------------------------------------------------------

    async def apply_payments(
        self, uow: UnitOfWork, account: str, records: list[Payment], now: datetime
    ) -> list[dict[str, Any]]:
        """Match the payments to ``account`` by memo and apply them; returns the rows to
        keep in incoming_payments (one per incoming payment, matched or not). Payments the
        account made itself (payouts, refunds, even to itself) are not incoming.

        A page is decided in memory, from what a few queries load for all of it (the
        transfers by memo, their payouts, the receivers' payout details), and written in
        bulk: a handful of statements per page, not per payment."""
        incoming = [p for p in records if p.to == account and p.source != account]
        memos = [p.memo for p in incoming if p.memo_type == "id" and p.memo]
        found = await uow.transfers.by_memos(account, memos)
        ids = [t.id for t in found.values()]
        payouts = await uow.payouts.latest(SOURCE, ids)
        details = await self._customers.payout_details(
            uow, {t.receiver_id for t in found.values() if t.receiver_id}
        )
        changed: dict[str, Transfer] = {}
        compliance, instructions, compliance_payouts = await match_compliance_payments(
            uow, self._customers, incoming, _destination
        )
        rows: list[dict[str, Any]] = []
        for p in incoming:
            if p.id in compliance:
                rows.append(_incoming_row(account, p, now, compliance[p.id]))
                continue
            transfer = found.get(p.memo or "") if p.memo_type == "id" else None
            live = _live_purposes(payouts.get(transfer.id, {})) if transfer else set()
            outcome, note, updated, queued = self._match(transfer, p, now, details, live)
            if updated is not None:  # a second payment in this page sees the new status
                found[p.memo or ""] = changed[updated.id] = updated
            instructions.extend(queued)
            row = _incoming_row(account, p, now, MatchedPayment(outcome, note, None))
            row["transfer_id"] = transfer.id if transfer else None
            rows.append(row)
        await uow.transfers.save_many(list(changed.values()))
        for t in changed.values():
            await self._queue_callback(uow, t)
        await self._payouts.enqueue_many(uow, instructions, {**payouts, **compliance_payouts})
        return rows

    def _match(
        self,
        transfer: Transfer | None,
        p: Payment,
        now: datetime,
        details: Mapping[str, Mapping[str, str]],
        live: set[str],
    ) -> tuple[str, str | None, Transfer | None, list[PayoutInstruction]]:
        """(outcome, note, the transfer as it now is when it changed, payouts to queue)."""
        if transfer is None:
            return "unknown_memo", "no transfer has this memo", None, []
        if (p.asset_code, p.asset_issuer) != (transfer.asset_code, transfer.asset_issuer):
            paid_in = f"{p.asset_code}:{p.asset_issuer}" if p.asset_code else "XLM"
            wanted = transfer.asset_code
            if p.asset_code == transfer.asset_code:
                wanted = f"{transfer.asset_code}:{transfer.asset_issuer}"
            return "wrong_asset", f"paid in {paid_in}, not {wanted}", None, []
        if transfer.status == S.EXPIRED:
            return "late", "the transfer had expired", None, []
        if transfer.status != S.PENDING_SENDER:
            note = f"the transfer had been paid already ({transfer.status})"
            return "duplicate", note, None, []
        paid = to_stroops(p.amount)
        expected = transfer.amount_in
        arrived = partial(
            transfer.funds_received,
            amount=paid,
            sender_account=p.source_muxed or p.source,
            transaction_id=p.transaction_hash,
            actor="payment-watcher",
            at=now,
        )
        receiver = details.get(transfer.receiver_id or "", {})
        if paid == expected:
            received, payout = self._plan_payout(arrived(), receiver, live, now)
            return "matched", None, received, [payout] if payout else []
        kind = "short" if paid < expected else "over"
        note = f"paid {_amount(paid, transfer.decimals)}, expected " + _amount(
            expected, transfer.decimals
        )
        fee = self._fee(transfer, paid)
        policy = self._s.underpayment if kind == "short" else self._s.overpayment
        if policy == "hold":
            return kind, note, arrived(hold=f"held for an operator: {note}", fee=fee), []
        if kind == "short":
            received = arrived(note=f"the payment is being refunded: {note}", fee=fee)
            return kind, note, received, [self._refund(received, paid, "refund", note)]
        received = arrived(note=f"the excess is being refunded: {note}")
        received, payout = self._plan_payout(received, receiver, live, now)
        excess = self._refund(received, paid - expected, "excess_refund", note)
        return kind, note, received, [*([payout] if payout else []), excess]

    def _fee(self, t: Transfer, amount: int) -> int:
        receive = self._receive.get(t.asset_code)
        if receive is None:  # the asset was removed from settings since: the agreed fee
            return t.amount_fee
        return fee_for(amount, receive.fee_fixed, receive.fee_percent, t.decimals)

    def _plan_payout(
        self, t: Transfer, receiver: Mapping[str, str], live: set[str], now: datetime
    ) -> tuple[Transfer, PayoutInstruction | None]:
        """The payout of a received transfer; or, when it cannot be made as it stands, the
        transfer held for an operator with the reason, and no payout."""
        if "refund" in live:
            raise Conflict("a refund of this transfer is queued or sent; it cannot be paid out")
        problem = None
        destination = memo_type = memo = rail = None
        if t.amount_out <= 0:
            problem = "nothing is left to pay out after the fee"
        else:
            destination, memo_type, memo, rail, problem = _destination(t.funding_method, receiver)
        if problem is not None:
            return t.held(f"held for an operator: {problem}", "gateway", now), None
        return t, PayoutInstruction(
            source=SOURCE,
            source_id=t.id,
            purpose="payout",
            asset_code=t.asset_code,
            asset_issuer=t.asset_issuer,
            amount_stroops=t.amount_out,
            destination=destination,
            memo_type=memo_type,
            memo=memo,
            rail=rail,
            customer_id=t.receiver_id,
        )

    async def _pay_out(self, uow: UnitOfWork, t: Transfer, now: datetime) -> Transfer:
        """Save a received transfer and queue its payout (or hold it: see _plan_payout)."""
        receivers = {t.receiver_id} if t.receiver_id else set()
        details = await self._customers.payout_details(uow, receivers)
        live = _live_purposes((await uow.payouts.latest(SOURCE, [t.id])).get(t.id, {}))
        t, payout = self._plan_payout(t, details.get(t.receiver_id or "", {}), live, now)
        saved = await self._save(uow, t)
        if payout is not None:
            await self._payouts.enqueue(uow, payout)
        return saved

    async def _resume(self, uow: UnitOfWork, t: Transfer, now: datetime) -> Transfer:
        """Back in pending_receiver after information was fixed: received funds go to payout
        again (the payout was canceled when the information was asked for), unless they
        are held for an operator."""
        if t.amount_received is None or t.hold_reason is not None:
            return await self._save(uow, t)
        return await self._pay_out(uow, t, now)

    async def _live(self, uow: UnitOfWork, t: Transfer, purpose: str) -> bool:
        """Whether a payout of this purpose is queued, sent or done for the transfer."""
        latest = await uow.payouts.latest(SOURCE, [t.id])
        return purpose in _live_purposes(latest.get(t.id, {}))

    def _refund(
        self, t: Transfer, amount: int, purpose: Literal["refund", "excess_refund"], reason: str
    ) -> PayoutInstruction:
        """Money back to the payer, with the refund memo asked for, else the memo it paid
        with."""
        assert t.sender_account is not None
        log.info(
            "transfer %s: %s of %s queued (%s)",
            t.id,
            purpose.replace("_", " "),
            _amount(amount, t.decimals),
            reason,
        )
        return PayoutInstruction(
            source=SOURCE,
            source_id=t.id,
            purpose=purpose,
            asset_code=t.asset_code,
            asset_issuer=t.asset_issuer,
            amount_stroops=amount,
            destination=t.sender_account,
            memo_type=t.refund_memo_type or t.memo_type,
            memo=t.refund_memo or t.memo,
        )

    async def _queue_refund(
        self,
        uow: UnitOfWork,
        t: Transfer,
        amount: int,
        purpose: Literal["refund", "excess_refund"],
        reason: str,
    ) -> None:
        """Queue a refund. A whole refund first cancels a payout still queued; one already
        sent or done cannot be undone, so the refund is refused."""
        if purpose == "refund" and not await self._payouts.cancel(uow, SOURCE, t.id, "payout"):
            raise Conflict("a payout of this transfer is submitted or done; it cannot be refunded")
        await self._payouts.enqueue(uow, self._refund(t, amount, purpose, reason))

    async def _refundable(self, uow: UnitOfWork, t: Transfer) -> int:
        """What a whole refund sends back: everything received, less an excess that has
        its own refund already."""
        received = t.amount_received or 0
        if await self._live(uow, t, "excess_refund"):
            return received - t.excess_stroops
        return received

    async def payout_settled(self, result: PayoutResult) -> None:
        """A payout or refund ended (the payout engine calls this, possibly more than once
        for one payout: a repeated report changes nothing)."""
        now = self._clock()
        actor = "payout-engine"
        async with self._uow() as uow:
            if result.source == PAYMENT_SOURCE:
                resolution = "refunded" if result.succeeded else "refund_failed"
                await uow.payments.resolve(result.source_id, resolution)
                await uow.commit()
                return
            t = await uow.transfers.get(result.source_id, lock=True)
            if t is None:
                log.warning(
                    "payout %s settled for unknown transfer %s", result.payout_id, result.source_id
                )
                return
            try:
                await self._settle(uow, t, result, actor, now)
            except IllegalTransition as exc:
                # The transfer's own checks keep this from happening (a payout is canceled
                # before anything contradicts it); if it does, operators must look.
                log.error(
                    "transfer %s: %s %s reported while %s (%s)",
                    t.id,
                    result.purpose,
                    "success" if result.succeeded else "failure",
                    t.status,
                    exc,
                )
                return
            await uow.commit()

    async def _settle(
        self, uow: UnitOfWork, t: Transfer, result: PayoutResult, actor: str, now: datetime
    ) -> None:
        if result.purpose in ("refund", "excess_refund"):
            refund = Refund(
                result.stellar_transaction_id or result.payout_id,
                result.amount_stroops,
                result.fee_stroops,
            )
            if not result.succeeded:
                # The money is still here: operators see why and decide what next. A failed
                # excess refund does not stop the transfer's own payout.
                reason = f"{result.purpose.replace('_', ' ')} failed: {result.reason}"
                log.warning("transfer %s: %s", t.id, reason)
                if result.purpose == "excess_refund" or t.status == S.ERROR:
                    await self._save(uow, t.noted(reason, actor, now))
                else:
                    await self._save(uow, t.failed(reason, actor, now))
            elif refund.payment_id in {r.payment_id for r in t.refunds}:
                return  # already recorded
            elif result.purpose == "refund":
                updated = t.refunded(refund, actor=actor, reason="refunded", at=now)
                await self._save(uow, updated, new_refunds=(refund,))
            else:
                updated = t.partly_refunded(refund, actor=actor, reason="excess refunded", at=now)
                await self._save(uow, updated, new_refunds=(refund,))
        elif result.succeeded:
            if t.status != S.COMPLETED:
                done = t.completed(
                    reference=result.stellar_transaction_id or result.external_reference,
                    actor=actor,
                    at=now,
                )
                await self._save(uow, done)
        elif t.status in FINAL:
            return  # failed already, or an operator settled it meanwhile
        elif self._s.payout_failure == "refund" and t.sender_account is not None:
            amount = await self._refundable(uow, t)
            failed = t.refund_queued(f"payout failed: {result.reason}", actor, now)
            await self._queue_refund(
                uow, failed, amount, "refund", f"payout failed: {result.reason}"
            )
            await self._save(uow, failed)
        else:
            await self._save(uow, t.failed(f"payout failed: {result.reason}", actor, now))

    async def payout_submitted(
        self, transfer_id: str, *, purpose: str = "payout", on_stellar: bool
    ) -> None:
        """The payout engine handed a payout to the network or the rail. Only the transfer's
        own payout moves its status; refunds do not."""
        if purpose != "payout":
            return
        async with self._uow() as uow:
            t = await uow.transfers.get(transfer_id, lock=True)
            if t is not None and t.status == S.PENDING_RECEIVER and t.hold_reason is None:
                await self._save(
                    uow,
                    t.payout_sent(on_stellar=on_stellar, actor="payout-engine", at=self._clock()),
                )
                await uow.commit()

    async def expire_once(self, batch: int = 500) -> int:
        """Transfers whose payment never came expire. "Never came" is judged by what the
        payment watcher has read: while it is behind (Horizon down, watcher stopped), a
        payment made in time may still be waiting, so nothing expires past its position."""
        now = self._clock()
        async with self._uow() as uow:
            cursor = await uow.payments.cursor(self._s.receiving_account)
            if cursor is None or cursor.caught_up_at is None:
                return 0
            seen_until = min(now, cursor.caught_up_at - timedelta(seconds=INGESTION_MARGIN))
            before = seen_until - timedelta(seconds=self._s.pending_sender_seconds)
            ids = await uow.transfers.waiting_since(S.PENDING_SENDER, before, batch)
            for transfer_id in ids:
                t = await uow.transfers.get(transfer_id, lock=True)
                if t is not None and t.status == S.PENDING_SENDER:
                    await self._save(uow, t.expired("expiry", now))
            await uow.commit()
        return len(ids)

    # -- operators ---------------------------------------------------------------------------

    async def operate(
        self,
        transfer_id: str,
        action: str,
        actor: str,
        reason: str,
        fields: dict[str, Any] | None = None,
    ) -> Transfer:
        """Operator actions: release (a held payment goes to payout), refund, fail,
        need_customer_info, need_transaction_info, info_updated. Each checks, under the
        transfer's lock, that no money can move twice."""
        if action not in OPERATOR_ACTIONS:
            raise InvalidField("action", "unknown action")
        now = self._clock()
        async with self._uow() as uow:
            t = await uow.transfers.get(transfer_id, lock=True)
            if t is None:
                raise NotFound("transaction not found")
            if action == "release":
                t = await self._pay_out(uow, t.release_hold(actor, reason, now), now)
                if t.excess_stroops and t.hold_reason is None:
                    note = f"released by {actor}"
                    await self._queue_refund(uow, t, t.excess_stroops, "excess_refund", note)
            elif action == "refund":
                if t.sender_account is None or t.amount_received is None:
                    raise IllegalTransition(t.status, "refunded")
                if await self._live(uow, t, "refund"):
                    return t  # queued already: a repeated request changes nothing
                amount = await self._refundable(uow, t)
                t = t.refund_queued(reason, actor, now)
                await self._queue_refund(uow, t, amount, "refund", reason)
                t = await self._save(uow, t)
            elif action == "info_updated":
                t = await self._resume(uow, t.info_updated(actor, now), now)
            else:
                # The payout must not leave while the transfer fails or waits for data.
                if not await self._payouts.cancel(uow, SOURCE, t.id, "payout"):
                    raise Conflict(
                        "a payout of this transfer is submitted or done; wait for its outcome"
                    )
                if action == "fail":
                    t = t.failed(reason, actor, now)
                elif action == "need_customer_info":
                    receiver_type = self._receiver_type(t)
                    if not fields or t.receiver_id is None or receiver_type is None:
                        raise InvalidField("fields", "name the receiver's fields to update")
                    known = set(receiver_type.required) | set(receiver_type.optional)
                    if set(fields) - known:
                        raise InvalidField("fields", f"must be fields of {receiver_type.name}")
                    t = t.needs_customer_info(reason, actor, now)
                else:
                    t = t.needs_transaction_info(reason, {"transaction": fields or {}}, actor, now)
                t = await self._save(uow, t)
            await uow.commit()
        if action == "need_customer_info":
            # SEP-31: the receiver's GET /customer now answers NEEDS_INFO naming the fields;
            # once they are fixed and ACCEPTED, resume_after_customer_updates moves on.
            assert t.receiver_id is not None and fields
            receiver_type = self._receiver_type(t)
            assert receiver_type is not None
            await self._customers.decide(
                t.receiver_id,
                receiver_type.name,
                "NEEDS_INFO",
                reason,
                actor,
                {name: str(why)[:256] or reason[:256] for name, why in fields.items()},
            )
        return t

    async def listing(
        self, limit: int, offset: int, *, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Transfers for operators, newest first (``render_for_operators``)."""
        async with self._uow(read_only=True) as uow:
            found = await uow.transfers.list(status, limit, offset=offset)
        return [render_for_operators(t) for t in found]

    async def history(self, transfer_id: str) -> dict[str, Any]:
        """One transfer for operators with its status history and its payouts and refunds.
        Where a payout goes is left out: it comes from the receiver's KYC data."""
        async with self._uow(read_only=True) as uow:
            t = await uow.transfers.get(transfer_id)
            if t is None:
                raise NotFound("transaction not found")
            events = await uow.transfers.events(t.id)
            payouts = await uow.payouts.of(SOURCE, t.id)
        hidden = {"destination", "memo_type", "memo"}
        return {
            **render_for_operators(t),
            "events": [{k: v for k, v in e.items() if k != "transfer_id"} for e in events],
            "payouts": [{k: v for k, v in p.items() if k not in hidden} for p in payouts],
        }

    async def incoming_payments(
        self, limit: int, offset: int, *, outcome: str = "unmatched"
    ) -> list[dict[str, Any]]:
        """Payments the watcher recorded, oldest first; by default those that matched no
        transfer (or not as they should: short, over, late, ...)."""
        async with self._uow(read_only=True) as uow:
            return await uow.payments.list(outcome, limit, offset=offset)

    async def incoming_payment(self, payment_id: str) -> dict[str, Any]:
        async with self._uow(read_only=True) as uow:
            row = await uow.payments.get(payment_id)
        if row is None:
            raise NotFound("payment not found")
        return row

    def _receiver_type(self, t: Transfer) -> CustomerTypeSettings | None:
        amount = Decimal(t.amount_in) / STROOPS_PER_UNIT
        return select_type(self._types, "receiver", t.asset_code, amount)

    async def resume_after_customer_updates(self, batch: int = 100) -> int:
        """Transfers waiting for a customer's update go back to pending_receiver (and to
        payout) once the receiver changed their data and is ACCEPTED again."""
        now = self._clock()
        resumed = 0
        after: tuple[datetime, str] | None = None
        while True:  # every waiting transfer, a page at a time, oldest first
            async with self._uow(read_only=True) as uow:
                waiting = await uow.transfers.in_status_after(
                    S.PENDING_CUSTOMER_INFO_UPDATE, after, batch
                )
            for t in waiting:
                if await self._receiver_updated(t):
                    resumed += await self._resume_waiting(t.id, now)
            if len(waiting) < batch:
                return resumed
            after = (waiting[-1].started_at, waiting[-1].id)

    async def _receiver_updated(self, t: Transfer) -> bool:
        """Whether the receiver has changed their data since the transfer began to wait,
        and is ACCEPTED for the type the transfer needs."""
        receiver_type = self._receiver_type(t)
        if t.receiver_id is None or receiver_type is None:
            return False
        found = await self._customers.current_status(t.receiver_id, receiver_type.name)
        if found is None:
            return False
        status, changed_at = found
        return status == Status.ACCEPTED and changed_at > t.updated_at

    async def _resume_waiting(self, transfer_id: str, now: datetime) -> int:
        async with self._uow() as uow:
            locked = await uow.transfers.get(transfer_id, lock=True)
            if locked is None or locked.status != S.PENDING_CUSTOMER_INFO_UPDATE:
                return 0
            await self._resume(uow, locked.info_updated("customer", now), now)
            await uow.commit()
        return 1

    async def refund_payment(self, payment_id: str, actor: str, reason: str) -> dict[str, Any]:
        """Send back an incoming payment that belongs to no transfer (unknown memo, wrong
        asset, a second payment, one after expiry, a SEP-3 payment that was not paid out),
        to the account that made it, with its memo. Once per payment unless a refund
        failed."""
        async with self._uow() as uow:
            row = await uow.payments.get(payment_id, lock=True)
            if row is None:
                raise NotFound("payment not found")
            # A SEP-3 payment not paid out (not authorized, or not the amount authorized)
            # belongs to no transfer either.
            held = row.get("compliance_id") is not None and row["outcome"] != "matched"
            if row["outcome"] not in REFUNDABLE_OUTCOMES and not held:
                raise Conflict(
                    f"a {row['outcome']} payment is refunded with its transfer "
                    "(`gateway transfers act ID refund`)"
                )
            if row["resolution"] not in ("refund_queued", "refunded"):
                memo_type = row["memo_type"] if row["memo_type"] in ("id", "text", "hash") else None
                await self._payouts.enqueue(
                    uow,
                    PayoutInstruction(
                        source=PAYMENT_SOURCE,
                        source_id=payment_id,
                        purpose="refund",
                        asset_code=row["asset_code"] or "XLM",
                        asset_issuer=row["asset_issuer"] or "",
                        amount_stroops=row["amount"],
                        destination=row["source"],
                        memo_type=memo_type,
                        memo=row["memo"] if memo_type else None,
                    ),
                )
                await uow.payments.resolve(payment_id, "refund_queued")
                log.info("payment %s: refund queued by %s (%s)", payment_id, actor, clip(reason))
                row = {**row, "resolution": "refund_queued"}
            await uow.commit()
        return row

    # -- writing -----------------------------------------------------------------------------

    async def _save(
        self, uow: UnitOfWork, t: Transfer, *, new_refunds: tuple[Refund, ...] = ()
    ) -> Transfer:
        """Store a changed transfer with its new history, and queue the partner's callback
        for a new status; returns it with the history written (so saving it again after
        another change writes only that change's entries)."""
        await uow.transfers.save(t, new_refunds=new_refunds)
        await self._queue_callback(uow, t)
        return _with(t)

    async def _queue_callback(self, uow: UnitOfWork, t: Transfer) -> None:
        """The partner's signed callback, when the status moved and it registered a URL."""
        moved = any(e.from_status != e.to_status for e in t.events)
        if moved and t.callback_url:
            body = json.dumps(render(t), separators=(",", ":")).encode()
            await uow.outbox.add(
                str(uuid.uuid4()), CALLBACK_KIND, t.callback_url, body, t.id, t.updated_at
            )

    async def owner_of(self, transfer_id: str) -> str | None:
        async with self._uow(read_only=True) as uow:
            return await uow.transfers.owner_of(transfer_id)


def replace_events(t: Transfer, reason: str, actor: str, at: datetime) -> Transfer:
    """A new transfer's first history entry."""
    return replace(t, events=(Event(None, str(t.status), actor, reason, at),))


def _with(t: Transfer, **changes: Any) -> Transfer:
    """A change outside the state machine (callback URL, notes): no history entry."""
    return replace(t, events=(), **changes)


def _created(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "stellar_account_id": t.stellar_account_id,
        "stellar_memo_type": t.memo_type,
        "stellar_memo": t.memo,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def render(t: Transfer) -> dict[str, Any]:
    """The GET /transactions/{id} body (and the callback body)."""
    fmt = lambda v: format_stroops(v, t.decimals)  # noqa: E731
    asset = f"stellar:{t.asset_code}:{t.asset_issuer}"
    amount_in = t.amount_received if t.amount_received is not None else t.amount_in
    tx: dict[str, Any] = {
        "id": t.id,
        "status": str(t.status),
        "amount_in": fmt(amount_in),
        "amount_in_asset": asset,
        "amount_out": fmt(t.amount_out),
        "amount_out_asset": asset,
        "amount_fee": fmt(t.amount_fee),
        "amount_fee_asset": asset,
        "fee_details": {"total": fmt(t.amount_fee), "asset": asset},
        "stellar_account_id": t.stellar_account_id,
        "stellar_memo_type": t.memo_type,
        "stellar_memo": t.memo,
        "started_at": _iso(t.started_at),
        "updated_at": _iso(t.updated_at),
        "completed_at": _iso(t.completed_at),
        "stellar_transaction_id": t.stellar_transaction_id,
        "external_transaction_id": t.external_transaction_id,
        "refunded": t.status == S.REFUNDED,
    }
    if t.status_message:
        tx["status_message"] = t.status_message
    if t.refunds:
        tx["refunds"] = {
            "amount_refunded": fmt(t.refunded_stroops),
            "amount_fee": fmt(t.refund_fees_stroops),
            "payments": [
                {"id": r.payment_id, "amount": fmt(r.amount_stroops), "fee": fmt(r.fee_stroops)}
                for r in t.refunds
            ],
        }
    if t.required_info_message:
        tx["required_info_message"] = t.required_info_message
    if t.status == S.PENDING_TRANSACTION_INFO_UPDATE and t.required_info_updates:
        tx["required_info_updates"] = t.required_info_updates
    return {"transaction": tx}


def render_for_operators(t: Transfer) -> dict[str, Any]:
    """A transfer for operators: what its partner sees, and the partner, the customers' ids,
    the funding method and a hold; no personal data."""
    view: dict[str, Any] = render(t)["transaction"]
    view.update(
        partner_account=t.partner_account,
        sender_id=t.sender_id,
        receiver_id=t.receiver_id,
        funding_method=t.funding_method,
        hold_reason=t.hold_reason,
    )
    return view


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, default=str, separators=(",", ":")).encode()
    ).hexdigest()


def _destination(
    rail: str | None, receiver: Mapping[str, str]
) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """(destination, memo type, memo, rail, problem). The receiver's Stellar account from
    their KYC (crypto_address, with crypto_memo), else the funding method's rail, which
    reads its details from the KYC at payout time."""
    address = receiver.get("crypto_address", "")
    if StrKey.is_valid_ed25519_public_key(address) or (
        address.startswith("M") and _is_muxed(address)
    ):
        memo = receiver.get("crypto_memo") or None
        kind = None
        if memo is not None:
            kind = _memo_kind(memo)
            if kind is None:
                return None, None, None, None, "the receiver's crypto_memo is not a valid memo"
        return address, kind, memo, None, None
    return None, None, None, rail, None


def _incoming_row(
    account: str, p: Payment, now: datetime, matched: MatchedPayment
) -> dict[str, Any]:
    return {
        "id": p.id,
        "account": account,
        "transaction_hash": p.transaction_hash,
        "source": p.source_muxed or p.source,
        "asset_code": p.asset_code,
        "asset_issuer": p.asset_issuer,
        "amount": to_stroops(p.amount),
        "memo_type": p.memo_type,
        "memo": p.memo,
        "created_at": p.created_at,
        "seen_at": now,
        "outcome": matched.outcome,
        "note": matched.note,
        "transfer_id": None,
        "compliance_id": matched.compliance_id,
    }


def _live_purposes(latest: Mapping[str, tuple[str, int]]) -> set[str]:
    """The purposes with a payout queued, sent or done, from payouts.latest()."""
    return {purpose for purpose, (status, _) in latest.items() if status in LIVE}


def _amount(stroops: int, decimals: int) -> str:
    """An amount at the asset's decimals, or at all 7 when it has more (a payment may)."""
    if stroops % 10 ** (7 - decimals):
        decimals = 7
    return format_stroops(stroops, decimals)


def _memo_kind(memo: str) -> str | None:
    """How a receiver's memo goes on a Stellar payment: id, text, or None (it cannot)."""
    if memo.isdigit() and memo.isascii() and int(memo) < 2**64:
        return "id"
    if len(memo.encode()) <= 28:
        return "text"
    return None


def _is_muxed(address: str) -> bool:
    try:
        MuxedAccount.from_account(address)
    except Exception:
        return False
    return True


def _refund_memo(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    memo, kind = body.get("refund_memo"), body.get("refund_memo_type")
    if memo in (None, "") and kind in (None, ""):
        return None, None
    if memo in (None, "") or kind in (None, ""):
        raise BadRequest("refund_memo and refund_memo_type go together")
    if isinstance(memo, bool) or not isinstance(memo, str | int):
        raise InvalidField("refund_memo", "must be a string")
    return str(kind), normalize_memo(memo, kind, "refund_memo")
