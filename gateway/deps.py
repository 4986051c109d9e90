"""Deps: the adapters a running gateway talks to. build_deps makes the real ones; tests pass
fakes to create_app instead."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import __version__
from gateway.db.engine import create_engine, resolve_url
from gateway.db.uow import UnitOfWorkFactory
from gateway.outbound.callbacks import CallbackEndpoints, HttpxCallbackEndpoints
from gateway.outbound.compliance_peers import CompliancePeers, HttpxCompliancePeers
from gateway.outbound.guarded_network import GuardedTransport
from gateway.outbound.horizon import Horizon, HttpxHorizon
from gateway.outbound.kyc_provider import HttpxKycProvider, KycProvider
from gateway.outbound.notifier import LogNotifier, Notifier
from gateway.outbound.stellar_toml import HttpxStellarTomls, StellarTomls
from gateway.sep3_auth.sanctions import HttpSanctionsScreen, SanctionsScreen
from gateway.settings import Settings

USER_AGENT = f"stellar-gateway/{__version__}"


@dataclass
class Deps:
    engine: AsyncEngine
    horizon: Horizon
    tomls: StellarTomls
    callbacks: CallbackEndpoints | None = None
    webhooks: CallbackEndpoints | None = None  # operators' webhook endpoints (same port)
    notifier: Notifier = field(default_factory=LogNotifier)
    kyc_provider: KycProvider | None = None
    peers: CompliancePeers | None = None  # other institutions' SEP-2/SEP-3 servers
    screening: SanctionsScreen | None = None  # None: the local sanctions list
    clock: Callable[[], float] = time.time
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    uow: UnitOfWorkFactory = field(init=False)

    def __post_init__(self) -> None:
        self.uow = UnitOfWorkFactory(self.engine)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def database_url(settings: Settings) -> str:
    return resolve_url(settings.database.url, settings.config_dir)


def build_engine(settings: Settings) -> AsyncEngine:
    return create_engine(
        database_url(settings), pool_size=settings.database.pool_size, echo=settings.database.echo
    )


def build_deps(settings: Settings) -> Deps:
    engine = build_engine(settings)
    headers = {"User-Agent": USER_AGENT}
    horizon_client = httpx.AsyncClient(
        base_url=settings.horizon.url,
        timeout=settings.horizon.timeout_seconds,
        headers=headers,
        # httpcore polls every pooled connection on each request: a small pool is faster.
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
    )
    outbound_client = httpx.AsyncClient(
        transport=GuardedTransport(allowed_hosts=settings.outbound.insecure_hosts),
        timeout=settings.outbound.timeout_seconds,
        headers=headers,
        follow_redirects=False,
    )
    callback_client = httpx.AsyncClient(
        transport=GuardedTransport(allowed_hosts=settings.outbound.insecure_callback_hosts),
        timeout=settings.outbox.timeout_seconds,
        headers=headers,
        follow_redirects=False,
    )
    tomls = HttpxStellarTomls(
        outbound_client,
        insecure_hosts=settings.outbound.insecure_hosts,
        max_bytes=settings.outbound.toml_max_bytes,
        timeout_seconds=settings.outbound.timeout_seconds * 2,
        cache_seconds=settings.outbound.toml_cache_seconds,
        negative_cache_seconds=settings.outbound.toml_negative_cache_seconds,
    )
    closers: list[Callable[[], Awaitable[None]]] = [
        engine.dispose,
        horizon_client.aclose,
        outbound_client.aclose,
        callback_client.aclose,
    ]
    kyc_provider = None
    if settings.kyc.validation == "provider" and settings.kyc.provider_secret is not None:
        # The operator's own provider may sit on a private network: a plain client.
        provider_client = httpx.AsyncClient(headers=headers, follow_redirects=False)
        closers.append(provider_client.aclose)
        kyc_provider = HttpxKycProvider(
            provider_client,
            settings.kyc.provider_url,
            settings.kyc.provider_secret.reveal(),
            timeout=settings.kyc.provider_timeout_seconds,
        )
    screening = None
    if settings.sep3.screening == "http" and settings.sep3.screening_secret is not None:
        # The operator's own screening service may sit on a private network: a plain client.
        screening_client = httpx.AsyncClient(headers=headers, follow_redirects=False)
        closers.append(screening_client.aclose)
        screening = HttpSanctionsScreen(
            screening_client,
            settings.sep3.screening_url,
            settings.sep3.screening_secret.reveal(),
            timeout=settings.sep3.screening_timeout_seconds,
        )
    return Deps(
        engine=engine,
        horizon=HttpxHorizon(horizon_client),
        tomls=tomls,
        # Callback URLs are the clients' choice: the guarded client, public addresses only.
        callbacks=HttpxCallbackEndpoints(callback_client),
        webhooks=HttpxCallbackEndpoints(callback_client),
        kyc_provider=kyc_provider,
        screening=screening,
        peers=HttpxCompliancePeers(
            outbound_client, insecure_hosts=settings.outbound.insecure_hosts
        ),
        closers=closers,
    )
