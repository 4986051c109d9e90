"""The ``/_fake/`` admin API: JSON endpoints to seed, tune, inspect and reset the fake and to
manage its fault rules."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from stellar_sdk import Keypair

from gateway.sandbox.horizon.amounts import format_amount, to_stroops
from gateway.sandbox.horizon.entries import JSON
from gateway.sandbox.horizon.faults import FaultInjector
from gateway.sandbox.horizon.ledger import FakeLedger
from gateway.sandbox.horizon.web import _base_url, _Settings


def _admin_routes(ledger: FakeLedger, faults: FaultInjector, settings: _Settings) -> list[Route]:
    """JSON endpoints under ``/_fake/`` to seed, tune, inspect and reset the fake."""

    async def read_json(request: Request) -> JSON:
        raw = await request.body()
        if not raw:
            return {}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    def admin(
        handler: Callable[[Request, JSON], Response],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return handler(request, await read_json(request))
            except KeyError as exc:
                return JSONResponse({"error": str(exc.args[0]) if exc.args else "not found"}, 404)
            except (ValueError, TypeError, InvalidOperation) as exc:
                return JSONResponse({"error": str(exc)}, 400)

        return endpoint

    def required(data: JSON, name: str) -> Any:
        if name not in data:
            raise ValueError(f"{name} is required")
        return data[name]

    def seed_account(request: Request, data: JSON) -> Response:
        secret = None
        account_id = data.get("account_id")
        if account_id is None:
            keypair = Keypair.random()
            account_id, secret = keypair.public_key, keypair.secret
        sequence = data.get("sequence")
        ledger.create_account(
            account_id,
            str(data.get("xlm", "10000")),
            sequence=None if sequence is None else int(sequence),
        )
        for line in data.get("trustlines", ()):
            ledger.add_trustline(
                account_id,
                required(line, "asset_code"),
                required(line, "asset_issuer"),
                limit=None if line.get("limit") is None else str(line["limit"]),
                balance=str(line.get("balance", "0")),
                authorized=bool(line.get("authorized", True)),
            )
        for signer in data.get("signers", ()):
            ledger.add_signer(account_id, required(signer, "key"), int(required(signer, "weight")))
        thresholds = data.get("thresholds") or {}
        ledger.set_thresholds(
            account_id, thresholds.get("low"), thresholds.get("med"), thresholds.get("high")
        )
        if data.get("master_weight") is not None:
            ledger.set_master_weight(account_id, int(data["master_weight"]))
        if data.get("flags") is not None:
            ledger.set_flags(account_id, int(data["flags"]))
        account = ledger.account(account_id)
        assert account is not None
        body = ledger.account_json(account, _base_url(request))
        if secret is not None:
            body["secret"] = secret
        return JSONResponse(body, 201)

    def seed_trustline(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        limit = data.get("limit")
        ledger.add_trustline(
            account_id,
            required(data, "asset_code"),
            required(data, "asset_issuer"),
            limit=None if limit is None else str(limit),
            balance=str(data.get("balance", "0")),
            authorized=bool(data.get("authorized", True)),
        )
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id], 201)

    def seed_balance(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        ledger.set_balance(
            account_id,
            str(required(data, "amount")),
            data.get("asset_code"),
            data.get("asset_issuer"),
        )
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id])

    def seed_signer(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        ledger.add_signer(account_id, required(data, "key"), int(required(data, "weight")))
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id])

    def seed_thresholds(request: Request, data: JSON) -> Response:
        account_id = required(data, "account_id")
        ledger.set_thresholds(account_id, data.get("low"), data.get("med"), data.get("high"))
        if data.get("master_weight") is not None:
            ledger.set_master_weight(account_id, int(data["master_weight"]))
        return JSONResponse(ledger.snapshot(transactions=False)["accounts"][account_id])

    def config_json() -> JSON:
        return {
            "network_passphrase": ledger.network_passphrase,
            "base_fee": ledger.base_fee,
            "min_base_fee": ledger.min_base_fee,
            "base_reserve": format_amount(ledger.base_reserve),
            "fault_timeout": settings.fault_timeout,
            "close_delay": settings.close_delay,
        }

    def config(request: Request, data: JSON) -> Response:
        if request.method == "POST":
            if data.get("base_fee") is not None:
                ledger.set_base_fee(int(data["base_fee"]))
            if data.get("base_reserve") is not None:
                ledger.base_reserve = to_stroops(str(data["base_reserve"]))
            if data.get("fault_timeout") is not None:
                settings.fault_timeout = float(data["fault_timeout"])
            if data.get("close_delay") is not None:
                settings.close_delay = float(data["close_delay"])
            if "fault_seed" in data:
                faults.reseed(None if data["fault_seed"] is None else int(data["fault_seed"]))
        return JSONResponse(config_json())

    def fault_rules(request: Request, data: JSON) -> Response:
        if request.method == "POST":
            rule = faults.add(
                str(required(data, "mode")),
                method=str(data.get("method", "*")),
                path=str(data.get("path", "/")),
                status=data.get("status"),
                count=data.get("count"),
                probability=data.get("probability"),
                retry_after=data.get("retry_after"),
                delay=data.get("delay"),
            )
            return JSONResponse(rule.to_json(), 201)
        if request.method == "DELETE":
            faults.clear()
        return JSONResponse({"rules": [r.to_json() for r in faults.rules]})

    def fault_rule(request: Request, data: JSON) -> Response:
        rule_id = request.path_params["rule_id"]
        if not faults.remove(rule_id):
            raise KeyError(f"no fault rule {rule_id}")
        return JSONResponse({"rules": [r.to_json() for r in faults.rules]})

    def snapshot(request: Request, data: JSON) -> Response:
        include = request.query_params.get("transactions", "true").lower() != "false"
        return JSONResponse(ledger.snapshot(transactions=include))

    def reset(request: Request, data: JSON) -> Response:
        ledger.reset()
        faults.clear()
        return JSONResponse(ledger.snapshot())

    return [
        Route("/_fake/accounts", admin(seed_account), methods=["POST"]),
        Route("/_fake/trustlines", admin(seed_trustline), methods=["POST"]),
        Route("/_fake/balances", admin(seed_balance), methods=["POST"]),
        Route("/_fake/signers", admin(seed_signer), methods=["POST"]),
        Route("/_fake/thresholds", admin(seed_thresholds), methods=["POST"]),
        Route("/_fake/config", admin(config), methods=["GET", "POST"]),
        Route("/_fake/faults", admin(fault_rules), methods=["GET", "POST", "DELETE"]),
        Route("/_fake/faults/{rule_id:int}", admin(fault_rule), methods=["DELETE"]),
        Route("/_fake/snapshot", admin(snapshot), methods=["GET"]),
        Route("/_fake/reset", admin(reset), methods=["POST"]),
    ]
