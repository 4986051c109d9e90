"""The whole app in-process: create_app with the fake Horizon and respx-served toml hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from stellar_sdk import Keypair

from gateway.disbursement.submitter import Submitter
from gateway.sandbox.horizon import FakeHorizonTransport, FakeLedger
from gateway.settings import Settings
from tests.fakes.callbacks import FakeCallbackEndpoints, FakeNotifier
from tests.fakes.toml_hosts import TomlHosts
from tests.fakes.wallet import Wallet

PAYMENTS_HEADER = "receiver_reference,amount,asset_code,destination,memo,external_payment_id\n"


@dataclass
class Gateway:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings
    ledger: FakeLedger
    horizon_transport: FakeHorizonTransport
    tomls: TomlHosts
    callbacks: FakeCallbackEndpoints
    notifier: FakeNotifier
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def server_key(self) -> str:
        return self.settings.signing_keypair.public_key

    def wallet(self, keypair: Keypair | None = None) -> Wallet:
        return Wallet(
            self.client,
            self.server_key,
            self.settings.network_passphrase,
            keypair or Keypair.random(),
            home_domain=self.settings.home_domain,
            web_auth_domain=self.settings.web_auth_domain,
        )


@pytest.fixture
def gateway_env() -> dict[str, str]:
    """Extra GATEWAY_* settings for the gateway fixture; override in a test module."""
    return {}


@pytest.fixture
async def gateway(
    make_settings: Callable[..., Settings], sqlite_engine: Any, gateway_env: dict[str, str]
) -> AsyncIterator[Gateway]:
    from tests.fakes.sep12 import running_gateway

    async with running_gateway(make_settings(**gateway_env), sqlite_engine) as gw:
        yield gw


async def operator_key(gw: Gateway, name: str, role: str) -> dict[str, str]:
    """The Authorization header of a new operator key with ``role``."""
    _, key = await gw.app.state.services.operators.create(name, role, created_by="test")
    return {"Authorization": f"Bearer {key}"}


def fund_receivers(ledger: FakeLedger, issuer: str, distribution: Keypair, count: int) -> list[str]:
    """An issuer of GWUSD, a distribution account holding 1000 of it, and ``count`` new
    accounts that trust it."""
    ledger.create_account(issuer)
    ledger.create_account(distribution.public_key, 100)
    ledger.issue(issuer, distribution.public_key, "GWUSD", 1000)
    receivers = [Keypair.random().public_key for _ in range(count)]
    for r in receivers:
        ledger.create_account(r, 10)
        ledger.add_trustline(r, "GWUSD", issuer)
    return receivers


async def upload_disbursement(
    gw: Gateway, name: str, rows: str, headers: dict[str, str]
) -> httpx.Response:
    """POST /ops/disbursements with a CSV of ``rows`` under PAYMENTS_HEADER."""
    return await gw.client.post(
        "/ops/disbursements",
        data={"name": name},
        files={"file": ("pay.csv", (PAYMENTS_HEADER + rows).encode(), "text/csv")},
        headers=headers,
    )


async def pay_out(gw: Gateway, distribution: Keypair) -> None:
    """Run the payout submitter until it has nothing left to do."""
    deps = gw.app.state.deps
    submitter = Submitter(
        gw.settings,
        uow=deps.uow,
        horizon=deps.horizon,
        distribution=distribution,
        results=gw.app.state.services.payout_results,
    )
    await submitter.ensure_lane()
    while await submitter.step():
        pass
