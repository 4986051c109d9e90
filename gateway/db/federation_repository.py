"""SEP-2 federation names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import federation_names


@dataclass(frozen=True, slots=True)
class FederationName:
    name: str
    customer_id: str
    memo: str
    created_at: datetime


# Built once (values as parameters): compiled once, found in the cache at no cost.
_BY_NAME = select(federation_names).where(federation_names.c.name == bindparam("key"))
_BY_MEMO = select(federation_names).where(federation_names.c.memo == bindparam("key"))


class FederationNames:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, name: str, customer_id: str, memo: str, now: datetime) -> bool:
        """False when the name or the memo is taken (nothing is written)."""
        dialect_insert = pg_insert if self._conn.dialect.name == "postgresql" else sqlite_insert
        inserted = await self._conn.execute(
            dialect_insert(federation_names)
            .values(name=name, customer_id=customer_id, memo=memo, created_at=now)
            .on_conflict_do_nothing()
            .returning(federation_names.c.name)
        )
        return inserted.first() is not None

    async def by_name(self, name: str) -> FederationName | None:
        return await self._one(_BY_NAME, name)

    async def by_memo(self, memo: str) -> FederationName | None:
        return await self._one(_BY_MEMO, memo)

    async def _one(self, query: Select[Any], key: str) -> FederationName | None:
        row = (await self._conn.execute(query, {"key": key})).first()
        return FederationName(*row) if row is not None else None

    async def of_customer(self, customer_id: str) -> list[FederationName]:
        rows = await self._conn.execute(
            select(federation_names)
            .where(federation_names.c.customer_id == customer_id)
            .order_by(federation_names.c.name)
        )
        return [FederationName(*r) for r in rows]

    async def list(self, limit: int = 100) -> list[FederationName]:
        rows = await self._conn.execute(
            select(federation_names).order_by(federation_names.c.name).limit(limit)
        )
        return [FederationName(*r) for r in rows]

    async def remove(self, name: str) -> bool:
        gone = await self._conn.execute(
            delete(federation_names).where(federation_names.c.name == name)
        )
        return bool(gone.rowcount)
