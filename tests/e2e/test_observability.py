"""Health, readiness and metrics through the app: /ready with each check failing for its
reason, and /metrics with requests by route template, SEP-10 tokens, payouts, compliance
decisions, outbox dead letters and the distribution account's balances. The checks and
metrics that read the database run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from stellar_sdk import Keypair

from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.db.tables import outbox
from gateway.payouts import PayoutInstruction
from gateway.sep31.model import Cursor
from tests.fakes.sep3 import compliance_row
from tests.fakes.sep12 import ManualClock, running_gateway
from tests.fakes.sep31 import partner_for

pytestmark = pytest.mark.asyncio

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
RECEIVING = "GBJ53BGBBOXH6IGA7RFD6PIVKX2M7JYQIWSQ4BG4BWXTX6NP3RFT3JSF"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def gateway(make_settings, engine, clock, gateway_env) -> AsyncIterator[Any]:
    """The app on both databases, with a clock the test moves."""
    async with running_gateway(make_settings(**gateway_env), engine, clock=clock) as gw:
        yield gw


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (labels in any order), or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        found = re.fullmatch(r"([a-z0-9_]+)(?:\{(.*)\})? (\S+)", line)
        assert found, line
        if found[1] != name:
            continue
        have = dict(re.findall(r'([a-z0-9_]+)="((?:[^"\\]|\\.)*)"', found[2] or ""))
        if have == labels:
            return float(found[3])
    return None


async def ready(gw) -> tuple[int, dict[str, Any]]:
    response = await gw.client.get("/ready")
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


async def metrics(gw) -> str:
    response = await gw.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def add_outbox_message(gw, *, kind: str, due: datetime, dead: bool = False) -> str:
    message_id = str(uuid.uuid4())
    async with gw.app.state.deps.uow() as uow:
        await uow.outbox.add(message_id, kind, "https://wallet.test/hook", b"{}", "s-1", due)
        if dead:
            await uow.connection.execute(
                update(outbox).where(outbox.c.id == message_id).values(status="dead")
            )
        await uow.commit()
    return message_id


# -- /health and /ready ----------------------------------------------------------------------


async def test_ready_when_every_check_passes(gateway):
    status, body = await ready(gateway)
    assert status == 200
    assert body["status"] == "ready"
    checks = body["checks"]
    assert list(checks) == ["database", "schema", "horizon", "payment_watcher", "outbox"]
    assert all(check["ok"] is True for check in checks.values())
    assert isinstance(checks["horizon"]["latest_ledger"], int)
    assert checks["payment_watcher"] == {"ok": True, "lag_seconds": None}
    assert checks["outbox"] == {"ok": True, "overdue": 0, "dead_letters": 0}
    # /health stays the liveness probe: it answers without asking Horizon.
    gateway.horizon_transport.faults.add("timeout")
    assert (await gateway.client.get("/health")).status_code == 200


async def test_not_ready_while_horizon_does_not_answer(gateway):
    rule = gateway.horizon_transport.faults.add("status", method="GET", path="/", status=503)
    status, body = await ready(gateway)
    assert status == 503 and body["status"] == "not ready"
    assert body["checks"]["horizon"] == {"ok": False, "reason": "Horizon does not answer"}
    assert body["checks"]["database"] == {"ok": True}
    gateway.horizon_transport.faults.remove(rule.id)
    gateway.horizon_transport.faults.add("timeout", method="GET", path="/")
    status, body = await ready(gateway)
    assert status == 503
    assert body["checks"]["horizon"] == {"ok": False, "reason": "Horizon does not answer"}
    assert "horizon.test" not in str(body)  # no host, no internal error text
    gateway.horizon_transport.faults.clear()
    assert (await ready(gateway))[0] == 200


class TestReadyWithAShortTimeout:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_OBSERVABILITY_CHECK_TIMEOUT_SECONDS": "0.1"}

    async def test_a_slow_horizon_is_not_waited_for(self, gateway, monkeypatch):
        async def slow() -> None:
            await asyncio.sleep(30)

        monkeypatch.setattr(gateway.app.state.deps.horizon, "ledger_state", slow)
        started = time.monotonic()
        status, body = await ready(gateway)
        assert time.monotonic() - started < 5
        assert status == 503
        assert body["checks"]["horizon"] == {"ok": False, "reason": "no answer within 0.1 s"}
        assert body["checks"]["database"] == {"ok": True}


async def test_not_ready_when_horizon_serves_another_network(gateway, monkeypatch):
    monkeypatch.setattr(
        gateway.ledger, "network_passphrase", "Public Global Stellar Network ; September 2015"
    )
    status, body = await ready(gateway)
    assert status == 503
    assert body["checks"]["horizon"] == {
        "ok": False,
        "reason": "Horizon serves another network than network_passphrase",
    }


async def test_not_ready_when_an_outbox_message_is_overdue_but_dead_letters_are_only_counted(
    gateway, clock
):
    limit = gateway.settings.observability.outbox_max_overdue_seconds
    now = datetime.fromtimestamp(clock(), UTC)
    await add_outbox_message(
        gateway, kind="sep12_callback", due=now - timedelta(hours=5), dead=True
    )
    await add_outbox_message(
        gateway, kind="sep12_callback", due=now - timedelta(seconds=limit - 60)
    )
    status, body = await ready(gateway)
    assert status == 200
    assert body["checks"]["outbox"] == {"ok": True, "overdue": 0, "dead_letters": 1}

    clock.advance(120)  # the pending message is now due for longer than the limit
    status, body = await ready(gateway)
    assert status == 503
    assert body["checks"]["outbox"] == {
        "ok": False,
        "reason": f"1 message(s) due for more than {limit} s are not delivered "
        "(is a delivery worker running?)",
        "overdue": 1,
        "dead_letters": 1,
    }


async def test_not_ready_when_the_payment_watcher_lags(gateway, clock):
    limit = gateway.settings.observability.watcher_max_lag_seconds
    clock.advance(limit + 1)  # it has never caught up since the process started
    status, body = await ready(gateway)
    assert status == 503
    assert body["checks"]["payment_watcher"] == {
        "ok": False,
        "reason": f"the payment watcher has not caught up once in the {limit + 1} s since "
        "this process started",
        "lag_seconds": None,
    }

    now = datetime.fromtimestamp(clock(), UTC)
    async with gateway.app.state.deps.uow() as uow:
        await uow.payments.cursor(RECEIVING, lock=True)  # as the watcher does
        cursor = Cursor(cursor="1", last_payment_at=None, caught_up_at=now - timedelta(seconds=5))
        await uow.payments.save_cursor(RECEIVING, cursor, now)
        await uow.commit()
    status, body = await ready(gateway)
    assert status == 200
    assert body["checks"]["payment_watcher"] == {"ok": True, "lag_seconds": 5.0}

    clock.advance(limit)
    status, body = await ready(gateway)
    assert status == 503
    assert body["checks"]["payment_watcher"]["reason"] == (
        f"the payment watcher last caught up {limit + 5} s ago (limit {limit} s)"
    )


class TestReadyWithoutSep31:
    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_SEPS_SEP31": "false"}

    async def test_the_payment_watcher_is_not_checked(self, gateway):
        gateway.horizon_transport.faults.add("timeout")
        status, body = await ready(gateway)
        assert "payment_watcher" not in body["checks"]
        assert status == 503 and body["checks"]["horizon"]["ok"] is False


async def test_not_ready_when_the_schema_is_behind(make_settings, tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}")
    try:
        await upgrade(engine, "0011")
        async with running_gateway(make_settings(), engine) as gw:
            status, body = await ready(gw)
    finally:
        await engine.dispose()
    assert status == 503
    assert body["checks"]["schema"] == {
        "ok": False,
        "reason": "the database schema is not this code's: run `gateway db upgrade`",
    }
    assert body["checks"]["database"] == {"ok": True}


async def test_not_ready_when_the_database_does_not_answer(make_settings):
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/gateway")
    try:
        async with running_gateway(make_settings(), engine) as gw:
            status, body = await ready(gw)
            health = await gw.client.get("/health")
            scrape = await gw.client.get("/metrics")
    finally:
        await engine.dispose()
    assert scrape.status_code == 200  # what the process knows itself is still there
    assert sample(scrape.text, "gateway_database_up") == 0
    assert sample(
        scrape.text, "gateway_http_requests_total", method="GET", route="/ready", status="503"
    )
    assert "gateway_payouts" not in scrape.text
    assert status == 503
    checks = body["checks"]
    assert checks["database"] == {"ok": False, "reason": "the database does not answer"}
    for name in ("schema", "payment_watcher", "outbox"):
        assert checks[name] == {"ok": False, "reason": "not checked: the database does not answer"}
    assert checks["horizon"]["ok"] is True
    assert "nobody" not in str(body) and "127.0.0.1" not in str(body)
    assert health.status_code == 200  # alive all the same


# -- /metrics ---------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_never_by_raw_path(gateway):
    partner = await partner_for(gateway)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for transfer_id in ids:
        response = await partner.client.get(
            f"/sep31/transactions/{transfer_id}", headers=partner.headers
        )
        assert response.status_code == 404
    await gateway.client.get("/no/such/path/12345")
    await gateway.client.get("/sep31/transactions/x")  # refused by SEP-10 before routing
    text = await metrics(gateway)
    route = "/sep31/transactions/{id}"
    assert sample(text, "gateway_http_requests_total", method="GET", route=route, status="404") == 2
    assert sample(text, "gateway_http_requests_total", method="GET", route="/auth", status="200")
    assert sample(text, "gateway_http_requests_total", method="POST", route="/auth", status="200")
    assert (
        sample(text, "gateway_http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert (
        sample(
            text, "gateway_http_requests_total", method="GET", route="/sep31/{path}", status="403"
        )
        == 1
    )
    histogram = "gateway_http_request_duration_seconds"
    assert sample(text, f"{histogram}_count", route=route, status="404") == 2
    assert sample(text, f"{histogram}_bucket", route=route, status="404", le="+Inf") == 2
    assert sample(text, f"{histogram}_sum", route=route, status="404") > 0
    assert "# TYPE gateway_http_request_duration_seconds histogram" in text
    for raw in (*ids, "12345", "/sep31/transactions/x"):
        assert raw not in text


async def test_tokens_issued_count_each_sep10_login(gateway):
    assert sample(await metrics(gateway), "gateway_sep10_tokens_issued_total") == 0
    await gateway.wallet().token()
    await gateway.wallet().token()
    assert (await gateway.wallet().get_challenge()).status_code == 200  # a challenge is no token
    assert sample(await metrics(gateway), "gateway_sep10_tokens_issued_total") == 2


async def test_payouts_are_counted_by_status(gateway):
    now = datetime.now(UTC)
    async with gateway.app.state.deps.uow() as uow:
        for n in range(3):
            await uow.payouts.add(
                PayoutInstruction(
                    "disbursement",
                    f"d-{n}",
                    "payout",
                    "GWUSD",
                    ISSUER,
                    10_000_000,
                    Keypair.random().public_key,
                ),
                now,
            )
        assert await uow.payouts.cancel("disbursement", "d-0", "payout", now)
        await uow.commit()
    text = await metrics(gateway)
    assert sample(text, "gateway_database_up") == 1
    assert sample(text, "gateway_payouts", status="ready") == 2
    assert sample(text, "gateway_payouts", status="canceled") == 1


async def test_compliance_decisions_are_counted_by_outcome(gateway):
    async with gateway.app.state.deps.uow() as uow:
        for n, outcome in enumerate(("ok", "ok", "denied", "pending")):
            await uow.compliance.add(compliance_row(nonce=f"n-{n}", tx_status=outcome))
        await uow.commit()
    text = await metrics(gateway)
    assert sample(text, "gateway_compliance_decisions", outcome="ok") == 2
    assert sample(text, "gateway_compliance_decisions", outcome="denied") == 1
    assert sample(text, "gateway_compliance_decisions", outcome="pending") == 1


async def test_outbox_depth_shows_dead_letters_by_kind(gateway):
    now = datetime.now(UTC)
    await add_outbox_message(gateway, kind="sep12_callback", due=now, dead=True)
    await add_outbox_message(gateway, kind="sep12_callback", due=now)
    await add_outbox_message(gateway, kind="sep31_callback", due=now)
    text = await metrics(gateway)
    assert sample(text, "gateway_outbox_messages", kind="sep12_callback", status="dead") == 1
    assert sample(text, "gateway_outbox_messages", kind="sep12_callback", status="pending") == 1
    assert sample(text, "gateway_outbox_messages", kind="sep31_callback", status="pending") == 1


class TestDistributionBalance:
    distribution = Keypair.random().public_key

    @pytest.fixture
    def gateway_env(self):
        return {"GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT": self.distribution}

    @pytest.fixture
    async def gateway(self, make_settings, sqlite_engine, gateway_env, clock):
        async with running_gateway(make_settings(**gateway_env), sqlite_engine, clock=clock) as gw:
            gw.ledger.create_account(ISSUER)
            gw.ledger.create_account(self.distribution, 100)
            gw.ledger.add_trustline(self.distribution, "GWUSD", ISSUER)
            gw.ledger.issue(ISSUER, self.distribution, "GWUSD", "250.5")
            yield gw

    async def test_the_balance_of_each_asset_is_shown(self, gateway):
        text = await metrics(gateway)
        assert sample(text, "gateway_distribution_balance_up") == 1
        assert sample(text, "gateway_distribution_balance", asset="GWUSD") == 250.5
        assert sample(text, "gateway_distribution_available", asset="GWUSD") == 250.5

    async def test_a_horizon_failure_shows_as_down_without_failing_the_scrape(self, gateway, clock):
        rule = gateway.horizon_transport.faults.add("status", path="/accounts", status=503)
        text = await metrics(gateway)
        assert sample(text, "gateway_distribution_balance_up") == 0
        assert sample(text, "gateway_distribution_balance", asset="GWUSD") is None
        assert "# TYPE gateway_outbox_messages gauge" in text  # the rest is all there
        gateway.horizon_transport.faults.remove(rule.id)
        # The failure is remembered for a while: scrapes do not hammer Horizon.
        assert sample(await metrics(gateway), "gateway_distribution_balance_up") == 0
        clock.advance(16)
        assert sample(await metrics(gateway), "gateway_distribution_balance_up") == 1


async def test_no_distribution_metrics_without_a_distribution_account(gateway):
    text = await metrics(gateway)
    assert "gateway_distribution_balance" not in text
