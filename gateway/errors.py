"""The gateway's error tree and the one renderer that turns errors into SEP JSON responses.

GatewayError                      500  "Internal server error" (never shows internals)
+-- BadRequest                    400  malformed or invalid input
|   +-- InvalidField              400  names the offending field
|   +-- UnsupportedContentType    400
+-- AuthenticationFailed          403  missing, expired, forged or foreign token
+-- Forbidden                     403  authenticated but not allowed
+-- NotFound                      404
+-- MethodNotAllowed              405
+-- Conflict                      409
+-- PayloadTooLarge               413
+-- RateLimited                   429  carries Retry-After
+-- UpstreamError                 502  an outside system misbehaved
    +-- HorizonUnavailable        503  Horizon unreachable, timed out or 5xx
    +-- HorizonBadResponse        502  Horizon answered something we cannot read
    +-- RemoteTomlError           400  another organization's stellar.toml is unusable
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("gateway.errors")


class GatewayError(Exception):
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, *, detail: str | None = None, **extra: Any):
        """``message`` and ``extra`` reach the client; ``detail`` only the logs."""
        self.message = message or self.default_message
        self.detail = detail
        self.extra = extra
        super().__init__(self.message if detail is None else f"{self.message} ({detail})")

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(GatewayError):
    status = 400
    default_message = "Bad request"


class InvalidField(BadRequest):
    def __init__(self, field: str, reason: str, **extra: Any):
        self.field = field
        super().__init__(f"{field}: {reason}", **extra)


class UnsupportedContentType(BadRequest):
    default_message = "Unsupported Content-Type"


class AuthenticationFailed(GatewayError):
    status = 403
    default_message = "Authentication required"


class Forbidden(GatewayError):
    status = 403
    default_message = "Forbidden"


class NotFound(GatewayError):
    status = 404
    default_message = "Not found"


class MethodNotAllowed(GatewayError):
    status = 405
    default_message = "Method not allowed"


class Conflict(GatewayError):
    status = 409
    default_message = "Conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    default_message = "Request body is too large"


class RateLimited(GatewayError):
    status = 429
    default_message = "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None):
        self.retry_after = max(1, int(retry_after))
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(GatewayError):
    status = 502
    default_message = "An upstream service failed"


class HorizonUnavailable(UpstreamError):
    status = 503
    default_message = "Horizon is unavailable; try again later"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class HorizonBadResponse(UpstreamError):
    default_message = "Horizon returned an unexpected response"


class RemoteTomlError(UpstreamError):
    """Another organization's stellar.toml could not be used.

    Rendered as 400: the domain was named by the caller, so the request cannot proceed.
    """

    status = 400
    default_message = "stellar.toml could not be read"


def error_response(exc: GatewayError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def gateway_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status >= 500:
        log.warning(
            "request failed: %s %s -> %d %s %s",
            request.method,
            request.url.path,
            exc.status,
            type(exc).__name__,
            exc.detail or "",
        )
    return error_response(exc)
