"""SEP-2 federation: ``name*home_domain`` addresses of the anchor's customers.

Each name routes to one SEP-12 customer by an id memo on the federation account (an omnibus
account): a payment to that account with that memo is for that customer. The memos are
drawn from the upper half of the 64-bit range, apart from SEP-31 transfer memos (the lower
half), so the two can never name the same thing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stellar_sdk import MuxedAccount, StrKey

from gateway.errors import BadRequest, Conflict, InvalidField, NotFound
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.db.federation_repository import FederationName
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory

MAX_NAME_CHARS = 64
MEMO_FLOOR = 2**63  # federation memos: [2^63, 2^64 - 1]; SEP-31 memos stay below
NOT_FOUND = "no such federation record here"


def _name_error(name: str) -> str | None:
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        return f"must be 1 to {MAX_NAME_CHARS} characters"
    if any(ch.isspace() or ch in "*>" or not ch.isprintable() for ch in name):
        return "may not contain whitespace, '*', '>' or control characters"
    if name.isdigit():
        return "may not be all digits (a route of digits names a memo)"
    return None


@dataclass(frozen=True)
class FederationRecord:
    stellar_address: str
    account_id: str
    memo: str
    customer_id: str

    def public(self) -> dict[str, Any]:
        """The SEP-2 answer: memo_type id, memo as a JSON string."""
        return {
            "stellar_address": self.stellar_address,
            "account_id": self.account_id,
            "memo_type": "id",
            "memo": self.memo,
        }


class FederationService:
    def __init__(
        self,
        settings: Settings,
        *,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._account = settings.federation_account
        self._domain = settings.home_domain
        # An address names the domain without a port; accept it with ours too.
        self._domains = {d.lower() for d in settings.home_domains} | {
            d.lower().split(":", 1)[0] for d in settings.home_domains
        }
        self._uow = uow
        self._clock = clock

    def _record(self, row: FederationName) -> FederationRecord:
        return FederationRecord(
            f"{row.name}*{self._domain}", self._account, row.memo, row.customer_id
        )

    # -- lookups (GET /federation) -----------------------------------------------------------

    async def lookup(self, type_: str | None, q: str | None) -> dict[str, Any]:
        if type_ == "name":
            return (await self.by_address(_required(q))).public()
        if type_ == "id":
            return (await self.by_account(_required(q))).public()
        if type_ == "txid":
            _required(q)
            raise NotFound(NOT_FOUND)  # no sender records are kept for transactions
        if type_ == "forward":
            raise BadRequest("forward: this server does not forward payments")
        raise InvalidField("type", "must be one of name, id, txid, forward")

    async def by_address(self, address: str) -> FederationRecord:
        name, sep, domain = address.rpartition("*")
        if not sep or not name or _name_error(name) or domain.lower() not in self._domains:
            raise NotFound(NOT_FOUND)
        async with self._uow(read_only=True) as uow:
            row = await uow.federation.by_name(name.lower())
        if row is None:
            raise NotFound(NOT_FOUND)
        return self._record(row)

    async def by_account(self, account: str) -> FederationRecord:
        """Reverse lookup. The federation account alone names no one (every customer shares
        it); its muxed form (M...) with a customer's memo as the id names that customer."""
        if not StrKey.is_valid_med25519_public_key(account):
            raise NotFound(NOT_FOUND)
        muxed = MuxedAccount.from_account(account)
        if muxed.account_id != self._account or muxed.account_muxed_id is None:
            raise NotFound(NOT_FOUND)
        async with self._uow(read_only=True) as uow:
            row = await uow.federation.by_memo(str(muxed.account_muxed_id))
        if row is None:
            raise NotFound(NOT_FOUND)
        return self._record(row)

    async def customer_for_route(self, uow: UnitOfWork, route: str) -> FederationRecord | None:
        """The record a SEP-3 ``route`` names: a memo (all digits; names never are) or a
        federation name, alone or as an address of our domain."""
        if route.isascii() and route.isdigit():
            row = await uow.federation.by_memo(route)
        else:
            name, sep, domain = route.rpartition("*")
            if not sep:
                name = route
            elif domain.lower() not in self._domains:
                return None
            row = await uow.federation.by_name(name.lower()) if not _name_error(name) else None
        return self._record(row) if row is not None else None

    # -- operators -----------------------------------------------------------------------------

    async def register(self, name: str, customer_id: str) -> FederationRecord:
        problem = _name_error(name)
        if problem:
            raise InvalidField("name", problem)
        key = name.lower()
        async with self._uow() as uow:
            if await uow.customers.get(customer_id) is None:
                raise NotFound("customer not found")
            for _ in range(5):
                memo = str(MEMO_FLOOR + secrets.randbelow(2**63))
                if await uow.federation.add(key, customer_id, memo, self._clock()):
                    await uow.commit()
                    return FederationRecord(
                        f"{key}*{self._domain}", self._account, memo, customer_id
                    )
                if await uow.federation.by_name(key) is not None:
                    raise Conflict(f"{key}*{self._domain} is already taken")
        raise Conflict("could not draw a free memo; try again")

    async def remove(self, name: str) -> None:
        async with self._uow() as uow:
            if not await uow.federation.remove(name.lower()):
                raise NotFound(NOT_FOUND)
            await uow.commit()

    async def list(self, limit: int = 100) -> list[FederationRecord]:
        async with self._uow(read_only=True) as uow:
            return [self._record(r) for r in await uow.federation.list(limit)]


def _required(q: str | None) -> str:
    if not q:
        raise InvalidField("q", "is required")
    return q
