"""Every value sealed under a KYC key, wherever it lives, for `gateway keys rotate-kyc`.

One registry of (table, the columns that name a row, key id column, sealed column): rotation
reads, re-seals and replaces them all the same way, and a new sealed column is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import (
    compliance_outgoing,
    compliance_requests,
    customer_fields,
    customer_files,
    transfers,
    webhook_endpoints,
)


@dataclass(frozen=True)
class SealedColumn:
    table: Table
    keys: tuple[str, ...]  # the columns naming a row
    key_id: str
    sealed: str


SEALED: dict[str, SealedColumn] = {
    "field": SealedColumn(customer_fields, ("customer_id", "name"), "key_id", "value"),
    "file": SealedColumn(customer_files, ("id",), "key_id", "content"),
    "transfer_info": SealedColumn(transfers, ("id",), "info_key_id", "info_sealed"),
    "compliance_request": SealedColumn(compliance_requests, ("id",), "data_key_id", "data_sealed"),
    "compliance_sent": SealedColumn(compliance_outgoing, ("id",), "data_key_id", "data_sealed"),
    "compliance_sent_dest_info": SealedColumn(
        compliance_outgoing, ("id",), "dest_info_key_id", "dest_info_sealed"
    ),
    "webhook_secret": SealedColumn(webhook_endpoints, ("id",), "secret_key_id", "secret"),
}

Sealed = tuple[str, tuple[str, ...], str, bytes]  # (kind, row keys, key id, sealed bytes)


class SealedValues:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def under(self, key_ids: list[str], limit: int) -> list[Sealed]:
        """Up to ``limit`` values of each kind sealed under one of ``key_ids``."""
        out: list[Sealed] = []
        for kind, s in SEALED.items():
            c = s.table.c
            rows = await self._conn.execute(
                select(*(c[k] for k in s.keys), c[s.key_id], c[s.sealed])
                .where(c[s.key_id].in_(key_ids))
                .limit(limit)
            )
            n = len(s.keys)
            out += [(kind, tuple(r[:n]), r[n], bytes(r[n + 1])) for r in rows]
        return out

    async def replace(
        self, kind: str, keys: tuple[str, ...], old: str, new: str, sealed: bytes
    ) -> bool:
        """Replace a value only if it still carries ``old`` (a concurrent update wins)."""
        s = SEALED[kind]
        c = s.table.c
        match = and_(*(c[k] == v for k, v in zip(s.keys, keys, strict=True)), c[s.key_id] == old)
        done = await self._conn.execute(
            update(s.table).where(match).values({s.key_id: new, s.sealed: sealed})
        )
        return done.rowcount == 1

    async def key_ids(self) -> dict[str, int]:
        """How many values each key id seals."""
        counts: dict[str, int] = {}
        for s in SEALED.values():
            column = s.table.c[s.key_id]
            rows = await self._conn.execute(
                select(column, func.count()).where(column.is_not(None)).group_by(column)
            )
            for kid, n in rows:
                counts[kid] = counts.get(kid, 0) + int(n)
        return counts
