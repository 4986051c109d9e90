"""SQL for SEP-12 customers: identities, sealed fields, files, per-type status, verification
codes, callbacks and the status history. Values arrive sealed; nothing here decrypts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, null, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.event_repository import Events, event_row
from gateway.db.tables import (
    compliance_consents,
    customer_callbacks,
    customer_events,
    customer_fields,
    customer_files,
    customer_type_status,
    customer_verifications,
    customers,
    federation_names,
)
from gateway.db.types import UtcDateTime


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: str
    account: str
    memo_type: str
    memo: str
    version: int


@dataclass(frozen=True, slots=True)
class FieldRow:
    name: str
    status: str
    error: str | None
    key_id: str | None
    value: bytes | None
    file_id: str | None


@dataclass(frozen=True, slots=True)
class TypeStatusRow:
    type: str
    status: str
    decision: str | None
    decision_version: int | None
    message: str | None
    review_version: int | None


@dataclass(frozen=True, slots=True)
class FileRow:
    id: str
    account: str
    memo_type: str
    memo: str
    customer_id: str | None
    content_type: str
    size: int
    key_id: str
    content: bytes | None
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class VerificationRow:
    code_digest: str
    expires_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class CallbackRow:
    url: str
    type: str


_CUSTOMER_COLUMNS = (
    customers.c.id,
    customers.c.account,
    customers.c.memo_type,
    customers.c.memo,
    customers.c.version,
)


_s = customer_type_status.c
_f = customer_fields.c
# Customers with their statuses of some types and the state of each of their fields (no
# values), in one query: the rows are each customer's statuses times its fields.
_FOR_CHECK_ALL = select(
    *_CUSTOMER_COLUMNS,
    _s.type,
    _s.status,
    _s.decision,
    _s.decision_version,
    _s.message,
    _s.review_version,
    _f.name,
    _f.status,
    _f.error,
).select_from(
    customers.outerjoin(
        customer_type_status,
        and_(
            _s.customer_id == customers.c.id,
            _s.type.in_(bindparam("types", expanding=True)),
        ),
    ).outerjoin(customer_fields, _f.customer_id == customers.c.id)
)
_FOR_CHECK = _FOR_CHECK_ALL.where(customers.c.id.in_(bindparam("ids", expanding=True)))
_FOR_CHECK_IDENTITY = _FOR_CHECK_ALL.where(
    customers.c.account == bindparam("account"),
    customers.c.memo_type == bindparam("memo_type"),
    customers.c.memo == bindparam("memo"),
)


@dataclass(frozen=True, slots=True)
class CheckedCustomer:
    """What deciding a customer's status needs: its row, its stored statuses of the types
    asked for, and each field's status and error."""

    customer: CustomerRow
    statuses: dict[str, TypeStatusRow]
    fields: dict[str, tuple[str, str | None]]


def _checked(rows: Any) -> dict[str, CheckedCustomer]:
    """Rows of the for-check queries (statuses times fields per customer), gathered."""
    found: dict[str, CheckedCustomer] = {}
    for row in rows:
        checked = found.get(row[0])
        if checked is None:
            checked = found[row[0]] = CheckedCustomer(CustomerRow(*row[:5]), {}, {})
        if row[5] is not None:
            checked.statuses[row[5]] = TypeStatusRow(*row[5:11])
        if row[11] is not None:
            checked.fields[row[11]] = (row[12], row[13])
    return found


class Customers:
    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    # -- identity ----------------------------------------------------------------------------

    async def get(self, customer_id: str, *, lock: bool = False) -> CustomerRow | None:
        query = select(*_CUSTOMER_COLUMNS).where(customers.c.id == customer_id)
        row = (await self._conn.execute(self._locking(query, lock))).first()
        return CustomerRow(*row) if row else None

    def _locking(self, query: Any, lock: bool) -> Any:
        # SQLite writers already hold the database lock (BEGIN IMMEDIATE).
        if lock and self._conn.dialect.name == "postgresql":
            return query.with_for_update()
        return query

    async def for_check(
        self, customer_ids: list[str], type_names: list[str]
    ) -> dict[str, CheckedCustomer]:
        """Each of these customers that exists, with its stored statuses of those types and
        its fields' states, in one query."""
        params = {"ids": customer_ids, "types": type_names}
        return _checked(await self._conn.execute(_FOR_CHECK, params))

    async def for_check_identity(
        self, identity: tuple[str, str, str], type_names: list[str]
    ) -> CheckedCustomer | None:
        """``for_check`` of the customer with this (account, memo_type, memo)."""
        account, memo_type, memo = identity
        params = {"account": account, "memo_type": memo_type, "memo": memo, "types": type_names}
        found = _checked(await self._conn.execute(_FOR_CHECK_IDENTITY, params))
        return next(iter(found.values()), None)

    async def values_named(
        self, customer_ids: list[str], names: tuple[str, ...]
    ) -> list[tuple[str, str, str, bytes]]:
        """(customer, name, key id, sealed value) of these text fields of these customers."""
        if not customer_ids:
            return []
        c = customer_fields.c
        rows = await self._conn.execute(
            select(c.customer_id, c.name, c.key_id, c.value).where(
                c.customer_id.in_(customer_ids),
                c.name.in_(names),
                c.value.is_not(None),
                c.key_id.is_not(None),
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def data_changed_at(self, customer_id: str) -> datetime | None:
        """When the customer's data last changed (``version`` was bumped)."""
        return await self._conn.scalar(
            select(customers.c.updated_at).where(customers.c.id == customer_id)
        )

    async def find(
        self, account: str, memo_type: str, memo: str, *, lock: bool = False
    ) -> CustomerRow | None:
        query = select(*_CUSTOMER_COLUMNS).where(
            customers.c.account == account,
            customers.c.memo_type == memo_type,
            customers.c.memo == memo,
        )
        row = (await self._conn.execute(self._locking(query, lock))).first()
        return CustomerRow(*row) if row else None

    async def find_all(self, account: str, memo_type: str | None, memo: str | None) -> list[str]:
        """Ids of the account's customers; with a memo, of that one sub-account only."""
        query = select(customers.c.id).where(customers.c.account == account)
        if memo_type is not None:
            query = query.where(customers.c.memo_type == memo_type, customers.c.memo == memo)
        return [r[0] for r in await self._conn.execute(query)]

    async def create(
        self, customer_id: str, account: str, memo_type: str, memo: str, now: datetime
    ) -> bool:
        """Insert the customer at version 1; False when this identity exists already."""
        done = await self._conn.execute(
            text(
                "INSERT INTO customers (id, account, memo_type, memo, version, created_at, "
                "updated_at) VALUES (:id, :account, :memo_type, :memo, 1, :now, :now) "
                "ON CONFLICT (account, memo_type, memo) DO NOTHING"
            ).bindparams(bindparam("now", type_=UtcDateTime)),
            {
                "id": customer_id,
                "account": account,
                "memo_type": memo_type,
                "memo": memo,
                "now": now,
            },
        )
        return done.rowcount == 1

    async def bump_version(self, customer_id: str, now: datetime) -> int:
        version = await self._conn.scalar(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(version=customers.c.version + 1, updated_at=now)
            .returning(customers.c.version)
        )
        return int(version or 0)

    async def delete(self, customer_id: str) -> None:
        """Erase the customer: fields, files, codes, callbacks, statuses and federation names
        go with it."""
        for table in (
            federation_names,
            compliance_consents,
            customer_fields,
            customer_files,
            customer_verifications,
            customer_callbacks,
            customer_type_status,
        ):
            await self._conn.execute(delete(table).where(table.c.customer_id == customer_id))
        await self._conn.execute(delete(customers).where(customers.c.id == customer_id))

    # -- fields ------------------------------------------------------------------------------

    async def fields(self, customer_id: str, *, with_values: bool = False) -> dict[str, FieldRow]:
        """The customer's fields; sealed values only when asked for (GET needs none)."""
        c = customer_fields.c
        value = c.value if with_values else null().label("value")
        query = select(c.name, c.status, c.error, c.key_id, value, c.file_id).where(
            c.customer_id == customer_id
        )
        return {r[0]: FieldRow(*r) for r in await self._conn.execute(query)}

    async def put_fields(
        self, customer_id: str, rows: list[FieldRow], existing: set[str], now: datetime
    ) -> None:
        """Write ``rows``: one multi-row INSERT for new names, an UPDATE per existing one."""
        new = [
            {
                "customer_id": customer_id,
                "name": r.name,
                "key_id": r.key_id,
                "value": r.value,
                "file_id": r.file_id,
                "status": r.status,
                "error": r.error,
                "updated_at": now,
            }
            for r in rows
            if r.name not in existing
        ]
        if new:
            await self._conn.execute(insert(customer_fields), new)
        for r in rows:
            if r.name in existing:
                await self._conn.execute(
                    update(customer_fields)
                    .where(
                        customer_fields.c.customer_id == customer_id,
                        customer_fields.c.name == r.name,
                    )
                    .values(
                        key_id=r.key_id,
                        value=r.value,
                        file_id=r.file_id,
                        status=r.status,
                        error=r.error,
                        updated_at=now,
                    )
                )

    async def set_field_status(
        self,
        customer_id: str,
        names: list[str],
        status: str,
        error: str | None,
        now: datetime,
        *,
        unless: str | None = None,
    ) -> None:
        """Set the status of the named fields (except those in status ``unless``)."""
        if not names:
            return
        query = update(customer_fields).where(
            customer_fields.c.customer_id == customer_id, customer_fields.c.name.in_(names)
        )
        if unless is not None:
            query = query.where(customer_fields.c.status != unless)
        await self._conn.execute(query.values(status=status, error=error, updated_at=now))

    # -- per-type status ---------------------------------------------------------------------

    async def type_statuses(self, customer_id: str) -> dict[str, TypeStatusRow]:
        rows = await self._conn.execute(
            select(
                customer_type_status.c.type,
                customer_type_status.c.status,
                customer_type_status.c.decision,
                customer_type_status.c.decision_version,
                customer_type_status.c.message,
                customer_type_status.c.review_version,
            ).where(customer_type_status.c.customer_id == customer_id)
        )
        return {r[0]: TypeStatusRow(*r) for r in rows}

    async def save_type_statuses(
        self, customer_id: str, rows: list[TypeStatusRow], existing: set[str], now: datetime
    ) -> None:
        def values(r: TypeStatusRow) -> dict[str, object]:
            return {
                "status": r.status,
                "decision": r.decision,
                "decision_version": r.decision_version,
                "message": r.message,
                "review_version": r.review_version,
                "updated_at": now,
            }

        new = [
            {"customer_id": customer_id, "type": r.type, **values(r)}
            for r in rows
            if r.type not in existing
        ]
        if new:
            await self._conn.execute(insert(customer_type_status), new)
        for r in rows:
            if r.type in existing:
                await self._conn.execute(
                    update(customer_type_status)
                    .where(
                        customer_type_status.c.customer_id == customer_id,
                        customer_type_status.c.type == r.type,
                    )
                    .values(**values(r))
                )

    async def record_events(self, events: list[dict[str, object]]) -> None:
        """Append history rows: customer_id, type, from_status, to_status, actor, reason, at.
        Each change of status is announced as a ``customer.status_changed`` domain event
        (ids and statuses only)."""
        if events:
            await self._conn.execute(insert(customer_events), events)
            changes = []
            for e in events:
                at = e["at"]
                if e["from_status"] != e["to_status"] and isinstance(at, datetime):
                    data = {
                        "customer_id": e["customer_id"],
                        "type": e["type"],
                        "from_status": e["from_status"],
                        "status": e["to_status"],
                    }
                    changes.append(
                        event_row("customer.status_changed", str(e["customer_id"]), data, at)
                    )
            await Events(self._conn).add_many(changes)

    async def events(self, customer_id: str) -> list[dict[str, object]]:
        rows = await self._conn.execute(
            select(customer_events)
            .where(customer_events.c.customer_id == customer_id)
            .order_by(customer_events.c.id)
        )
        return [dict(r._mapping) for r in rows]

    # -- files -------------------------------------------------------------------------------

    async def add_file(self, row: FileRow) -> None:
        await self._conn.execute(
            insert(customer_files).values(
                id=row.id,
                account=row.account,
                memo_type=row.memo_type,
                memo=row.memo,
                customer_id=row.customer_id,
                content_type=row.content_type,
                size=row.size,
                key_id=row.key_id,
                content=row.content,
                created_at=row.created_at,
                expires_at=row.expires_at,
            )
        )

    async def file(self, file_id: str, *, with_content: bool = False) -> FileRow | None:
        query = select(customer_files).where(customer_files.c.id == file_id)
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        m = row._mapping
        return FileRow(
            m["id"],
            m["account"],
            m["memo_type"],
            m["memo"],
            m["customer_id"],
            m["content_type"],
            m["size"],
            m["key_id"],
            m["content"] if with_content else None,
            m["created_at"],
            m["expires_at"],
        )

    async def files_of(self, customer_id: str) -> list[FileRow]:
        query = (
            select(
                customer_files.c.id,
                customer_files.c.account,
                customer_files.c.memo_type,
                customer_files.c.memo,
                customer_files.c.customer_id,
                customer_files.c.content_type,
                customer_files.c.size,
                customer_files.c.key_id,
                customer_files.c.created_at,
                customer_files.c.expires_at,
            )
            .where(customer_files.c.customer_id == customer_id)
            .order_by(customer_files.c.created_at)
        )
        return [
            FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], None, r[8], r[9])
            for r in await self._conn.execute(query)
        ]

    async def attach_file(self, file_id: str, customer_id: str) -> None:
        await self._conn.execute(
            update(customer_files)
            .where(customer_files.c.id == file_id)
            .values(customer_id=customer_id, expires_at=None)
        )

    async def delete_file(self, file_id: str) -> None:
        await self._conn.execute(delete(customer_files).where(customer_files.c.id == file_id))

    async def delete_expired_files(self, now: datetime) -> int:
        done = await self._conn.execute(
            delete(customer_files).where(
                and_(customer_files.c.expires_at.is_not(None), customer_files.c.expires_at < now)
            )
        )
        return done.rowcount

    async def delete_unattached_files(
        self, account: str, memo_type: str | None, memo: str | None
    ) -> None:
        query = delete(customer_files).where(
            customer_files.c.account == account, customer_files.c.customer_id.is_(None)
        )
        if memo_type is not None:
            query = query.where(
                customer_files.c.memo_type == memo_type, customer_files.c.memo == memo
            )
        await self._conn.execute(query)

    # -- verification codes ------------------------------------------------------------------

    async def verification(self, customer_id: str, field: str) -> VerificationRow | None:
        row = (
            await self._conn.execute(
                select(
                    customer_verifications.c.code_digest,
                    customer_verifications.c.expires_at,
                    customer_verifications.c.attempts,
                ).where(
                    customer_verifications.c.customer_id == customer_id,
                    customer_verifications.c.field == field,
                )
            )
        ).first()
        return VerificationRow(*row) if row else None

    async def set_verification(
        self,
        customer_id: str,
        field: str,
        code_digest: str,
        expires_at: datetime,
        now: datetime,
        *,
        per_hour: int,
    ) -> bool:
        """Store a new pending code; False (nothing stored) when ``per_hour`` codes were
        sent for this field in the past hour."""
        c = customer_verifications.c
        row = (
            await self._conn.execute(
                select(c.sent, c.window_start).where(c.customer_id == customer_id, c.field == field)
            )
        ).first()
        sent, window = (row[0], row[1]) if row else (0, None)
        if window is None or (now - window).total_seconds() >= 3600:
            sent, window = 0, now
        if sent >= per_hour:
            return False
        await self.clear_verification(customer_id, field)
        await self._conn.execute(
            insert(customer_verifications).values(
                customer_id=customer_id,
                field=field,
                code_digest=code_digest,
                expires_at=expires_at,
                attempts=0,
                sent=sent + 1,
                window_start=window,
            )
        )
        return True

    async def count_verification_attempt(self, customer_id: str, field: str) -> None:
        await self._conn.execute(
            update(customer_verifications)
            .where(
                customer_verifications.c.customer_id == customer_id,
                customer_verifications.c.field == field,
            )
            .values(attempts=customer_verifications.c.attempts + 1)
        )

    async def clear_verification(self, customer_id: str, field: str) -> None:
        await self._conn.execute(
            delete(customer_verifications).where(
                customer_verifications.c.customer_id == customer_id,
                customer_verifications.c.field == field,
            )
        )

    # -- callbacks ---------------------------------------------------------------------------

    async def callback(self, customer_id: str) -> CallbackRow | None:
        row = (
            await self._conn.execute(
                select(customer_callbacks.c.url, customer_callbacks.c.type).where(
                    customer_callbacks.c.customer_id == customer_id
                )
            )
        ).first()
        return CallbackRow(*row) if row else None

    async def set_callback(self, customer_id: str, url: str, type: str, now: datetime) -> None:
        await self.clear_callback(customer_id)
        await self._conn.execute(
            insert(customer_callbacks).values(
                customer_id=customer_id, url=url, type=type, created_at=now
            )
        )

    async def clear_callback(self, customer_id: str) -> None:
        await self._conn.execute(
            delete(customer_callbacks).where(customer_callbacks.c.customer_id == customer_id)
        )

    async def recent(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        status: str | None = None,
        type_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """Customers newest first, each with its stored status and decision per type (no
        field). With ``status`` and/or ``type_name``: only those with such a status row."""
        c = customers.c
        query = (
            select(c.id, c.account, c.memo_type, c.memo, c.version, c.created_at, c.updated_at)
            .order_by(c.created_at.desc(), c.id)
            .limit(limit)
            .offset(offset)
        )
        if status is not None or type_name is not None:
            having = select(_s.customer_id)
            if status is not None:
                having = having.where(_s.status == status)
            if type_name is not None:
                having = having.where(_s.type == type_name)
            query = query.where(c.id.in_(having))
        found = {r[0]: {**r._mapping, "types": {}} for r in await self._conn.execute(query)}
        if found:
            rows = await self._conn.execute(
                select(_s.customer_id, _s.type, _s.status, _s.decision)
                .where(_s.customer_id.in_(list(found)))
                .order_by(_s.type)
            )
            for customer_id, kind, state, decision in rows:
                found[customer_id]["types"][kind] = {"status": state, "decision": decision}
        return list(found.values())

    async def count(self) -> int:
        return int(await self._conn.scalar(select(func.count()).select_from(customers)) or 0)
