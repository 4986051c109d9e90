"""The OpenAPI document is made from routes: summaries from endpoints' docstrings, path
parameters from the route's convertors, a SEP-10 session where the Mount's middleware checks
one (whatever its path), the permission of an operator route, and a route not yet described
still listed, with the error reply."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from gateway.openapi import document
from gateway.openapi.page import render
from gateway.ops.http import operator_route
from gateway.ops.operators import Operator, Permission
from gateway.sep10 import SessionTokens, sep10_middleware


async def thing(_request: Request) -> Response:
    """Show one thing.

    More words that are not the summary."""
    return JSONResponse({})


async def unnamed_thing(_request: Request) -> Response:
    return JSONResponse({})


async def approve(_request: Request, _op: Operator) -> Response:
    """Approve a thing"""
    return JSONResponse({})


def routes() -> list[Any]:
    tokens = SessionTokens(
        "x" * 48,
        issuer="http://localhost:8000/auth",
        network="testnet",
        lifetime=60,
        clock=lambda: 0.0,
    )
    return [
        Route("/things/{n:int}", thing, methods=["GET", "HEAD"]),
        Mount(
            "/wallets",
            routes=[Route("/{account}", unnamed_thing, methods=["DELETE"])],
            middleware=sep10_middleware(tokens),
        ),
        Mount(
            "/ops",
            routes=[
                operator_route(
                    "/things/{id}/approve",
                    approve,
                    permission=Permission.APPROVE,
                    operators=None,  # type: ignore[arg-type]  # never called here
                    methods=("POST",),
                )
            ],
        ),
    ]


def test_a_route_is_documented_from_what_it_is() -> None:
    doc = document(routes(), base_url="https://anchor.example")
    assert doc["servers"] == [{"url": "https://anchor.example"}]
    assert set(doc["paths"]) == {"/things/{n}", "/wallets/{account}", "/ops/things/{id}/approve"}

    thing_op = doc["paths"]["/things/{n}"]["get"]
    assert list(doc["paths"]["/things/{n}"]) == ["get"]  # HEAD is implied, not listed
    assert thing_op["summary"] == "Show one thing."
    assert thing_op["security"] == []
    assert thing_op["parameters"] == [
        {"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    ]
    # Not described in operations.py: still listed, and any answer is the error object.
    assert set(thing_op["responses"]) == {"default"}

    wallet_op = doc["paths"]["/wallets/{account}"]["delete"]
    assert wallet_op["security"] == [{"sep10": []}]
    assert wallet_op["summary"] == "Unnamed thing"
    assert wallet_op["parameters"][0]["schema"]["pattern"] == "^[^/]+$"

    approve_op = doc["paths"]["/ops/things/{id}/approve"]["post"]
    assert approve_op["summary"] == "Approve a thing"
    assert approve_op["security"] == [{"operatorKey": []}]
    assert "`approve`" in approve_op["description"]
    assert "owner, approver" in approve_op["description"]
    assert "initiator" not in approve_op["description"]


def test_the_page_escapes_what_it_shows() -> None:
    doc = document(routes(), base_url="https://anchor.example")
    doc["paths"]["/things/{n}"]["get"]["summary"] = "<b>bold</b> & co"
    page = render(doc)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "<b>bold</b>" not in page
