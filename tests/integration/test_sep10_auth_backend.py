"""The SEP-10 authentication backend as other SEP packages mount it."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from gateway.errors import GatewayError, gateway_error_handler
from gateway.sep10 import SessionTokens, sep10_middleware, session_of
from gateway.types import ClientIdentity

G = "GAIVTVXOXBVQ7WHN2ONFTF4HKQ6KFYSSQPP6EYCPMIDZNCPWKCU3HQVZ"
SECRET = "k" * 64
NOW = 1_800_000_000.0


def tokens(secret=SECRET, issuer="http://localhost:8000/auth", network="testnet", now=NOW):
    return SessionTokens(secret, issuer=issuer, network=network, lifetime=600, clock=lambda: now)


async def whoami(request: Request) -> JSONResponse:
    s = session_of(request)
    return JSONResponse(
        {"sub": s.sub, "account": s.account, "memo": s.memo, "client_domain": s.client_domain}
    )


def app(status: int = 403) -> Starlette:
    return Starlette(
        routes=[
            Mount(
                "/kyc", routes=[Route("/me", whoami)], middleware=sep10_middleware(tokens(), status)
            ),
            Route("/open", whoami),
        ],
        exception_handlers={GatewayError: gateway_error_handler},
    )


async def call(path: str, header: str | None, status: int = 403) -> httpx.Response:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(status)), base_url="http://t"
    ) as c:
        return await c.get(path, headers=headers)


def bearer(t: str) -> str:
    return f"Bearer {t}"


async def test_valid_token_makes_the_session_available():
    t = tokens().issue(
        ClientIdentity(G, memo="7"), jti="j", client_domain="wallet.test", home_domain=None
    )
    r = await call("/kyc/me", bearer(t))
    assert r.status_code == 200
    assert r.json() == {"sub": f"{G}:7", "account": G, "memo": "7", "client_domain": "wallet.test"}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic abc",
        bearer("garbage"),
        bearer(
            tokens(now=NOW - 3600).issue(
                ClientIdentity(G), jti="j", client_domain=None, home_domain=None
            )
        ),
        bearer(
            tokens(secret="z" * 64).issue(
                ClientIdentity(G), jti="j", client_domain=None, home_domain=None
            )
        ),
        bearer(
            tokens(issuer="https://other.test/auth").issue(
                ClientIdentity(G), jti="j", client_domain=None, home_domain=None
            )
        ),
        bearer(
            tokens(network="mainnet").issue(
                ClientIdentity(G), jti="j", client_domain=None, home_domain=None
            )
        ),
    ],
    ids=[
        "missing",
        "empty-bearer",
        "wrong-scheme",
        "garbage",
        "expired",
        "other-key",
        "other-server",
        "other-network",
    ],
)
async def test_protected_routes_refuse_with_403_json(header):
    r = await call("/kyc/me", header)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    assert isinstance(r.json()["error"], str) and r.json()["error"]


@pytest.mark.parametrize("header", [None, bearer("garbage")], ids=["missing", "invalid"])
async def test_refusal_status_is_chosen_per_mount(header):
    r = await call("/kyc/me", header, status=401)
    assert r.status_code == 401
    assert r.json()["error"]


async def test_public_routes_ignore_the_backend():
    r = await call("/open", bearer("garbage"))
    assert r.status_code == 403  # session_of refuses, but nothing decoded the header
    assert r.json() == {"error": "Authentication required: send 'Authorization: Bearer <token>'"}
