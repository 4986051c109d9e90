"""The operator API's HTTP plumbing: the key check on every ``/ops`` route, routes that
declare the permission they need, JSON rendering, and list parameters (400 on bad ones).

    Authorization: Bearer gwop_...

No key, or one that is unknown, expired or revoked: 401. A key whose role lacks the
route's permission: 403. Every operator route is made by ``operator_route`` and carries its
``permission``, which the route-wide test reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import AuthenticationFailed, InvalidField
from gateway.ops.operators import BAD_KEY, Operator, OperatorService, Permission

PREFIX = "/ops"
MAX_LIMIT = 500
Endpoint = Callable[[Request, Operator], Awaitable[Response]]


class OperatorAuthFailed(AuthenticationFailed):
    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="gateway operators"'}


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return None  # binary columns (files, sealed values) are never rendered
    raise TypeError(type(value).__name__)


class OpsJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_default, separators=(",", ":")).encode()


def operator_route(
    path: str,
    endpoint: Endpoint,
    *,
    permission: Permission,
    operators: OperatorService,
    methods: Sequence[str] = ("GET",),
) -> Route:
    """A route under /ops open to operators whose role grants ``permission``."""

    async def guarded(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise OperatorAuthFailed(BAD_KEY)
        try:
            operator = await operators.authenticate(key.strip())
        except AuthenticationFailed:
            raise OperatorAuthFailed(BAD_KEY) from None
        operator.require(permission)
        request.state.operator = operator
        return await endpoint(request, operator)

    guarded.__doc__ = endpoint.__doc__  # the summary in /openapi.json
    route = Route(path, guarded, methods=list(methods), name=endpoint.__name__)
    route.permission = permission  # type: ignore[attr-defined]
    return route


def router(operators: OperatorService) -> Callable[..., Route]:
    """``route(path, endpoint, permission, methods=("GET",))``: ``operator_route`` for the
    routes of one module, all checked against ``operators``."""

    def route(
        path: str,
        endpoint: Endpoint,
        permission: Permission,
        methods: Sequence[str] = ("GET",),
    ) -> Route:
        return operator_route(
            path, endpoint, permission=permission, operators=operators, methods=methods
        )

    return route


def page(request: Request, default: int = 50) -> tuple[int, int]:
    """(limit, offset) from the query; 400 when either is not a number in range."""
    return (
        int_param(request.query_params, "limit", default, 1, MAX_LIMIT),
        int_param(request.query_params, "offset", 0, 0, 10_000_000),
    )


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidField(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def choice(params: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    """An optional filter that must be one of ``allowed``."""
    raw = params.get(name)
    if raw is None:
        return None
    if raw not in allowed:
        raise InvalidField(name, f"must be one of {', '.join(allowed)}")
    return raw


def only_params(request: Request, allowed: Sequence[str]) -> None:
    """400 for a query parameter the route does not know (a misspelt filter must not
    silently list everything)."""
    unknown = sorted(set(request.query_params) - {"limit", "offset", *allowed})
    if unknown:
        raise InvalidField(unknown[0], "is not a filter of this list")


def text_field(data: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidField(name, "is required")
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidField(name, "must be a string of at most 2048 characters")
    return value
