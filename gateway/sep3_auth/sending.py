"""The sending side of SEP-3: before we pay another institution's customer, ask its
AUTH_SERVER. Resolve the receiver's federation address, build the attachment (a fresh nonce,
our customer as sender_info, the receiver's route) and the unsigned payment whose memo is the
attachment's hash, sign ``data`` with our SIGNING_KEY, and post it. The request is stored
before it is posted. ``ok``: the payment goes to the payout queue (once); ``pending``: the
same data is posted again after the time the answer named; ``denied``/``error``: it stops,
with the reason kept. A request whose answer never came is posted again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stellar_sdk import Account, Asset, StrKey, TransactionBuilder

from gateway.errors import Conflict, GatewayError, InvalidField, NotFound
from gateway.federation.client import resolve_address
from gateway.outbound.compliance_peers import CompliancePeers, PeerError, check_url
from gateway.outbound.stellar_toml import StellarTomls
from gateway.payouts import PayoutInstruction, PayoutQueue
from gateway.personal_data import Vault
from gateway.settings import Settings
from gateway.types import to_stroops

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory
    from gateway.sep12_customer import CustomerService

log = logging.getLogger("gateway.sep3.send")

SOURCE = "sep3_out"
RETRY_SECONDS = 60  # when the AUTH_SERVER could not be reached
REQUEST_LIFETIME = timedelta(days=1)  # the payment's time bounds: re-posts stop after this
# What names our sender in a request: SEP-3's sender_info keys, from the customer's SEP-9
# fields (a receiver screens the name and the country).
SENDER_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "address": "address",
    "city": "city",
    "country": "address_country_code",
    "date_of_birth": "birth_date",
}
STATUS_OF = {200: "ok", 202: "pending", 403: "denied"}


def data_context(request_id: str) -> str:
    return f"sep3-out:{request_id}:data"


def dest_info_context(request_id: str) -> str:
    return f"sep3-out:{request_id}:dest_info"


class ComplianceSender:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        tomls: StellarTomls,
        peers: CompliancePeers | None,
        customers: CustomerService,
        payouts: PayoutQueue,
        vault: Vault,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._s = settings
        self._uow = uow
        self._tomls = tomls
        self._peers = peers
        self._customers = customers
        self._payouts = payouts
        self._vault = vault
        self._clock = clock

    async def send(
        self,
        *,
        receiver: str,
        amount: Decimal,
        asset_code: str,
        asset_issuer: str,
        customer_id: str,
        source_account: str,
        need_info: bool = False,
        request_key: str | None = None,
    ) -> dict[str, Any]:
        """Ask, and pay on ok. With a ``request_key`` (the operator's id for this payment),
        sending again returns the first request as it stands and asks nothing new."""
        if request_key is not None:
            if not 1 <= len(request_key) <= 128 or not request_key.isprintable():
                raise InvalidField("request_key", "must be 1 to 128 printable characters")
            async with self._uow(read_only=True) as uow:
                earlier = await uow.outgoing.by_key(request_key)
            if earlier is not None:
                return await self._same_request(earlier, receiver, amount, asset_code, customer_id)
        if self._peers is None:
            raise InvalidField("peers", "no outbound client is configured")
        name, sep, domain = receiver.rpartition("*")
        if not sep or not name or "*" in name:
            raise InvalidField("receiver", "must be a federation address name*domain")
        if not StrKey.is_valid_ed25519_public_key(source_account):
            raise InvalidField("source_account", "must be a G... account")
        if not StrKey.is_valid_ed25519_public_key(asset_issuer) or not asset_code:
            raise InvalidField("asset", "must be CODE:ISSUER")
        if amount <= 0:
            raise InvalidField("amount", "must be positive")
        insecure = self._s.outbound.insecure_hosts
        resolved = await resolve_address(
            receiver, tomls=self._tomls, peers=self._peers, insecure_hosts=insecure
        )
        auth_server = resolved.toml.get("AUTH_SERVER")
        if not isinstance(auth_server, str):
            raise InvalidField("receiver", f"{domain} publishes no AUTH_SERVER")
        auth_server = check_url(auth_server, "the receiver's AUTH_SERVER", insecure)
        destination = resolved.account_id
        customer = await self._customers.personal_data(customer_id)
        sender_info = {k: customer[sep9] for k, sep9 in SENDER_FIELDS.items() if sep9 in customer}
        if not sender_info:
            raise NotFound("customer not found, or without the data to name the sender")
        memo_route = resolved.memo
        nonce = secrets.token_hex(16)
        attachment = json.dumps(
            {
                "nonce": nonce,
                "transaction": {
                    "sender_info": sender_info,
                    "route": str(memo_route) if memo_route else name,
                    "note": "",
                    "extra": "",
                },
                "operations": [],
            },
            separators=(",", ":"),
        )
        memo = hashlib.sha256(attachment.encode()).digest()
        now = self._clock()
        tx = (
            TransactionBuilder(
                Account(source_account, -1),  # the SEP asks for sequence number 0
                self._s.network_passphrase,
                base_fee=100,
            )
            .append_payment_op(destination, Asset(asset_code, asset_issuer), format(amount, "f"))
            .add_hash_memo(memo)
            .add_time_bounds(0, int((now + REQUEST_LIFETIME).timestamp()))
            .build()
            .transaction
        )
        async with self._uow(read_only=True) as uow:
            names = await uow.federation.of_customer(customer_id)
        sender = f"{names[0].name if names else customer_id}*{self._s.home_domain}"
        data = json.dumps(
            {
                "sender": sender,
                "need_info": need_info,
                "tx": tx.to_xdr_object().to_xdr(),
                "attachment": attachment,
            },
            separators=(",", ":"),
        )
        sig = base64.b64encode(self._s.signing_keypair.sign(data.encode())).decode()
        request_id = str(uuid.uuid4())
        key_id, sealed = self._vault.seal(data.encode(), data_context(request_id))
        async with self._uow() as uow:
            added = await uow.outgoing.add(
                {
                    "id": request_id,
                    "receiver": receiver,
                    "auth_server": auth_server,
                    "nonce": nonce,
                    "request_key": request_key,
                    "destination": destination,
                    "memo": memo.hex(),
                    "asset_code": asset_code,
                    "asset_issuer": asset_issuer,
                    "amount": to_stroops(amount),
                    "customer_id": customer_id,
                    "status": "sending",
                    "reason": None,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "sig": sig,
                    "data_key_id": key_id,
                    "data_sealed": sealed,
                    "dest_info_key_id": None,
                    "dest_info_sealed": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if added:
                await uow.commit()
            else:  # the same key, sent at the same time: that one stands
                earlier = await uow.outgoing.by_key(request_key or "")
        # Posted after the transaction: posting takes a unit of work of its own (and, on
        # SQLite, the write lock this one held).
        if not added:
            assert earlier is not None
            return await self._same_request(earlier, receiver, amount, asset_code, customer_id)
        return await self.post(request_id)

    async def _same_request(
        self, earlier: dict[str, Any], receiver: str, amount: Decimal, code: str, customer: str
    ) -> dict[str, Any]:
        same = (
            earlier["receiver"],
            earlier["amount"],
            earlier["asset_code"],
            earlier["customer_id"],
        )
        if same != (receiver, to_stroops(amount), code, customer):
            raise Conflict("request_key: already used for another payment")
        return await self.post(earlier["id"])

    async def post(self, request_id: str) -> dict[str, Any]:
        """Post a stored request (again) and keep what the answer says."""
        assert self._peers is not None
        async with self._uow(read_only=True) as uow:
            row = await uow.outgoing.get(request_id)
        if row is None:
            raise NotFound("outgoing compliance request not found")
        if row["status"] not in ("sending", "pending"):
            return row
        data = self._vault.open(row["data_key_id"], row["data_sealed"], data_context(request_id))
        now = self._clock()
        values: dict[str, Any] = {"attempts": row["attempts"] + 1}
        try:
            status, answer = await self._peers.post_auth(
                row["auth_server"], data.decode(), row["sig"]
            )
        except PeerError as exc:
            values.update(
                next_attempt_at=now + timedelta(seconds=RETRY_SECONDS), reason=exc.message
            )
            status, answer = 0, {}
        if status:
            values.update(self._outcome(status, answer, now))
            dest_info = answer.get("dest_info")
            if isinstance(dest_info, str) and values["status"] == "ok":
                kid, blob = self._vault.seal(dest_info.encode(), dest_info_context(request_id))
                values.update(dest_info_key_id=kid, dest_info_sealed=blob)
        async with self._uow() as uow:
            current = await uow.outgoing.get(request_id, lock=True)
            if current is None or current["status"] not in ("sending", "pending"):
                return current or row
            await uow.outgoing.update(request_id, values, now)
            if values.get("status") == "ok":
                await self._queue_payment(uow, row)
            await uow.commit()
        log.info("sep3 request %s: %s", request_id, values.get("status", "no answer"))
        return {**row, **values}

    def _outcome(self, status: int, answer: dict[str, Any], now: datetime) -> dict[str, Any]:
        """What the answer says. Money moves only on a 200 whose statuses are both ok; a
        denial in the body stands whatever the HTTP status (peers send `deny` too)."""
        said = [
            "denied" if s == "deny" else s
            for s in (answer.get("tx_status"), answer.get("info_status"))
        ]
        outcome = STATUS_OF.get(status, "error")
        if "denied" in said:
            outcome = "denied"
        elif outcome == "ok" and said != ["ok", "ok"]:
            outcome = "pending" if "pending" in said else "error"
        reason = answer.get("error")
        values: dict[str, Any] = {
            "status": outcome,
            "reason": str(reason)[:512] if reason else None,
            "next_attempt_at": None,
        }
        if outcome == "pending":
            wait = answer.get("pending")
            seconds = wait if isinstance(wait, int) and 0 < wait <= 86_400 else 600
            values["next_attempt_at"] = now + timedelta(seconds=seconds)
        return values

    async def _queue_payment(self, uow: UnitOfWork, row: dict[str, Any]) -> None:
        await self._payouts.enqueue(
            uow,
            PayoutInstruction(
                source=SOURCE,
                source_id=row["id"],
                purpose="payout",
                asset_code=row["asset_code"],
                asset_issuer=row["asset_issuer"],
                amount_stroops=row["amount"],
                destination=row["destination"],
                memo_type="hash",
                memo=base64.b64encode(bytes.fromhex(row["memo"])).decode(),
                customer_id=row["customer_id"],
            ),
        )

    async def post_due(self, batch: int = 20) -> int:
        """Post again the requests whose time has come (a background step)."""
        async with self._uow(read_only=True) as uow:
            due = await uow.outgoing.due(self._clock(), batch)
        for request_id in due:
            try:
                await self.post(request_id)
            except GatewayError as exc:  # one request that cannot be posted holds no other
                log.warning("sep3 request %s not posted: %s", request_id, exc.message)
        return len(due)
