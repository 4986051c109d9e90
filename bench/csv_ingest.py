"""Reading a bulk disbursement CSV: time and peak memory for a file of ``--rows`` rows.

    .venv/bin/python bench/csv_ingest.py --rows 100000

Writes the file (untimed), then reads it in a fresh process, 64 KB at a time, through
gateway.disbursement.read_rows, and prints wall time, rows/s and that process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stellar_sdk import Keypair, MuxedAccount

ROOT = Path(__file__).resolve().parent.parent
ASSET = "GWUSD"  # the testnet config's asset (2 decimals)


def write(path: Path, rows: int) -> None:
    accounts = [Keypair.random().public_key for _ in range(1000)]
    with path.open("w") as f:
        f.write("receiver_reference,amount,asset_code,destination,memo,external_payment_id\n")
        for i in range(rows):
            destination = accounts[i % 1000]
            memo = str(i + 1)
            if i % 10 == 0:
                destination, memo = MuxedAccount(destination, i + 1).account_muxed, ""
            elif i % 10 == 1:
                destination = f"user{i}*bank.example"
            f.write(f"emp-{i},{i % 5000 + 1}.25,{ASSET},{destination},{memo},pay-{i}\n")


def read(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from gateway.disbursement import read_rows

    t0 = time.perf_counter()
    with path.open("rb") as f:
        reading = read_rows(iter(lambda: f.read(65_536), b""), {ASSET: 2})
    elapsed = time.perf_counter() - t0
    assert reading.ok, reading.problems[:3]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": len(reading.rows),
                "seconds": round(elapsed, 2),
                "rows_per_s": round(len(reading.rows) / elapsed),
                "peak_rss_mib": round(peak_mib, 1),
            }
        )
    )


def store(path: Path, url: str) -> None:
    """The whole upload: read, validate, check external ids, and store (one transaction)."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from benchkit import fresh_secrets

    from gateway.db.engine import create_engine
    from gateway.db.uow import UnitOfWorkFactory
    from gateway.disbursement.service import DisbursementService
    from gateway.settings import load_settings

    settings = load_settings(
        ROOT / "config/testnet.toml",
        {
            "GATEWAY_DATABASE_URL": url,
            **fresh_secrets(),
        },
    )

    async def run() -> dict[str, float]:
        engine = create_engine(url)
        service = DisbursementService(settings, uow=UnitOfWorkFactory(engine))
        content = path.read_bytes()  # noqa: ASYNC240 - the file is the input, read untimed
        t0 = time.perf_counter()
        made = await service.upload(content, name="bench", uploaded_by="bench")
        elapsed = time.perf_counter() - t0
        await engine.dispose()
        return {"rows": made["payments"], "seconds": round(elapsed, 2)}

    result = asyncio.run(run())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rows_per_s"] = round(result["rows"] / result["seconds"])
    print(json.dumps({**result, "stored": url.split(":")[0], "peak_rss_mib": round(peak_mib, 1)}))


def migrate(url: str) -> None:
    import asyncio

    sys.path.insert(0, str(ROOT))
    from gateway.db.engine import create_engine
    from gateway.db.migrate import upgrade

    async def run() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(run())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--store", help="a database URL: time the whole upload, stored")
    p.add_argument("--read", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.read:
        if args.store:
            store(args.read, args.store)
        else:
            read(args.read)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "disbursement.csv"
        write(path, args.rows)
        print(f"{path.stat().st_size / 1e6:.1f} MB file", file=sys.stderr)
        extra = ["--store", args.store] if args.store else []
        if args.store:  # migrated here: `gateway db upgrade` is its own process too
            migrate(args.store)
        subprocess.run([sys.executable, __file__, "--read", str(path), *extra], check=True)


if __name__ == "__main__":
    main()
