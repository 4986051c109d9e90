"""SEP-2 route: GET /federation?type=...&q=... (public; CORS comes from the edge)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.federation.service import FederationService

PATH = "/federation"
TOML_KEY = "FEDERATION_SERVER"
# Records may change (a name can be removed or given to someone else): never cached.
NO_STORE = {"Cache-Control": "no-store"}


def routes(federation: FederationService) -> list[Route]:
    async def lookup(request: Request) -> JSONResponse:
        params = request.query_params
        record = await federation.lookup(params.get("type"), params.get("q"))
        return JSONResponse(record, headers=NO_STORE)

    return [Route(PATH, lookup, methods=["GET"])]
