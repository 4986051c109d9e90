"""Alerts for operators: a condition (an asset low in the distribution account) raised once
while it lasts, and cleared when it ends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import alerts

_a = alerts.c


class Alerts:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def sync(
        self, kind: str, now_true: Mapping[str, str], checked: set[str], now: datetime
    ) -> tuple[list[str], list[str]]:
        """Of the ``checked`` subjects of ``kind``, raise an alert for each in ``now_true``
        (subject -> message) without an open one, and clear the open ones no longer true.
        Returns the subjects (raised, cleared)."""
        open_ = {
            subject
            for (subject,) in await self._conn.execute(
                select(_a.subject).where(_a.kind == kind, _a.cleared_at.is_(None))
            )
        }
        raised = sorted(s for s in now_true if s not in open_)
        cleared = sorted(s for s in open_ & checked if s not in now_true)
        if raised:
            await self._conn.execute(
                insert(alerts),
                [
                    {
                        "kind": kind,
                        "subject": s,
                        "message": now_true[s][:512],
                        "raised_at": now,
                        "cleared_at": None,
                    }
                    for s in raised
                ],
            )
        if cleared:
            await self._conn.execute(
                update(alerts)
                .where(_a.kind == kind, _a.subject.in_(cleared), _a.cleared_at.is_(None))
                .values(cleared_at=now)
            )
        return raised, cleared

    async def open(self) -> list[dict[str, Any]]:
        query = select(alerts).where(_a.cleared_at.is_(None)).order_by(_a.id)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        query = select(alerts).order_by(_a.id.desc()).limit(limit)
        return [dict(r._mapping) for r in await self._conn.execute(query)]
