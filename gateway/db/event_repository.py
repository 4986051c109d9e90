"""SQL for domain events and webhook endpoints. Events are written in the transaction of the
change they announce and claimed in id order by the webhook fan-out (``FOR UPDATE`` on
PostgreSQL, so several workers never fan one event out twice, and take turns)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import events, webhook_endpoints

_e, _w = events.c, webhook_endpoints.c


def event_row(type: str, subject_id: str, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """An events row: ``data`` holds ids, statuses, amounts and asset codes, never personal
    data."""
    return {
        "type": type,
        "subject_id": subject_id,
        "data": json.dumps(data, sort_keys=True, separators=(",", ":")),
        "at": at,
    }


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    type: str
    subject_id: str
    data: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    events: tuple[str, ...]  # patterns: "transfer.*", "payout.failed", ...
    secret_key_id: str
    secret: bytes  # sealed
    created_by: str
    created_at: datetime
    disabled_at: datetime | None

    def shown(self) -> dict[str, Any]:
        """What operators see: everything but the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "disabled_at": self.disabled_at,
        }


class Events:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, type: str, subject_id: str, data: Mapping[str, Any], at: datetime) -> None:
        await self.add_many([event_row(type, subject_id, data, at)])

    async def add_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rows made by ``event_row``."""
        batch = list(rows)
        if batch:
            await self._conn.execute(insert(events), batch[0] if len(batch) == 1 else batch)

    async def claim(self, limit: int) -> list[EventRow]:
        """Up to ``limit`` events not fanned out yet, oldest first, locked for the caller.
        A second caller waits for the first to commit (no SKIP LOCKED): were it to take the
        later events meanwhile, its messages could be sent before the earlier ones exist."""
        query = (
            select(_e.id, _e.type, _e.subject_id, _e.data, _e.at)
            .where(_e.fanned_out.is_(False))
            .order_by(_e.id)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return [
            EventRow(r.id, r.type, r.subject_id, json.loads(r.data), r.at)
            for r in await self._conn.execute(query)
        ]

    async def mark_fanned(self, ids: list[int]) -> None:
        if ids:
            await self._conn.execute(update(events).where(_e.id.in_(ids)).values(fanned_out=True))

    async def of(self, subject_id: str) -> list[EventRow]:
        """A subject's events, oldest first."""
        rows = await self._conn.execute(
            select(_e.id, _e.type, _e.subject_id, _e.data, _e.at)
            .where(_e.subject_id == subject_id)
            .order_by(_e.id)
        )
        return [EventRow(r.id, r.type, r.subject_id, json.loads(r.data), r.at) for r in rows]


def _endpoint(m: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=m["id"],
        url=m["url"],
        events=tuple(json.loads(m["events"])),
        secret_key_id=m["secret_key_id"],
        secret=bytes(m["secret"]),
        created_by=m["created_by"],
        created_at=m["created_at"],
        disabled_at=m["disabled_at"],
    )


class WebhookEndpoints:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._conn.execute(
            insert(webhook_endpoints).values(
                id=endpoint.id,
                url=endpoint.url,
                events=json.dumps(list(endpoint.events)),
                secret_key_id=endpoint.secret_key_id,
                secret=endpoint.secret,
                created_by=endpoint.created_by,
                created_at=endpoint.created_at,
                disabled_at=endpoint.disabled_at,
            )
        )

    async def get(self, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint | None:
        query = select(webhook_endpoints).where(_w.id == endpoint_id)
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return _endpoint(row._mapping) if row is not None else None

    async def recent(self, limit: int = 100, offset: int = 0) -> list[WebhookEndpoint]:
        """Newest first."""
        query = (
            select(webhook_endpoints)
            .order_by(_w.created_at.desc(), _w.id)
            .limit(limit)
            .offset(offset)
        )
        return [_endpoint(r._mapping) for r in await self._conn.execute(query)]

    async def active(self) -> list[WebhookEndpoint]:
        """Every endpoint not disabled, oldest first."""
        query = select(webhook_endpoints).where(_w.disabled_at.is_(None))
        query = query.order_by(_w.created_at, _w.id)
        return [_endpoint(r._mapping) for r in await self._conn.execute(query)]

    async def disable(self, endpoint_id: str, now: datetime) -> bool:
        """False when it is unknown or disabled already."""
        done = await self._conn.execute(
            update(webhook_endpoints)
            .where(_w.id == endpoint_id, _w.disabled_at.is_(None))
            .values(disabled_at=now)
        )
        return done.rowcount == 1
