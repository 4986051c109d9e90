"""The payment watcher: reads payments to the receiving account from Horizon, oldest first,
and hands each page to the transfer service to match by memo.

The cursor is stored in the same transaction as the page's outcomes, so a crash between the
two cannot happen: a restart continues after the last committed page, missing nothing and
matching nothing twice. Horizon failures propagate to the worker loop, which backs off; they
never touch a transfer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.sep31.model import Cursor

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory
    from gateway.outbound.horizon import HorizonPayments
    from gateway.sep31.service import TransferService

PAGE_SIZE = 200


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WatcherLag:
    account: str
    seconds: float | None  # since the watcher last had nothing left to read; None: never ran
    last_payment_at: datetime | None


class PaymentWatcher:
    def __init__(
        self,
        account: str,
        *,
        uow: UnitOfWorkFactory,
        horizon: HorizonPayments,
        transfers: TransferService,
        clock: Callable[[], datetime] = _now,
        page_size: int = PAGE_SIZE,
    ):
        self.account = account
        self._uow = uow
        self._horizon = horizon
        self._transfers = transfers
        self._clock = clock
        self._page = page_size

    async def watch_once(self) -> int:
        """Read and apply one page; returns how many payments it held (0: caught up)."""
        async with self._uow(read_only=True) as uow:
            before = await uow.payments.cursor(self.account)
        # No cursor yet: from the account's first payment, so nothing is ever missed (the
        # receiving account should be one kept for SEP-31).
        cursor = before.cursor if before and before.cursor else None
        page = await self._horizon.payments(self.account, cursor, self._page)
        now = self._clock()
        async with self._uow() as uow:
            current = await uow.payments.cursor(self.account, lock=True)
            if (current.cursor if current else "") != (before.cursor if before else ""):
                return 1  # another watcher moved on meanwhile; read again from there
            known = await uow.payments.known([p.id for p in page.records])
            fresh = []
            for p in page.records:  # a record Horizon repeats is applied once
                if p.id not in known:
                    known.add(p.id)
                    fresh.append(p)
            rows = await self._transfers.apply_payments(uow, self.account, fresh, now)
            await uow.payments.add_many(rows)
            newest = max((p.created_at for p in page.records), default=None)
            await uow.payments.save_cursor(
                self.account,
                Cursor(
                    cursor=page.next_cursor or "",
                    last_payment_at=newest or (before.last_payment_at if before else None),
                    caught_up_at=(before.caught_up_at if before else None) if page.full else now,
                ),
                now,
            )
            await uow.commit()
        # Non-zero while more may be waiting (a full page, even of records we skip).
        return max(len(page.records), 1) if page.full else 0

    async def lag(self) -> WatcherLag:
        async with self._uow(read_only=True) as uow:
            cursor = await uow.payments.cursor(self.account)
        if cursor is None or cursor.caught_up_at is None:
            return WatcherLag(self.account, None, None)
        seconds = max(0.0, (self._clock() - cursor.caught_up_at).total_seconds())
        return WatcherLag(self.account, seconds, cursor.last_payment_at)
