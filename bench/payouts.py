"""Payout throughput: ``--payouts`` queued payouts from ``ready`` to ``succeeded`` (and reported
to their disbursement) through the fake Horizon, with ledger close time zero.

    .venv/bin/python bench/payouts.py --db sqlite
    .venv/bin/python bench/payouts.py --db postgresql --lanes 4 --workers 4

Untimed: a migrated database, a fake ledger with a funded distribution account and receivers
with trustlines, and a started disbursement (its payments queued as payouts). Timed: the
submitter's steps (``--workers`` of them at once, on ``--lanes`` channel accounts) until
every payout succeeded and was reported. Prints payouts/s, transactions used, and the
process CPU per payout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import free_port, fresh_secrets  # noqa: E402

ISSUER = "GAQWU7COY4XC2PX4DTHOT23A27PFGUS6EWMOUTPAURYV4BT2JVCM3FGC"
HEADER = "receiver_reference,amount,asset_code,destination,memo,external_payment_id\n"


async def database(kind: str, tmp: Path) -> tuple[str, object]:
    """(SQLAlchemy URL, a cleanup coroutine function) of a fresh migrated database."""
    from gateway.db.engine import create_engine
    from gateway.db.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"

        async def nothing() -> None:
            pass

        cleanup = nothing
    else:
        import asyncpg

        name = f"gateway_bench_{uuid.uuid4().hex[:10]}"
        admin = os.environ.get(
            "GATEWAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = admin.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"

        async def drop() -> None:
            c = await asyncpg.connect(admin)
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await c.close()

        cleanup = drop
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url, cleanup


async def run(args: argparse.Namespace) -> dict[str, object]:
    import httpx
    from stellar_sdk import Keypair

    from gateway.db.engine import create_engine
    from gateway.db.tables import payout_transactions
    from gateway.db.uow import UnitOfWorkFactory
    from gateway.disbursement.channels import Channels
    from gateway.disbursement.service import DisbursementService
    from gateway.disbursement.submitter import ResultRouter, Submitter
    from gateway.outbound.horizon import HttpxHorizon
    from gateway.sandbox.horizon import FakeHorizonTransport, FakeLedger
    from gateway.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="payout-bench-"))
    url, cleanup = await database(args.db, tmp)
    keys = Keypair.random()
    receivers = [Keypair.random().public_key for _ in range(args.receivers)]
    ledger = FakeLedger()
    server = None
    if args.horizon == "process":  # Horizon is another machine's work: another process here
        port = free_port()
        server = subprocess.Popen(  # noqa: ASYNC220 - before anything is timed
            [sys.executable, "-m", "gateway.sandbox.horizon", "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        await wait_up(client)
    else:
        client = httpx.AsyncClient(transport=FakeHorizonTransport(ledger), base_url="http://h")
    trust = {"asset_code": "GWUSD", "asset_issuer": ISSUER}
    await client.post("/_fake/accounts", json={"account_id": ISSUER})
    await client.post(
        "/_fake/accounts",
        json={"account_id": keys.public_key, "trustlines": [{**trust, "balance": "10000000"}]},
    )
    for r in receivers:
        await client.post("/_fake/accounts", json={"account_id": r, "trustlines": [trust]})
    settings = load_settings(
        ROOT / "config/testnet.toml",
        {
            "GATEWAY_DATABASE_URL": url,
            **fresh_secrets(),
            "GATEWAY_DISBURSEMENT_DISTRIBUTION_ACCOUNT": keys.public_key,
            "GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET": keys.secret,
            "GATEWAY_DISBURSEMENT_MAX_OPS_PER_TX": str(args.ops),
        },
    )
    engine = create_engine(url, pool_size=args.workers + 4)
    horizon = HttpxHorizon(client)
    uow = UnitOfWorkFactory(engine)
    try:
        service = DisbursementService(settings, uow=uow, horizon=horizon)
        rows = "".join(
            f"r{i},{1 + i % 50}.25,GWUSD,{receivers[i % len(receivers)]},,\n"
            for i in range(args.payouts)
        )
        made = await service.upload((HEADER + rows).encode(), name="bench", uploaded_by="ana")
        for action, who in (("ready", "ana"), ("approve", "bea"), ("start", "bea")):
            await service.act(made["id"], action, who)
        submitter = Submitter(
            settings,
            uow=uow,
            horizon=horizon,
            distribution=keys,
            results=ResultRouter({"disbursement": service}),
        )
        if args.lanes:
            await Channels(settings, uow=uow, horizon=horizon, distribution=keys).create(args.lanes)
        else:
            await submitter.ensure_lane()
        applied_before = await applied(client)

        async def worker() -> None:
            idle = 0
            while idle < 3:
                idle = 0 if await submitter.step() else idle + 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.workers)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        shown = await service.get(made["id"])
        async with engine.connect() as conn:
            txs = (await conn.execute(payout_transactions.select())).all()
        assert shown["status"] == "completed", shown["status"]
        snapshot = (await client.get("/_fake/snapshot", params={"transactions": "false"})).json()
        label = f"GWUSD:{ISSUER}"
        paid = sum(Decimal(snapshot["accounts"][r]["balances"][label]) for r in receivers)
        assert paid == sum(1 + Decimal(i % 50) + Decimal("0.25") for i in range(args.payouts))
        return {
            "db": args.db,
            "payouts": args.payouts,
            "ops_per_tx": args.ops,
            "lanes": args.lanes or 1,
            "workers": args.workers,
            "seconds": round(elapsed, 2),
            "payouts_per_s": round(args.payouts / elapsed),
            "transactions": len(txs),
            "ledger_transactions": await applied(client) - applied_before,
            "horizon": args.horizon,
            "cpu_ms_per_payout": round(cpu * 1000 / args.payouts, 3),
        }
    finally:
        await client.aclose()
        await engine.dispose()
        await cleanup()
        if server is not None:
            server.terminate()
            server.wait()


async def wait_up(client: object) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    for _ in range(200):
        try:
            await client.get("/")
            return
        except httpx.HTTPError:
            await asyncio.sleep(0.05)
    raise SystemExit("the fake Horizon did not start")


async def applied(client: object) -> int:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    return int((await client.get("/")).json()["history_latest_ledger"]) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--payouts", type=int, default=10_000)
    parser.add_argument("--receivers", type=int, default=1_000)
    parser.add_argument("--ops", type=int, default=50, help="max_ops_per_tx")
    parser.add_argument("--lanes", type=int, default=0, help="channel accounts (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="submitter steps at once")
    parser.add_argument("--horizon", choices=["process", "inline"], default="process")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
