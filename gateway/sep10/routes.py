"""SEP-10 HTTP surface: GET and POST on WEB_AUTH_ENDPOINT."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.http_input import read_fields
from gateway.sep10.service import WebAuthService

PATH = "/auth"
TOML_KEY = "WEB_AUTH_ENDPOINT"


def routes(service: WebAuthService, network_passphrase: str) -> list[Route]:
    async def challenge(request: Request) -> JSONResponse:
        q = request.query_params
        xdr = await service.challenge(
            account=q.get("account"),
            memo=q.get("memo"),
            home_domain=q.get("home_domain"),
            client_domain=q.get("client_domain"),
        )
        return JSONResponse({"transaction": xdr, "network_passphrase": network_passphrase})

    async def token(request: Request) -> JSONResponse:
        fields = await read_fields(request)
        return JSONResponse({"token": await service.token(fields.get("transaction"))})

    return [
        Route(PATH, challenge, methods=["GET"]),
        Route(PATH, token, methods=["POST"]),
    ]
