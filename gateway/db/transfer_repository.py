"""SQL for SEP-31: transfers (with their history and refunds), the payments the watcher saw,
its cursor, and the payouts queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.event_repository import Events, event_row
from gateway.db.tables import (
    events,
    incoming_payments,
    payouts,
    transfer_events,
    transfer_refunds,
    transfers,
    watcher_cursors,
)
from gateway.payouts import CANCELED, LIVE, READY
from gateway.sep31.model import Cursor, Refund, Transfer, TransferStatus
from gateway.types import format_stroops

_STATE_COLUMNS = (
    "status",
    "status_message",
    "hold_reason",
    "amount_received",
    "sender_account",
    "stellar_transaction_id",
    "external_transaction_id",
    "required_info_message",
    "required_info_updates",
    "callback_url",
    "completed_at",
    "updated_at",
    "amount_fee",  # a released short payment is paid out on what arrived
    "amount_out",
)


# Built once: a statement with its values as parameters is compiled once and then found in
# the cache by a key that costs nothing to compute.
_ADD_TRANSFER = {
    "postgresql": pg_insert(transfers).on_conflict_do_nothing().returning(transfers.c.id),
    "sqlite": sqlite_insert(transfers).on_conflict_do_nothing().returning(transfers.c.id),
}

_ADD_EVENT = insert(transfer_events)
_EVENT_COLUMNS = ("from_status", "to_status", "actor", "reason", "at")


def _add_with_first_event() -> Any:
    """PostgreSQL: the transfer, its first history event and the domain event announcing it
    in one statement (data-modifying CTEs; neither event row when the insert met a
    conflict). SQLite has no such CTE."""
    added = (
        pg_insert(transfers)
        # Columns the row leaves out (none has a default) are NULL.
        .values({c.name: bindparam(c.name, None, type_=c.type) for c in transfers.c})
        .on_conflict_do_nothing()
        .returning(transfers.c.id)
        .cte("added")
    )
    e = transfer_events.c
    first = select(added.c.id, *(bindparam(f"event_{n}", type_=e[n].type) for n in _EVENT_COLUMNS))
    d = events.c
    announced = (
        insert(events)
        .from_select(
            ["type", "subject_id", "data", "at"],
            select(
                bindparam("announce_type", type_=d.type.type),
                added.c.id,
                bindparam("announce_data", type_=d.data.type),
                bindparam("event_at", type_=e.at.type),
            ),
        )
        .cte("announced")
    )
    return (
        insert(transfer_events)
        .from_select(["transfer_id", *_EVENT_COLUMNS], first)
        .returning(e.transfer_id)
        .add_cte(announced)
    )


_ADD_WITH_FIRST_EVENT = _add_with_first_event()


def _row(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "partner_account": t.partner_account,
        "client_domain": t.client_domain,
        "asset_code": t.asset_code,
        "asset_issuer": t.asset_issuer,
        "decimals": t.decimals,
        "amount_in": t.amount_in,
        "amount_fee": t.amount_fee,
        "amount_out": t.amount_out,
        "amount_received": t.amount_received,
        "funding_method": t.funding_method,
        "sender_id": t.sender_id,
        "receiver_id": t.receiver_id,
        "stellar_account_id": t.stellar_account_id,
        "memo_type": t.memo_type,
        "memo": t.memo,
        "refund_memo_type": t.refund_memo_type,
        "refund_memo": t.refund_memo,
        "sender_account": t.sender_account,
        "status": str(t.status),
        "status_message": t.status_message,
        "hold_reason": t.hold_reason,
        "stellar_transaction_id": t.stellar_transaction_id,
        "external_transaction_id": t.external_transaction_id,
        "required_info_message": t.required_info_message,
        "required_info_updates": (
            json.dumps(t.required_info_updates) if t.required_info_updates else None
        ),
        "callback_url": t.callback_url,
        "started_at": t.started_at,
        "updated_at": t.updated_at,
        "completed_at": t.completed_at,
    }


def _event_rows(t: Transfer) -> list[dict[str, Any]]:
    return [
        {
            "transfer_id": t.id,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "actor": e.actor,
            "reason": e.reason,
            "at": e.at,
        }
        for e in t.events
    ]


def _announcements(t: Transfer) -> list[dict[str, Any]]:
    """Domain events (``transfer.<status>``) for the status moves it appended; a note within
    a status is history only. Ids, statuses, amounts and the asset: no personal data."""
    return [
        event_row(
            f"transfer.{e.to_status}",
            t.id,
            {
                "transfer_id": t.id,
                "from_status": e.from_status,
                "status": e.to_status,
                "asset_code": t.asset_code,
                "asset_issuer": t.asset_issuer,
                "amount_in": format_stroops(t.amount_in),
                "amount_fee": format_stroops(t.amount_fee),
                "amount_out": format_stroops(t.amount_out),
                "amount_received": (
                    format_stroops(t.amount_received) if t.amount_received is not None else None
                ),
                "stellar_transaction_id": t.stellar_transaction_id,
                "external_transaction_id": t.external_transaction_id,
            },
            e.at,
        )
        for e in t.events
        if e.from_status != e.to_status
    ]


def _transfer(m: Any, refunds: tuple[Refund, ...] = ()) -> Transfer:
    updates = m["required_info_updates"]
    return Transfer(
        id=m["id"],
        partner_account=m["partner_account"],
        client_domain=m["client_domain"],
        asset_code=m["asset_code"],
        asset_issuer=m["asset_issuer"],
        decimals=m["decimals"],
        amount_in=m["amount_in"],
        amount_fee=m["amount_fee"],
        amount_out=m["amount_out"],
        amount_received=m["amount_received"],
        funding_method=m["funding_method"],
        sender_id=m["sender_id"],
        receiver_id=m["receiver_id"],
        stellar_account_id=m["stellar_account_id"],
        memo_type=m["memo_type"],
        memo=m["memo"],
        refund_memo_type=m["refund_memo_type"],
        refund_memo=m["refund_memo"],
        sender_account=m["sender_account"],
        status=TransferStatus(m["status"]),
        status_message=m["status_message"],
        hold_reason=m["hold_reason"],
        stellar_transaction_id=m["stellar_transaction_id"],
        external_transaction_id=m["external_transaction_id"],
        required_info_message=m["required_info_message"],
        required_info_updates=json.loads(updates) if updates else None,
        callback_url=m["callback_url"],
        started_at=m["started_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        refunds=refunds,
    )


class Transfers:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    def _lock(self, query: Any, lock: bool) -> Any:
        if lock and self._conn.dialect.name == "postgresql":
            return query.with_for_update()
        return query

    async def get(self, transfer_id: str, *, lock: bool = False) -> Transfer | None:
        row = (
            await self._conn.execute(
                self._lock(select(transfers).where(transfers.c.id == transfer_id), lock)
            )
        ).first()
        if row is None:
            return None
        return _transfer(row._mapping, await self._refunds(transfer_id))

    async def _refunds(self, transfer_id: str) -> tuple[Refund, ...]:
        rows = await self._conn.execute(
            select(transfer_refunds.c.payment_id, transfer_refunds.c.amount, transfer_refunds.c.fee)
            .where(transfer_refunds.c.transfer_id == transfer_id)
            .order_by(transfer_refunds.c.id)
        )
        return tuple(Refund(*r) for r in rows)

    async def by_memos(self, account: str, memos: list[str]) -> dict[str, Transfer]:
        """Transfers paid to ``account`` with these id memos, locked for the caller."""
        if not memos:
            return {}
        query = select(transfers).where(
            transfers.c.stellar_account_id == account, transfers.c.memo.in_(memos)
        )
        rows = await self._conn.execute(self._lock(query, True))
        return {r._mapping["memo"]: _transfer(r._mapping) for r in rows}

    async def by_idempotency_key(self, partner: str, key: str) -> tuple[Transfer, str] | None:
        row = (
            await self._conn.execute(
                select(transfers).where(
                    transfers.c.partner_account == partner, transfers.c.idempotency_key == key
                )
            )
        ).first()
        return (_transfer(row._mapping), row._mapping["request_digest"]) if row else None

    async def owner_of(self, transfer_id: str) -> str | None:
        return await self._conn.scalar(
            select(transfers.c.partner_account).where(transfers.c.id == transfer_id)
        )

    async def add(
        self, t: Transfer, *, idempotency_key: str | None = None, request_digest: str | None = None
    ) -> bool:
        """Insert a new transfer; False when its memo (or idempotency key) is taken.

        One statement: a conflict on any unique index inserts nothing and returns no row, so
        the caller's transaction stays usable without a savepoint."""
        row = {**_row(t), "idempotency_key": idempotency_key, "request_digest": request_digest}
        announced = _announcements(t)
        if self._conn.dialect.name == "postgresql" and len(t.events) == len(announced) == 1:
            [event] = _event_rows(t)
            params = {
                **row,
                **{f"event_{n}": event[n] for n in _EVENT_COLUMNS},
                "announce_type": announced[0]["type"],
                "announce_data": announced[0]["data"],
            }
            return (await self._conn.execute(_ADD_WITH_FIRST_EVENT, params)).first() is not None
        inserted = (await self._conn.execute(_ADD_TRANSFER[self._conn.dialect.name], row)).first()
        if inserted is None:
            return False
        await self._events(t)
        return True

    async def save(self, t: Transfer, *, new_refunds: tuple[Refund, ...] = ()) -> None:
        """Store the transfer's changed state, the events it appended and new refunds."""
        row = _row(t)
        await self._conn.execute(
            update(transfers)
            .where(transfers.c.id == t.id)
            .values({c: row[c] for c in _STATE_COLUMNS})
        )
        await self._events(t)
        if new_refunds:
            await self._conn.execute(
                insert(transfer_refunds),
                [
                    {
                        "transfer_id": t.id,
                        "payment_id": r.payment_id,
                        "amount": r.amount_stroops,
                        "fee": r.fee_stroops,
                        "at": t.updated_at,
                    }
                    for r in new_refunds
                ],
            )

    async def store_info(self, transfer_id: str, key_id: str, sealed: bytes) -> None:
        """The sender's PATCH values, sealed."""
        await self._conn.execute(
            update(transfers)
            .where(transfers.c.id == transfer_id)
            .values(info_key_id=key_id, info_sealed=sealed)
        )

    async def info(self, transfer_id: str) -> tuple[str, bytes] | None:
        row = (
            await self._conn.execute(
                select(transfers.c.info_key_id, transfers.c.info_sealed).where(
                    transfers.c.id == transfer_id, transfers.c.info_key_id.is_not(None)
                )
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def save_many(self, items: list[Transfer]) -> None:
        """``save`` for many (no refunds): one statement for the transfers, one for their
        history and one for the domain events."""
        if not items:
            return
        await self._conn.execute(
            update(transfers)
            .where(transfers.c.id == bindparam("transfer_id"))
            .values({c: bindparam(f"v_{c}") for c in _STATE_COLUMNS}),
            [
                {"transfer_id": row["id"], **{f"v_{c}": row[c] for c in _STATE_COLUMNS}}
                for row in map(_row, items)
            ],
        )
        await self._insert_events([e for t in items for e in _event_rows(t)])
        await Events(self._conn).add_many(a for t in items for a in _announcements(t))

    async def _events(self, t: Transfer) -> None:
        await self._insert_events(_event_rows(t))
        await Events(self._conn).add_many(_announcements(t))

    async def _insert_events(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            # One row is a plain execute; executemany's batching only pays for several.
            await self._conn.execute(_ADD_EVENT, rows[0] if len(rows) == 1 else rows)

    async def events(self, transfer_id: str) -> list[dict[str, Any]]:
        rows = await self._conn.execute(
            select(transfer_events)
            .where(transfer_events.c.transfer_id == transfer_id)
            .order_by(transfer_events.c.id)
        )
        return [dict(r._mapping) for r in rows]

    async def waiting_since(self, status: str, before: datetime, limit: int) -> list[str]:
        rows = await self._conn.execute(
            select(transfers.c.id)
            .where(transfers.c.status == status, transfers.c.started_at < before)
            .limit(limit)
        )
        return [r[0] for r in rows]

    async def in_status_after(
        self, status: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Transfer]:
        """A page of the transfers in ``status``, oldest first, after the (started_at, id)
        of the previous page's last one: a sweep that pages on reaches every one of them."""
        c = transfers.c
        query = select(transfers).where(c.status == status)
        if after is not None:
            query = query.where(
                or_(c.started_at > after[0], and_(c.started_at == after[0], c.id > after[1]))
            )
        query = query.order_by(c.started_at, c.id).limit(limit)
        return [_transfer(r._mapping) for r in await self._conn.execute(query)]

    async def list(
        self, status: str | None = None, limit: int = 100, *, offset: int = 0
    ) -> list[Transfer]:
        """Newest first (refunds not loaded: see ``get``)."""
        query = (
            select(transfers)
            .order_by(transfers.c.started_at.desc(), transfers.c.id)
            .limit(limit)
            .offset(offset)
        )
        if status:
            query = query.where(transfers.c.status == status)
        return [_transfer(r._mapping) for r in await self._conn.execute(query)]

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._conn.execute(
            select(transfers.c.status, func.count()).group_by(transfers.c.status)
        )
        return {r[0]: int(r[1]) for r in rows}


class IncomingPayments:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def cursor(self, account: str, *, lock: bool = False) -> Cursor | None:
        """The account's cursor; with ``lock`` its row is created when missing and locked
        (PostgreSQL), so concurrent watchers of one account take turns."""
        if lock:
            dialect_insert = pg_insert if self._conn.dialect.name == "postgresql" else sqlite_insert
            await self._conn.execute(
                dialect_insert(watcher_cursors)
                .values(account=account, cursor="", updated_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["account"])
            )
        query = select(
            watcher_cursors.c.cursor,
            watcher_cursors.c.last_payment_at,
            watcher_cursors.c.caught_up_at,
        ).where(watcher_cursors.c.account == account)
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return Cursor(*row) if row else None

    async def save_cursor(self, account: str, cursor: Cursor, now: datetime) -> None:
        """Store the cursor read with ``cursor(account, lock=True)`` in this transaction."""
        await self._conn.execute(
            update(watcher_cursors)
            .where(watcher_cursors.c.account == account)
            .values(
                cursor=cursor.cursor,
                last_payment_at=cursor.last_payment_at,
                caught_up_at=cursor.caught_up_at,
                updated_at=now,
            )
        )

    async def known(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = await self._conn.execute(
            select(incoming_payments.c.id).where(incoming_payments.c.id.in_(ids))
        )
        return {r[0] for r in rows}

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self._conn.execute(insert(incoming_payments), rows)

    async def get(self, payment_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        query = select(incoming_payments).where(incoming_payments.c.id == payment_id)
        if lock and self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return dict(row._mapping) if row else None

    async def resolve(self, payment_id: str, resolution: str) -> None:
        await self._conn.execute(
            update(incoming_payments)
            .where(incoming_payments.c.id == payment_id)
            .values(resolution=resolution)
        )

    async def count_unmatched(self) -> int:
        return int(
            await self._conn.scalar(
                select(func.count())
                .select_from(incoming_payments)
                .where(incoming_payments.c.outcome != "matched")
            )
            or 0
        )

    async def list(
        self, outcome: str | None = None, limit: int = 100, *, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Oldest first; ``outcome`` "unmatched" is every outcome but matched."""
        c = incoming_payments.c
        # Horizon's operation ids are numbers in text: the shorter one is the earlier.
        order = (c.created_at, func.length(c.id), c.id)
        query = select(incoming_payments).order_by(*order).limit(limit).offset(offset)
        if outcome == "unmatched":
            query = query.where(incoming_payments.c.outcome != "matched")
        elif outcome:
            query = query.where(incoming_payments.c.outcome == outcome)
        return [dict(r._mapping) for r in await self._conn.execute(query)]


class Payouts:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    async def add(self, instruction: Any, now: datetime) -> str:
        """Queue a payout (status ready), unless this (source, source id, purpose) has a live
        one: then that one's id. After a failed or canceled one, a new attempt."""
        c = payouts.c
        latest = (
            await self._conn.execute(
                select(c.id, c.status, c.attempt)
                .where(
                    c.source == instruction.source,
                    c.source_id == instruction.source_id,
                    c.purpose == instruction.purpose,
                )
                .order_by(c.attempt.desc())
                .limit(1)
            )
        ).first()
        if latest is not None and latest.status in LIVE:
            return str(latest.id)
        payout_id = str(uuid.uuid4())
        await self._conn.execute(
            insert(payouts).values(
                id=payout_id,
                source=instruction.source,
                source_id=instruction.source_id,
                purpose=instruction.purpose,
                attempt=1 if latest is None else latest.attempt + 1,
                asset_code=instruction.asset_code,
                asset_issuer=instruction.asset_issuer,
                amount=instruction.amount_stroops,
                destination=instruction.destination,
                memo_type=instruction.memo_type,
                memo=instruction.memo,
                rail=instruction.rail,
                customer_id=instruction.customer_id,
                status=READY,
                created_at=now,
                updated_at=now,
            )
        )
        return payout_id

    async def latest(self, source: str, ids: list[str]) -> dict[str, dict[str, tuple[str, int]]]:
        """Per source id and purpose, the (status, attempt) of its latest payout."""
        if not ids:
            return {}
        c = payouts.c
        rows = await self._conn.execute(
            select(c.source_id, c.purpose, c.status, c.attempt).where(
                c.source == source, c.source_id.in_(ids)
            )
        )
        out: dict[str, dict[str, tuple[str, int]]] = {}
        for source_id, purpose, status, attempt in rows:
            mine = out.setdefault(source_id, {})
            if purpose not in mine or mine[purpose][1] < attempt:
                mine[purpose] = (status, attempt)
        return out

    async def current(self, source: str, ids: list[str], purpose: str) -> dict[str, str]:
        """Per source id, the id of its latest payout of ``purpose`` (the one that counts:
        an earlier attempt's result, reported again, is not its source's news any more)."""
        if not ids:
            return {}
        c = payouts.c
        rows = await self._conn.execute(
            select(c.source_id, c.id, c.attempt).where(
                c.source == source, c.source_id.in_(ids), c.purpose == purpose
            )
        )
        best: dict[str, tuple[int, str]] = {}
        for source_id, payout_id, attempt in rows:
            if source_id not in best or best[source_id][0] < attempt:
                best[source_id] = (attempt, payout_id)
        return {source_id: payout_id for source_id, (_, payout_id) in best.items()}

    async def add_many(
        self,
        instructions: list[Any],
        latest: Mapping[str, Mapping[str, tuple[str, int]]],
        now: datetime,
    ) -> None:
        """``add`` for many, in one INSERT; ``latest`` is ``latest()`` of their source ids,
        read in this transaction (a live payout of a purpose is not queued again)."""
        rows = []
        for i in instructions:
            status, attempt = latest.get(i.source_id, {}).get(i.purpose, (None, 0))
            if status in LIVE:
                continue
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "source": i.source,
                    "source_id": i.source_id,
                    "purpose": i.purpose,
                    "attempt": attempt + 1,
                    "asset_code": i.asset_code,
                    "asset_issuer": i.asset_issuer,
                    "amount": i.amount_stroops,
                    "destination": i.destination,
                    "memo_type": i.memo_type,
                    "memo": i.memo,
                    "rail": i.rail,
                    "customer_id": i.customer_id,
                    "status": READY,
                    "reason": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if rows:
            await self._conn.execute(insert(payouts), rows)

    async def cancel(self, source: str, source_id: str, purpose: str, now: datetime) -> bool:
        """Cancel a still-queued payout; False when a live one is past that point."""
        c = payouts.c
        mine = and_(c.source == source, c.source_id == source_id, c.purpose == purpose)
        await self._conn.execute(
            update(payouts)
            .where(mine, c.status == READY)
            .values(status=CANCELED, reason="canceled by its source", updated_at=now)
        )
        beyond = await self._conn.scalar(
            select(func.count()).select_from(payouts).where(mine, c.status.in_(LIVE))
        )
        return not beyond

    async def recent(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        status: str | None = None,
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Payouts, newest first, optionally of one status or source."""
        c = payouts.c
        query = select(payouts).order_by(c.created_at.desc(), c.id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(c.status == status)
        if source is not None:
            query = query.where(c.source == source)
        return [dict(r._mapping) for r in await self._conn.execute(query)]

    async def of(self, source: str, source_id: str) -> list[dict[str, Any]]:
        """Every payout of a source's item, oldest attempt first."""
        rows = await self._conn.execute(
            select(payouts)
            .where(payouts.c.source == source, payouts.c.source_id == source_id)
            .order_by(payouts.c.purpose, payouts.c.attempt)
        )
        return [dict(r._mapping) for r in rows]

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._conn.execute(
            select(payouts.c.status, func.count()).group_by(payouts.c.status)
        )
        return {r[0]: int(r[1]) for r in rows}
