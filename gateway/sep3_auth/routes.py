"""SEP-3 route: POST <AUTH_SERVER> with an urlencoded form ``data=...&sig=...``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.errors import UnsupportedContentType
from gateway.http_input import FORM, media_type
from gateway.sep3_auth.service import ComplianceService

PATH = "/compliance/auth"
TOML_KEY = "AUTH_SERVER"


def routes(compliance: ComplianceService) -> list[Route]:
    async def auth(request: Request) -> JSONResponse:
        if media_type(request) != FORM:
            raise UnsupportedContentType(f"send {FORM} with data and sig")
        result = await compliance.authorize(await request.body())
        return JSONResponse(result.body, status_code=result.status)

    return [Route(PATH, auth, methods=["POST"])]
