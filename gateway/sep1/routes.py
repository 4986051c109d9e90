"""SEP-1 route: the stellar.toml rendered once at start."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/.well-known/stellar.toml"


def routes(body: bytes) -> list[Route]:
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}

    async def stellar_toml(_request: Request) -> Response:
        return Response(body, media_type="text/plain; charset=utf-8", headers=headers)

    return [Route(PATH, stellar_toml, methods=["GET"])]
