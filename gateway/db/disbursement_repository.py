"""Bulk disbursements and their payments."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.event_repository import Events, event_row
from gateway.db.tables import disbursement_events, disbursement_payments, disbursements, payouts
from gateway.types import format_stroops

_p = disbursement_payments.c
_EXISTING_IDS = select(_p.external_payment_id, _p.disbursement_id).where(
    _p.external_payment_id.in_(bindparam("ids", expanding=True))
)
ID_BATCH = 1000  # external ids looked up per query


class Disbursements:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def paid_ids(self, external_ids: list[str]) -> dict[str, str]:
        """Of these external payment ids, those already in a disbursement: id -> its id."""
        found: dict[str, str] = {}
        for i in range(0, len(external_ids), ID_BATCH):
            batch = external_ids[i : i + ID_BATCH]
            for external_id, disbursement_id in await self._conn.execute(
                _EXISTING_IDS, {"ids": batch}
            ):
                found[external_id] = disbursement_id
        return found

    async def add(self, row: dict[str, Any], payments: Iterable[dict[str, Any]]) -> None:
        await self._conn.execute(insert(disbursements).values(**row))
        batch: list[dict[str, Any]] = []
        for payment in payments:
            batch.append(payment)
            if len(batch) == 2000:
                await self._conn.execute(insert(disbursement_payments), batch)
                batch = []
        if batch:
            await self._conn.execute(insert(disbursement_payments), batch)

    async def get(self, disbursement_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        columns = [c for c in disbursements.c if c.name != "original"]
        query = select(*columns).where(disbursements.c.id == disbursement_id)
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

    async def save(self, disbursement_id: str, values: dict[str, Any]) -> None:
        await self._conn.execute(
            update(disbursements).where(disbursements.c.id == disbursement_id).values(**values)
        )

    async def record(self, events: list[dict[str, Any]]) -> None:
        """Append history rows; a disbursement's status moves among them are announced as
        ``disbursement.<status>`` domain events. Its payments' moves are history only: each
        payment's outcome is announced by its payout (``payout.succeeded|failed``)."""
        if events:
            await self._conn.execute(insert(disbursement_events), events)
            await self._announce(events)

    async def _announce(self, events: list[dict[str, Any]]) -> None:
        moves = [
            e for e in events if e["payment_id"] is None and e["from_status"] != e["to_status"]
        ]
        if not moves:
            return
        d = disbursements.c
        found = {
            r.id: r
            for r in await self._conn.execute(
                select(d.id, d.kind, d.payments, d.total).where(
                    d.id.in_(sorted({e["disbursement_id"] for e in moves}))
                )
            )
        }
        announced = []
        for e in moves:
            row = found[e["disbursement_id"]]
            total = {code: format_stroops(n) for code, n in sorted(json.loads(row.total).items())}
            data = {
                "disbursement_id": row.id,
                "kind": row.kind,
                "from_status": e["from_status"],
                "status": e["to_status"],
                "payments": row.payments,
                "total": total,
            }
            announced.append(event_row(f"disbursement.{e['to_status']}", row.id, data, e["at"]))
        await Events(self._conn).add_many(announced)

    async def events(self, disbursement_id: str) -> list[dict[str, Any]]:
        e = disbursement_events.c
        query = select(disbursement_events).where(e.disbursement_id == disbursement_id)
        return [dict(r._mapping) for r in await self._conn.execute(query.order_by(e.id))]

    async def lock_starts(self) -> None:
        """Starts of disbursements take turns (each reserves against one balance). PostgreSQL:
        a transaction-scoped advisory lock; SQLite's write transaction takes turns anyway."""
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(text("SELECT pg_advisory_xact_lock(7305310001)"))

    async def needs(self, disbursement_id: str, status: str = "ready") -> dict[str, int]:
        """What its payments of this status add up to, per asset code (stroops)."""
        rows = await self._conn.execute(
            select(_p.asset_code, func.sum(_p.amount))
            .where(_p.disbursement_id == disbursement_id, _p.status == status)
            .group_by(_p.asset_code)
        )
        return {code: int(total) for code, total in rows}

    async def reserved(self, code: str, issuer: str) -> int:
        """What is promised out of the distribution account in this asset and not paid yet:
        payments of started or paused disbursements not handed to the payout engine yet, and
        on-chain payouts queued or sent (a handed-over payment is one of those)."""
        d = disbursements.c
        in_disbursements = await self._conn.scalar(
            select(func.coalesce(func.sum(_p.amount), 0))
            .select_from(disbursement_payments.join(disbursements, d.id == _p.disbursement_id))
            .where(
                d.status.in_(("started", "paused")),
                _p.status == "ready",
                _p.asset_code == code,
            )
        )
        o = payouts.c
        in_payouts = await self._conn.scalar(
            select(func.coalesce(func.sum(o.amount), 0)).where(
                o.status.in_(("ready", "submitted")),
                o.destination.is_not(None),
                o.asset_code == code,
                o.asset_issuer == issuer,
            )
        )
        return int(in_disbursements or 0) + int(in_payouts or 0)

    async def to_resolve(self, disbursement_id: str) -> list[dict[str, Any]]:
        """Its payments to a federation address not resolved yet."""
        query = select(_p.id, _p.line, _p.destination, _p.memo_type, _p.memo).where(
            _p.disbursement_id == disbursement_id, _p.pay_to.is_(None)
        )
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def resolved(self, rows: list[dict[str, Any]]) -> None:
        """Store where payments are paid: dicts of id, pay_to, pay_memo_type, pay_memo."""
        if rows:
            await self._conn.execute(
                update(disbursement_payments)
                .where(_p.id == bindparam("pid"))
                .values(
                    pay_to=bindparam("to"),
                    pay_memo_type=bindparam("mt"),
                    pay_memo=bindparam("m"),
                ),
                [
                    {
                        "pid": r["id"],
                        "to": r["pay_to"],
                        "mt": r["pay_memo_type"],
                        "m": r["pay_memo"],
                    }
                    for r in rows
                ],
            )

    async def move_payments(
        self, disbursement_id: str, from_statuses: tuple[str, ...], to: str, now: Any
    ) -> list[tuple[str, str]]:
        """Every payment of the disbursement in one of ``from_statuses`` to ``to``; returns
        the (payment id, status it had) of those moved."""
        rows = await self._conn.execute(
            select(_p.id, _p.status).where(
                _p.disbursement_id == disbursement_id, _p.status.in_(from_statuses)
            )
        )
        moved = [(r[0], r[1]) for r in rows]
        if moved:
            await self._conn.execute(
                update(disbursement_payments)
                .where(_p.disbursement_id == disbursement_id, _p.status.in_(from_statuses))
                .values(status=to, updated_at=now)
            )
        return moved

    async def recent(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        status: str | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, optionally of one status or kind."""
        d = disbursements.c
        columns = [c for c in disbursements.c if c.name != "original"]
        query = select(*columns).order_by(d.created_at.desc(), d.id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(d.status == status)
        if kind is not None:
            query = query.where(d.kind == kind)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def payments(self, disbursement_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        query = (
            select(disbursement_payments)
            .where(_p.disbursement_id == disbursement_id)
            .order_by(_p.line)
            .limit(limit)
        )
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def with_status(self, disbursement_id: str, status: str) -> list[str]:
        """The ids of its payments of this status."""
        query = select(_p.id).where(_p.disbursement_id == disbursement_id, _p.status == status)
        return [r[0] for r in await self._conn.execute(query.order_by(_p.line))]

    async def failed(self, disbursement_id: str) -> int:
        """How many of its payments failed."""
        query = select(func.count()).where(
            _p.disbursement_id == disbursement_id, _p.status == "failed"
        )
        return int(await self._conn.scalar(query) or 0)

    async def ready_payments(self, disbursement_id: str) -> list[dict[str, Any]]:
        """Its ready payments with where they are paid, for the payout engine."""
        query = select(
            _p.id, _p.amount, _p.asset_code, _p.pay_to, _p.pay_memo_type, _p.pay_memo
        ).where(_p.disbursement_id == disbursement_id, _p.status == "ready")
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def take_back(self, disbursement_id: str, now: Any) -> list[str]:
        """Cancel the queued payouts of its pending payments that no submitter has taken
        yet (a submitter's claim locks them first); returns those payments' ids."""
        o = payouts.c
        pending = select(_p.id).where(_p.disbursement_id == disbursement_id, _p.status == "pending")
        done = await self._conn.execute(
            update(payouts)
            .where(o.source == "disbursement", o.status == "ready", o.source_id.in_(pending))
            .values(status="canceled", reason="its disbursement was paused", updated_at=now)
            .returning(o.source_id)
        )
        return [r[0] for r in done]

    async def payment_states(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        """payment id -> (status, disbursement id), locked on PostgreSQL in id order (so two
        callers with overlapping ids wait for each other instead of deadlocking)."""
        found: dict[str, tuple[str, str]] = {}
        ids = sorted(set(ids))
        for i in range(0, len(ids), ID_BATCH):
            query = (
                select(_p.id, _p.status, _p.disbursement_id)
                .where(_p.id.in_(ids[i : i + ID_BATCH]))
                .order_by(_p.id)
            )
            if self._conn.dialect.name == "postgresql":
                query = query.with_for_update()
            for pid, status, did in await self._conn.execute(query):
                found[pid] = (status, did)
        return found

    async def set_payments(self, rows: list[dict[str, Any]]) -> None:
        """dicts of pid, status, failure, at."""
        if rows:
            await self._conn.execute(
                update(disbursement_payments)
                .where(_p.id == bindparam("pid"))
                .values(
                    status=bindparam("st"), failure=bindparam("why"), updated_at=bindparam("at")
                ),
                rows,
            )

    async def unfinished(self, disbursement_id: str) -> str | None:
        """The status of one of its payments that is not final yet, or None."""
        return await self._conn.scalar(
            select(_p.status)
            .where(
                _p.disbursement_id == disbursement_id,
                _p.status.in_(("draft", "ready", "pending")),
            )
            .limit(1)
        )
