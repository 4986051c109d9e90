"""SEP-31 HTTP surface under DIRECT_PAYMENT_SERVER: parsing and rendering only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.http_input import read_fields
from gateway.sep10 import session_of
from gateway.sep31.service import TransferService

PREFIX = "/sep31"
TOML_KEY = "DIRECT_PAYMENT_SERVER"


def public_routes(service: TransferService) -> list[Route]:
    async def info(_request: Request) -> JSONResponse:
        return JSONResponse(service.info())

    return [Route(PREFIX + "/info", info, methods=["GET"])]


def routes(service: TransferService) -> list[Route]:
    """The routes that need a SEP-10 session (mounted under PREFIX behind the backend)."""

    async def create(request: Request) -> JSONResponse:
        body = await read_fields(request)
        created = await service.create(
            session_of(request), body, request.headers.get("idempotency-key")
        )
        return JSONResponse(created, status_code=201)

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(await service.get(session_of(request), request.path_params["id"]))

    async def callback(request: Request) -> Response:
        await service.set_callback(
            session_of(request), request.path_params["id"], await read_fields(request)
        )
        return Response(status_code=204)

    async def patch(request: Request) -> JSONResponse:
        return JSONResponse(
            await service.patch(
                session_of(request), request.path_params["id"], await read_fields(request)
            )
        )

    return [
        Route("/transactions", create, methods=["POST"]),
        Route("/transactions/{id}", get, methods=["GET"]),
        Route("/transactions/{id}", patch, methods=["PATCH"]),
        Route("/transactions/{id}/callback", callback, methods=["PUT"]),
    ]
