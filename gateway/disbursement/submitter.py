"""The payout submitter (`gateway disburse`): ready payouts become signed transactions, each
paid exactly once or failed with a reason.

A step either drives an open transaction whose time has come or builds a new one:

* Build: lease a lane (a channel account, or the distribution account), claim up to
  ``max_ops_per_tx`` ready payouts, sign a transaction at the lane's next sequence number with
  a time bound, and store envelope, hash and payouts in one database transaction -- all before
  anything is sent.
* Send and read the answer:
  - success: the payouts succeeded;
  - ``tx_failed`` (applied; the sequence number is spent): payouts whose operation failed fail
    with the reason, the others go back to ready;
  - ``tx_insufficient_fee``: signed again at the same sequence number with a higher fee, up to
    the cap (two envelopes of one sequence number can never both apply);
  - an unknown outcome (timeout, 5xx, lost connection): the same envelope is sent again, with
    backoff, until its time bound passes;
  - any other rejection waits for the time bound.
* A transaction is given up ("dead", its payouts back to ready for a new one) only when none of
  its envelopes is on the ledger and either Horizon has closed a ledger past its time bound, or
  its lane's sequence number has moved past it. A payout sent back ``max_tries`` times fails.

Several submitters may run on one PostgreSQL database: lanes, transactions and payouts are
claimed with SKIP LOCKED, a transaction being worked on is leased, and every settlement is a
conditional update that only one of them wins. Results reach each payout's source afterwards
(``report``), from rows that say whether they have been reported, so a crash loses none.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from gateway.db.submission_repository import APPLIED_FAILED, DEAD, INCLUDED, OPEN
from gateway.disbursement.envelopes import PaymentLine, payment_envelope
from gateway.errors import HorizonBadResponse, HorizonUnavailable
from gateway.outbound.horizon import FeeStats, Horizon, SubmitResult
from gateway.payouts import PayoutResult, PayoutResultHandler
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory

log = logging.getLogger("gateway.disburse")

# Rejections that say the lane itself cannot send (no XLM for fees, keys changed, gone):
# it is halted until `gateway channels verify` finds it fit again.
LANE_PROBLEMS = frozenset({"tx_insufficient_balance", "tx_bad_auth", "tx_no_source_account"})
# What an operator reads when one operation of a transaction failed.
OP_REASONS = {
    "op_no_destination": "the destination account does not exist",
    "op_no_trust": "the destination has no trustline for the asset",
    "op_not_authorized": "the destination is not authorized to hold the asset",
    "op_line_full": "the destination's trustline limit would be exceeded",
    "op_underfunded": "the distribution account does not hold enough of the asset",
    "op_src_no_trust": "the distribution account has no trustline for the asset",
    "op_src_not_authorized": "the distribution account is not authorized for the asset",
    "op_no_issuer": "the asset's issuer does not exist",
    "op_malformed": "the payment is malformed (amount or asset)",
}


def channel_keypair(distribution: Keypair, idx: int) -> Keypair:
    """Channel account ``idx``'s keys, derived from the distribution secret: nothing more to
    store or leak, and any submitter with the distribution secret can sign for every lane."""
    seed = hmac.new(
        distribution.raw_secret_key(), b"gateway channel account %d" % idx, hashlib.sha256
    ).digest()
    return Keypair.from_raw_ed25519_seed(seed)


def bid(stats: FeeStats, cap: int) -> int:
    """The base fee to bid per operation: Horizon's median fee charged, at least the last
    ledger's base fee and the network minimum, at most ``cap``."""
    return min(max(stats.last_ledger_base_fee, stats.p50, 100), cap)


def op_codes(result_xdr: str | None) -> tuple[str, ...]:
    """Horizon's operation result codes (op_success, op_no_trust, ...) from a result XDR."""
    if not result_xdr:
        return ()
    result = sx.TransactionResult.from_xdr(result_xdr).result
    pair = result.inner_result_pair
    results = pair.result.result.results if pair is not None else result.results
    codes = []
    for r in results or ():
        if r.code != sx.OperationResultCode.opINNER or r.tr is None:
            codes.append("op_" + r.code.name.removeprefix("op").lower())
            continue
        inner = next(v for k, v in vars(r.tr).items() if k != "type" and v is not None)
        name = inner.code.name  # e.g. PAYMENT_NO_TRUST
        codes.append("op_" + name.split("_", 1)[1].lower())
    return tuple(codes)


@dataclass(frozen=True, slots=True)
class RailOutcome:
    succeeded: bool
    reference: str | None = None
    reason: str | None = None


class PayoutRail(Protocol):
    """An off-chain way to pay (a bank transfer, mobile money). ``key`` is the payout's id and
    stays the same however often it is asked: a rail must pay once per key."""

    async def pay(self, key: str, payout: dict[str, Any]) -> RailOutcome: ...


class ResultRouter:
    """Hands each ended payout to the service that asked for it, by source."""

    def __init__(self, handlers: dict[str, PayoutResultHandler]):
        self._handlers = handlers

    async def deliver(self, results: list[PayoutResult]) -> None:
        by_source: dict[str, list[PayoutResult]] = {}
        for r in results:
            by_source.setdefault(r.source, []).append(r)
        for source, mine in by_source.items():
            handler = self._handlers.get(source)
            if handler is None:
                for r in mine:
                    log.error("payout %s ended for unknown source %s", r.payout_id, source)
                continue
            many = getattr(handler, "payouts_settled", None)
            if many is not None:
                await many(mine)
            else:
                for r in mine:
                    await handler.payout_settled(r)


def _result(row: dict[str, Any]) -> PayoutResult:
    return PayoutResult(
        payout_id=row["id"],
        source=row["source"],
        source_id=row["source_id"],
        purpose=row["purpose"],
        succeeded=row["status"] == "succeeded",
        amount_stroops=row["amount"],
        stellar_transaction_id=row["stellar_transaction_id"],
        external_reference=row["external_reference"],
        fee_stroops=row["fee"] or 0,
        reason=row["reason"],
    )


class Submitter:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        horizon: Horizon,
        distribution: Keypair,
        results: ResultRouter,
        rail: PayoutRail | None = None,
        clock: Callable[[], float] = time.time,
        lease_seconds: float | None = None,
    ):
        self._s = settings.disbursement
        self._passphrase = settings.network_passphrase
        self._uow = uow
        self._horizon = horizon
        self._distribution = distribution
        self._results = results
        self._rail = rail
        self._clock = clock
        self._issuers = {a.code: a.issuer for a in settings.assets}
        # A lease outlives one Horizon call; a submitter killed mid-call frees it after this.
        self._lease = lease_seconds or settings.horizon.timeout_seconds * 2 + 5
        self._fee: tuple[float, int] | None = None  # (read at, base fee)
        self._reporting = asyncio.Lock()  # one report at a time in this process

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- one step ------------------------------------------------------------------------

    async def step(self) -> int:
        """Drive one due transaction, or build and send a new one; pay ready off-chain
        payouts; report ended payouts to their sources. Returns how much was done (0: idle)."""
        done = await self._drive_due()
        if not done:
            done = await self._send_new()
        if self._rail is not None:
            done += await self._pay_rail()
        done += await self.report()
        return done

    async def ensure_lane(self) -> None:
        """Without channel accounts, the distribution account is the one lane."""
        async with self._uow(read_only=True) as uow:
            if await uow.submissions.lanes():
                return
        account = await self._horizon.account(self._distribution.public_key)
        if account is None:
            raise HorizonBadResponse("the distribution account does not exist on the network")
        async with self._uow() as uow:
            if not await uow.submissions.lanes():
                await uow.submissions.add_lane(
                    self._distribution.public_key, None, account.sequence, self._now()
                )
                await uow.commit()

    # -- building ------------------------------------------------------------------------

    async def _base_fee(self) -> int:
        """Horizon's median fee charged (at least the last base fee), capped by settings;
        read at most every 5 seconds."""
        now = self._clock()
        if self._fee is None or now - self._fee[0] > 5:
            try:
                fee = bid(await self._horizon.fee_stats(), 10**9)
            except (HorizonUnavailable, HorizonBadResponse):
                fee = self._fee[1] if self._fee else 100
            self._fee = (now, fee)
        return min(self._fee[1], self._s.max_fee_stroops)

    def _lane_keys(self, lane: dict[str, Any]) -> Keypair:
        if lane["idx"] is None:
            return self._distribution
        return channel_keypair(self._distribution, lane["idx"])

    def _sign(
        self,
        lane: dict[str, Any],
        sequence: int,
        payouts: list[dict[str, Any]],
        fee: int,
        max_time: int,
    ) -> tuple[str, str]:
        """(envelope XDR, hash hex) paying ``payouts`` in order from the distribution
        account, at ``sequence`` of the lane."""
        lane_keys = self._lane_keys(lane)
        mine = lane_keys.public_key == self._distribution.public_key
        return payment_envelope(
            passphrase=self._passphrase,
            source=lane["account_id"],
            sequence=sequence,
            fee_per_op=fee,
            max_time=max_time,
            lines=[
                PaymentLine(p["destination"], p["asset_code"], p["asset_issuer"], p["amount"])
                for p in payouts
            ],
            op_source=None if mine else self._distribution.public_key,
            memo_type=payouts[0]["memo_type"],
            memo=payouts[0]["memo"],
            signers=[lane_keys] if mine else [lane_keys, self._distribution],
        )

    async def _send_new(self) -> int:
        fee = await self._base_fee()
        now = self._now()
        async with self._uow() as uow:
            lane = await uow.submissions.lease_lane()
            if lane is None:
                return 0
            claimed = await uow.submissions.claim_ready(self._s.max_ops_per_tx)
            if not claimed:
                return 0
            claimed.sort(key=lambda p: p["id"])  # the order `carried` reads them back in
            sequence = lane["sequence"] + 1
            max_time = int(self._clock()) + self._s.tx_timeout_seconds
            envelope, tx_hash = self._sign(lane, sequence, claimed, fee, max_time)
            tx = {
                "id": str(uuid.uuid4()),
                "lane": lane["account_id"],
                "sequence": sequence,
                "hash": tx_hash,
                "hashes": json.dumps([tx_hash]),
                "envelope": envelope,
                "fee_per_op": fee,
                "operations": len(claimed),
                "max_time": max_time,
                "status": OPEN,
                "submissions": 0,
                "next_try_at": now,
                "lease_until": now + timedelta(seconds=self._lease),
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
            await uow.submissions.add_tx(tx)
            await uow.submissions.attach([p["id"] for p in claimed], tx["id"], now)
            await uow.submissions.set_lane(lane["account_id"], open_tx=tx["id"], updated_at=now)
            await uow.commit()
        await self._submit(tx, lane)
        return len(claimed)

    # -- driving a stored transaction ----------------------------------------------------

    async def _drive_due(self) -> int:
        now = self._now()
        async with self._uow() as uow:
            tx = await uow.submissions.due_tx(now, now + timedelta(seconds=self._lease))
            if tx is None:
                return 0
            lane = await uow.submissions.get_lane(tx["lane"])
            await uow.commit()
        if lane is None:  # cannot happen: lanes with open transactions are never removed
            log.error("transaction %s: its lane %s is gone", tx["id"], tx["lane"])
            return 0
        if self._clock() <= tx["max_time"]:
            await self._submit(tx, lane)
        else:
            await self._after_bound(tx, lane)
        return 1

    async def _submit(self, tx: dict[str, Any], lane: dict[str, Any]) -> None:
        for _ in range(8):  # fee rises are bounded by the cap; this bounds the loop too
            try:
                answer = await self._horizon.submit(tx["envelope"])
            except (HorizonUnavailable, HorizonBadResponse) as exc:
                await self._unknown(tx, str(exc))
                return
            if answer.successful or answer.tx_code == "tx_failed":
                failed = None if answer.successful else answer.op_codes
                await self._included(tx, lane, answer.hash or tx["hash"], failed)
                return
            if answer.tx_code == "tx_insufficient_fee":
                raised = await self._raise_fee(tx, lane)
                if raised is None:
                    return
                tx = raised
                continue
            await self._rejected(tx, lane, answer)
            return

    async def _unknown(self, tx: dict[str, Any], why: str) -> None:
        """No answer: send the same envelope again later (backing off), while it can apply."""
        wait = min(0.25 * 2 ** min(tx["submissions"] + 1, 10), 15.0)
        log.warning(
            "transaction %s: no answer from Horizon (%s); again in %.1f s", tx["id"], why, wait
        )
        await self._later(tx, self._clock() + wait, why)

    async def _wait_for_bound(self, tx: dict[str, Any], why: str) -> None:
        await self._later(tx, tx["max_time"] + 1.0, why)

    async def _later(self, tx: dict[str, Any], at: float, why: str) -> None:
        """Release it until ``at`` (never later than just past its bound), with the reason."""
        async with self._uow() as uow:
            await uow.submissions.update_tx(
                tx["id"],
                submissions=tx["submissions"] + 1,
                next_try_at=datetime.fromtimestamp(min(at, tx["max_time"] + 1.0), UTC),
                lease_until=None,
                last_error=why[:256],
                updated_at=self._now(),
            )
            await uow.commit()

    async def _raise_fee(self, tx: dict[str, Any], lane: dict[str, Any]) -> dict[str, Any] | None:
        """The same payouts at the same sequence number with a higher fee (doubling, to the
        cap); None when at the cap already (it waits for its bound)."""
        fee = min(max(tx["fee_per_op"] * 2, await self._base_fee()), self._s.max_fee_stroops)
        if fee <= tx["fee_per_op"]:
            log.warning(
                "transaction %s: the network asks more than the %d stroops cap per operation",
                tx["id"],
                self._s.max_fee_stroops,
            )
            await self._wait_for_bound(tx, "tx_insufficient_fee at the fee cap")
            return None
        async with self._uow() as uow:
            # From the stored row, not ``tx``: another submitter whose lease on it ran out
            # may have signed another envelope since, and every hash must stay on the list.
            stored = await uow.submissions.get_tx(tx["id"], lock=True)
            if stored is None or stored["status"] != OPEN or stored["hash"] != tx["hash"]:
                return None
            carried = await uow.submissions.carried(tx["id"])
            envelope, tx_hash = self._sign(lane, tx["sequence"], carried, fee, tx["max_time"])
            hashes = [*json.loads(stored["hashes"]), tx_hash]
            now = self._now()
            values = {
                "envelope": envelope,
                "hash": tx_hash,
                "hashes": json.dumps(hashes),
                "fee_per_op": fee,
                "submissions": stored["submissions"] + 1,
                "last_error": "tx_insufficient_fee",
                "lease_until": now + timedelta(seconds=self._lease),
                "updated_at": now,
            }
            if not await uow.submissions.update_tx(tx["id"], **values):
                return None
            await uow.commit()
        log.info("transaction %s: fee raised to %d stroops per operation", tx["id"], fee)
        return {**tx, **values}

    async def _rejected(
        self, tx: dict[str, Any], lane: dict[str, Any], answer: SubmitResult
    ) -> None:
        code = answer.tx_code or "rejected"
        if code == "tx_too_late":
            await self._after_bound(tx, lane)
            return
        if code == "tx_bad_seq":
            account = await self._lane_account(lane)
            if account is not None and account >= tx["sequence"]:
                # Its sequence number is spent: by one of its envelopes, or by something else.
                if not await self._look_up(tx, lane):
                    await self._dead(tx, lane, account, "its sequence number was used elsewhere")
                return
            await self._wait_for_bound(tx, code)
            return
        if code in LANE_PROBLEMS:
            log.error("lane %s cannot send (%s): halted", lane["account_id"], code)
            async with self._uow() as uow:
                await uow.submissions.set_lane(
                    lane["account_id"], status="halted", note=code, updated_at=self._now()
                )
                await uow.commit()
        await self._wait_for_bound(tx, code)

    async def _lane_account(self, lane: dict[str, Any]) -> int | None:
        try:
            found = await self._horizon.account(lane["account_id"])
        except (HorizonUnavailable, HorizonBadResponse):
            return None
        return found.sequence if found is not None else None

    async def _look_up(self, tx: dict[str, Any], lane: dict[str, Any]) -> bool:
        """Whether one of its envelopes is on the ledger (and if so, settle it). The hashes
        are read again: another submitter may have signed one since ``tx`` was read."""
        async with self._uow(read_only=True) as uow:
            stored = await uow.submissions.get_tx(tx["id"])
        for tx_hash in json.loads((stored or tx)["hashes"]):
            record = await self._horizon.transaction(tx_hash)
            if record is not None:
                failed = None if record.successful else op_codes(record.result_xdr)
                await self._included(tx, lane, tx_hash, failed)
                return True
        return False

    async def _after_bound(self, tx: dict[str, Any], lane: dict[str, Any]) -> None:
        """Past its time bound: on the ledger, or dead once Horizon has closed a ledger after
        the bound (so it has seen every ledger it could be in). The ledger is read before the
        hashes are looked up: a lookup made after Horizon had ingested a ledger past the bound
        cannot miss the transaction, whereas one made before could."""
        try:
            state = await self._horizon.ledger_state()
            if await self._look_up(tx, lane):
                return
        except (HorizonUnavailable, HorizonBadResponse) as exc:
            await self._unknown(tx, str(exc))
            return
        if state.closed_at is None or state.closed_at.timestamp() <= tx["max_time"]:
            await self._unknown(tx, "Horizon has not closed a ledger past the time bound yet")
            return
        await self._dead(tx, lane, await self._lane_account(lane), "it expired unsent")

    async def _dead(
        self, tx: dict[str, Any], lane: dict[str, Any], account_sequence: int | None, why: str
    ) -> None:
        """None of its envelopes can ever apply: its payouts go back to ready."""
        now = self._now()
        async with self._uow() as uow:
            if not await uow.submissions.update_tx(
                tx["id"], status=DEAD, lease_until=None, last_error=why[:256], updated_at=now
            ):
                return
            ids = [p["id"] for p in await uow.submissions.carried(tx["id"])]
            failed = await uow.submissions.requeue(
                ids, self._s.max_tries, tx.get("last_error") or why, now
            )
            lane_values: dict[str, Any] = {"open_tx": None, "updated_at": now}
            if account_sequence is not None:
                lane_values["sequence"] = account_sequence
            await uow.submissions.set_lane(lane["account_id"], **lane_values)
            await uow.commit()
        log.warning(
            "transaction %s given up (%s): %d payout(s) back to ready, %d out of tries",
            tx["id"],
            why,
            len(ids) - failed,
            failed,
        )

    async def _included(
        self,
        tx: dict[str, Any],
        lane: dict[str, Any],
        tx_hash: str,
        failed: Sequence[str] | None,
    ) -> None:
        """On the ledger (its sequence number spent). ``failed``: None when it succeeded,
        else the operations' result codes: payouts whose operation failed fail, the others
        (all of them when the codes are unknown) go back to ready."""
        now = self._now()
        async with self._uow() as uow:
            carried = await uow.submissions.carried(tx["id"])
            status = INCLUDED if failed is None else APPLIED_FAILED
            if not await uow.submissions.update_tx(
                tx["id"], status=status, hash=tx_hash, lease_until=None, updated_at=now
            ):
                return
            ids = [p["id"] for p in carried]
            if failed is None:
                await uow.submissions.succeed(
                    ids, now, stellar_transaction_id=tx_hash, fee=tx["fee_per_op"]
                )
            else:
                reasons = {}
                again = []
                codes = (*failed, *("op_success",) * len(carried))
                for p, code in zip(carried, codes, strict=False):
                    if code == "op_success":
                        again.append(p["id"])
                    else:
                        reasons[p["id"]] = f"{code}: {OP_REASONS.get(code, 'the payment failed')}"
                await uow.submissions.fail(reasons, now)
                await uow.submissions.requeue(
                    again, self._s.max_tries, "another payment in its transaction failed", now
                )
            await uow.submissions.set_lane(
                lane["account_id"], open_tx=None, sequence=tx["sequence"], updated_at=now
            )
            await uow.commit()

    # -- off-chain rails -----------------------------------------------------------------

    async def _pay_rail(self) -> int:
        assert self._rail is not None
        now = self._now()
        async with self._uow() as uow:
            claimed = await uow.submissions.claim_rail(20, now - timedelta(seconds=self._lease))
            await uow.submissions.attach([p["id"] for p in claimed], None, now)
            await uow.commit()
        for p in claimed:
            outcome = await self._rail.pay(p["id"], p)
            async with self._uow() as uow:
                if outcome.succeeded:
                    await uow.submissions.succeed(
                        [p["id"]], self._now(), external_reference=outcome.reference
                    )
                else:
                    await uow.submissions.fail(
                        {p["id"]: outcome.reason or "the rail refused it"}, self._now()
                    )
                await uow.commit()
        return len(claimed)

    # -- results -------------------------------------------------------------------------

    async def report(self, batch: int = 500) -> int:
        """Tell sources how their payouts ended (again after a crash: handlers ignore a
        repeated report)."""
        if self._reporting.locked():
            return 0
        async with self._reporting:
            return await self._report(batch)

    async def _report(self, batch: int) -> int:
        async with self._uow(read_only=True) as uow:
            rows = await uow.submissions.unreported(batch)
        if not rows:
            return 0
        await self._results.deliver([_result(r) for r in rows])
        async with self._uow() as uow:
            await uow.submissions.mark_reported([r["id"] for r in rows])
            await uow.commit()
        return len(rows)
