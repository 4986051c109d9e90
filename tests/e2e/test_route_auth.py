"""Every mounted route, classified: public, SEP-10 session, or operator key with a
permission. Each protected route refuses no token, an expired token, a token signed with
another key, a token from the other network, and (operator routes) a revoked or expired key
and a role without the route's permission. A route that is not classified fails here."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import jwt
import pytest
from starlette.routing import Mount, Route

from gateway.ops.operators import GRANTS, Role

pytestmark = pytest.mark.asyncio

# Open to anyone by design: discovery, SEP-10 itself, SEP-2 lookups, SEP-3 (each request is
# signed by the sending institution), SEP-31 /info, and the operational probes and docs.
PUBLIC = {
    "/.well-known/stellar.toml",
    "/auth",
    "/federation",
    "/compliance/auth",
    "/sep31/info",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
}
SEP10_PREFIXES = ("/kyc/", "/sep31/")


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {
        "GATEWAY_SEPS_SEP3": "true",
        "GATEWAY_RATE_LIMITS_OPS_PER_IP": "0",  # hundreds of refusals from one client
        "GATEWAY_RATE_LIMITS_OPS_PER_KEY": "0",
    }


def mounted(routes, prefix: str = "") -> list[tuple[str, set[str], Route]]:
    found = []
    for r in routes:
        if isinstance(r, Mount):
            found += mounted(r.routes, prefix + r.path)
        elif isinstance(r, Route):
            found.append((prefix + r.path, set(r.methods or ()) - {"HEAD"}, r))
    return found


def concrete(path: str) -> str:
    parts = path.split("/")
    return "/".join(str(uuid.uuid4()) if p.startswith("{") else p for p in parts)


def classify(path: str, route: Route) -> str:
    if path in PUBLIC:
        return "public"
    if hasattr(route, "permission"):
        return "operator"
    if path.startswith(SEP10_PREFIXES):
        return "sep10"
    return "unclassified"


async def test_every_route_is_classified(gateway):
    unclassified = [
        p for p, _, r in mounted(gateway.app.routes) if classify(p, r) == "unclassified"
    ]
    assert unclassified == [], "classify these routes in this test"
    kinds = {classify(p, r) for p, _, r in mounted(gateway.app.routes)}
    assert kinds == {"public", "sep10", "operator"}


def bad_sep10_tokens(gw) -> dict[str, dict[str, str]]:
    settings = gw.settings
    secret = settings.jwt_secret.reveal()
    now = int(time.time())
    claims = {
        "iss": settings.base_url + "/auth",
        "sub": "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC",
        "iat": now - 7200,
        "exp": now + 3600,
        "jti": "x",
        "network": settings.network,
    }
    tokens = {
        "expired": jwt.encode({**claims, "exp": now - 60}, secret, algorithm="HS256"),
        "other key": jwt.encode(claims, "another secret of enough length!", algorithm="HS256"),
        "other network": jwt.encode({**claims, "network": "mainnet"}, secret, algorithm="HS256"),
        "not a token": "abc.def.ghi",
    }
    return {"no token": {}, **{k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}}


async def test_every_sep10_route_refuses_every_bad_token(gateway):
    refusals = 0
    for path, methods, route in mounted(gateway.app.routes):
        if classify(path, route) != "sep10":
            continue
        for method in sorted(methods):
            for case, headers in bad_sep10_tokens(gateway).items():
                response = await gateway.client.request(method, concrete(path), headers=headers)
                assert response.status_code in (401, 403), (method, path, case)
                assert response.json()["error"], (method, path, case)
                refusals += 1
    assert refusals >= 11 * 5


async def test_every_operator_route_refuses_bad_keys_and_the_wrong_role(gateway):
    operators = gateway.app.state.services.operators
    keys = {
        role: (await operators.create(f"k-{role}", role, created_by="test"))[1] for role in Role
    }
    revoked_row, revoked = await operators.create("gone", "owner", created_by="test")
    await operators.revoke(revoked_row["id"], by="test")
    _, expired = await operators.create(
        "late", "owner", created_by="test", expires_in=timedelta(microseconds=1)
    )
    session = bad_sep10_tokens(gateway)["expired"]["Authorization"].removeprefix("Bearer ")
    bad = {
        "no key": {},
        "unknown key": {"Authorization": "Bearer gwop_" + "A" * 43},
        "revoked key": {"Authorization": f"Bearer {revoked}"},
        "expired key": {"Authorization": f"Bearer {expired}"},
        "a SEP-10 token": {"Authorization": f"Bearer {session}"},
    }
    checked = 0
    for path, methods, route in mounted(gateway.app.routes):
        if classify(path, route) != "operator":
            continue
        permission = route.permission  # type: ignore[attr-defined]
        for method in sorted(methods):
            for case, headers in bad.items():
                response = await gateway.client.request(method, concrete(path), headers=headers)
                assert response.status_code == 401, (method, path, case)
            for role in Role:
                if permission in GRANTS[role]:
                    continue
                wrong = {"Authorization": f"Bearer {keys[role]}"}
                response = await gateway.client.request(method, concrete(path), headers=wrong)
                assert response.status_code == 403, (method, path, role)
            checked += 1
    assert checked >= 15
