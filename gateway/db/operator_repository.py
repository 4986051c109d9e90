"""Operators with their hashed API keys, and the append-only audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import audit_log, operators
from gateway.edge import request_id

_o = operators.c
_a = audit_log.c
_SHOWN = [c for c in operators.c if c.name != "key_hash"]


class Operators:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, row: dict[str, Any]) -> None:
        await self._conn.execute(insert(operators).values(**row))

    async def by_key_hash(self, key_hash: str) -> dict[str, Any] | None:
        row = (await self._conn.execute(select(*_SHOWN).where(_o.key_hash == key_hash))).first()
        return dict(row._mapping) if row is not None else None

    async def get(self, operator_id: str) -> dict[str, Any] | None:
        row = (await self._conn.execute(select(*_SHOWN).where(_o.id == operator_id))).first()
        return dict(row._mapping) if row is not None else None

    async def recent(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        query = select(*_SHOWN).order_by(_o.created_at, _o.id).limit(limit).offset(offset)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def revoke(self, operator_id: str, now: datetime) -> bool:
        done = await self._conn.execute(
            update(operators)
            .where(_o.id == operator_id, _o.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(done.rowcount)


def _plain(value: Any) -> Any:
    # Binary columns (files, sealed values) are never written, as the API never renders them.
    return None if isinstance(value, bytes | bytearray | memoryview) else str(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=_plain, sort_keys=True)[:20_000]


class AuditLog:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def record(
        self,
        at: datetime,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str | None,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """One operator action (or read of personal data), in the transaction of the change
        it describes, with the request it came in (when it came over HTTP)."""
        rid = request_id.get()
        await self.add(
            {
                "at": at,
                "actor": actor[:128],
                "action": action[:64],
                "subject_type": subject_type[:32],
                "subject_id": subject_id[:64] if subject_id else None,
                "before": _json(before),
                "after": _json(after),
                "request_id": None if rid == "-" else rid[:64],
            }
        )

    async def add(self, entry: dict[str, Any]) -> None:
        await self._conn.execute(insert(audit_log).values(**entry))

    async def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        subject_type: str | None = None,
        subject_id: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` pages on."""
        query = select(audit_log).order_by(_a.id.desc()).limit(limit)
        for column, value in (
            (_a.actor, actor),
            (_a.action, action),
            (_a.subject_type, subject_type),
            (_a.subject_id, subject_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if before_id is not None:
            query = query.where(_a.id < before_id)
        return [dict(r._mapping) for r in await self._conn.execute(query)]
