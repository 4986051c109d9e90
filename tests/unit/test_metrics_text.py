"""Prometheus text and the request metrics (gateway/ops/metrics.py), without a database:
escaping, number formats, cumulative histogram buckets, route templates through mounts,
and the middleware's labels."""

from __future__ import annotations

from decimal import Decimal

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from gateway.ops.metrics import HttpMetrics, PromText, RequestMetrics, route_templates


def test_label_values_are_escaped_and_numbers_keep_their_precision():
    out = PromText()
    out.metric(
        "gateway_x",
        "gauge",
        "A test gauge.",
        [
            ({"subject": 'a "quoted" back\\slash\nnewline'}, 1),
            ({"subject": "big"}, 12_345_678_901),
            ({"subject": "money"}, Decimal("250.50")),
            ({"subject": "float"}, 0.25),
        ],
    )
    out.metric("gateway_y", "counter", "No labels.", [({}, 0)])
    assert out.render().splitlines() == [
        "# HELP gateway_x A test gauge.",
        "# TYPE gateway_x gauge",
        'gateway_x{subject="a \\"quoted\\" back\\\\slash\\nnewline"} 1',
        'gateway_x{subject="big"} 12345678901',
        'gateway_x{subject="money"} 250.50',
        'gateway_x{subject="float"} 0.25',
        "# HELP gateway_y No labels.",
        "# TYPE gateway_y counter",
        "gateway_y 0",
    ]


def test_durations_fill_cumulative_buckets_with_sum_and_count():
    metrics = HttpMetrics(buckets=(0.01, 0.1, 1.0))
    for seconds in (0.003, 0.01, 0.05, 7.0):
        metrics.observe("GET", "/auth", 200, seconds)
    metrics.observe("POST", "/auth", 400, 0.002)
    out = PromText()
    metrics.render(out)
    lines = out.render().splitlines()
    assert 'gateway_http_requests_total{method="GET",route="/auth",status="200"} 4' in lines
    assert 'gateway_http_requests_total{method="POST",route="/auth",status="400"} 1' in lines
    name = "gateway_http_request_duration_seconds"
    buckets = [
        line for line in lines if line.startswith(f'{name}_bucket{{route="/auth",status="200"')
    ]
    assert buckets == [
        f'{name}_bucket{{route="/auth",status="200",le="0.01"}} 2',  # 0.01 itself is "le"
        f'{name}_bucket{{route="/auth",status="200",le="0.1"}} 3',
        f'{name}_bucket{{route="/auth",status="200",le="1.0"}} 3',
        f'{name}_bucket{{route="/auth",status="200",le="+Inf"}} 4',
    ]
    assert f'{name}_count{{route="/auth",status="200"}} 4' in lines
    assert f'{name}_sum{{route="/auth",status="200"}} {0.003 + 0.01 + 0.05 + 7.0!r}' in lines


async def _ok(_request: Request) -> Response:
    return PlainTextResponse("ok")


def test_route_templates_carry_their_mounts_paths():
    inner = Route("/d/{id}", _ok)
    routes = [
        Route("/health", _ok),
        Mount("/a", routes=[Route("/b/{id}", _ok), Mount("/c", routes=[inner])]),
    ]
    templates = set(route_templates(routes).values())
    assert templates == {"/health", "/a/{path}", "/a/b/{id}", "/a/c/{path}", "/a/c/d/{id}"}
    assert route_templates(routes)[id(inner)] == "/a/c/d/{id}"


async def test_requests_are_labelled_by_template_with_odd_methods_folded():
    metrics = HttpMetrics()
    app = Starlette(
        routes=[Mount("/items", routes=[Route("/{item_id}", _ok, methods=["GET"])])],
        middleware=[Middleware(RequestMetrics, metrics=metrics)],
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    async with client:
        for item in ("1", "2", "three"):
            assert (await client.get(f"/items/{item}")).status_code == 200
        assert (await client.request("BREW", "/items/1")).status_code == 405
        assert (await client.get("/elsewhere/9")).status_code == 404
    assert metrics.requests == {
        ("GET", "/items/{item_id}", "200"): 3,
        ("other", "/items/{item_id}", "405"): 1,
        ("GET", "unmatched", "404"): 1,
    }
    assert metrics.durations[("/items/{item_id}", "200")].count == 3
