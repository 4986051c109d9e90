"""SEP-31 receiving anchor: transfers, the payment watcher, refunds and the payout hand-off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.sep31.model import IllegalTransition, Transfer, TransferStatus
from gateway.sep31.payment_watcher import PaymentWatcher, WatcherLag
from gateway.sep31.service import TransferService

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory


class DbTransactionDirectory:
    """Tells SEP-12 who owns a transfer (GET /customer?transaction_id=)."""

    def __init__(self, uow: UnitOfWorkFactory):
        self._uow = uow

    async def owner_of(self, transaction_id: str) -> str | None:
        async with self._uow(read_only=True) as uow:
            return await uow.transfers.owner_of(transaction_id)


__all__ = [
    "DbTransactionDirectory",
    "IllegalTransition",
    "PaymentWatcher",
    "Transfer",
    "TransferService",
    "TransferStatus",
    "WatcherLag",
]
