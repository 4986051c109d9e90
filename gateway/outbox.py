"""Delivering the outbox: messages committed with the change they announce, sent afterwards.

A delivery worker leases due messages (so concurrent workers never take the same one), hands
each to the handler of its kind, and records the outcome: sent; retried after the next delay
of ``outbox.retry_seconds``; or, once those are used up, dead-lettered for an operator to
redeliver. A handler that is merely waiting (a KYC provider still reviewing) asks to be
asked again later without using up a retry, within a maximum age.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from stellar_sdk import Keypair

from gateway.db.outbox_repository import OutboxRow
from gateway.db.uow import UnitOfWorkFactory
from gateway.errors import GatewayError
from gateway.outbound.callbacks import CallbackEndpoints

log = logging.getLogger("gateway.outbox")

Handler = Callable[[OutboxRow], Awaitable[None]]
LEASE_SECONDS = 120
WAITING_MAX_AGE = timedelta(days=7)


class DeliveryFailed(Exception):
    """The message did not get through; it will be retried (reason goes to last_error)."""


class DeliveryWaiting(Exception):
    """Nothing failed, the other side is not done yet: ask again after ``seconds``."""

    def __init__(self, seconds: float, reason: str = "waiting"):
        self.seconds = seconds
        super().__init__(reason)


def _utc(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


class OutboxDispatcher:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        handlers: Mapping[str, Handler],
        *,
        retry_seconds: tuple[int, ...],
        clock: Callable[[], float] = time.time,
        batch: int = 50,
        concurrency: int = 8,
    ):
        self._uow = uow
        self._handlers = dict(handlers)
        self._retry = retry_seconds
        self._clock = clock
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)

    async def deliver_once(self) -> int:
        """Deliver the messages due now; returns how many were attempted."""
        now = _utc(self._clock)
        async with self._uow() as uow:
            rows = await uow.outbox.claim(now, now + timedelta(seconds=LEASE_SECONDS), self._batch)
            await uow.commit()
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: OutboxRow) -> None:
        async with self._slots:
            handler = self._handlers.get(row.kind)
            try:
                if handler is None:
                    raise DeliveryFailed(f"no handler for {row.kind}")
                await handler(row)
            except DeliveryWaiting as wait:
                await self._wait(row, wait)
                return
            except (DeliveryFailed, GatewayError) as exc:
                await self._failed(row, str(exc))
                return
            except Exception as exc:
                log.warning("outbox %s (%s) failed unexpectedly", row.id, row.kind, exc_info=True)
                await self._failed(row, type(exc).__name__)
                return
            async with self._uow() as uow:
                await uow.outbox.sent(row.id, _utc(self._clock))
                await uow.commit()

    async def _failed(self, row: OutboxRow, error: str) -> None:
        now = _utc(self._clock)
        async with self._uow() as uow:
            if row.attempts >= len(self._retry):
                await uow.outbox.dead(row.id, error)
                log.warning(
                    "outbox %s (%s) dead after %d attempts: %s",
                    row.id,
                    row.kind,
                    row.attempts + 1,
                    error,
                )
            else:
                delay = self._retry[row.attempts]
                await uow.outbox.retry(row.id, now + timedelta(seconds=delay), error)
            await uow.commit()

    async def _wait(self, row: OutboxRow, wait: DeliveryWaiting) -> None:
        now = _utc(self._clock)
        async with self._uow() as uow:
            if now - row.created_at > WAITING_MAX_AGE:
                await uow.outbox.dead(row.id, f"still waiting after {WAITING_MAX_AGE.days} days")
            else:
                await uow.outbox.postpone(row.id, now + timedelta(seconds=wait.seconds), str(wait))
            await uow.commit()


class SignedCallbacks:
    """SEP-12 / SEP-31 callbacks: POST the stored body with ``Signature: t=<ts>, s=<base64>``
    over ``<ts>.<host of the URL>.<body>``, signed with the stellar.toml SIGNING_KEY."""

    def __init__(
        self,
        endpoints: CallbackEndpoints,
        signing_key: Keypair,
        clock: Callable[[], float] = time.time,
    ):
        self._endpoints = endpoints
        self._key = signing_key
        self._clock = clock

    def signature(self, url: str, body: bytes, ts: int) -> str:
        payload = f"{ts}.{urlsplit(url).netloc}.".encode() + body
        return f"t={ts}, s={base64.b64encode(self._key.sign(payload)).decode()}"

    async def __call__(self, row: OutboxRow) -> None:
        header = self.signature(row.target, row.body, int(self._clock()))
        status = await self._endpoints.post(
            row.target, row.body, {"Signature": header, "X-Stellar-Signature": header}
        )
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status}")
