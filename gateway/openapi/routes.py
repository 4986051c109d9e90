"""GET /openapi.json and GET /docs: built from the app's routes on the first request (when
every route is mounted) and kept for the life of the process."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.openapi.document import document
from gateway.openapi.page import CONTENT_SECURITY_POLICY, render

PATH = "/openapi.json"
DOCS_PATH = "/docs"


def routes(base_url: str) -> list[Route]:
    built: dict[str, bytes] = {}

    def served(request: Request) -> dict[str, bytes]:
        if not built:
            doc = document(request.app.routes, base_url=base_url)
            built["html"] = render(doc).encode("utf-8")
            built["json"] = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        return built

    async def openapi(request: Request) -> Response:
        return Response(served(request)["json"], media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(
            served(request)["html"],
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    return [
        Route(PATH, openapi, methods=["GET"]),
        Route(DOCS_PATH, docs, methods=["GET"]),
    ]
