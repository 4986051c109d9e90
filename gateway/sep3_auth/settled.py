"""How SEP-3 payouts ended: the compliance request a payout pays (received: ``sep3``, or one
we sent: ``sep3_out``) records paid or failed, with the reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.payouts import PayoutResult
from gateway.sep3_auth.payments import SOURCE as RECEIVED
from gateway.sep3_auth.sending import SOURCE as SENT

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory

SOURCES = (RECEIVED, SENT)


class CompliancePayouts:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ):
        self._uow = uow
        self._clock = clock

    async def payouts_settled(self, results: list[PayoutResult]) -> None:
        """Record each outcome (a repeated report writes the same again)."""
        now = self._clock()
        async with self._uow() as uow:
            for r in results:
                values = {
                    "payout_status": "paid" if r.succeeded else "failed",
                    "payout_reason": None if r.succeeded else (r.reason or "")[:512],
                }
                if r.source == RECEIVED:
                    await uow.compliance.decide(r.source_id, values, now)
                else:
                    await uow.outgoing.update(r.source_id, values, now)
            await uow.commit()

    async def payout_settled(self, result: PayoutResult) -> None:
        await self.payouts_settled([result])
