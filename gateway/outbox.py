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
    """Delivers the outbox messages of some kinds (one dispatcher per lane, so slow KYC
    reviews never hold up callbacks). Each send has ``timeout`` seconds in all, well inside
    the lease, after which it counts as failed."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        handlers: Mapping[str, Handler],
        *,
        retry_seconds: tuple[int, ...],
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        concurrency: int = 8,
    ):
        self._uow = uow
        self._handlers = dict(handlers)
        self._kinds = tuple(handlers)
        self._retry = retry_seconds
        self._timeout = min(timeout, LEASE_SECONDS / 4)
        self._clock = clock
        self._batch = concurrency

    async def deliver_once(self) -> int:
        """Deliver the messages due now; returns how many were attempted."""
        if not self._kinds:
            return 0
        now = _utc(self._clock)
        async with self._uow() as uow:
            rows = await uow.outbox.claim(
                now, now + timedelta(seconds=LEASE_SECONDS), self._batch, self._kinds
            )
            await uow.commit()
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: OutboxRow) -> None:
        handler = self._handlers[row.kind]
        try:
            async with asyncio.timeout(self._timeout):
                await handler(row)
        except DeliveryWaiting as wait:
            await self._wait(row, wait)
            return
        except TimeoutError:
            await self._failed(row, f"no answer within {self._timeout:g} s")
            return
        except (DeliveryFailed, GatewayError) as exc:
            await self._failed(row, str(exc))
            return
        except Exception as exc:
            # The type only: a client library's message may hold the destination.
            log.warning(
                "outbox %s (%s) failed unexpectedly: %s", row.id, row.kind, type(exc).__name__
            )
            await self._failed(row, type(exc).__name__)
            return
        async with self._uow() as uow:
            if not await uow.outbox.sent(row, _utc(self._clock)):
                log.warning("outbox %s was sent after its lease passed on", row.id)
            await uow.commit()

    async def _failed(self, row: OutboxRow, error: str) -> None:
        now = _utc(self._clock)
        async with self._uow() as uow:
            if row.attempts >= len(self._retry):
                await uow.outbox.dead(row, error)
                log.warning(
                    "outbox %s (%s) dead after %d attempts: %s",
                    row.id,
                    row.kind,
                    row.attempts + 1,
                    error,
                )
            else:
                delay = self._retry[row.attempts]
                await uow.outbox.retry(row, now + timedelta(seconds=delay), error)
            await uow.commit()

    async def _wait(self, row: OutboxRow, wait: DeliveryWaiting) -> None:
        now = _utc(self._clock)
        async with self._uow() as uow:
            if now - row.created_at > WAITING_MAX_AGE:
                await uow.outbox.dead(row, f"still waiting after {WAITING_MAX_AGE.days} days")
            else:
                await uow.outbox.postpone(row, now + timedelta(seconds=wait.seconds), str(wait))
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
            row.target,
            row.body,
            # The message id lets a receiver drop a repeat (after a lost acknowledgement).
            {"Signature": header, "X-Stellar-Signature": header, "Idempotency-Key": row.id},
        )
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status}")
