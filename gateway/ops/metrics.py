"""Prometheus text exposition (format 0.0.4), and the HTTP request metrics: a pure-ASGI
middleware that counts and times every request by its route's path template and status.

Request metrics are kept in this process (each worker answers for itself); labels are route
templates such as ``/sep31/transactions/{transaction_id}``, never raw paths, so the number
of series stays bounded.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway.edge import ASGIApp, Message, Receive, Scope, Send

Number = int | float | Decimal
Labels = Mapping[str, str]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; the request handlers here mostly answer within milliseconds, a few call out.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the route label of a path no route takes
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Number) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return repr(float(value))


class PromText:
    """Builds one exposition: each metric family with its HELP and TYPE, then its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def _head(self, name: str, kind: str, doc: str) -> None:
        self._lines.append(f"# HELP {name} {doc}")
        self._lines.append(f"# TYPE {name} {kind}")

    def _sample(self, name: str, labels: Labels, value: Number) -> None:
        if labels:
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            self._lines.append(f"{name}{{{text}}} {_number(value)}")
        else:
            self._lines.append(f"{name} {_number(value)}")

    def metric(
        self, name: str, kind: str, doc: str, samples: Iterable[tuple[Labels, Number]]
    ) -> None:
        """A gauge or counter family (counters' names end in ``_total``)."""
        self._head(name, kind, doc)
        for labels, value in samples:
            self._sample(name, labels, value)

    def histogram(
        self,
        name: str,
        doc: str,
        buckets: tuple[float, ...],
        series: Iterable[tuple[Labels, Histogram]],
    ) -> None:
        self._head(name, "histogram", doc)
        for labels, h in series:
            cumulative = 0
            for bound, count in zip((*buckets, None), h.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound is None else repr(bound)
                self._sample(f"{name}_bucket", {**labels, "le": le}, cumulative)
            self._sample(f"{name}_sum", labels, h.total)
            self._sample(f"{name}_count", labels, h.count)

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"


@dataclass
class Histogram:
    """Observations per bucket (not cumulative; the last one is above every bound)."""

    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class HttpMetrics:
    """Requests by (method, route, status) and their durations by (route, status)."""

    buckets: tuple[float, ...] = DURATION_BUCKETS
    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    durations: dict[tuple[str, str], Histogram] = field(default_factory=dict)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        key = (method, route, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        h = self.durations.get((route, code))
        if h is None:
            h = self.durations[(route, code)] = Histogram([0] * (len(self.buckets) + 1))
        h.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        h.total += seconds
        h.count += 1

    def render(self, out: PromText) -> None:
        out.metric(
            "gateway_http_requests_total",
            "counter",
            "HTTP requests answered by this process since it started, by method, route "
            "template and status.",
            (
                ({"method": m, "route": r, "status": s}, n)
                for (m, r, s), n in sorted(self.requests.items())
            ),
        )
        out.histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer HTTP requests in this process since it started, by route template "
            "and status.",
            self.buckets,
            (({"route": r, "status": s}, h) for (r, s), h in sorted(self.durations.items())),
        )


def route_templates(routes: Iterable[Any], prefix: str = "") -> dict[int, str]:
    """The full path template of every route in a Starlette route tree, by the route's id:
    a mount's routes carry its path; a mount itself (a request it took but none of its
    routes did, or its middleware refused) is ``<mount>/{path}``."""
    out: dict[int, str] = {}
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        inner = getattr(route, "routes", None)
        if inner is not None and not hasattr(route, "endpoint"):
            out[id(route)] = f"{prefix}{path}/{{path}}"
            out.update(route_templates(inner, prefix + path))
        else:
            out[id(route)] = prefix + path
    return out


class RequestMetrics:
    """Counts and times every HTTP request into ``metrics``. Placed outside the edge
    middleware, so its own answers (preflights, 413, the last-resort 500) count too."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics):
        self.app = app
        self.metrics = metrics
        self._templates: dict[int, str] | None = None

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        if self._templates is None:
            app = scope.get("app")
            self._templates = route_templates(getattr(app, "routes", ()))
        return self._templates.get(id(route)) or UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when nothing else was sent

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            method = scope.get("method", "")
            self.metrics.observe(
                method if method in _METHODS else "other",
                self._route(scope),
                status,
                time.perf_counter() - started,
            )
