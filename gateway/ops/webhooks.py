"""Webhooks: operators register endpoints for domain events; the fan-out turns each event into
one outbox message per endpoint whose patterns match, and the delivery signs it when it sends:

    X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    X-Gateway-Event-Id: evt_<event id>

A failed delivery is retried after each of ``outbox.retry_seconds`` and then dead-lettered for
an operator to redeliver. Deliveries to one endpoint go one at a time, in the order of the
changes they announce; receivers drop repeats by event id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.db.event_repository import EventRow, WebhookEndpoint
from gateway.db.outbox_repository import DEAD, OutboxRow
from gateway.disbursement.model import DisbursementStatus
from gateway.errors import Conflict, InvalidField, NotFound
from gateway.outbound.callbacks import CallbackEndpoints, check_callback_url
from gateway.outbox import DeliveryFailed
from gateway.personal_data import Vault
from gateway.sep31.model import TransferStatus
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory
    from gateway.ops.operators import OperatorService

WEBHOOK_KIND = "webhook"
SIGNING_KEY_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Gateway-Signature"
EVENT_ID_HEADER = "X-Gateway-Event-Id"
FAN_OUT_BATCH = 200
MAX_PATTERNS = 32
ONLY_DEAD = "only a dead-lettered delivery can be redelivered"

# Every event type there is. Disbursement payments are not announced one by one: each
# payment's outcome is its payout's (payout.succeeded / payout.failed, source "disbursement").
EVENT_TYPES: frozenset[str] = frozenset(
    {
        *(f"transfer.{s}" for s in TransferStatus),
        "payout.succeeded",
        "payout.failed",
        *(f"disbursement.{s}" for s in DisbursementStatus if s != DisbursementStatus.DRAFT),
        "compliance.ok",
        "compliance.denied",
        "compliance.pending",
        "customer.status_changed",
    }
)
FAMILIES: tuple[str, ...] = ("transfer", "payout", "disbursement", "compliance", "customer")


def check_patterns(value: object) -> tuple[str, ...]:
    """An endpoint's event patterns: exact event types or ``<family>.*``, as a list or a
    comma-separated string; 400 naming the first one that is neither."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        items = value
    else:
        raise InvalidField("events", "must be a list of event types or patterns such as transfer.*")
    patterns = [p.strip() for p in items if p.strip()]
    if not patterns:
        raise InvalidField("events", "name at least one event type or pattern")
    if len(patterns) > MAX_PATTERNS:
        raise InvalidField("events", f"at most {MAX_PATTERNS} patterns")
    for p in patterns:
        family, _, rest = p.partition(".")
        if p not in EVENT_TYPES and not (rest == "*" and family in FAMILIES):
            raise InvalidField(
                "events",
                f"{p[:64]!r} is not an event type nor one of "
                + ", ".join(f"{f}.*" for f in FAMILIES),
            )
    return tuple(dict.fromkeys(patterns))


def matches(patterns: tuple[str, ...], event_type: str) -> bool:
    family = event_type.partition(".")[0]
    return event_type in patterns or f"{family}.*" in patterns


def secret_context(endpoint_id: str) -> str:
    """What an endpoint's sealed secret is bound to (gateway.personal_data.Vault)."""
    return f"webhook_endpoint:{endpoint_id}:secret"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Gateway-Signature value: HMAC-SHA256 keyed with the secret as shown (UTF-8)
    over ``<timestamp>.<body>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def event_body(event: EventRow) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{event.id}",
            "type": event.type,
            "created_at": event.at.isoformat(),
            "data": event.data,
        },
        separators=(",", ":"),
    ).encode()


class SignedWebhooks:
    """The outbox handler of ``webhook`` messages: signs each with its endpoint's secret at
    send time and POSTs it; any answer but 2xx fails the attempt (it is retried)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        vault: Vault,
        receivers: CallbackEndpoints,
        clock: Callable[[], float] = time.time,
    ):
        self._uow = uow
        self._vault = vault
        self._receivers = receivers
        self._clock = clock

    async def __call__(self, row: OutboxRow) -> None:
        async with self._uow(read_only=True) as uow:
            endpoint = await uow.webhooks.get(row.subject or "")
        if endpoint is None or endpoint.disabled_at is not None:
            raise DeliveryFailed("the endpoint is disabled")
        secret = self._vault.open_text(
            endpoint.secret_key_id, endpoint.secret, secret_context(endpoint.id)
        )
        headers = {
            SIGNATURE_HEADER: sign(secret, int(self._clock()), row.body),
            EVENT_ID_HEADER: str(json.loads(row.body)["id"]),
        }
        status = await self._receivers.post(row.target, row.body, headers)
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status}")


def _message_id(event_id: int) -> str:
    """An outbox id that sorts by event id. The outbox sends an endpoint's messages in order
    of created_at (the time of the change), then id: so in the order of the changes (fan-outs
    take turns: events.claim), and those of one transaction in the order written."""
    return f"wh-{event_id:017d}-{secrets.token_hex(8)[:15]}"


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    body = row.pop("body", None)
    event = json.loads(body) if body else {}
    return {
        "id": row["id"],
        "endpoint_id": row["subject"],
        "url": row["target"],
        "event_id": event.get("id"),
        "event_type": event.get("type"),
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "last_error": row["last_error"],
        "created_at": row["created_at"],
        "sent_at": row["sent_at"],
    }


class WebhookService:
    """Endpoints (registered with a secret shown once, listed, disabled), their deliveries
    (listed, a dead one redelivered) and the fan-out of events. Operators' actions are
    audited; the secret never is."""

    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        vault: Vault,
        operators: OperatorService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._uow = uow
        self._vault = vault
        self._operators = operators
        self._clock = clock
        # As for callbacks: http:// and private addresses only for the listed test hosts.
        self._insecure_hosts = frozenset(settings.outbound.insecure_callback_hosts)

    async def register(
        self, url: object, events: object, *, actor: str
    ) -> tuple[dict[str, Any], str]:
        """A new endpoint: (what operators see of it, its signing secret, shown only now)."""
        checked = check_callback_url(url, self._insecure_hosts)
        patterns = check_patterns(events)
        endpoint_id = str(uuid.uuid4())
        secret = SIGNING_KEY_PREFIX + secrets.token_urlsafe(32)
        key_id, sealed = self._vault.seal_text(secret, secret_context(endpoint_id))
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            url=checked,
            events=patterns,
            secret_key_id=key_id,
            secret=sealed,
            created_by=actor[:128],
            created_at=self._clock(),
            disabled_at=None,
        )
        shown = endpoint.shown()
        async with self._uow() as uow:
            await uow.webhooks.add(endpoint)
            await self._operators.record(
                uow, actor, "webhook.create", "webhook", endpoint_id, None, shown
            )
            await uow.commit()
        return shown, secret

    async def listing(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        async with self._uow(read_only=True) as uow:
            return [e.shown() for e in await uow.webhooks.recent(limit, offset)]

    async def disable(self, endpoint_id: str, *, actor: str) -> dict[str, Any]:
        """No more events go to it; its undelivered messages are dead-lettered."""
        async with self._uow() as uow:
            before = await uow.webhooks.get(endpoint_id, lock=True)
            if before is None:
                raise NotFound("webhook endpoint not found")
            if not await uow.webhooks.disable(endpoint_id, self._clock()):
                raise Conflict("the webhook endpoint is disabled already")
            buried = await uow.outbox.bury_pending(
                endpoint_id, WEBHOOK_KIND, "the endpoint was disabled"
            )
            after = await uow.webhooks.get(endpoint_id)
            assert after is not None
            await self._operators.record(
                uow,
                actor,
                "webhook.disable",
                "webhook",
                endpoint_id,
                before.shown(),
                {**after.shown(), "undelivered": buried},
            )
            await uow.commit()
        return after.shown()

    async def deliveries(
        self,
        *,
        status: str | None = None,
        endpoint_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Webhook messages, newest first, with the event each carries."""
        async with self._uow(read_only=True) as uow:
            rows = await uow.outbox.list(
                status,
                WEBHOOK_KIND,
                limit,
                offset=offset,
                subject=endpoint_id,
                newest_first=True,
                with_body=True,
            )
        return [_delivery(r) for r in rows]

    async def redeliver(self, delivery_id: str, *, actor: str) -> dict[str, Any]:
        """Queue a dead-lettered delivery again (signed anew when it is sent)."""
        async with self._uow() as uow:
            found = await uow.outbox.get(delivery_id)
            if found is None or found["kind"] != WEBHOOK_KIND:
                raise NotFound("webhook delivery not found")
            if found["status"] != DEAD:
                raise Conflict(ONLY_DEAD)
            # Locked as disable locks it: it cannot be disabled meanwhile.
            endpoint = await uow.webhooks.get(str(found["subject"]), lock=True)
            if endpoint is None or endpoint.disabled_at is not None:
                raise Conflict("its webhook endpoint is disabled")
            if not await uow.outbox.redeliver(delivery_id, self._clock()):
                raise Conflict(ONLY_DEAD)  # another request queued it again first
            await self._operators.record(
                uow,
                actor,
                "webhook.redeliver",
                "webhook",
                endpoint.id,
                {"delivery": delivery_id, "status": DEAD},
                {"delivery": delivery_id, "status": "pending"},
            )
            queued = await uow.outbox.get(delivery_id, with_body=True)
            await uow.commit()
        assert queued is not None
        return _delivery(dict(queued))

    async def fan_out_once(self, batch: int = FAN_OUT_BATCH) -> int:
        """Events not fanned out yet become one message per active endpoint whose patterns
        match, in one transaction; how many events were taken. An endpoint hears only of
        events fanned out after it was registered."""
        async with self._uow() as uow:
            claimed = await uow.events.claim(batch)
            if not claimed:
                return 0
            endpoints = await uow.webhooks.active()
            messages: list[dict[str, Any]] = []
            for event in claimed:
                body: bytes | None = None
                for endpoint in endpoints:
                    if not matches(endpoint.events, event.type):
                        continue
                    body = body or event_body(event)
                    messages.append(
                        {
                            "id": _message_id(event.id),
                            "kind": WEBHOOK_KIND,
                            "subject": endpoint.id,
                            "target": endpoint.url,
                            "body": body,
                            "created_at": event.at,
                        }
                    )
            await uow.outbox.add_many(messages)
            await uow.events.mark_fanned([e.id for e in claimed])
            await uow.commit()
        return len(claimed)
