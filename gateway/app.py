"""create_app(settings, deps): the only place the gateway is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from gateway import sep1, sep10
from gateway.db.migrate import schema_status
from gateway.deps import Deps, build_deps
from gateway.disbursement.service import SOURCE as DISBURSEMENT_SOURCE
from gateway.disbursement.service import DisbursementService
from gateway.disbursement.submitter import ResultRouter
from gateway.edge import Edge
from gateway.errors import GatewayError, gateway_error_handler
from gateway.federation import FederationService
from gateway.federation import routes as federation_routes
from gateway.openapi import routes as openapi_routes
from gateway.ops import observability, webhook_routes
from gateway.ops import routes as ops_routes
from gateway.ops import views as ops_views
from gateway.ops.metrics import HttpMetrics, RequestMetrics
from gateway.ops.operators import OperatorService
from gateway.ops.webhooks import WEBHOOK_KIND, SignedWebhooks, WebhookService
from gateway.outbox import Handler, OutboxDispatcher, SignedCallbacks
from gateway.payouts import DbPayoutQueue
from gateway.personal_data import Vault
from gateway.rate_limits import RateLimits, Rule, account_caller, bearer_caller
from gateway.sep3_auth import ComplianceService, LocalListScreen
from gateway.sep3_auth import routes as sep3_routes
from gateway.sep3_auth.sending import ComplianceSender
from gateway.sep3_auth.settled import SOURCES as SEP3_SOURCES
from gateway.sep3_auth.settled import CompliancePayouts
from gateway.sep10.routes import PATH as SEP10_PATH
from gateway.sep10.routes import TOML_KEY as SEP10_TOML_KEY
from gateway.sep10.routes import routes as sep10_routes
from gateway.sep12_customer import (
    CALLBACK_KIND,
    REVIEW_KIND,
    CustomerService,
    provider_review_handler,
)
from gateway.sep12_customer import routes as sep12_routes
from gateway.sep31 import DbTransactionDirectory, PaymentWatcher, TransferService
from gateway.sep31 import routes as sep31_routes
from gateway.sep31.service import PAYMENT_SOURCE as TRANSFER_PAYMENT_SOURCE
from gateway.sep31.service import SOURCE as TRANSFER_SOURCE
from gateway.settings import ConfigError, Settings, load_settings, with_generated_secrets
from gateway.workers import run_forever

log = logging.getLogger("gateway.app")

CHALLENGE_SWEEP_SECONDS = 600
CLOCK_MARGIN_SECONDS = 600
FILE_SWEEP_SECONDS = 600
OUTBOX_POLL_SECONDS = 1.0
WATCH_POLL_SECONDS = 2.0
EXPIRY_SWEEP_SECONDS = 300
RESUME_SWEEP_SECONDS = 15.0


class SchemaBehind(RuntimeError):
    pass


@dataclass
class Services:
    """What create_app built, for workers and commands that run outside HTTP."""

    settings: Settings
    customers: CustomerService
    transfers: TransferService
    watcher: PaymentWatcher
    federation: FederationService
    compliance: ComplianceService
    sender: ComplianceSender  # SEP-3 requests we send before paying another institution
    disbursements: DisbursementService
    payout_results: ResultRouter  # where the payout engine reports each payout's end
    callbacks: OutboxDispatcher  # signed callbacks to wallets and sending anchors
    reviews: OutboxDispatcher  # requests to the KYC provider
    operators: OperatorService  # operator keys, roles and the audit log
    webhooks: WebhookService  # operators' webhook endpoints and the fan-out of events
    webhook_deliveries: OutboxDispatcher  # signed webhooks to those endpoints


def build_services(settings: Settings, deps: Deps) -> Services:
    if settings.kyc.key is None:
        raise ConfigError(["kyc.key: not set (GATEWAY_KYC_KEY); see `gateway config check`"])
    vault = Vault.from_texts(settings.kyc.key.reveal(), [k.reveal() for k in settings.kyc.old_keys])

    def now() -> datetime:
        return datetime.fromtimestamp(deps.clock(), UTC)

    customers = CustomerService(
        settings,
        uow=deps.uow,
        vault=vault,
        notifier=deps.notifier,
        transactions=DbTransactionDirectory(deps.uow),
        clock=now,
    )
    transfers = TransferService(
        settings,
        uow=deps.uow,
        customers=customers,
        payouts=DbPayoutQueue(),
        vault=vault,
        clock=now,
    )
    watcher = PaymentWatcher(
        settings.sep31.receiving_account,
        uow=deps.uow,
        horizon=deps.horizon,
        transfers=transfers,
        clock=now,
    )
    callback_handlers: dict[str, Handler] = {}
    if deps.callbacks is not None:
        callback_handlers[CALLBACK_KIND] = SignedCallbacks(
            deps.callbacks, settings.signing_keypair, deps.clock
        )
    webhook_handlers: dict[str, Handler] = {}
    if deps.webhooks is not None:
        webhook_handlers[WEBHOOK_KIND] = SignedWebhooks(deps.uow, vault, deps.webhooks, deps.clock)
    review_handlers: dict[str, Handler] = {}
    if deps.kyc_provider is not None:
        review_handlers[REVIEW_KIND] = provider_review_handler(customers, deps.kyc_provider)

    def dispatcher(handlers: dict[str, Handler], timeout: float) -> OutboxDispatcher:
        return OutboxDispatcher(
            deps.uow,
            handlers,
            retry_seconds=settings.outbox.retry_seconds,
            timeout=timeout,
            clock=deps.clock,
        )

    federation = FederationService(settings, uow=deps.uow, clock=now)
    sanctions_list = settings.sep3.sanctions_list
    compliance = ComplianceService(
        settings,
        uow=deps.uow,
        tomls=deps.tomls,
        federation=federation,
        customers=customers,
        screen=deps.screening
        or LocalListScreen(settings.resolve_path(sanctions_list) if sanctions_list else None),
        vault=vault,
        clock=now,
    )
    disbursements = DisbursementService(
        settings,
        uow=deps.uow,
        tomls=deps.tomls,
        peers=deps.peers,
        horizon=deps.horizon,
        clock=now,
    )
    sep3_payouts = CompliancePayouts(deps.uow, clock=now)
    operators = OperatorService(deps.uow, clock=now)
    payout_results = ResultRouter(
        {
            TRANSFER_SOURCE: transfers,
            TRANSFER_PAYMENT_SOURCE: transfers,
            DISBURSEMENT_SOURCE: disbursements,
            **dict.fromkeys(SEP3_SOURCES, sep3_payouts),
        }
    )
    return Services(
        settings=settings,
        customers=customers,
        transfers=transfers,
        watcher=watcher,
        federation=federation,
        compliance=compliance,
        disbursements=disbursements,
        payout_results=payout_results,
        sender=ComplianceSender(
            settings,
            uow=deps.uow,
            tomls=deps.tomls,
            peers=deps.peers,
            customers=customers,
            payouts=DbPayoutQueue(),
            vault=vault,
            clock=now,
        ),
        callbacks=dispatcher(callback_handlers, settings.outbox.timeout_seconds),
        reviews=dispatcher(review_handlers, settings.kyc.provider_timeout_seconds * 2),
        operators=operators,
        webhooks=WebhookService(
            settings, uow=deps.uow, vault=vault, operators=operators, clock=now
        ),
        webhook_deliveries=dispatcher(webhook_handlers, settings.outbox.timeout_seconds),
    )


def background_steps(
    settings: Settings, deps: Deps, services: Services
) -> list[tuple[str, Callable[[], Awaitable[int | None]], float]]:
    """(name, step, interval) of the periodic work a serving process also does."""

    async def sweep_challenges() -> int:
        async with deps.uow() as uow:
            # A margin for hosts whose clocks disagree: a challenge stays "used" on every
            # host until all of them consider it expired.
            await uow.challenges.forget_expired(int(deps.clock()) - CLOCK_MARGIN_SECONDS)
            await uow.commit()
        return 0

    async def sweep_files() -> int:
        async with deps.uow() as uow:
            await uow.customers.delete_expired_files(datetime.fromtimestamp(deps.clock(), UTC))
            await uow.commit()
        return 0

    steps: list[tuple[str, Callable[[], Awaitable[int | None]], float]] = [
        ("sweep-challenges", sweep_challenges, CHALLENGE_SWEEP_SECONDS),
        ("sweep-files", sweep_files, FILE_SWEEP_SECONDS),
    ]
    if settings.outbox.run_in_server:
        steps.append(("callbacks", services.callbacks.deliver_once, OUTBOX_POLL_SECONDS))
        steps.append(("kyc-reviews", services.reviews.deliver_once, OUTBOX_POLL_SECONDS))
        steps.append(("webhook-fan-out", services.webhooks.fan_out_once, OUTBOX_POLL_SECONDS))
        steps.append(("webhooks", services.webhook_deliveries.deliver_once, OUTBOX_POLL_SECONDS))
    if settings.seps.sep3 and settings.outbox.run_in_server:
        steps.append(("compliance-resend", services.sender.post_due, OUTBOX_POLL_SECONDS * 5))
    # The watcher matches SEP-31 transfers and payments that SEP-3 requests authorized.
    if (settings.seps.sep31 or settings.seps.sep3) and settings.sep31.watch_in_server:
        steps.extend(payment_steps(services))
    return steps


def payment_steps(
    services: Services,
) -> list[tuple[str, Callable[[], Awaitable[int | None]], float]]:
    """The SEP-31 payment watcher, the expiry of unpaid transfers, and transfers resumed
    once the customer they waited for has updated their data."""
    return [
        ("payment-watcher", services.watcher.watch_once, WATCH_POLL_SECONDS),
        ("expire-transfers", services.transfers.expire_once, EXPIRY_SWEEP_SECONDS),
        (
            "resume-transfers",
            services.transfers.resume_after_customer_updates,
            RESUME_SWEEP_SECONDS,
        ),
    ]


def create_app(settings: Settings, deps: Deps) -> Starlette:
    if settings.signing_secret is None or settings.jwt_secret is None:
        raise ConfigError(["signing_secret/jwt_secret: not set; see `gateway config check`"])
    signing = settings.signing_keypair
    web_auth_endpoint = settings.base_url + SEP10_PATH
    tokens = sep10.SessionTokens(
        settings.jwt_secret.reveal(),
        issuer=web_auth_endpoint,
        network=settings.network,
        lifetime=settings.sep10.jwt_lifetime_seconds,
        clock=deps.clock,
    )
    web_auth = sep10.WebAuthService(
        sep10.WebAuthConfig(
            signing_key=signing,
            network_passphrase=settings.network_passphrase,
            home_domains=settings.home_domains,
            web_auth_domain=settings.web_auth_domain,
            challenge_timeout=settings.sep10.challenge_timeout_seconds,
            client_domain_policy=settings.sep10.client_domain,
        ),
        horizon=deps.horizon,
        tomls=deps.tomls,
        uow=deps.uow,
        tokens=tokens,
        clock=deps.clock,
    )
    services = build_services(settings, deps)
    http_metrics = HttpMetrics()
    endpoints = {SEP10_TOML_KEY: web_auth_endpoint}
    routes: list[BaseRoute] = [
        *sep10_routes(web_auth, settings.network_passphrase),
        *observability.routes(settings, deps, services, web_auth=web_auth, http=http_metrics),
        *openapi_routes.routes(settings.base_url),
        Mount(
            ops_routes.PREFIX,
            routes=[
                *ops_routes.routes(services, services.operators),
                *ops_views.routes(services, services.operators),
                *webhook_routes.routes(services.webhooks, services.operators),
            ],
        ),
    ]
    body_limits: dict[str, int] = {
        ops_routes.PREFIX + "/disbursements": settings.disbursement.max_upload_bytes + 65536
    }
    if settings.seps.sep12:
        # A PUT may carry a few ID photos.
        kyc_body_limit = max(
            settings.server.max_body_bytes, 4 * settings.sep12.max_file_bytes + 65536
        )
        sep12_routes.keep_uploads_in_memory(kyc_body_limit)
        routes.append(
            Mount(
                sep12_routes.PREFIX,
                routes=sep12_routes.routes(services.customers),
                middleware=sep10.sep10_middleware(tokens),
            )
        )
        endpoints[sep12_routes.TOML_KEY] = settings.base_url + sep12_routes.PREFIX
        body_limits[sep12_routes.PREFIX] = kyc_body_limit
        body_limits[sep12_routes.PREFIX + "/customer/files"] = settings.sep12.max_file_bytes + 65536

    if settings.seps.sep31:
        routes.extend(sep31_routes.public_routes(services.transfers))
        routes.append(
            Mount(
                sep31_routes.PREFIX,
                routes=sep31_routes.routes(services.transfers),
                middleware=sep10.sep10_middleware(tokens),
            )
        )
        endpoints[sep31_routes.TOML_KEY] = settings.base_url + sep31_routes.PREFIX

    if settings.seps.sep3:
        routes.extend(sep3_routes.routes(services.compliance))
        endpoints[sep3_routes.TOML_KEY] = settings.base_url + sep3_routes.PATH

    if settings.seps.sep2:
        routes.extend(federation_routes.routes(services.federation))
        endpoints[federation_routes.TOML_KEY] = settings.base_url + federation_routes.PATH

    org_path = settings.resolve_path(settings.stellar_toml)
    try:
        org_text = org_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"stellar_toml: cannot read {org_path}: {exc.strerror}"]) from None
    toml_body = sep1.render(settings, org_text, endpoints, signing.public_key)
    routes.extend(sep1.routes(toml_body))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        status = await schema_status(deps.engine)
        if not status.is_current:
            await deps.aclose()
            raise SchemaBehind(
                f"database schema is at {status.current or 'nothing'}, this code needs "
                f"{status.head}: run `gateway db upgrade`"
            )
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(run_forever(name, step, interval=interval, stop=stop))
            for name, step, interval in background_steps(settings, deps, services)
        ]
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await deps.aclose()

    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost, so what the edge answers itself (413, preflights) is counted too.
            Middleware(RequestMetrics, metrics=http_metrics),
            Middleware(
                Edge, max_body_bytes=settings.server.max_body_bytes, path_limits=body_limits
            ),
            Middleware(RateLimits, rules=rate_rules(settings)),
        ],
        exception_handlers={GatewayError: gateway_error_handler, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.deps = deps
    app.state.tokens = tokens
    app.state.services = services
    app.state.stellar_toml = toml_body
    return app


def rate_rules(settings: Settings) -> list[Rule]:
    r = settings.rate_limits
    return [
        Rule(
            "sep10",
            "GET",
            SEP10_PATH,
            r.sep10_challenge_per_ip,
            r.sep10_challenge_per_account,
            account_caller,
        ),
        Rule("sep3", None, sep3_routes.PATH, r.sep3_per_ip, 0, bearer_caller),
        Rule(
            "sep12_put",
            "PUT",
            sep12_routes.PREFIX,
            r.sep12_put_per_ip,
            r.sep12_put_per_account,
            bearer_caller,
        ),
        Rule("ops", None, ops_routes.PREFIX, r.ops_per_ip, r.ops_per_key, bearer_caller),
    ]


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def asgi_from_environment() -> Starlette:
    """uvicorn factory: settings from GATEWAY_* variables (the CLI exports generated
    testnet secrets before starting workers, so every worker signs with the same keys)."""
    from gateway.logs import configure_logging

    configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "info"))
    settings = load_settings(environ=os.environ)
    settings, generated = with_generated_secrets(settings)
    if generated:
        log.warning("testnet secrets filled in this worker: %s", ", ".join(generated))
    app = create_app(settings, build_deps(settings))
    # What is loaded by now (modules, the stellar-sdk's XDR classes, table metadata) lives as
    # long as the process: keep it out of the collector's full passes, which otherwise walk
    # it all and stall every request in flight for milliseconds.
    gc.collect()
    gc.freeze()
    return app
