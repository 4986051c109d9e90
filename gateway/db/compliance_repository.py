"""SEP-3 compliance requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import compliance_consents, compliance_outgoing, compliance_requests

_c = compliance_requests.c
_o = compliance_outgoing.c
# Built once (values as parameters): compiled once, found in the cache at no cost.
_ADD = {
    "postgresql": pg_insert(compliance_requests).on_conflict_do_nothing().returning(_c.id),
    "sqlite": sqlite_insert(compliance_requests).on_conflict_do_nothing().returning(_c.id),
}


class ComplianceRequests:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, row: dict[str, Any]) -> bool:
        """False when this (sender_domain, nonce) is already stored (nothing is written)."""
        inserted = await self._conn.execute(_ADD[self._conn.dialect.name], row)
        return inserted.first() is not None

    async def by_nonce(
        self, sender_domain: str, nonce: str, *, lock: bool = False
    ) -> dict[str, Any] | None:
        query = select(compliance_requests).where(
            _c.sender_domain == sender_domain, _c.nonce == nonce
        )
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

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
        query = select(compliance_requests).where(_c.id == request_id)
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

    async def decide(self, request_id: str, values: dict[str, Any], now: datetime) -> None:
        await self._conn.execute(
            update(compliance_requests).where(_c.id == request_id).values(**values, updated_at=now)
        )

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

    async def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, without the sealed data."""
        columns = [c for c in compliance_requests.c if c.name != "data_sealed"]
        query = select(*columns).order_by(_c.created_at.desc()).limit(limit)
        if status:
            query = query.where((_c.tx_status == status) | (_c.info_status == status))
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
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

    async def get(self, request_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        query = select(compliance_outgoing).where(_o.id == request_id)
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

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
