"""create_app(settings, deps): the only place the gateway is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import sep1, sep10
from gateway.db.migrate import schema_status
from gateway.deps import Deps, build_deps
from gateway.edge import Edge
from gateway.errors import GatewayError, gateway_error_handler
from gateway.sep10.routes import PATH as SEP10_PATH
from gateway.sep10.routes import TOML_KEY as SEP10_TOML_KEY
from gateway.sep10.routes import routes as sep10_routes
from gateway.settings import ConfigError, Settings, load_settings, with_generated_secrets

log = logging.getLogger("gateway.app")

CHALLENGE_SWEEP_SECONDS = 600
CLOCK_MARGIN_SECONDS = 600


class SchemaBehind(RuntimeError):
    pass


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
    endpoints = {SEP10_TOML_KEY: web_auth_endpoint}
    org_path = settings.resolve_path(settings.stellar_toml)
    try:
        org_text = org_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"stellar_toml: cannot read {org_path}: {exc.strerror}"]) from None
    toml_body = sep1.render(settings, org_text, endpoints, signing.public_key)

    routes: list[BaseRoute] = [
        *sep1.routes(toml_body),
        *sep10_routes(web_auth, settings.network_passphrase),
        Route("/health", _health, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        status = await schema_status(deps.engine)
        if not status.is_current:
            await deps.aclose()
            raise SchemaBehind(
                f"database schema is at {status.current or 'nothing'}, this code needs "
                f"{status.head}: run `gateway db upgrade`"
            )
        sweeper = asyncio.create_task(_sweep_used_challenges(deps))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await deps.aclose()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Edge, max_body_bytes=settings.server.max_body_bytes)],
        exception_handlers={GatewayError: gateway_error_handler, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.deps = deps
    app.state.tokens = tokens
    app.state.stellar_toml = toml_body
    return app


async def _health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _sweep_used_challenges(deps: Deps) -> None:
    while True:
        try:
            async with deps.uow() as uow:
                # A margin for hosts whose clocks disagree: a challenge stays "used" on
                # every host until all of them consider it expired.
                await uow.challenges.forget_expired(int(deps.clock()) - CLOCK_MARGIN_SECONDS)
                await uow.commit()
        except Exception:
            log.warning("could not sweep used SEP-10 challenges", exc_info=True)
        await asyncio.sleep(CHALLENGE_SWEEP_SECONDS)


def asgi_from_environment() -> Starlette:
    """uvicorn factory: settings from GATEWAY_* variables (the CLI exports generated
    testnet secrets before starting workers, so every worker signs with the same keys)."""
    from gateway.logs import configure_logging

    configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "info"))
    settings = load_settings(environ=os.environ)
    settings, generated = with_generated_secrets(settings)
    if generated:
        log.warning("generated throwaway testnet secrets in this worker: %s", ", ".join(generated))
    return create_app(settings, build_deps(settings))
