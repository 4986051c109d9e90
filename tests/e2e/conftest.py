"""The whole app in-process: create_app with the fake Horizon and respx-served toml hosts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from stellar_sdk import Keypair

from gateway.app import create_app
from gateway.deps import Deps
from gateway.outbound.horizon import HttpxHorizon
from gateway.outbound.stellar_toml import HttpxStellarTomls
from gateway.sandbox.horizon import FakeHorizonTransport, FakeLedger
from gateway.settings import Settings
from tests.fakes.callbacks import FakeCallbackEndpoints, FakeNotifier
from tests.fakes.toml_hosts import TomlHosts
from tests.fakes.wallet import Wallet


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
    settings = make_settings(**gateway_env)
    ledger = FakeLedger(settings.network_passphrase)
    transport = FakeHorizonTransport(ledger)
    horizon_client = httpx.AsyncClient(transport=transport, base_url="http://horizon.test")
    tomls = TomlHosts()
    toml_client = tomls.client()
    callbacks, notifier = FakeCallbackEndpoints(), FakeNotifier()
    deps = Deps(
        engine=sqlite_engine,
        horizon=HttpxHorizon(horizon_client),
        tomls=HttpxStellarTomls(toml_client, insecure_hosts=settings.outbound.insecure_hosts),
        callbacks=callbacks,
        notifier=notifier,
        clock=time.time,
    )
    app = create_app(settings, deps)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000"
    )
    gw = Gateway(
        app,
        client,
        settings,
        ledger,
        transport,
        tomls,
        callbacks,
        notifier,
        [horizon_client, toml_client],
    )
    try:
        yield gw
    finally:
        for c in (client, horizon_client, toml_client):
            await c.aclose()
