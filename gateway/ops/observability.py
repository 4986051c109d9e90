"""`GET /health` (the process answers, plus the payment watcher's lag) and `GET /metrics`
(Prometheus text). Neither shows personal data; both read a handful of counters."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from gateway.app import Services
    from gateway.deps import Deps
    from gateway.settings import Settings

log = logging.getLogger("gateway.ops")


def routes(settings: Settings, deps: Deps, services: Services) -> list[Route]:
    watching = settings.seps.sep31

    async def health(_request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok"}
        if watching:
            try:
                lag = await services.watcher.lag()
            except Exception as exc:  # the process is alive even when the database is not
                log.warning("health: watcher lag unavailable: %s", type(exc).__name__)
                body["payment_watcher"] = {"lag_seconds": None, "error": "unavailable"}
            else:
                body["payment_watcher"] = {
                    "lag_seconds": None if lag.seconds is None else round(lag.seconds, 1),
                    "last_payment_at": lag.last_payment_at.isoformat()
                    if lag.last_payment_at
                    else None,
                }
        return JSONResponse(body)

    async def metrics(_request: Request) -> Response:
        lines: list[str] = []

        def metric(name: str, kind: str, doc: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {doc}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        async with deps.uow(read_only=True) as uow:
            outbox = await uow.outbox.depth()
            alerts = await uow.alerts.open()
            transfers = await uow.transfers.count_by_status() if watching else {}
            unmatched = await uow.payments.count_unmatched() if watching else 0
        metric(
            "gateway_outbox_messages",
            "gauge",
            "Outbox messages (callbacks, reviews) by status.",
            [(f'{{status="{s}"}}', n) for s, n in sorted(outbox.items())],
        )
        metric(
            "gateway_alerts_open",
            "gauge",
            "Alerts raised for operators and not cleared (low_balance: an asset's available "
            "amount in the distribution account is below disbursement.low_balance).",
            [(f'{{kind="{a["kind"]}",subject="{a["subject"]}"}}', 1) for a in alerts],
        )
        if watching:
            lag = await services.watcher.lag()
            metric(
                "gateway_payment_watcher_lag_seconds",
                "gauge",
                "Seconds since the payment watcher last had nothing left to read (-1: never).",
                [(f'{{account="{lag.account}"}}', -1 if lag.seconds is None else lag.seconds)],
            )
            metric(
                "gateway_transfers",
                "gauge",
                "SEP-31 transfers by status.",
                [(f'{{status="{s}"}}', n) for s, n in sorted(transfers.items())],
            )
            metric(
                "gateway_incoming_payments_unmatched",
                "gauge",
                "Incoming payments that matched no transfer as they should (for operators).",
                [("", unmatched)],
            )
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
