"""The app's edge: stellar.toml, CORS, errors, body limits, schema checks."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.routing import Match, Mount, Route

from gateway import sep1
from gateway.__main__ import main
from gateway.app import SchemaBehind, create_app
from gateway.db.engine import create_engine
from gateway.sep1 import ENDPOINT_KEYS
from tests.conftest import REPO

# Where to look under each published URL for a route of ours.
PROBE = {
    "WEB_AUTH_ENDPOINT": ("", "GET"),
    "KYC_SERVER": ("/customer", "GET"),
    "DIRECT_PAYMENT_SERVER": ("/info", "GET"),
    "AUTH_SERVER": ("", "POST"),
    "FEDERATION_SERVER": ("", "GET"),
    "ANCHOR_QUOTE_SERVER": ("/info", "GET"),
}


async def test_stellar_toml_is_served_as_sep1_requires(gateway):
    response = await gateway.client.get("/.well-known/stellar.toml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["access-control-allow-origin"] == "*"
    assert len(response.content) < 100_000
    doc = tomllib.loads(response.text)
    assert doc["SIGNING_KEY"] == gateway.server_key
    assert doc["NETWORK_PASSPHRASE"] == gateway.settings.network_passphrase
    assert response.content == gateway.app.state.stellar_toml


async def test_stellar_toml_is_rendered_once_at_start(gateway, monkeypatch):
    calls = []
    real = sep1.render

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(sep1, "render", counting)
    app = create_app(gateway.settings, gateway.app.state.deps)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    async with client:
        for _ in range(3):
            assert (await client.get("/.well-known/stellar.toml")).status_code == 200
    assert len(calls) == 1


async def test_every_endpoint_in_stellar_toml_resolves_to_a_mounted_route(gateway):
    doc = tomllib.loads((await gateway.client.get("/.well-known/stellar.toml")).text)
    published = {k: v for k, v in doc.items() if k in ENDPOINT_KEYS}
    assert "WEB_AUTH_ENDPOINT" in published
    base = gateway.settings.base_url
    for key, url in published.items():
        assert url.startswith(base), key
        suffix, method = PROBE[key]
        path = urlsplit(url + suffix).path
        assert served(gateway.app.routes, method, path), f"{key}={url} is not served"


def served(routes, method: str, path: str) -> bool:
    """Whether some route in the tree (mounts included) takes ``method path``."""
    for route in routes:
        if isinstance(route, Mount) and path.startswith(route.path + "/"):
            if served(route.routes, method, path[len(route.path) :]):
                return True
        elif isinstance(route, Route):
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            if route.matches(scope)[0] == Match.FULL:
                return True
    return False


async def test_unknown_paths_and_methods_answer_json(gateway):
    missing = await gateway.client.get("/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "Not found"}
    assert missing.headers["access-control-allow-origin"] == "*"
    wrong = await gateway.client.delete("/auth")
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method not allowed"}


async def test_cors_preflight_is_answered_everywhere(gateway):
    response = await gateway.client.options(
        "/auth",
        headers={
            "Origin": "https://wallet.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_request_ids_are_echoed_or_made(gateway):
    given = await gateway.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await gateway.client.get("/health", headers={"X-Request-ID": "bad id\n"})
    assert made.headers["x-request-id"] != "bad id\n" and len(made.headers["x-request-id"]) == 16


async def test_oversized_bodies_answer_413_without_being_read(gateway):
    limit = gateway.settings.server.max_body_bytes
    declared = await gateway.client.post(
        "/auth", content=b"x" * (limit + 1), headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json() == {"error": "Request body is too large"}

    async def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    streamed = await gateway.client.post(
        "/auth", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_internal_errors_answer_a_generic_500_without_details(gateway, monkeypatch, caplog):
    from gateway.sep10 import service

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "build_challenge_transaction", boom)
    response = await gateway.wallet().get_challenge()
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert "secret internal detail" not in response.text
    assert response.headers["access-control-allow-origin"] == "*"


async def test_deeply_nested_json_answers_400(gateway):
    body = b'{"a":' * 40_000 + b"1" + b"}" * 40_000  # within the 256 KB JSON limit
    response = await gateway.client.post(
        "/auth", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    too_big = b'{"transaction": "' + b"x" * 300_000 + b'"}'
    response = await gateway.client.post(
        "/auth", content=too_big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    nested = b"[" * 50_000 + b"]" * 50_000
    response = await gateway.client.post(
        "/auth", content=nested, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_oversized_streamed_form_answers_413(gateway):
    limit = gateway.settings.server.max_body_bytes

    async def chunks():
        yield b"transaction="
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    response = await gateway.client.post(
        "/auth", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


async def test_health(gateway):
    response = await gateway.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "payment_watcher": {"lag_seconds": None, "last_payment_at": None},
    }


class TestHealthWithoutSep31:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_SEPS_SEP31": "false"}

    async def test_health_is_only_the_process(self, gateway):
        assert (await gateway.client.get("/health")).json() == {"status": "ok"}
        assert "gateway_transfers" not in (await gateway.client.get("/metrics")).text


async def test_metrics_are_prometheus_text(gateway):
    response = await gateway.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE gateway_payment_watcher_lag_seconds gauge" in text
    assert (
        f'gateway_payment_watcher_lag_seconds{{account="{gateway.settings.sep31.receiving_account}"}} -1'
        in text
    )
    assert "gateway_incoming_payments_unmatched 0" in text
    assert "# TYPE gateway_alerts_open gauge" in text
    assert 'gateway_alerts_open{kind="low_balance"' not in text
    async with gateway.app.state.deps.uow() as uow:
        await uow.alerts.sync("low_balance", {"GWUSD": "low"}, {"GWUSD"}, datetime.now(UTC))
        await uow.commit()
    text = (await gateway.client.get("/metrics")).text
    assert 'gateway_alerts_open{kind="low_balance",subject="GWUSD"} 1' in text


async def test_server_refuses_to_start_on_a_schema_that_is_behind(make_settings, tmp_path):
    from gateway.deps import Deps

    settings = make_settings()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    deps = Deps(engine=engine, horizon=None, tomls=None, closers=[engine.dispose])  # type: ignore[arg-type]
    app = create_app(settings, deps)
    with pytest.raises(SchemaBehind, match="run `gateway db upgrade`"):
        async with app.router.lifespan_context(app):
            pass
    assert deps.closers == []  # closed on the way out


def test_serve_command_refuses_a_schema_that_is_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    code = main(["serve", "--config", str(REPO / "config/testnet.toml")])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: database.url: schema is at nothing, this code needs" in err


def test_config_check_command(monkeypatch, capsys):
    assert main(["config", "check", "--config", str(REPO / "config/testnet.toml")]) == 0
    assert "config OK: network=testnet" in capsys.readouterr().out
    monkeypatch.setenv("GATEWAY_BASE_URL", "ftp://x")
    assert main(["config", "check", "--config", str(REPO / "config/testnet.toml")]) == 2
    assert "error: base_url: must be an absolute http(s) URL" in capsys.readouterr().err


def test_config_check_on_mainnet_names_each_missing_secret(capsys):
    assert main(["config", "check", "--config", str(REPO / "config/mainnet.toml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: signing_secret: mainnet needs GATEWAY_SIGNING_SECRET (an S... secret seed)",
        "error: jwt_secret: mainnet needs GATEWAY_JWT_SECRET (at least 32 bytes)",
        "error: kyc.key: mainnet needs GATEWAY_KYC_KEY (32 random bytes, base64)",
        "error: kyc.provider_secret: the KYC provider needs GATEWAY_KYC_PROVIDER_SECRET",
    ]


def test_keys_generate_prints_a_fresh_keypair(capsys):
    from stellar_sdk import Keypair

    assert main(["keys", "generate"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert Keypair.from_secret(lines["GATEWAY_SIGNING_SECRET"]).public_key == lines["SIGNING_KEY"]


async def test_horizon_check_command_reports_an_unreachable_horizon(monkeypatch, capsys):
    import asyncio

    monkeypatch.setenv("GATEWAY_HORIZON_URL", "http://127.0.0.1:9")
    code = await asyncio.to_thread(
        main, ["horizon", "check", "--config", str(REPO / "config/testnet.toml")]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "error: horizon.url: Horizon at 127.0.0.1:9 does not answer now" in err
