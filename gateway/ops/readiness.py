"""`GET /ready`: whether this instance can do its work now. Each check answers ok, or not ok
with a reason an operator can act on; reasons name no host, secret or internal error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.migrate import head_revision, schema_status
from gateway.db.outbox_repository import DEAD
from gateway.db.uow import UnitOfWorkFactory
from gateway.errors import HorizonBadResponse, HorizonUnavailable
from gateway.outbound.horizon import HorizonPayments

if TYPE_CHECKING:
    from gateway.sep31 import PaymentWatcher
    from gateway.settings import Settings

log = logging.getLogger("gateway.ops")


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok}
        if self.reason is not None:
            out["reason"] = self.reason
        out.update(self.info)
        return out


class Readiness:
    """The checks of ``GET /ready``: database, schema, horizon, payment_watcher (SEP-31 on),
    outbox. Each has ``observability.check_timeout_seconds``; the database-bound ones are
    not run when the database does not answer."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine,
        uow: UnitOfWorkFactory,
        horizon: HorizonPayments | None,
        watcher: PaymentWatcher | None,
        clock: Callable[[], float],
    ):
        self._s = settings.observability
        self._passphrase = settings.network_passphrase
        self._engine = engine
        self._uow = uow
        self._horizon = horizon
        self._watcher = watcher
        self._head: str | None = None  # read from the migration scripts at the first check
        self._clock = clock
        self._started_at = clock()

    async def check(self) -> dict[str, Check]:
        # Horizon is asked meanwhile: a slow database and a slow Horizon cost one timeout.
        horizon = asyncio.ensure_future(self._guarded("horizon", self._check_horizon))
        try:
            checks = {"database": await self._guarded("database", self._check_database)}
            later: dict[str, Callable[[], Awaitable[Check]]] = {"schema": self._check_schema}
            if self._watcher is not None:
                later["payment_watcher"] = self._check_watcher
            later["outbox"] = self._check_outbox
            if checks["database"].ok:
                done = await asyncio.gather(*(self._guarded(n, c) for n, c in later.items()))
                checks.update(zip(later, done, strict=True))
            else:
                skipped = Check(False, "not checked: the database does not answer")
                checks.update(dict.fromkeys(later, skipped))
            checks["horizon"] = await horizon
        finally:
            horizon.cancel()
        order = ("database", "schema", "horizon", "payment_watcher", "outbox")
        return {name: checks[name] for name in order if name in checks}

    async def _guarded(self, name: str, check: Callable[[], Awaitable[Check]]) -> Check:
        limit = self._s.check_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                return await check()
        except TimeoutError:
            return Check(False, f"no answer within {limit:g} s")
        except Exception as exc:
            # The type only: a driver's message may name hosts or hold parameters.
            log.warning("ready: the %s check failed: %s", name, type(exc).__name__)
            return Check(False, "could not be checked (see the server log)")

    async def _check_database(self) -> Check:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, SQLAlchemyError) as exc:
            log.warning("ready: the database does not answer: %s", type(exc).__name__)
            return Check(False, "the database does not answer")
        return Check(True)

    async def _check_schema(self) -> Check:
        if self._head is None:
            self._head = head_revision()
        status = await schema_status(self._engine, self._head)
        if not status.is_current:
            return Check(False, "the database schema is not this code's: run `gateway db upgrade`")
        return Check(True)

    async def _check_horizon(self) -> Check:
        if self._horizon is None:
            return Check(True, info={"note": "no Horizon is configured"})
        try:
            state = await self._horizon.ledger_state()
        except HorizonUnavailable:
            return Check(False, "Horizon does not answer")
        except HorizonBadResponse:
            return Check(False, "Horizon answers something that is not Horizon's root document")
        if state.network_passphrase not in (None, self._passphrase):
            return Check(False, "Horizon serves another network than network_passphrase")
        return Check(True, info={"latest_ledger": state.latest_ledger})

    async def _check_watcher(self) -> Check:
        assert self._watcher is not None
        lag = await self._watcher.lag()
        limit = self._s.watcher_max_lag_seconds
        if lag.seconds is None:
            up_for = self._clock() - self._started_at
            if up_for > limit:
                return Check(
                    False,
                    f"the payment watcher has not caught up once in the {int(up_for)} s "
                    "since this process started",
                    {"lag_seconds": None},
                )
            return Check(True, info={"lag_seconds": None})
        if lag.seconds > limit:
            return Check(
                False,
                f"the payment watcher last caught up {int(lag.seconds)} s ago (limit {limit} s)",
                {"lag_seconds": round(lag.seconds, 1)},
            )
        return Check(True, info={"lag_seconds": round(lag.seconds, 1)})

    async def _check_outbox(self) -> Check:
        limit = self._s.outbox_max_overdue_seconds
        now = datetime.fromtimestamp(self._clock(), UTC)
        async with self._uow(read_only=True) as uow:
            overdue = await uow.outbox.overdue(now - timedelta(seconds=limit))
            dead = await uow.outbox.count(DEAD)
        # Dead letters wait for an operator (`gateway outbox redeliver`): reported, not stuck.
        info = {"overdue": overdue, "dead_letters": dead}
        if overdue:
            return Check(
                False,
                f"{overdue} message(s) due for more than {limit} s are not delivered "
                "(is a delivery worker running?)",
                info,
            )
        return Check(True, info=info)
