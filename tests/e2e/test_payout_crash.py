"""The crash test: a 10,000-payment disbursement paid by two `gateway disburse` processes on one
PostgreSQL database, each killed with SIGKILL at random moments and restarted, while the
sandbox Horizon (its own process) fails 20% of submissions -- half before applying them, half
after (the answer lost). Every payment must end paid exactly once: each receiver's balance on
the fake ledger is exactly what it was owed, and the distribution account paid the total."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from decimal import Decimal
from typing import BinaryIO

import httpx
import pytest
from sqlalchemy import func, select
from stellar_sdk import Keypair

from gateway.db.engine import create_engine
from gateway.db.tables import disbursement_payments, payouts
from gateway.db.uow import UnitOfWorkFactory
from gateway.disbursement.service import DisbursementService
from gateway.outbound.horizon import HttpxHorizon
from tests.conftest import REPO, TEST_JWT_SECRET, TEST_KYC_KEY, TEST_SIGNING_SECRET, _wipe
from tests.e2e.test_running_server import GATEWAY, free_port, stop, wait_until_up

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
PAYMENTS, RECEIVERS = 10_000, 400
HEADER = "receiver_reference,amount,asset_code,destination,memo,external_payment_id\n"


def start_submitter(env: dict[str, str], log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*GATEWAY, "disburse", "--concurrency", "3", "--lease-seconds", "2", "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


async def test_killed_submitters_and_a_faulty_horizon_pay_each_payment_exactly_once(
    postgres_database, tmp_path, make_settings
):
    rng = random.Random(20261121)
    distribution = Keypair.random()
    horizon_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_CONFIG=str(REPO / "config/testnet.toml"),
        GATEWAY_DATABASE_URL=postgres_database,
        GATEWAY_HORIZON_URL=f"http://127.0.0.1:{horizon_port}",
        GATEWAY_HORIZON_TIMEOUT_SECONDS="2",
        GATEWAY_SIGNING_SECRET=TEST_SIGNING_SECRET,
        GATEWAY_JWT_SECRET=TEST_JWT_SECRET,
        GATEWAY_KYC_KEY=TEST_KYC_KEY,
        GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT=distribution.public_key,
        GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET=distribution.secret,
        GATEWAY_DISBURSEMENT_TX_TIMEOUT_SECONDS="5",
        GATEWAY_DISBURSEMENT_MAX_TRIES="50",
    )
    horizon = subprocess.Popen(  # noqa: ASYNC220 - started before the loop has work
        [*GATEWAY[:2], "gateway.sandbox.horizon", "--port", str(horizon_port), "--seed", "11"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    engine = create_engine(postgres_database)
    await _wipe(engine)
    submitters: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "disburse.log"
    log = log_path.open("ab")
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{horizon_port}", timeout=10)
    try:
        wait_until_up(f"http://127.0.0.1:{horizon_port}/", horizon)
        # The network: the issuer, a funded distribution account, receivers with trustlines.
        trust = [{"asset_code": "GWUSD", "asset_issuer": ISSUER}]
        await client.post("/_fake/accounts", json={"account_id": ISSUER})
        await client.post(
            "/_fake/accounts",
            json={
                "account_id": distribution.public_key,
                "trustlines": [{**trust[0], "balance": "1000000"}],
            },
        )
        receivers = [Keypair.random().public_key for _ in range(RECEIVERS)]
        for r in receivers:
            (
                await client.post("/_fake/accounts", json={"account_id": r, "trustlines": trust})
            ).raise_for_status()
        # The disbursement: amounts differ, so any payment made twice or not at all shows.
        owed: dict[str, int] = dict.fromkeys(receivers, 0)
        rows = []
        for i in range(PAYMENTS):
            to, cents = receivers[i % RECEIVERS], 100 + rng.randrange(10_000)
            owed[to] += cents
            rows.append(f"r{i},{cents // 100}.{cents % 100:02d},GWUSD,{to},,crash-{i}\n")
        settings = make_settings(**{k: v for k, v in env.items() if k.startswith("GATEWAY_")})
        service = DisbursementService(
            settings, uow=UnitOfWorkFactory(engine), horizon=HttpxHorizon(client)
        )
        made = await service.upload(
            (HEADER + "".join(rows)).encode(), name="crash", uploaded_by="operator:ana"
        )
        for action, actor in (("ready", "ana"), ("approve", "bea"), ("start", "bea")):
            await service.act(made["id"], action, f"operator:{actor}")
        # 20% of submissions fail: 10% not applied (503), 10% applied with the answer lost.
        for mode, status in (("status", 503), ("lost_answer", 504)):
            (
                await client.post(
                    "/_fake/faults",
                    json={
                        "mode": mode,
                        "method": "POST",
                        "path": "/transactions",
                        "probability": 0.1 / (0.9 if mode == "lost_answer" else 1),
                        "status": status,
                    },
                )
            ).raise_for_status()

        submitters = [start_submitter(env, log), start_submitter(env, log)]
        kills = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            if kills < 8:
                victim = rng.randrange(len(submitters))
                submitters[victim].send_signal(signal.SIGKILL)
                submitters[victim].wait()
                kills += 1
                submitters[victim] = start_submitter(env, log)
            async with engine.connect() as conn:
                left = await conn.scalar(
                    select(func.count())
                    .select_from(disbursement_payments)
                    .where(disbursement_payments.c.status != "success")
                )
            if not left and kills >= 8:
                break
        else:
            raise AssertionError(f"payments still unpaid after 10 minutes; see {log_path}")

        snapshot = (await client.get("/_fake/snapshot", params={"transactions": "false"})).json()
        label = f"GWUSD:{ISSUER}"
        balances = {a: snapshot["accounts"][a]["balances"][label] for a in receivers}
        wrong = {a: (b, owed[a]) for a, b in balances.items() if Decimal(b) * 100 != owed[a]}
        assert not wrong, f"{len(wrong)} receivers paid other than owed"
        paid = Decimal(1_000_000) - Decimal(
            snapshot["accounts"][distribution.public_key]["balances"][label]
        )
        assert paid * 100 == sum(owed.values())
        async with engine.connect() as conn:
            statuses = dict(
                (
                    await conn.execute(
                        select(payouts.c.status, func.count()).group_by(payouts.c.status)
                    )
                ).all()
            )
        assert statuses == {"succeeded": PAYMENTS}
        assert (await service.get(made["id"]))["status"] == "completed"
        assert kills == 8
    finally:
        for p in submitters:
            p.kill()
            p.wait()
        log.close()
        await client.aclose()
        stop(horizon)
        await _wipe(engine)
        await engine.dispose()
