"""`GET /health` (the process answers, plus the payment watcher's lag), `GET /ready` (this
instance can work: see readiness.py) and `GET /metrics` (Prometheus text). None shows
personal data; /health and /metrics read a handful of counters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.ops.metrics import CONTENT_TYPE, HttpMetrics, PromText
from gateway.ops.readiness import Readiness

if TYPE_CHECKING:
    from gateway.app import Services
    from gateway.deps import Deps
    from gateway.sep10 import WebAuthService
    from gateway.sep31.payment_watcher import WatcherLag
    from gateway.settings import Settings

log = logging.getLogger("gateway.ops")

BALANCE_CACHE_SECONDS = 15.0


class CachedBalances:
    """The distribution account's balances for /metrics, read from Horizon at most every
    ``BALANCE_CACHE_SECONDS``. A read that fails or takes longer than ``timeout`` is
    remembered as a failure (None) just as long, so a scrape never waits on Horizon twice."""

    def __init__(
        self,
        read: Callable[[], Awaitable[dict[str, Any]]],
        *,
        clock: Callable[[], float],
        timeout: float,
    ):
        self._read = read
        self._clock = clock
        self._timeout = timeout
        self._at: float | None = None
        self._value: dict[str, Any] | None = None

    async def get(self) -> dict[str, Any] | None:
        now = self._clock()
        if self._at is not None and now - self._at < BALANCE_CACHE_SECONDS:
            return self._value
        try:
            async with asyncio.timeout(self._timeout):
                self._value = await self._read()
        except Exception as exc:
            log.warning("metrics: distribution balances unavailable: %s", type(exc).__name__)
            self._value = None
        self._at = now
        return self._value


def routes(
    settings: Settings,
    deps: Deps,
    services: Services,
    *,
    web_auth: WebAuthService | None = None,
    http: HttpMetrics | None = None,
) -> list[Route]:
    watching = settings.seps.sep31
    readiness = Readiness(
        settings,
        engine=deps.engine,
        uow=deps.uow,
        horizon=deps.horizon,
        watcher=services.watcher if watching else None,
        clock=deps.clock,
    )
    balances = (
        CachedBalances(
            services.disbursements.accounts_status,
            clock=deps.clock,
            timeout=settings.observability.check_timeout_seconds,
        )
        if settings.disbursement.distribution_account
        else None
    )

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

    async def ready(_request: Request) -> Response:
        checks = await readiness.check()
        is_ready = all(c.ok for c in checks.values())
        return JSONResponse(
            {
                "status": "ready" if is_ready else "not ready",
                "checks": {name: c.body() for name, c in checks.items()},
            },
            status_code=200 if is_ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    async def read_counts() -> Counts:
        async with deps.uow(read_only=True) as uow:
            outbox = await uow.outbox.depth_by_kind()
            alerts = await uow.alerts.open()
            payouts = await uow.payouts.count_by_status()
            decisions = await uow.compliance.count_by_outcome() if settings.seps.sep3 else None
            transfers = await uow.transfers.count_by_status() if watching else None
            unmatched = await uow.payments.count_unmatched() if watching else 0
        lag = await services.watcher.lag() if watching else None
        return Counts(outbox, alerts, payouts, decisions, transfers, unmatched, lag)

    async def metrics(_request: Request) -> Response:
        out = PromText()
        if http is not None:
            http.render(out)
        if web_auth is not None:
            out.metric(
                "gateway_sep10_tokens_issued_total",
                "counter",
                "SEP-10 session tokens issued by this process since it started.",
                [({}, web_auth.tokens_issued)],
            )
        try:
            counts: Counts | None = await read_counts()
        except Exception as exc:  # the in-process metrics are still worth a scrape
            log.warning("metrics: the database could not be read: %s", type(exc).__name__)
            counts = None
        out.metric(
            "gateway_database_up",
            "gauge",
            "1 when this scrape read the database, 0 when it could not (then the metrics "
            "read from it are left out).",
            [({}, 0 if counts is None else 1)],
        )
        if counts is not None:
            _database_metrics(out, counts)
        if balances is not None:
            await _distribution_metrics(out, balances)
        return PlainTextResponse(out.render(), media_type=CONTENT_TYPE)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


@dataclass(frozen=True)
class Counts:
    """What one scrape reads from the database (None: that SEP is off)."""

    outbox: dict[tuple[str, str], int]
    alerts: list[dict[str, Any]]
    payouts: dict[str, int]
    decisions: dict[str, int] | None
    transfers: dict[str, int] | None
    unmatched: int
    lag: WatcherLag | None


def _database_metrics(out: PromText, c: Counts) -> None:
    out.metric(
        "gateway_outbox_messages",
        "gauge",
        "Outbox messages (callbacks, KYC reviews, webhooks) by kind and status; status dead: "
        "dead letters waiting for an operator (gateway outbox redeliver).",
        (({"kind": k, "status": s}, n) for (k, s), n in sorted(c.outbox.items())),
    )
    out.metric(
        "gateway_alerts_open",
        "gauge",
        "Alerts raised for operators and not cleared (low_balance: an asset's available "
        "amount in the distribution account is below disbursement.low_balance).",
        (({"kind": a["kind"], "subject": a["subject"]}, 1) for a in c.alerts),
    )
    out.metric(
        "gateway_payouts",
        "gauge",
        "Payouts (disbursement payments, SEP-31 payouts and refunds, SEP-3 payments) by status.",
        (({"status": s}, n) for s, n in sorted(c.payouts.items())),
    )
    if c.decisions is not None:
        out.metric(
            "gateway_compliance_decisions",
            "gauge",
            "SEP-3 compliance requests received, by the decision on the payment "
            "(ok, denied, pending).",
            (({"outcome": s}, n) for s, n in sorted(c.decisions.items())),
        )
    if c.lag is not None:
        out.metric(
            "gateway_payment_watcher_lag_seconds",
            "gauge",
            "Seconds since the payment watcher last had nothing left to read (-1: never).",
            [({"account": c.lag.account}, -1 if c.lag.seconds is None else c.lag.seconds)],
        )
    if c.transfers is not None:
        out.metric(
            "gateway_transfers",
            "gauge",
            "SEP-31 transfers by status.",
            (({"status": s}, n) for s, n in sorted(c.transfers.items())),
        )
        out.metric(
            "gateway_incoming_payments_unmatched",
            "gauge",
            "Incoming payments that matched no transfer as they should (for operators).",
            [({}, c.unmatched)],
        )


async def _distribution_metrics(out: PromText, balances: CachedBalances) -> None:
    status = await balances.get()
    out.metric(
        "gateway_distribution_balance_up",
        "gauge",
        f"1 when the distribution account's balances were read from Horizon (at most "
        f"{BALANCE_CACHE_SECONDS:g} s ago), 0 when that read failed.",
        [({}, 0 if status is None else 1)],
    )
    if status is None:
        return
    assets = sorted(status["assets"].items())
    out.metric(
        "gateway_distribution_balance",
        "gauge",
        "Balance of each asset in the distribution account.",
        (({"asset": code}, Decimal(a["balance"])) for code, a in assets),
    )
    out.metric(
        "gateway_distribution_available",
        "gauge",
        "What is available of each asset in the distribution account: its balance less "
        "what started disbursements and queued payouts have promised.",
        (({"asset": code}, Decimal(a["available"])) for code, a in assets),
    )
