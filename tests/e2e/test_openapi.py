"""GET /openapi.json describes exactly the mounted routes (each described, none stale), says who
may call each the way the route is guarded, is a valid OpenAPI document, and names the content
types the server really sends; GET /docs shows it without loading anything from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from typing import Any

import pytest
import schemathesis
from starlette.routing import Mount, Route

from gateway.openapi import OPERATIONS
from gateway.ops.operators import GRANTS
from gateway.settings import Settings
from tests.fakes.sep12 import running_gateway

pytestmark = pytest.mark.asyncio

SESSION_MOUNTS = ("/kyc", "/sep31")


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {"GATEWAY_SEPS_SEP3": "true"}


def mounted(routes: Any, prefix: str = "") -> list[tuple[str, str, Route]]:
    """(METHOD, path, route) of every mounted route, walked independently of gateway.openapi."""
    found = []
    for r in routes:
        if isinstance(r, Mount):
            found += mounted(r.routes, prefix + r.path)
        elif isinstance(r, Route):
            path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", prefix + r.path)
            found += [(m, path, r) for m in sorted(set(r.methods or ()) - {"HEAD"})]
    return found


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }


async def test_the_document_lists_every_mounted_route_and_method(gateway):
    document = (await gateway.client.get("/openapi.json")).json()
    routes = {f"{m} {p}" for m, p, _ in mounted(gateway.app.routes)}
    assert set(operations(document)) == routes
    assert len(routes) >= 60
    undescribed = sorted(routes - set(OPERATIONS))
    assert undescribed == [], "describe these in gateway/openapi/operations.py"
    stale = sorted(set(OPERATIONS) - routes)
    assert stale == [], "these are described but not mounted"
    ids = [op["operationId"] for op in operations(document).values()]
    assert len(set(ids)) == len(ids)


async def test_the_document_leaves_out_the_seps_turned_off(
    make_settings: Callable[..., Settings], sqlite_engine: Any
):
    settings = make_settings(
        GATEWAY_SEPS_SEP31="false", GATEWAY_SEPS_SEP2="false", GATEWAY_SEPS_SEP3="false"
    )
    async with running_gateway(settings, sqlite_engine) as gw:
        paths = (await gw.client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/sep31", "/federation", "/compliance"))]
    assert "/kyc/customer" in paths and "/ops/transfers" in paths


async def test_each_operation_says_who_may_call_it_as_its_route_is_guarded(gateway):
    document = (await gateway.client.get("/openapi.json")).json()
    ops = operations(document)
    for method, path, route in mounted(gateway.app.routes):
        op = ops[f"{method} {path}"]
        permission = getattr(route, "permission", None)
        if permission is not None:
            assert op["security"] == [{"operatorKey": []}], path
            roles = [role for role, grants in GRANTS.items() if permission in grants]
            assert f"`{permission}`" in op["description"], path
            assert all(role in op["description"] for role in roles), path
            assert {"401", "403"} <= set(op["responses"]), path
        elif path.startswith(SESSION_MOUNTS) and path != "/sep31/info":
            assert op["security"] == [{"sep10": []}], path
        else:
            assert op["security"] == [], path
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
        assert op["summary"], path
    schemes = document["components"]["securitySchemes"]
    assert schemes["sep10"]["scheme"] == schemes["operatorKey"]["scheme"] == "bearer"


async def test_the_document_is_valid_openapi(gateway):
    document = (await gateway.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()
    # The same check refuses a broken document.
    broken = {**document, "paths": {"/health": {"get": {"responses": "none"}}}}
    with pytest.raises(ValueError, match="responses"):
        schemathesis.openapi.from_dict(broken).validate()


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/.well-known/stellar.toml", "text/plain; charset=utf-8"),
        ("/metrics", "text/plain; version=0.0.4; charset=utf-8"),
        ("/docs", "text/html; charset=utf-8"),
        ("/openapi.json", "application/json"),
        ("/health", "application/json"),
    ],
)
async def test_the_documented_content_type_is_the_one_served(gateway, path, media_type):
    document = (await gateway.client.get("/openapi.json")).json()
    documented = list(document["paths"][path]["get"]["responses"]["200"]["content"])
    response = await gateway.client.get(path)
    assert response.status_code == 200
    assert documented == [media_type]
    assert response.headers["content-type"] == media_type


async def test_the_docs_page_names_every_path_and_loads_nothing_from_elsewhere(gateway):
    document = (await gateway.client.get("/openapi.json")).json()
    response = await gateway.client.get("/docs")
    assert response.status_code == 200
    page = response.text
    for path, methods in document["paths"].items():
        assert escape(path) in page, path
        for op in methods.values():
            assert escape(op["summary"]) in page, path
    assert "operatorKey" in page and "sep10" in page
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(", page, re.I)
    assert not re.search(r"https?://", page)
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


async def test_the_document_is_served_the_same_each_time(gateway):
    first = await gateway.client.get("/openapi.json")
    again = await gateway.client.get("/openapi.json")
    assert first.content == again.content
    assert first.headers["access-control-allow-origin"] == "*"
