"""SEP-12 HTTP surface under KYC_SERVER: parsing and rendering only."""

from __future__ import annotations

from typing import Any

from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import BadRequest
from gateway.http_input import Upload, read_fields
from gateway.sep10 import session_of
from gateway.sep12_customer.service import CONTROL_PARAMS, CustomerService

PREFIX = "/kyc"
TOML_KEY = "KYC_SERVER"


def keep_uploads_in_memory(max_body_bytes: int) -> None:
    """Uploaded ID photos must never reach the disk unencrypted: Starlette spools file parts
    above this size to a temporary file, so raise it past the largest body /kyc accepts
    (then the body limit, not the disk, bounds a part)."""
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_body_bytes + 1)


async def _body(request: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Query parameters (identifiers only) overlaid with the body's fields; file parts
    separately. Personal data in a URL would end up in access logs, so it is refused."""
    fields: dict[str, Any] = dict(request.query_params)
    in_url = sorted(set(fields) - CONTROL_PARAMS)
    if in_url:
        shown = ", ".join(n[:64] for n in in_url[:10])
        raise BadRequest(f"send customer data in the body, not the URL: {shown}")
    uploads: dict[str, Upload] = {}
    for name, value in (await read_fields(request, allow_files=True)).items():
        if isinstance(value, Upload):
            uploads[name] = value
        else:
            fields[name] = value
    return fields, uploads


def routes(service: CustomerService) -> list[Route]:
    async def get_customer(request: Request) -> JSONResponse:
        return JSONResponse(await service.get(session_of(request), request.query_params))

    async def put_customer(request: Request) -> JSONResponse:
        fields, uploads = await _body(request)
        customer_id = await service.put(session_of(request), fields, uploads)
        return JSONResponse({"id": customer_id}, status_code=202)

    async def put_verification(request: Request) -> JSONResponse:
        fields, _ = await _body(request)
        return JSONResponse(await service.verify(session_of(request), fields))

    async def delete_customer(request: Request) -> JSONResponse:
        fields, _ = await _body(request)
        await service.delete(session_of(request), request.path_params["account"], fields)
        return JSONResponse({})

    async def put_callback(request: Request) -> JSONResponse:
        fields, _ = await _body(request)
        await service.set_callback(session_of(request), fields)
        return JSONResponse({})

    async def post_file(request: Request) -> JSONResponse:
        _, uploads = await _body(request)
        if set(uploads) - {"file"}:
            raise BadRequest("send one multipart part named 'file'")
        return JSONResponse(await service.upload_file(session_of(request), uploads.get("file")))

    async def get_files(request: Request) -> Response:
        return JSONResponse(await service.list_files(session_of(request), request.query_params))

    return [
        Route("/customer", get_customer, methods=["GET"]),
        Route("/customer", put_customer, methods=["PUT"]),
        Route("/customer/verification", put_verification, methods=["PUT"]),
        Route("/customer/callback", put_callback, methods=["PUT"]),
        Route("/customer/files", post_file, methods=["POST"]),
        Route("/customer/files", get_files, methods=["GET"]),
        Route("/customer/{account}", delete_customer, methods=["DELETE"]),
    ]
