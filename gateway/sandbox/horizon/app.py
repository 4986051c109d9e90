"""create_fake_horizon_app: the Starlette app serving Horizon's routes (query parsing, paging
links, error pages) around a FakeLedger, with the admin API and fault middleware."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from stellar_sdk import StrKey

from gateway.sandbox.horizon.admin import _admin_routes
from gateway.sandbox.horizon.amounts import INT64_MAX
from gateway.sandbox.horizon.faults import FaultInjector, _FaultMiddleware
from gateway.sandbox.horizon.ledger import FakeLedger
from gateway.sandbox.horizon.problems import (
    _problem,
    bad_request_problem,
    not_found_problem,
    status_problem,
)
from gateway.sandbox.horizon.web import _base_url, _respond, _Settings


def _paging(request: Request) -> tuple[int | None, int, bool, bool, bool] | Response:
    """cursor, limit, descending, join, include_failed — or a 400 problem."""
    q = request.query_params
    order = q.get("order", "asc") or "asc"
    if order not in ("asc", "desc"):
        return _respond(400, bad_request_problem("order", "order must be asc or desc"))
    descending = order == "desc"
    raw_limit = q.get("limit", "") or "10"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
        return _respond(400, bad_request_problem("limit", "limit must be between 1 and 200"))
    raw_cursor = q.get("cursor", "")
    cursor: int | None
    if raw_cursor in ("", None):
        cursor = None
    elif raw_cursor == "now":
        cursor = None if descending else INT64_MAX
    elif raw_cursor.isdigit() and int(raw_cursor) <= INT64_MAX:
        cursor = int(raw_cursor)
    else:
        return _respond(400, bad_request_problem("cursor", "cursor must be a paging token"))
    join = q.get("join", "")
    if join not in ("", "transactions"):
        return _respond(400, bad_request_problem("join", "join may only be transactions"))
    include_failed = q.get("include_failed", "false").lower() == "true"
    return cursor, int(raw_limit), descending, join == "transactions", include_failed


def _page_url(base: str, path: str, cursor: str, limit: int, order: str, join: bool) -> str:
    params = {"cursor": cursor, "limit": limit, "order": order}
    if join:
        params["join"] = "transactions"
    return f"{base}{path}?{urlencode(params)}"


def create_fake_horizon_app(
    ledger: FakeLedger,
    faults: FaultInjector | None = None,
    *,
    fault_timeout: float = 30.0,
    close_delay: float = 0.0,
) -> Starlette:
    """The fake Horizon as a Starlette app: Horizon's routes plus the ``/_fake/`` admin API.

    ``fault_timeout`` is how long a ``timeout`` fault holds a real connection before its
    504; ``close_delay`` makes each submission wait that long, like a ledger close.
    """
    faults = faults if faults is not None else FaultInjector()
    settings = _Settings(fault_timeout=fault_timeout, close_delay=close_delay)

    # Handlers never await while touching the ledger, so on one event loop every mutation
    # is atomic without a lock.

    async def root(request: Request) -> Response:
        return _respond(200, ledger.root_json(_base_url(request)))

    async def get_account(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        if not StrKey.is_valid_ed25519_public_key(account_id):
            return _respond(400, bad_request_problem("account_id", "invalid address"))
        account = ledger.account(account_id)
        if account is None:
            return _respond(404, not_found_problem())
        return _respond(200, ledger.account_json(account, _base_url(request)))

    async def list_payments(request: Request) -> Response:
        account_id = request.path_params.get("account_id")
        if account_id is not None and not StrKey.is_valid_ed25519_public_key(account_id):
            return _respond(400, bad_request_problem("account_id", "invalid address"))
        parsed = _paging(request)
        if isinstance(parsed, Response):
            return parsed
        cursor, limit, descending, join, include_failed = parsed
        records = ledger.payments(
            account_id,
            cursor=cursor,
            limit=limit,
            descending=descending,
            include_failed=include_failed,
        )
        base = _base_url(request)
        order = "desc" if descending else "asc"
        raw_cursor = request.query_params.get("cursor", "")
        first = records[0].body["paging_token"] if records else raw_cursor
        last = records[-1].body["paging_token"] if records else raw_cursor
        path = request.url.path
        body = {
            "_links": {
                "self": {"href": _page_url(base, path, raw_cursor, limit, order, join)},
                "next": {"href": _page_url(base, path, last, limit, order, join)},
                "prev": {
                    "href": _page_url(
                        base, path, first, limit, "asc" if descending else "desc", join
                    )
                },
            },
            "_embedded": {"records": [ledger.payment_json(r, base, join) for r in records]},
        }
        return _respond(200, body)

    async def get_transaction(request: Request) -> Response:
        tx_hash = request.path_params["tx_hash"].lower()
        if len(tx_hash) != 64 or any(c not in "0123456789abcdef" for c in tx_hash):
            return _respond(400, bad_request_problem("tx_id", "invalid hash format"))
        record = ledger.applied(tx_hash)
        if record is None:
            return _respond(404, not_found_problem())
        return _respond(200, ledger.transaction_json(record, _base_url(request), as_hash=tx_hash))

    async def submit(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type and content_type not in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            return _respond(
                415,
                _problem(
                    "unsupported_media_type",
                    "Unsupported Media Type",
                    415,
                    "Send the envelope form-encoded, as the field tx.",
                ),
            )
        form = await request.form()
        value = form.get("tx") or request.query_params.get("tx") or ""
        envelope_xdr = value if isinstance(value, str) else ""
        status, body = ledger.submit(envelope_xdr, base_url=_base_url(request))
        if settings.close_delay > 0:
            await asyncio.sleep(settings.close_delay)
        return _respond(status, body)

    async def fee_stats(request: Request) -> Response:
        return _respond(200, ledger.fee_stats_json())

    async def friendbot(request: Request) -> Response:
        addr = request.query_params.get("addr", "")
        if not addr and request.method == "POST":
            form = await request.form()
            value = form.get("addr")
            addr = value if isinstance(value, str) else ""
        if not StrKey.is_valid_ed25519_public_key(addr):
            return _respond(400, bad_request_problem("addr", "addr must be a G... account id"))
        status, body = ledger.friendbot(addr, base_url=_base_url(request))
        return _respond(status, body)

    routes = [
        Route("/", root, methods=["GET"]),
        Route("/accounts/{account_id}", get_account, methods=["GET"]),
        Route("/accounts/{account_id}/payments", list_payments, methods=["GET"]),
        Route("/payments", list_payments, methods=["GET"]),
        Route("/transactions/{tx_hash}", get_transaction, methods=["GET"]),
        Route("/transactions", submit, methods=["POST"]),
        Route("/fee_stats", fee_stats, methods=["GET"]),
        Route("/friendbot", friendbot, methods=["GET", "POST"]),
        *_admin_routes(ledger, faults, settings),
    ]

    async def http_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _respond(404, not_found_problem())
        if exc.status_code == 405:
            return _respond(
                405,
                _problem(
                    "method_not_allowed",
                    "Method Not Allowed",
                    405,
                    "This resource does not support that HTTP method.",
                ),
            )
        return _respond(exc.status_code, status_problem(exc.status_code))

    async def server_error(request: Request, exc: Exception) -> Response:
        return _respond(500, status_problem(500))

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_problem, Exception: server_error},
    )
    app.state.ledger = ledger
    app.state.faults = faults
    app.state.settings = settings
    app.add_middleware(_FaultMiddleware, ledger=ledger, faults=faults, settings=settings)
    return app
