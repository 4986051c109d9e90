"""What the payout engine keeps: its lanes (accounts giving transactions their sequence
numbers), the transactions it signed and stored before sending, and the payouts' side of both.

Claims take rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several submitters never
take the same lane, transaction or payout; SQLite's single writer takes turns anyway. A payout
that ends is announced as a ``payout.succeeded`` or ``payout.failed`` domain event in the
transaction that records it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from gateway.db.event_repository import Events, event_row
from gateway.db.tables import payout_lanes, payout_transactions, payouts
from gateway.payouts import FAILED, READY, SUBMITTED, SUCCEEDED
from gateway.types import format_stroops

_l, _t, _p = payout_lanes.c, payout_transactions.c, payouts.c
# What a payout's domain event carries: ids, status, amount and asset (not where it went).
_ANNOUNCED = (
    _p.id,
    _p.source,
    _p.source_id,
    _p.purpose,
    _p.attempt,
    _p.status,
    _p.asset_code,
    _p.asset_issuer,
    _p.amount,
    _p.stellar_transaction_id,
    _p.external_reference,
    _p.updated_at,
)
ACTIVE = "active"
OPEN, INCLUDED, APPLIED_FAILED, DEAD = "open", "included", "failed", "dead"


class Submissions:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def _skip_locked(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True) if self._pg else query

    # -- lanes ---------------------------------------------------------------------------

    async def lanes(self) -> list[dict[str, Any]]:
        query = select(payout_lanes).order_by(_l.idx.nulls_first())
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def add_lane(
        self, account_id: str, idx: int | None, sequence: int, now: datetime
    ) -> None:
        await self._conn.execute(
            insert(payout_lanes).values(
                account_id=account_id,
                idx=idx,
                sequence=sequence,
                open_tx=None,
                status=ACTIVE,
                note=None,
                created_at=now,
                updated_at=now,
            )
        )

    async def get_lane(self, account_id: str) -> dict[str, Any] | None:
        row = (
            await self._conn.execute(select(payout_lanes).where(_l.account_id == account_id))
        ).first()
        return dict(row._mapping) if row is not None else None

    async def next_index(self) -> int:
        found = await self._conn.scalar(select(func.max(_l.idx)))
        return 0 if found is None else int(found) + 1

    async def lease_lane(self) -> dict[str, Any] | None:
        """An active lane with no open transaction (the longest idle first), locked."""
        query = self._skip_locked(
            select(payout_lanes)
            .where(_l.status == ACTIVE, _l.open_tx.is_(None))
            .order_by(_l.updated_at)
            .limit(1)
        )
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

    async def set_lane(self, account_id: str, **values: Any) -> None:
        await self._conn.execute(
            update(payout_lanes).where(_l.account_id == account_id).values(**values)
        )

    async def remove_lane(self, account_id: str) -> None:
        await self._conn.execute(payout_lanes.delete().where(_l.account_id == account_id))

    # -- payouts -------------------------------------------------------------------------

    async def claim_ready(self, limit: int) -> list[dict[str, Any]]:
        """Ready on-chain payouts for one transaction, oldest first, locked. A transaction
        carries one memo: a payout with a memo goes alone, the others go up to ``limit``."""
        on_chain = and_(_p.status == READY, _p.destination.is_not(None))
        first = (
            await self._conn.execute(
                self._skip_locked(select(payouts).where(on_chain).order_by(_p.created_at).limit(1))
            )
        ).first()
        if first is None:
            return []
        if first.memo is not None or limit == 1:
            return [dict(first._mapping)]
        more = await self._conn.execute(
            self._skip_locked(
                select(payouts)
                .where(on_chain, _p.memo.is_(None), _p.id != first.id)
                .order_by(_p.created_at)
                .limit(limit - 1)
            )
        )
        return [dict(first._mapping), *(dict(r._mapping) for r in more)]

    async def claim_rail(self, limit: int, stale_before: datetime) -> list[dict[str, Any]]:
        """Off-chain payouts to pay, locked, oldest first: ready ones, and submitted ones
        whose submitter stopped before hearing the rail's answer (asked again with the same
        idempotency key)."""
        query = self._skip_locked(
            select(payouts)
            .where(
                _p.destination.is_(None),
                _p.rail.is_not(None),
                or_(
                    _p.status == READY,
                    and_(_p.status == SUBMITTED, _p.updated_at < stale_before),
                ),
            )
            .order_by(_p.created_at)
            .limit(limit)
        )
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def attach(self, payout_ids: list[str], tx_id: str | None, now: datetime) -> None:
        """Payouts to submitted, carried by ``tx_id`` (None: an off-chain rail)."""
        await self._conn.execute(
            update(payouts)
            .where(_p.id.in_(payout_ids), _p.status.in_((READY, SUBMITTED)))
            .values(status=SUBMITTED, tx_id=tx_id, updated_at=now)
        )

    async def carried(self, tx_id: str) -> list[dict[str, Any]]:
        """The payouts a transaction carries, in the order of its operations."""
        query = select(payouts).where(_p.tx_id == tx_id, _p.status == SUBMITTED).order_by(_p.id)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def _announce(self, ended: Any) -> None:
        """Domain events for payouts that have just ended (rows of ``_ANNOUNCED``)."""
        await Events(self._conn).add_many(
            event_row(
                f"payout.{r.status}",
                r.id,
                {
                    "payout_id": r.id,
                    "source": r.source,
                    "source_id": r.source_id,
                    "purpose": r.purpose,
                    "attempt": r.attempt,
                    "status": r.status,
                    "asset_code": r.asset_code,
                    "asset_issuer": r.asset_issuer,
                    "amount": format_stroops(r.amount),
                    "stellar_transaction_id": r.stellar_transaction_id,
                    "external_reference": r.external_reference,
                },
                r.updated_at,
            )
            for r in ended
            if r.status in (SUCCEEDED, FAILED)
        )

    async def succeed(self, ids: list[str], now: datetime, **values: Any) -> None:
        if ids:
            ended = await self._conn.execute(
                update(payouts)
                .where(_p.id.in_(ids), _p.status == SUBMITTED)
                .values(status=SUCCEEDED, reason=None, updated_at=now, **values)
                .returning(*_ANNOUNCED)
            )
            await self._announce(ended.all())

    async def fail(self, reasons: dict[str, str], now: datetime) -> None:
        if reasons:
            ended = await self._conn.execute(
                update(payouts)
                .where(_p.id.in_(list(reasons)), _p.status == SUBMITTED)
                .values(
                    status=FAILED,
                    reason=case({k: v[:512] for k, v in reasons.items()}, value=_p.id),
                    updated_at=now,
                )
                .returning(*_ANNOUNCED)
            )
            await self._announce(ended.all())

    async def requeue(self, ids: list[str], max_tries: int, why: str, now: datetime) -> int:
        """Submitted payouts whose transaction can no longer apply back to ready, one try
        more; those out of tries fail instead. Returns how many failed."""
        if not ids:
            return 0
        mine = and_(_p.id.in_(ids), _p.status == SUBMITTED)
        out_of_tries = _p.tries + 1 >= max_tries
        moved = await self._conn.execute(
            update(payouts)
            .where(mine)
            .values(
                status=case((out_of_tries, FAILED), else_=READY),
                reason=case(
                    (out_of_tries, f"not sent after {max_tries} tries: {why}"[:512]),
                    else_=None,
                ),
                tries=_p.tries + 1,
                tx_id=None,
                updated_at=now,
            )
            .returning(*_ANNOUNCED)
        )
        failed = [r for r in moved.all() if r.status == FAILED]
        await self._announce(failed)
        return len(failed)

    async def unreported(self, limit: int) -> list[dict[str, Any]]:
        """Payouts that ended and whose source has not heard it yet."""
        query = (
            select(payouts)
            .where(_p.reported.is_(False), _p.status.in_((SUCCEEDED, FAILED)))
            .order_by(_p.updated_at)
            .limit(limit)
        )
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def mark_reported(self, ids: list[str]) -> None:
        if ids:
            await self._conn.execute(update(payouts).where(_p.id.in_(ids)).values(reported=True))

    async def counts(self) -> dict[str, int]:
        rows = await self._conn.execute(select(_p.status, func.count()).group_by(_p.status))
        return {status: int(n) for status, n in rows}

    async def paid_since(self, since: datetime) -> dict[tuple[str, str], int]:
        """What succeeded on chain since ``since``, per (asset code, issuer), in stroops."""
        rows = await self._conn.execute(
            select(_p.asset_code, _p.asset_issuer, func.sum(_p.amount))
            .where(_p.status == SUCCEEDED, _p.destination.is_not(None), _p.updated_at >= since)
            .group_by(_p.asset_code, _p.asset_issuer)
        )
        return {(code, issuer): int(total) for code, issuer, total in rows}

    # -- transactions --------------------------------------------------------------------

    async def add_tx(self, row: dict[str, Any]) -> None:
        await self._conn.execute(insert(payout_transactions).values(**row))

    async def due_tx(self, now: datetime, lease_until: datetime) -> dict[str, Any] | None:
        """An open transaction whose next step is due and that no submitter holds; it is
        leased until ``lease_until``."""
        query = self._skip_locked(
            select(payout_transactions)
            .where(
                _t.status == OPEN,
                _t.next_try_at <= now,
                or_(_t.lease_until.is_(None), _t.lease_until < now),
            )
            .order_by(_t.next_try_at)
            .limit(1)
        )
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        await self._conn.execute(
            update(payout_transactions).where(_t.id == row.id).values(lease_until=lease_until)
        )
        return {**row._mapping, "lease_until": lease_until}

    async def get_tx(self, tx_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        query = select(payout_transactions).where(_t.id == tx_id)
        if lock and self._pg:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

    async def update_tx(self, tx_id: str, **values: Any) -> bool:
        """Change an open transaction; False when it is no longer open (another submitter
        settled it first)."""
        done = await self._conn.execute(
            update(payout_transactions).where(_t.id == tx_id, _t.status == OPEN).values(**values)
        )
        return bool(done.rowcount)

    async def tx_counts(self) -> dict[str, int]:
        rows = await self._conn.execute(select(_t.status, func.count()).group_by(_t.status))
        return {status: int(n) for status, n in rows}
