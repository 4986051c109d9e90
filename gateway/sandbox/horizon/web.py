"""HTTP pieces shared by Horizon's routes, the admin API and the fault middleware: the media
types, the response helper, the base URL and the app's runtime settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.sandbox.horizon.entries import JSON


class HalResponse(JSONResponse):
    """Horizon's resource media type."""

    media_type = "application/hal+json"


class ProblemResponse(JSONResponse):
    """Horizon's error media type (RFC 7807 problem documents)."""

    media_type = "application/problem+json"


def _respond(status: int, body: JSON, headers: Mapping[str, str] | None = None) -> Response:
    cls = HalResponse if status < 400 else ProblemResponse
    return cls(body, status_code=status, headers=dict(headers or {}))


@dataclass(slots=True)
class _Settings:
    fault_timeout: float
    close_delay: float


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
