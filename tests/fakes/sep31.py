"""SEP-31 test helpers: a sending anchor's client, accepted customers, and payments sent to
the receiving account through the fake Horizon as real signed transactions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, Keypair, MuxedAccount, TransactionBuilder
from stellar_sdk.memo import IdMemo, Memo, NoneMemo, TextMemo
from stellar_sdk.operation import Payment

from gateway.sandbox.horizon import FakeLedger
from tests.fakes.sep12 import PNG, Kyc

SEP31 = "/sep31"
SENDER = {"first_name": "Allie", "last_name": "Grater", "email_address": "allie@example.com"}
RECEIVER = {
    "first_name": "Lee",
    "last_name": "Sun",
    "bank_account_number": "1234567",
    "bank_number": "021000021",
}
LARGE_EXTRA = {
    "address": "1 Main St",
    "address_country_code": "USA",
    "id_type": "passport",
    "id_number": "X123",
    "id_country_code": "USA",
}


@dataclass
class Partner:
    """A sending anchor's SEP-31 calls with one SEP-10 token."""

    client: httpx.AsyncClient
    token: str | None
    kyc: Kyc
    keypair: Keypair | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def info(self) -> httpx.Response:
        return await self.client.get(f"{SEP31}/info", headers=self.headers)

    async def post(
        self, body: Mapping[str, Any], *, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers, **({"Idempotency-Key": key} if key is not None else {})}
        return await self.client.post(
            f"{SEP31}/transactions", json=dict(body), headers=headers, **kwargs
        )

    async def create(self, body: Mapping[str, Any], *, key: str | None = None) -> dict[str, Any]:
        response = await self.post(body, key=key)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def get(self, transfer_id: str) -> httpx.Response:
        return await self.client.get(f"{SEP31}/transactions/{transfer_id}", headers=self.headers)

    async def transaction(self, transfer_id: str) -> dict[str, Any]:
        response = await self.get(transfer_id)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"transaction"}
        return body["transaction"]  # type: ignore[no-any-return]

    async def callback(self, transfer_id: str, body: Mapping[str, Any]) -> httpx.Response:
        return await self.client.put(
            f"{SEP31}/transactions/{transfer_id}/callback", json=dict(body), headers=self.headers
        )

    async def patch(self, transfer_id: str, body: Mapping[str, Any]) -> httpx.Response:
        return await self.client.patch(
            f"{SEP31}/transactions/{transfer_id}", json=dict(body), headers=self.headers
        )

    async def customers(self, *, large: bool = False) -> tuple[str, str]:
        """A sender and a receiver ACCEPTED for the base types (and, new ones under other
        memos of the account, for the large types)."""
        if not large:
            sender_id = await self.kyc.put_id({"type": "sep31-sender", **SENDER})
            receiver_id = await self.kyc.put_id({"memo": "2", **RECEIVER})
            return sender_id, receiver_id
        response = await self.kyc.put(
            data={"memo": "3", **SENDER, **LARGE_EXTRA, "birth_date": "1980-01-31"},
            files={"photo_id_front": ("id.png", PNG, "image/png")},
        )
        assert response.status_code == 202, response.text
        receiver_id = await self.kyc.put_id({"memo": "4", **RECEIVER, **LARGE_EXTRA})
        return str(response.json()["id"]), receiver_id


async def partner_for(
    gateway: Any,
    keypair: Keypair | None = None,
    *,
    domain_key: Keypair | None = None,
    **token_params: Any,
) -> Partner:
    """A sending anchor with a fresh token; with ``domain_key`` its client_domain signs too."""
    wallet = gateway.wallet(keypair)
    signers = (wallet.keypair, domain_key) if domain_key else ()
    token = await wallet.token(*signers, **token_params)
    return Partner(gateway.client, token, Kyc(gateway.client, token), wallet.keypair)


@dataclass
class Payer:
    """A sending anchor's Stellar account on the fake ledger, holding the asset."""

    ledger: FakeLedger
    keypair: Keypair
    passphrase: str

    @property
    def account(self) -> str:
        return self.keypair.public_key

    def pay(
        self,
        destination: str,
        amount: str | Decimal,
        memo: str | Memo | None,
        asset: Asset | None,
        *,
        payments: int = 1,
        muxed_id: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Submit one transaction of ``payments`` payment operations (from the muxed
        address ``muxed_id`` of the account, if given); (status, body)."""
        if isinstance(memo, str):
            memo = IdMemo(int(memo)) if memo.isdigit() else TextMemo(memo)
        account = self.account if muxed_id is None else MuxedAccount(self.account, muxed_id)
        source = SdkAccount(account, self.ledger.sequence_of(self.account))
        builder = TransactionBuilder(source, self.passphrase, base_fee=100)
        for _ in range(payments):
            builder.append_operation(Payment(destination, asset or Asset.native(), str(amount)))
        builder.add_memo(memo or NoneMemo()).set_timeout(300)
        envelope = builder.build()
        envelope.sign(self.keypair)
        return self.ledger.submit(envelope.to_xdr())


def payer(ledger: FakeLedger, passphrase: str, issuer: str, code: str, amount: str) -> Payer:
    """A funded account with ``amount`` of ``code:issuer`` (the ledger issues it directly)."""
    keypair = Keypair.random()
    ledger.create_account(keypair.public_key, "100")
    ledger.issue(issuer, keypair.public_key, code, amount)
    return Payer(ledger, keypair, passphrase)


def open_receiving_account(ledger: FakeLedger, account: str, issuer: str, code: str) -> None:
    """The anchor's receiving account, with a trustline to the asset it receives."""
    if ledger.account(issuer) is None:
        ledger.create_account(issuer, "100")
    ledger.create_account(account, "100")
    ledger.issue(issuer, account, code, "0")
