"""The SEP-31 payment watcher against real signed payments served by the fake Horizon.

    .venv/bin/python bench/watcher.py --db sqlite|postgresql --payments 10000

Untimed setup: a fresh database (migrated to head), accepted SEP-12 senders and receivers,
``--payments`` transfers in pending_sender made through TransferService.create (amounts of
1.00 to 999.99 GWUSD, so the base customer types apply), and the fake Horizon
(`gateway sandbox horizon`, its own process) seeded over HTTP with the issuer, the receiving
account and ``--senders`` paying accounts, then with one real signed payment transaction per
transfer: the transfer's id memo and its exact amount, submitted to POST /transactions, where
the fake ledger checks signatures, sequence numbers, fees and balances.

Timed: the PaymentWatcher that gateway.app.build_services wires, reading Horizon through the
gateway's HttpxHorizon adapter over HTTP, calling ``watch_once`` until it reports it is
caught up. Then every transfer must be pending_receiver, with one matched incoming payment and
one queued payout each.

Prints a summary and one JSON line (also written to bench/results/watcher-<db>-<stamp>.json):
wall time, payments/s, and per page the Horizon fetch, the matching and writing of the
payments (TransferService.apply_payments) and the rest of the page's database work (cursor,
seen-payment check, incoming_payments rows, commit). CPU seconds of this process (the
watcher) and of the fake Horizon are given for the timed part; on PostgreSQL also the CPU of
all postgres processes.

The tables are filled just before the timed part, so PostgreSQL has no planner statistics for
them yet unless ``--analyze`` gathers them first (autovacuum does so for tables in use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder
from stellar_sdk.memo import IdMemo
from stellar_sdk.operation import Payment as PaymentOp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from benchkit import free_port, fresh_secrets  # noqa: E402

from gateway.app import build_services  # noqa: E402
from gateway.db.migrate import upgrade  # noqa: E402
from gateway.deps import build_deps  # noqa: E402
from gateway.outbound.horizon import Horizon, PaymentsPage  # noqa: E402
from gateway.sep10 import AuthSession  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from gateway.types import ClientIdentity  # noqa: E402

SENDER = {"first_name": "Alice", "last_name": "Bench", "email_address": "alice@example.com"}
RECEIVER = {
    "first_name": "Bob",
    "last_name": "Bench",
    "bank_account_number": "123456789",
    "bank_number": "021000021",
}
START_SEQUENCE = 1 << 32


def clock_ticks(pids: list[int]) -> float:
    """CPU seconds (user + system) of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if open(f"/proc/{name}/comm").read().strip() == "postgres":
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def code_version() -> str:
    """The commit measured, and whether gateway/ or config/ had changes on top of it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "gateway", "config"], capture_output=True, text=True
    ).stdout.strip()
    return head + (" with uncommitted changes" if changed else "")


def session(account: str) -> AuthSession:
    now = int(time.time())
    return AuthSession(
        client=ClientIdentity(account),
        client_domain=None,
        home_domain=None,
        jti=secrets.token_hex(8),
        issued_at=now,
        expires_at=now + 86400,
    )


@dataclass
class Timings:
    """Per-page timings, filled by the wrappers around Horizon and apply_payments."""

    fetch: list[float] = field(default_factory=list)
    apply: list[float] = field(default_factory=list)


class TimedHorizon:
    """The gateway's Horizon adapter, with the time of each payments page recorded."""

    def __init__(self, inner: Horizon, timings: Timings):
        self._inner = inner
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def payments(self, account_id: str, cursor: str | None, limit: int) -> PaymentsPage:
        t0 = time.perf_counter()
        page = await self._inner.payments(account_id, cursor, limit)
        self._timings.fetch.append(time.perf_counter() - t0)
        return page


# -- setup ------------------------------------------------------------------------------------


async def environment(db: str, stamp: str, horizon_url: str) -> tuple[dict[str, str], str | None]:
    """The gateway's environment for this run, and the PostgreSQL database it made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_CONFIG=str(ROOT / "config" / "testnet.toml"),
        GATEWAY_HORIZON_URL=horizon_url,
        **fresh_secrets(),
    )
    dbname = None
    if db == "sqlite":
        path = RESULTS / f"watcher-{stamp}.db"
        env["GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    else:
        dbname = f"gateway_watcher_{stamp.lower()}"
        await psql(f"CREATE DATABASE {dbname}")
        env["GATEWAY_DATABASE_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    return env, dbname


async def psql(sql: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE) as the postgres user."""
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def start_horizon(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gateway"), "sandbox", "horizon", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"the fake Horizon did not start; see {log}")


async def make_transfers(
    services: Any, count: int, partners: int, concurrency: int
) -> list[tuple[str, str, str]]:
    """``count`` pending_sender transfers: (id, memo, amount)."""
    pairs = []
    for _ in range(partners):
        who = session(Keypair.random().public_key)
        sender_id = await services.customers.put(
            who, {"type": "sep31-sender", "memo": "1", "memo_type": "id", **SENDER}, {}
        )
        receiver_id = await services.customers.put(
            who, {"type": "sep31-receiver", "memo": "2", "memo_type": "id", **RECEIVER}, {}
        )
        pairs.append((who, sender_id, receiver_id))
    rng = random.Random(31)  # noqa: S311 - amounts, not secrets
    amounts = [f"{rng.randint(100, 99999) / 100:.2f}" for _ in range(count)]
    made: list[tuple[str, str, str]] = []
    todo = iter(range(count))

    async def worker() -> None:
        for i in todo:
            who, sender_id, receiver_id = pairs[i % len(pairs)]
            created = await services.transfers.create(
                who,
                {
                    "amount": amounts[i],
                    "asset_code": "GWUSD",
                    "funding_method": "SEPA",
                    "sender_id": sender_id,
                    "receiver_id": receiver_id,
                },
                None,
            )
            made.append((created["id"], created["stellar_memo"], amounts[i]))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return made


async def seed_horizon(
    base: str,
    passphrase: str,
    receiving: str,
    issuer: str,
    transfers: list[tuple[str, str, str]],
    senders: int,
) -> None:
    """Accounts through the admin API, then one signed payment per transfer through
    POST /transactions, each sender's in sequence order, the senders side by side."""
    asset = Asset("GWUSD", issuer)
    line = {"asset_code": "GWUSD", "asset_issuer": issuer}
    keys = [Keypair.random() for _ in range(senders)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def seed(body: dict[str, Any]) -> None:
            r = await client.post("/_fake/accounts", json=body)
            if r.status_code != 201:
                raise SystemExit(f"seeding {body.get('account_id')}: {r.status_code} {r.text}")

        await seed({"account_id": issuer, "xlm": "1000"})
        await seed({"account_id": receiving, "xlm": "1000", "trustlines": [line]})
        for k in keys:
            await seed(
                {
                    "account_id": k.public_key,
                    "xlm": "1000",
                    "sequence": START_SEQUENCE,
                    "trustlines": [{**line, "balance": "100000000"}],
                }
            )

        async def pay(k: Keypair, mine: list[tuple[str, str, str]]) -> None:
            account = Account(k.public_key, START_SEQUENCE)
            for _id, memo, amount in mine:
                envelope = (
                    TransactionBuilder(account, passphrase, base_fee=100)
                    .append_operation(PaymentOp(receiving, asset, amount))
                    .add_memo(IdMemo(int(memo)))
                    .add_time_bounds(0, 0)
                    .build()
                )
                envelope.sign(k)
                r = await client.post("/transactions", data={"tx": envelope.to_xdr()})
                if r.status_code != 200:
                    raise SystemExit(f"payment refused: {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(pay(k, transfers[i::senders]) for i, k in enumerate(keys)))


# -- the measured part ------------------------------------------------------------------------


async def count(engine: Any, sql: str) -> dict[str, int]:
    async with engine.connect() as conn:
        return {str(r[0]): int(r[1]) for r in await conn.execute(text(sql))}


def summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return {}
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 1),
        "max_ms": round(ms[-1], 1),
        "total_s": round(sum(ms) / 1000, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    code = code_version()
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env, dbname = await environment(args.db, stamp, f"http://127.0.0.1:{port}")
    log = RESULTS / f"watcher-{args.db}-{stamp}.log"
    horizon = start_horizon(env, port, log)
    deps = None
    try:
        settings = load_settings(None, env)
        deps = build_deps(settings)
        timings = Timings()
        deps.horizon = TimedHorizon(deps.horizon, timings)
        await upgrade(deps.engine)
        services = build_services(settings, deps)

        t0 = time.perf_counter()
        transfers = await make_transfers(
            services, args.payments, args.partners, args.setup_concurrency
        )
        created_s = time.perf_counter() - t0
        print(f"{len(transfers)} transfers created in {created_s:.1f} s", file=sys.stderr)
        t0 = time.perf_counter()
        issuer = next(a.issuer for a in settings.assets if a.code == "GWUSD")
        await seed_horizon(
            f"http://127.0.0.1:{port}",
            settings.network_passphrase,
            settings.sep31.receiving_account,
            issuer,
            transfers,
            args.senders,
        )
        seeded_s = time.perf_counter() - t0
        print(f"{len(transfers)} payments submitted in {seeded_s:.1f} s", file=sys.stderr)

        if args.analyze:
            async with deps.engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
                await conn.commit()

        applied: list[float] = []
        transfers_service = services.transfers
        apply_payments = transfers_service.apply_payments

        async def timed_apply(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return await apply_payments(*a, **kw)
            finally:
                applied.append(time.perf_counter() - t)

        transfers_service.apply_payments = timed_apply
        watcher = services.watcher
        pg_pids = postgres_pids() if args.db == "postgresql" else []
        cpu0, horizon0, pg0 = own_cpu(), clock_ticks([horizon.pid]), clock_ticks(pg_pids)
        pages: list[float] = []
        sizes: list[int] = []
        started = time.perf_counter()
        while True:
            t = time.perf_counter()
            n = await watcher.watch_once()
            pages.append(time.perf_counter() - t)
            sizes.append(n)
            if n == 0:
                break
        wall = time.perf_counter() - started
        cpu = own_cpu() - cpu0
        horizon_cpu = clock_ticks([horizon.pid]) - horizon0
        pg_cpu = clock_ticks(pg_pids) - pg0

        engine = deps.engine
        by_status = await count(engine, "SELECT status, count(*) FROM transfers GROUP BY status")
        outcomes = await count(
            engine, "SELECT outcome, count(*) FROM incoming_payments GROUP BY outcome"
        )
        queued = await count(
            engine,
            "SELECT purpose || ':' || status, count(*) FROM payouts GROUP BY purpose, status",
        )
        n = len(transfers)
        ok = (
            by_status == {"pending_receiver": n}
            and outcomes == {"matched": n}
            and queued == {"payout:ready": n}
        )
        other = [p - f - a for p, f, a in zip(pages, timings.fetch, applied, strict=False)]
        result: dict[str, Any] = {
            "tool": "bench/watcher.py",
            "db": args.db,
            "loop": args.loop,
            "analyzed": args.analyze,
            "payments": n,
            "senders": args.senders,
            "pages": len(pages),
            "page_size": max(sizes),
            "wall_s": round(wall, 2),
            "payments_per_s": round(n / wall, 1),
            "page": summary(pages),
            "horizon_fetch": summary(timings.fetch),
            "apply_payments": summary(applied),
            "other_db": summary(other),
            "watcher_cpu_s": round(cpu, 2),
            "horizon_cpu_s": round(horizon_cpu, 2),
            "verified": ok,
            "transfers_by_status": by_status,
            "incoming_by_outcome": outcomes,
            "payouts": queued,
            "setup_transfers_s": round(created_s, 1),
            "setup_payments_s": round(seeded_s, 1),
            "started_at": stamp,
            "code": code,
        }
        if pg_pids:
            result["postgres_cpu_s"] = round(pg_cpu, 2)
        return result
    finally:
        if deps is not None:
            await deps.aclose()
        horizon.terminate()
        horizon.wait(10)
        if dbname and not args.keep:
            await psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        if args.db == "sqlite" and not args.keep:
            for suffix in ("", "-wal", "-shm"):
                (RESULTS / f"watcher-{stamp}.db{suffix}").unlink(missing_ok=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--payments", type=int, default=10_000)
    p.add_argument("--senders", type=int, default=20, help="paying Stellar accounts")
    p.add_argument("--partners", type=int, default=10, help="sending anchors (SEP-10 accounts)")
    p.add_argument("--setup-concurrency", type=int, default=8)
    p.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop: asyncio as `gateway watch-payments` runs, uvloop as `gateway serve`",
    )
    p.add_argument(
        "--analyze",
        action="store_true",
        help="gather planner statistics (ANALYZE) before the timed part, as autovacuum does "
        "for tables in steady use; a table just filled has none",
    )
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = p.parse_args()
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(run(args))
    else:
        result = asyncio.run(run(args))
    out = RESULTS / f"watcher-{args.db}-{result['started_at']}.json"
    out.write_text(json.dumps(result) + "\n")
    print(
        f"{args.db}: {result['payments']} payments in {result['wall_s']} s "
        f"({result['payments_per_s']}/s), {result['pages']} pages; per page median "
        f"{result['page'].get('median_ms')} ms = Horizon {result['horizon_fetch'].get('median_ms')}"
        f" + apply {result['apply_payments'].get('median_ms')}"
        f" + other db {result['other_db'].get('median_ms')}; verified: {result['verified']}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    if not result["verified"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
