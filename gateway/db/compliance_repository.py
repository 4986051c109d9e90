"""SEP-3 compliance requests. Each decision on a received request (the automatic one when it
is stored, an operator's later) is announced as a ``compliance.<tx_status>`` domain event in
the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.event_repository import Events, event_row
from gateway.db.tables import compliance_consents, compliance_outgoing, compliance_requests
from gateway.types import format_stroops

_c = compliance_requests.c
_o = compliance_outgoing.c
# What a decision's domain event carries: ids, statuses, the amount and asset, never the
# sender's or the recipient's data.
_ANNOUNCED = (
    _c.id,
    _c.sender_domain,
    _c.customer_id,
    _c.tx_status,
    _c.info_status,
    _c.asset_code,
    _c.amount,
)
# Built once (values as parameters): compiled once, found in the cache at no cost.
_ADD = {
    "postgresql": pg_insert(compliance_requests).on_conflict_do_nothing().returning(_c.id),
    "sqlite": sqlite_insert(compliance_requests).on_conflict_do_nothing().returning(_c.id),
}


async def _first(
    conn: AsyncConnection, query: Select[Any], lock: bool = False
) -> dict[str, Any] | None:
    """The first row of ``query`` as a dict; with ``lock``, locked until the transaction
    ends (SQLite writers already hold the database lock)."""
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row is not None else None


class ComplianceRequests:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, row: dict[str, Any]) -> bool:
        """False when this (sender_domain, nonce) is already stored (nothing is written)."""
        inserted = await self._conn.execute(_ADD[self._conn.dialect.name], row)
        if inserted.first() is None:
            return False
        await self._announce([row], row["created_at"])
        return True

    async def _announce(self, rows: list[Any], at: datetime) -> None:
        await Events(self._conn).add_many(
            event_row(
                f"compliance.{r['tx_status']}",
                r["id"],
                {
                    "request_id": r["id"],
                    "sender_domain": r["sender_domain"],
                    "customer_id": r["customer_id"],
                    "tx_status": r["tx_status"],
                    "info_status": r["info_status"],
                    "asset_code": r["asset_code"],
                    "amount": format_stroops(r["amount"]),
                },
                at,
            )
            for r in rows
        )

    async def by_nonce(self, sender_domain: str, nonce: str) -> dict[str, Any] | None:
        query = select(compliance_requests).where(
            _c.sender_domain == sender_domain, _c.nonce == nonce
        )
        return await _first(self._conn, query)

    async def by_memos(self, memos: list[str]) -> dict[str, dict[str, Any]]:
        """The requests with these hash memos (hex), one per memo: the authorized one when
        there is one ("ambiguous" when there are several)."""
        if not memos:
            return {}
        columns = [c for c in compliance_requests.c if c.name != "data_sealed"]
        rows = await self._conn.execute(select(*columns).where(_c.memo.in_(memos)))
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            row = dict(r._mapping)
            earlier = out.get(row["memo"])
            if earlier is not None and "ok" == earlier["tx_status"] == row["tx_status"]:
                # Two institutions were authorized for one attachment: which customer the
                # payment is for cannot be told apart, so nobody is paid without an operator.
                out[row["memo"]] = {**earlier, "tx_status": "ambiguous"}
            elif earlier is None or row["tx_status"] == "ok":
                out[row["memo"]] = row
        return out

    async def get(self, request_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        return await _first(
            self._conn, select(compliance_requests).where(_c.id == request_id), lock
        )

    async def decide(self, request_id: str, values: dict[str, Any], now: datetime) -> None:
        """Change a request; a decision (``tx_status`` among ``values``) is announced."""
        query = update(compliance_requests).where(_c.id == request_id)
        if "tx_status" not in values:  # e.g. how its payout ended
            await self._conn.execute(query.values(**values, updated_at=now))
            return
        changed = await self._conn.execute(
            query.values(**values, updated_at=now).returning(*_ANNOUNCED)
        )
        await self._announce([r._mapping for r in changed], now)

    async def count_by_outcome(self) -> dict[str, int]:
        """Requests by their decision on the payment (tx_status: ok, denied, pending)."""
        rows = await self._conn.execute(select(_c.tx_status, func.count()).group_by(_c.tx_status))
        return {r[0]: int(r[1]) for r in rows}

    async def allow(self, customer_id: str, domain: str, by: str, now: datetime) -> None:
        dialect_insert = pg_insert if self._conn.dialect.name == "postgresql" else sqlite_insert
        await self._conn.execute(
            dialect_insert(compliance_consents)
            .values(customer_id=customer_id, domain=domain, recorded_by=by, created_at=now)
            .on_conflict_do_nothing()
        )

    async def disallow(self, customer_id: str, domain: str) -> bool:
        t = compliance_consents.c
        gone = await self._conn.execute(
            delete(compliance_consents).where(t.customer_id == customer_id, t.domain == domain)
        )
        return bool(gone.rowcount)

    async def allowed(self, customer_id: str, domain: str) -> bool:
        t = compliance_consents.c
        row = await self._conn.execute(
            select(t.domain).where(t.customer_id == customer_id, t.domain == domain)
        )
        return row.first() is not None

    async def consents(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        customer_id: str | None = None,
        domain: str | None = None,
    ) -> list[dict[str, Any]]:
        """Institutions customers allowed their data, newest first."""
        t = compliance_consents.c
        query = (
            select(compliance_consents)
            .order_by(t.created_at.desc(), t.customer_id, t.domain)
            .limit(limit)
            .offset(offset)
        )
        if customer_id is not None:
            query = query.where(t.customer_id == customer_id)
        if domain is not None:
            query = query.where(t.domain == domain)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def list(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        offset: int = 0,
        tx_status: str | None = None,
        info_status: str | None = None,
        decided: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, without the sealed data. ``status``: either status is it;
        ``decided``: whether an operator has decided the request."""
        columns = [c for c in compliance_requests.c if c.name != "data_sealed"]
        query = select(*columns).order_by(_c.created_at.desc(), _c.id).limit(limit).offset(offset)
        if status:
            query = query.where((_c.tx_status == status) | (_c.info_status == status))
        if tx_status:
            query = query.where(_c.tx_status == tx_status)
        if info_status:
            query = query.where(_c.info_status == info_status)
        if decided is not None:
            query = query.where(_c.decided_by.is_not(None) if decided else _c.decided_by.is_(None))
        return [dict(r._mapping) for r in await self._conn.execute(query)]


class OutgoingRequests:
    """SEP-3 requests we send."""

    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, row: dict[str, Any]) -> bool:
        """False when its request_key is taken (nothing is written)."""
        dialect_insert = pg_insert if self._conn.dialect.name == "postgresql" else sqlite_insert
        inserted = await self._conn.execute(
            dialect_insert(compliance_outgoing)
            .values(**row)
            .on_conflict_do_nothing()
            .returning(_o.id)
        )
        return inserted.first() is not None

    async def by_key(self, request_key: str) -> dict[str, Any] | None:
        query = select(compliance_outgoing).where(_o.request_key == request_key)
        return await _first(self._conn, query)

    async def get(self, request_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        return await _first(
            self._conn, select(compliance_outgoing).where(_o.id == request_id), lock
        )

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Requests to post again: pending ones, and ones whose answer never came."""
        rows = await self._conn.execute(
            select(_o.id)
            .where(_o.status.in_(("sending", "pending")), _o.next_attempt_at <= now)
            .order_by(_o.next_attempt_at)
            .limit(limit)
        )
        return [r[0] for r in rows]

    async def update(self, request_id: str, values: dict[str, Any], now: datetime) -> None:
        await self._conn.execute(
            update(compliance_outgoing).where(_o.id == request_id).values(**values, updated_at=now)
        )

    async def list(self, limit: int = 100) -> list[dict[str, Any]]:
        hidden = {"data_sealed", "dest_info_sealed"}
        columns = [c for c in compliance_outgoing.c if c.name not in hidden]
        query = select(*columns).order_by(_o.created_at.desc()).limit(limit)
        return [dict(r._mapping) for r in await self._conn.execute(query)]
