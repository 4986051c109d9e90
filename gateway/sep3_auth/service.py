"""SEP-3 AUTH_SERVER: decide whether another institution may pay one of our customers.

Order of checks: the form and ``data`` (strict XDR, memo = SHA-256 of the attachment) before
any network call; a re-post of a stored (domain, nonce) answers the stored decision; then
the sender's stellar.toml and the signature over ``data`` exactly as received; then the
payment (our account, our asset, a known customer), sanctions, the amount threshold and
whether the recipient's data may be shared. The decision is committed before the answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stellar_sdk import Keypair, MuxedAccount, Network
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.operation import Payment

from gateway.errors import Conflict, InvalidField, NotFound, RateLimited, RemoteTomlError
from gateway.federation import FederationService
from gateway.outbound.stellar_toml import StellarTomls, normalize_domain, signing_key_of
from gateway.payouts import DbPayoutQueue
from gateway.personal_data import Vault
from gateway.rate_limits import Buckets
from gateway.sep3_auth.payments import SOURCE as PAYMENT_SOURCE
from gateway.sep3_auth.request import AuthRequest, parse_form, parse_request
from gateway.sep3_auth.sanctions import SanctionsScreen
from gateway.settings import AssetSettings, Settings
from gateway.types import to_stroops

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWorkFactory
    from gateway.sep12_customer import CustomerService

log = logging.getLogger("gateway.sep3")

OK, DENIED, PENDING, ERROR = "ok", "denied", "pending", "error"
MAX_NONCE_CHARS = 128
# What dest_info shares of the recipient: who they are and where they live (what AML
# screening needs), never account numbers, documents or contact details.
DEST_INFO_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "additional_name",
        "address",
        "city",
        "postal_code",
        "state_or_province",
        "address_country_code",
        "birth_date",
        "birth_place",
        "birth_country_code",
        "organization.name",
        "organization.registered_address",
        "organization.address_country_code",
    }
)
# What a sending institution is told of a screening outcome or an operator's review.
PUBLIC_REASONS = {
    DENIED: "the payment was not accepted by compliance review",
    PENDING: "the payment waits for compliance review",
}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def answer(tx_status: str, info_status: str, reason: str | None, pending: int) -> Answer:
    """SEP-3's precedence: ok and ok 200; any denied 403; any error 400; any pending 202."""
    statuses = (tx_status, info_status)
    body: dict[str, Any] = {"info_status": info_status, "tx_status": tx_status}
    if statuses == (OK, OK):
        return Answer(200, body)
    if reason:
        body["error"] = reason
    if DENIED in statuses:
        return Answer(403, body)
    if ERROR in statuses:
        return Answer(400, body)
    body["pending"] = pending
    return Answer(202, body)


def request_context(request_id: str) -> str:
    return f"sep3:{request_id}:data"


class ComplianceService:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        tomls: StellarTomls,
        federation: FederationService,
        customers: CustomerService,
        screen: SanctionsScreen,
        vault: Vault,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._s = settings
        self._uow = uow
        self._tomls = tomls
        self._federation = federation
        self._customers = customers
        self._screen = screen
        self._vault = vault
        self._clock = clock
        # Only the account the payment watcher reads: a payment elsewhere would never be
        # matched to its authorization (settings require federation.account to be it).
        self._accounts = {settings.sep31.receiving_account}
        self._assets = {(a.code, a.issuer): a for a in settings.assets}
        self._share_with = {(p.domain, p.signing_key) for p in settings.sep3.share_with}
        self._limits = Buckets()  # requests per sending institution (rate_limits)
        # A transaction's hash: SHA-256 of network id, ENVELOPE_TYPE_TX and its v1 XDR.
        self._tx_hash_prefix = (
            Network(settings.network_passphrase).network_id() + b"\x00\x00\x00\x02"
        )

    async def authorize(self, body: bytes) -> Answer:
        data, sig = parse_form(body)
        request = parse_request(data, sig)
        nonce = request.nonce
        if not 1 <= len(nonce) <= MAX_NONCE_CHARS:
            raise InvalidField("attachment", f"nonce must be 1 to {MAX_NONCE_CHARS} characters")
        try:
            domain = normalize_domain(request.sender_domain)
        except RemoteTomlError:
            raise InvalidField("sender", "its domain is not a domain name") from None
        bounds = request.tx.preconditions.time_bounds if request.tx.preconditions else None
        now = self._clock()
        if bounds is not None and bounds.max_time and bounds.max_time < now.timestamp():
            raise InvalidField("tx", "its time bounds have expired")
        fi_key = await self._verify(request, domain)  # the sender's toml, read from a cache
        per_minute = self._s.rate_limits.sep3_per_institution
        if per_minute:
            wait = self._limits.take(("sep3", "institution", domain), per_minute)
            if wait:
                raise RateLimited(math.ceil(wait), f"too many requests from {domain}; try later")
        payment, asset = self._payment(request)
        return await self._decide(request, domain, fi_key, payment, asset, now)

    async def _verify(self, request: AuthRequest, domain: str) -> str:
        try:
            toml = await self._tomls.fetch(domain)
            key = signing_key_of(toml, domain)
        except RemoteTomlError as exc:
            raise InvalidField(
                "sender", f"cannot use the stellar.toml of {domain}: {exc.message}"
            ) from None
        try:
            Keypair.from_public_key(key).verify(request.data, request.sig)
        except BadSignatureError:
            raise InvalidField(
                "sig", "is not the signature of data by the sender's SIGNING_KEY"
            ) from None
        return key

    @staticmethod
    def _check_replay(stored: dict[str, Any], digest: str) -> None:
        """A re-post must be the same request: same nonce, same data."""
        if stored["data_digest"] != digest:
            raise InvalidField("attachment", "this nonce was already used with different data")

    async def _render(self, row: dict[str, Any]) -> Answer:
        result = answer(
            row["tx_status"],
            row["info_status"],
            row["public_reason"],
            self._s.sep3.pending_seconds,
        )
        if result.status == 200 and row["need_info"] and row["customer_id"]:
            data = await self._customers.personal_data(row["customer_id"])
            shared = {k: v for k, v in data.items() if k in DEST_INFO_FIELDS}
            result.body["dest_info"] = json.dumps(shared, sort_keys=True)
        return result

    def _payment(self, request: AuthRequest) -> tuple[Payment, Any]:
        payments = [op for op in request.tx.operations if isinstance(op, Payment)]
        if len(payments) != 1 or len(request.tx.operations) != 1:
            raise InvalidField("tx", "must hold exactly one payment operation")
        payment = payments[0]
        destination: MuxedAccount = payment.destination
        if destination.account_id not in self._accounts:
            raise InvalidField("tx", "does not pay an account of this anchor")
        asset = self._assets.get((payment.asset.code, payment.asset.issuer or ""))
        if payment.asset.is_native() or asset is None:
            raise InvalidField("tx", "does not pay an asset of this anchor")
        return payment, asset

    async def _decide(
        self,
        request: AuthRequest,
        domain: str,
        fi_key: str,
        payment: Payment,
        asset: AssetSettings,
        now: datetime,
    ) -> Answer:
        """One transaction: a stored request with this nonce answers as it stands;
        otherwise the customer, sanctions, review and sharing decide, and the decision is
        committed before it is answered."""
        digest = hashlib.sha256(request.data).hexdigest()
        amount = Decimal(payment.amount)
        # Screening may call out (an HTTP adapter): before the transaction, not inside it.
        screening = await self._screen.screen(request.sender_info)
        async with self._uow() as uow:
            # A re-post meets the stored request when it inserts (ON CONFLICT): new requests,
            # the common case, need no look-up first.
            muxed_id = payment.destination.account_muxed_id
            route = str(muxed_id) if muxed_id is not None else request.route
            record = await self._federation.customer_for_route(uow, route) if route else None
            # `reason` is for operators; `public` is what the sender is told. A screening
            # result is never told as such: no tipping off about lists or near matches.
            tx_status: str
            reason: str | None
            public: str | None
            if record is None:
                tx_status, reason = DENIED, "the recipient is not a customer of this anchor"
                public = reason
            else:
                tx_status, reason = screening.outcome, screening.reason
                public = PUBLIC_REASONS.get(tx_status, reason)
                threshold = self._s.sep3.review_above
                if tx_status == OK and threshold and amount >= threshold:
                    tx_status, reason = PENDING, "payments of this amount wait for review"
                    public = PUBLIC_REASONS[PENDING]
            info_status = OK
            if request.need_info:
                shared = (domain, fi_key) in self._share_with or (
                    record is not None and await uow.compliance.allowed(record.customer_id, domain)
                )
                info_status = OK if shared else DENIED
                if info_status == DENIED and reason is None:
                    reason = "the recipient's information is not shared with this institution"
                    public = reason
            request_id = str(uuid.uuid4())
            key_id, sealed = self._vault.seal(request.data, request_context(request_id))
            row = {
                "id": request_id,
                "sender_domain": domain,
                "nonce": request.nonce,
                "data_digest": digest,
                "sender": request.sender,
                "fi_key": fi_key,
                "memo": request.memo.hex(),
                "tx_hash": hashlib.sha256(self._tx_hash_prefix + request.tx_v1).hexdigest(),
                "customer_id": record.customer_id if record is not None else None,
                "destination": payment.destination.account_muxed or payment.destination.account_id,
                "asset_code": asset.code,
                "asset_issuer": asset.issuer,
                "amount": to_stroops(amount),
                "need_info": request.need_info,
                "tx_status": tx_status,
                "info_status": info_status,
                "reason": reason[:512] if reason else None,
                "public_reason": public[:256] if public else None,
                "decided_by": None,
                "data_key_id": key_id,
                "data_sealed": sealed,
                "created_at": now,
                "updated_at": now,
            }
            if await uow.compliance.add(row):
                await uow.commit()
                log.info(
                    "sep3 request %s from %s: tx %s, info %s",
                    request_id,
                    domain,
                    tx_status,
                    info_status,
                )
            else:  # a re-post, or a concurrent one that won
                stored = await uow.compliance.by_nonce(domain, request.nonce)
                assert stored is not None
                self._check_replay(stored, digest)
                row = stored
        # Rendered after the transaction: dest_info reads the customer's data in a unit of
        # work of its own.
        return await self._render(row)

    async def allow(self, customer_id: str, domain: str, operator: str) -> str:
        """Record that the customer allows ``domain`` to receive their data (need_info);
        returns the domain as recorded."""
        try:
            d = normalize_domain(domain)
        except RemoteTomlError:
            raise InvalidField("domain", "is not a domain name") from None
        async with self._uow() as uow:
            if await uow.customers.get(customer_id) is None:
                raise NotFound("customer not found")
            await uow.compliance.allow(customer_id, d, operator[:128], self._clock())
            await uow.commit()
        return d

    async def disallow(self, customer_id: str, domain: str) -> None:
        async with self._uow() as uow:
            if not await uow.compliance.disallow(customer_id, domain.lower()):
                raise NotFound("no such permission")
            await uow.commit()

    async def requests(
        self,
        limit: int,
        offset: int,
        *,
        status: str | None = None,
        tx_status: str | None = None,
        info_status: str | None = None,
        decided: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Requests received, newest first, without their (sealed) data."""
        async with self._uow(read_only=True) as uow:
            rows = await uow.compliance.list(
                status,
                limit,
                offset=offset,
                tx_status=tx_status,
                info_status=info_status,
                decided=decided,
            )
        return [_shown(r) for r in rows]

    async def request(self, request_id: str) -> dict[str, Any]:
        """One request received, without its data."""
        async with self._uow(read_only=True) as uow:
            row = await uow.compliance.get(request_id)
        if row is None:
            raise NotFound("compliance request not found")
        return _shown(row)

    def institutions(self) -> list[dict[str, str]]:
        """Institutions (settings) that get the recipient's data whenever they ask."""
        return [{"domain": d, "signing_key": k} for d, k in sorted(self._share_with)]

    async def consents(
        self,
        limit: int,
        offset: int,
        *,
        customer_id: str | None = None,
        domain: str | None = None,
    ) -> list[dict[str, Any]]:
        """Institutions single customers allowed their data (``allow``), newest first."""
        async with self._uow(read_only=True) as uow:
            return await uow.compliance.consents(
                limit, offset, customer_id=customer_id, domain=domain
            )

    async def decide(
        self,
        request_id: str,
        *,
        tx: str | None,
        info: str | None,
        operator: str,
        reason: str | None,
    ) -> dict[str, Any]:
        """An operator's decision on a request (typically a pending one); the request as
        decided, without its data."""
        for name, value in (("tx", tx), ("info", info)):
            if value not in (None, OK, DENIED):
                raise InvalidField(name, "must be ok or denied")
        async with self._uow() as uow:
            row = await uow.compliance.get(request_id, lock=True)
            if row is None:
                raise NotFound("compliance request not found")
            if tx == OK and row["customer_id"] is None:
                # A payment authorized for no customer would be paid out to no one.
                raise Conflict("the recipient is not a customer of this anchor; it cannot be ok")
            if tx == DENIED and not await DbPayoutQueue().cancel(
                uow, PAYMENT_SOURCE, request_id, "payout"
            ):
                # Its payment arrived and its payout is on its way or done: too late.
                raise Conflict("its payment has been paid out already; it cannot be denied")
            final = (tx or row["tx_status"], info or row["info_status"])
            values: dict[str, Any] = {
                "tx_status": final[0],
                "info_status": final[1],
                "decided_by": operator[:128],
                "reason": (reason or None) and reason[:512],
                "public_reason": PUBLIC_REASONS[DENIED] if DENIED in final else None,
            }
            now = self._clock()
            await uow.compliance.decide(request_id, values, now)
            await uow.audit.record(
                now,
                operator,
                "compliance.decision",
                "compliance_request",
                request_id,
                {k: row[k] for k in values},
                values,
            )
            await uow.commit()
        return _shown({**row, **values})


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A request as operators see it: without its data (the sender's personal data)."""
    return {k: v for k, v in row.items() if k not in ("data_sealed", "data_key_id")}
