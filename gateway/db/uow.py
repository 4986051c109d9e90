"""Unit of work: one database transaction; rolled back unless committed."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from gateway.db.alert_repository import Alerts
from gateway.db.compliance_repository import (
    ComplianceRequests,
    OutgoingRequests,
)
from gateway.db.customer_repository import Customers
from gateway.db.disbursement_repository import Disbursements
from gateway.db.engine import READ_ONLY, SQLITE_AUTOCOMMIT, is_sqlite
from gateway.db.event_repository import Events, WebhookEndpoints
from gateway.db.federation_repository import FederationNames
from gateway.db.operator_repository import AuditLog, Operators
from gateway.db.outbox_repository import Outbox
from gateway.db.repositories import UsedChallenges
from gateway.db.sealed_repository import SealedValues
from gateway.db.submission_repository import Submissions
from gateway.db.transfer_repository import IncomingPayments, Payouts, Transfers


class UnitOfWork:
    """``async with uow: ...; await uow.commit()``. Repositories hang off the instance."""

    challenges: UsedChallenges
    customers: Customers
    outbox: Outbox
    transfers: Transfers
    payments: IncomingPayments
    payouts: Payouts
    federation: FederationNames
    compliance: ComplianceRequests
    outgoing: OutgoingRequests
    sealed: SealedValues
    disbursements: Disbursements
    submissions: Submissions
    alerts: Alerts
    operators: Operators
    audit: AuditLog
    events: Events
    webhooks: WebhookEndpoints

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        read_only: bool = False,
        autocommit: bool = False,
        write_lock: asyncio.Lock | None = None,
    ):
        self._engine = engine
        self._read_only = read_only
        self._autocommit = autocommit
        self._write_lock = None if (read_only or autocommit) else write_lock
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    @property
    def connection(self) -> AsyncConnection:
        assert self._conn is not None, "unit of work used outside `async with`"
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        if self._write_lock is not None:
            await self._write_lock.acquire()
        conn: AsyncConnection | None = None
        try:
            conn = await self._engine.connect()
            if self._read_only:
                # SQLite: a snapshot (plain BEGIN). PostgreSQL: autocommit, as its default
                # READ COMMITTED gives each statement its own snapshot anyway, and this saves
                # the BEGIN and COMMIT round trips.
                conn = await conn.execution_options(
                    **(
                        READ_ONLY
                        if is_sqlite(str(self._engine.url))
                        else {"isolation_level": "AUTOCOMMIT"}
                    )
                )
            elif self._autocommit:
                if is_sqlite(str(self._engine.url)):
                    conn = await conn.execution_options(**SQLITE_AUTOCOMMIT)
                else:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._tx = await conn.begin()
        except BaseException:
            # __aexit__ will not run: give back what was taken (e.g. BEGIN timed out).
            if conn is not None:
                await conn.close()
            self._release()
            raise
        self._conn = conn
        self.challenges = UsedChallenges(conn)
        self.customers = Customers(conn)
        self.outbox = Outbox(conn)
        self.transfers = Transfers(conn)
        self.payments = IncomingPayments(conn)
        self.payouts = Payouts(conn)
        self.federation = FederationNames(conn)
        self.compliance = ComplianceRequests(conn)
        self.outgoing = OutgoingRequests(conn)
        self.sealed = SealedValues(conn)
        self.alerts = Alerts(conn)
        self.operators = Operators(conn)
        self.audit = AuditLog(conn)
        self.events = Events(conn)
        self.webhooks = WebhookEndpoints(conn)
        self.disbursements = Disbursements(conn)
        self.submissions = Submissions(conn)
        return self

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()

    async def rollback(self) -> None:
        assert self._tx is not None
        if self._tx.is_active:
            await self._tx.rollback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.rollback()
        finally:
            assert self._conn is not None
            await self._conn.close()
            self._conn = self._tx = None
            self._release()

    def _release(self) -> None:
        if self._write_lock is not None and self._write_lock.locked():
            self._write_lock.release()


class UnitOfWorkFactory:
    """Makes units of work on one engine; what services receive.

    ``autocommit`` suits one-statement writes: each statement commits by itself. On SQLite,
    write transactions of one process queue on an asyncio lock instead of sleeping in
    SQLite's busy handler, which only the writers of other processes still need.
    """

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._write_lock = asyncio.Lock() if is_sqlite(str(engine.url)) else None

    def __call__(self, *, read_only: bool = False, autocommit: bool = False) -> UnitOfWork:
        return UnitOfWork(
            self.engine, read_only=read_only, autocommit=autocommit, write_lock=self._write_lock
        )
