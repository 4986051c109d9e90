"""SQL for the outbox: messages written in the same transaction as the change they announce,
claimed by delivery workers under a lease so that several workers never send one at once,
and sent in order per subject and kind."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from gateway.db.tables import outbox

PENDING, SENT, DEAD = "pending", "sent", "dead"
_LISTED = (
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


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    kind: str
    subject: str | None
    target: str
    body: bytes
    attempts: int
    created_at: datetime
    lease: str = ""


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

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        """``add`` for many: dicts of id, kind, subject, target, body, created_at (each is
        due at its created_at)."""
        if rows:
            await self._conn.execute(
                insert(outbox),
                [
                    {**r, "status": PENDING, "attempts": 0, "next_attempt_at": r["created_at"]}
                    for r in rows
                ],
            )

    async def claim(
        self, now: datetime, lease_until: datetime, limit: int, kinds: tuple[str, ...] | None
    ) -> list[OutboxRow]:
        """Due pending messages of ``kinds``, leased to the caller until ``lease_until``. A
        message waits while an older one of its kind about the same subject is still
        pending, so a receiver sees a subject's messages in the order they were written."""
        older = aliased(outbox)
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
            .where(
                outbox.c.status == PENDING,
                outbox.c.next_attempt_at <= now,
                ~exists().where(
                    older.c.subject == outbox.c.subject,
                    older.c.kind == outbox.c.kind,
                    older.c.status == PENDING,
                    or_(
                        older.c.created_at < outbox.c.created_at,
                        and_(older.c.created_at == outbox.c.created_at, older.c.id < outbox.c.id),
                    ),
                ),
            )
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        if kinds is not None:
            query = query.where(outbox.c.kind.in_(kinds))
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=outbox)
        rows = list(await self._conn.execute(query))
        if not rows:
            return []
        lease = str(uuid.uuid4())
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([r[0] for r in rows]))
            .values(next_attempt_at=lease_until, lease=lease)
        )
        return [OutboxRow(*r, lease=lease) for r in rows]

    def _held(self, row: OutboxRow) -> Any:
        return and_(outbox.c.id == row.id, outbox.c.lease == row.lease)

    async def sent(self, row: OutboxRow, now: datetime) -> bool:
        """Record the delivery; False when the lease had passed to another worker."""
        done = await self._conn.execute(
            update(outbox)
            .where(self._held(row))
            .values(
                status=SENT,
                sent_at=now,
                attempts=outbox.c.attempts + 1,
                last_error=None,
                lease=None,
            )
        )
        return done.rowcount == 1

    async def retry(self, row: OutboxRow, at: datetime, error: str) -> None:
        await self._conn.execute(
            update(outbox)
            .where(self._held(row))
            .values(
                next_attempt_at=at,
                attempts=outbox.c.attempts + 1,
                last_error=error[:256],
                lease=None,
            )
        )

    async def postpone(self, row: OutboxRow, at: datetime, note: str) -> None:
        """Ask again later without using up a retry (the other side is still working)."""
        await self._conn.execute(
            update(outbox)
            .where(self._held(row))
            .values(next_attempt_at=at, last_error=note[:256], lease=None)
        )

    async def dead(self, row: OutboxRow, error: str) -> None:
        await self._conn.execute(
            update(outbox)
            .where(self._held(row))
            .values(status=DEAD, attempts=outbox.c.attempts + 1, last_error=error[:256], lease=None)
        )

    async def retarget(self, subject: str, kind: str, target: str) -> None:
        """Send a subject's undelivered messages of ``kind`` to a new target (a callback URL
        registered again: only the latest one is called)."""
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.subject == subject, outbox.c.kind == kind, outbox.c.status == PENDING)
            .values(target=target)
        )

    async def drop_pending(self, subject: str) -> None:
        """Forget undelivered messages about ``subject`` (e.g. an erased customer)."""
        await self._conn.execute(
            delete(outbox).where(outbox.c.subject == subject, outbox.c.status == PENDING)
        )

    async def bury_pending(self, subject: str, kind: str, error: str) -> int:
        """Dead-letter a subject's undelivered messages of ``kind`` (their receiver is gone);
        how many."""
        done = await self._conn.execute(
            update(outbox)
            .where(outbox.c.subject == subject, outbox.c.kind == kind, outbox.c.status == PENDING)
            .values(status=DEAD, last_error=error[:256], lease=None)
        )
        return int(done.rowcount)

    async def get(self, id: str, *, with_body: bool = False) -> dict[str, object] | None:
        """One message (its body only when asked)."""
        columns = (*_LISTED, outbox.c.body) if with_body else _LISTED
        row = (await self._conn.execute(select(*columns).where(outbox.c.id == id))).first()
        return dict(row._mapping) if row is not None else None

    async def redeliver(self, id: str, now: datetime) -> bool:
        """Put a dead message back in the queue (an operator's decision)."""
        done = await self._conn.execute(
            update(outbox)
            .where(outbox.c.id == id, outbox.c.status == DEAD)
            .values(status=PENDING, next_attempt_at=now, attempts=0, lease=None)
        )
        return done.rowcount == 1

    async def list(
        self,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        *,
        offset: int = 0,
        subject: str | None = None,
        newest_first: bool = False,
        with_body: bool = False,
    ) -> list[dict[str, object]]:
        """Messages, oldest first (or newest first), optionally with their bodies."""
        c = outbox.c
        order = (c.created_at.desc(), c.id.desc()) if newest_first else (c.created_at, c.id)
        columns = (*_LISTED, c.body) if with_body else _LISTED
        query = select(*columns).order_by(*order).limit(limit).offset(offset)
        if status:
            query = query.where(c.status == status)
        if kind:
            query = query.where(c.kind == kind)
        if subject:
            query = query.where(c.subject == subject)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def depth(self) -> dict[str, int]:
        rows = await self._conn.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        )
        return {r[0]: int(r[1]) for r in rows}

    async def count(self, status: str) -> int:
        """Messages in ``status`` (read from ix_outbox_due, not the whole table)."""
        found = await self._conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.status == status)
        )
        return int(found or 0)

    async def depth_by_kind(self) -> dict[tuple[str, str], int]:
        """Messages by (kind, status)."""
        rows = await self._conn.execute(
            select(outbox.c.kind, outbox.c.status, func.count()).group_by(
                outbox.c.kind, outbox.c.status
            )
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def overdue(self, due_before: datetime) -> int:
        """Pending messages that were due before ``due_before`` and are still not delivered
        (a message being sent is not due: its lease moved its next attempt on)."""
        found = await self._conn.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.status == PENDING, outbox.c.next_attempt_at < due_before)
        )
        return int(found or 0)
