"""SQL for the outbox: messages written in the same transaction as the change they announce,
claimed by delivery workers with a lease so several workers never send one twice at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import outbox

PENDING, SENT, DEAD = "pending", "sent", "dead"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    kind: str
    subject: str | None
    target: str
    body: bytes
    attempts: int
    created_at: datetime


class Outbox:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(
        self, id: str, kind: str, target: str, body: bytes, subject: str | None, now: datetime
    ) -> None:
        await self._conn.execute(
            insert(outbox).values(
                id=id,
                kind=kind,
                subject=subject,
                target=target,
                body=body,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxRow]:
        """Due pending messages, leased to the caller until ``lease_until``."""
        query = (
            select(
                outbox.c.id,
                outbox.c.kind,
                outbox.c.subject,
                outbox.c.target,
                outbox.c.body,
                outbox.c.attempts,
                outbox.c.created_at,
            )
            .where(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = [OutboxRow(*r) for r in await self._conn.execute(query)]
        if rows:
            await self._conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([r.id for r in rows]))
                .values(next_attempt_at=lease_until)
            )
        return rows

    async def sent(self, id: str, now: datetime) -> None:
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.id == id)
            .values(status=SENT, sent_at=now, attempts=outbox.c.attempts + 1, last_error=None)
        )

    async def retry(self, id: str, at: datetime, error: str) -> None:
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.id == id)
            .values(next_attempt_at=at, attempts=outbox.c.attempts + 1, last_error=error[:256])
        )

    async def postpone(self, id: str, at: datetime, note: str) -> None:
        """Ask again later without using up a retry (the other side is still working)."""
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.id == id)
            .values(next_attempt_at=at, last_error=note[:256])
        )

    async def dead(self, id: str, error: str) -> None:
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.id == id)
            .values(status=DEAD, attempts=outbox.c.attempts + 1, last_error=error[:256])
        )

    async def drop_pending(self, subject: str) -> None:
        """Forget undelivered messages about ``subject`` (e.g. an erased customer)."""
        await self._conn.execute(
            delete(outbox).where(outbox.c.subject == subject, outbox.c.status == PENDING)
        )

    async def redeliver(self, id: str, now: datetime) -> bool:
        """Put a dead message back in the queue (an operator's decision)."""
        done = await self._conn.execute(
            update(outbox)
            .where(outbox.c.id == id, outbox.c.status == DEAD)
            .values(status=PENDING, next_attempt_at=now, attempts=0)
        )
        return done.rowcount == 1

    async def list(
        self, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, object]]:
        query = (
            select(
                outbox.c.id,
                outbox.c.kind,
                outbox.c.subject,
                outbox.c.target,
                outbox.c.status,
                outbox.c.attempts,
                outbox.c.next_attempt_at,
                outbox.c.last_error,
                outbox.c.created_at,
                outbox.c.sent_at,
            )
            .order_by(outbox.c.created_at)
            .limit(limit)
        )
        if status:
            query = query.where(outbox.c.status == status)
        if kind:
            query = query.where(outbox.c.kind == kind)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def depth(self) -> dict[str, int]:
        rows = await self._conn.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        )
        return {r[0]: int(r[1]) for r in rows}
