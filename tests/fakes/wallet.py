"""A test wallet that does SEP-10 the way wallets do: stellar-sdk's client helpers only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from stellar_sdk import Keypair, MuxedAccount, TransactionEnvelope
from stellar_sdk.sep.stellar_web_authentication import read_challenge_transaction


@dataclass
class Wallet:
    client: httpx.AsyncClient
    server_key: str
    passphrase: str
    keypair: Keypair = field(default_factory=Keypair.random)
    home_domain: str = "localhost:8000"
    web_auth_domain: str = "localhost:8000"
    auth_path: str = "/auth"

    @property
    def account(self) -> str:
        return self.keypair.public_key

    def muxed(self, muxed_id: int) -> str:
        return MuxedAccount(self.account, muxed_id).account_muxed

    async def get_challenge(self, **params: Any) -> httpx.Response:
        params.setdefault("account", self.account)
        clean = {k: str(v) for k, v in params.items() if v is not None}
        return await self.client.get(self.auth_path, params=clean)

    async def challenge(self, **params: Any) -> str:
        response = await self.get_challenge(**params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["network_passphrase"] == self.passphrase
        # What a careful wallet does before signing: check the challenge with the SDK.
        read_challenge_transaction(
            body["transaction"],
            self.server_key,
            self.home_domain,
            self.web_auth_domain,
            self.passphrase,
        )
        return str(body["transaction"])

    def sign(self, xdr: str, *signers: Keypair) -> str:
        envelope = TransactionEnvelope.from_xdr(xdr, self.passphrase)
        for signer in signers or (self.keypair,):
            envelope.sign(signer)
        return envelope.to_xdr()

    async def post(self, xdr: str, *, as_json: bool = True) -> httpx.Response:
        if as_json:
            return await self.client.post(self.auth_path, json={"transaction": xdr})
        return await self.client.post(self.auth_path, data={"transaction": xdr})

    async def token(self, *signers: Keypair, as_json: bool = True, **params: Any) -> str:
        xdr = self.sign(await self.challenge(**params), *signers)
        response = await self.post(xdr, as_json=as_json)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])
