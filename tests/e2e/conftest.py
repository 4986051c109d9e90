"""The whole app in-process: create_app with the fake Horizon and respx-served toml hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from stellar_sdk import Keypair

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
    from tests.fakes.sep12 import running_gateway

    async with running_gateway(make_settings(**gateway_env), sqlite_engine) as gw:
        yield gw
