"""SEP-3 AUTH_SERVER throughput next to a bare Starlette endpoint that only verifies one
Ed25519 signature, in the same sitting.

    .venv/bin/python bench/sep3.py [--db sqlite|postgresql] [--runs 3] [--duration 10]

Untimed setup: a fresh database, one receiving customer named ``bob`` (SEP-2), the sending
institution's stellar.toml served on localhost (the gateway fetches it once and then reads
it from its cache), `gateway serve --workers 2` with SEP-3 on and nothing held for review,
`bench/bare_verify.py` with 2 workers, and every request signed in advance: each a new
nonce, its own attachment and a payment whose hash memo is the attachment's SHA-256.

Timed: 16 clients on keep-alive connections (leanload's HTTP client) post the requests;
every gateway answer must be 200 ok/ok (each one verified, screened and stored), every bare
answer 200. Runs alternate between the two servers. Prints a table of medians and one JSON
line per run (also kept in bench/results/sep3-<stamp>.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder
from stellar_sdk.memo import HashMemo

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import free_port, fresh_secrets  # noqa: E402
from leanload import Conn, cpu_ticks, process_tree  # noqa: E402

from gateway.app import build_services  # noqa: E402
from gateway.db.migrate import upgrade  # noqa: E402
from gateway.deps import build_deps  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from gateway.types import ClientIdentity  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
PLACEHOLDER = b"\xab" * 32


def clock_ticks(pid: int) -> float:
    """CPU seconds of a server's process tree so far."""
    return cpu_ticks(process_tree(pid)) / os.sysconf("SC_CLK_TCK")


def serve_toml(key: Keypair) -> tuple[ThreadingHTTPServer, str]:
    body = f'SIGNING_KEY = "{key.public_key}"\n'.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/.well-known/stellar.toml" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"localhost:{server.server_address[1]}"


def requests(count: int, key: Keypair, domain: str, destination: str, asset: Asset) -> list[bytes]:
    """``count`` signed forms; the transaction is built once and its memo patched in."""
    template = (
        TransactionBuilder(
            Account(Keypair.random().public_key, -1),
            "Test SDF Network ; September 2015",
            base_fee=100,
        )
        .append_payment_op(destination, asset, "25")
        .add_memo(HashMemo(PLACEHOLDER))
        .add_time_bounds(0, 0)
        .build()
        .transaction.to_xdr_object()
        .to_xdr_bytes()
    )
    at = template.index(PLACEHOLDER)
    forms = []
    for i in range(count):
        attachment = json.dumps(
            {
                "nonce": f"{secrets.token_hex(8)}-{i}",
                "transaction": {
                    "sender_info": {"first_name": "Alice", "last_name": "Sender", "country": "US"},
                    "route": "bob",
                    "note": "",
                    "extra": "",
                },
                "operations": [],
            }
        )
        memo = hashlib.sha256(attachment.encode()).digest()
        tx = template[:at] + memo + template[at + 32 :]
        data = json.dumps(
            {
                "sender": f"alice*{domain}",
                "need_info": False,
                "tx": base64.b64encode(tx).decode(),
                "attachment": attachment,
            }
        ).encode()
        sig = base64.b64encode(key.sign(data)).decode()
        forms.append(
            b"data=" + quote(data, safe="").encode() + b"&sig=" + quote(sig, safe="").encode()
        )
    return forms


async def load(port: int, path: str, forms: Any, clients: int, duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    todo = iter(forms)
    stop_at = time.perf_counter() + duration

    async def client() -> None:
        conn = Conn("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            body = next(todo, None)
            if body is None:
                errors["ran out of prepared requests"] = 1
                return
            t0 = time.perf_counter()
            status, answer = await conn.request(
                "POST", path, body, content_type="application/x-www-form-urlencoded"
            )
            if status != 200 or b'"tx_status":"ok"' not in answer.replace(b" ", b""):
                key = f"HTTP {status}: {answer[:80]!r}"
                errors[key] = errors.get(key, 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in latencies)

    def pct(q: float) -> float:
        return round(ms[min(len(ms) - 1, int(q * len(ms)))], 2) if ms else 0.0

    return {
        "ok": len(ms),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rps": round(len(ms) / elapsed, 1),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def setup(env: dict[str, str]) -> tuple[str, str]:
    """Migrate, and make bob; returns (federation account, asset code:issuer)."""
    settings = load_settings(None, env)
    deps = build_deps(settings)
    await upgrade(deps.engine)
    services = build_services(settings, deps)
    from gateway.sep10 import AuthSession

    now = int(time.time())
    who = AuthSession(ClientIdentity(Keypair.random().public_key), None, None, "b", now, now + 600)
    bob = await services.customers.put(
        who,
        {
            "first_name": "Bob",
            "last_name": "Receiver",
            "bank_account_number": "1",
            "bank_number": "2",
        },
        {},
    )
    await services.federation.register("bob", bob)
    await deps.aclose()
    asset = settings.assets[0]
    return settings.federation_account, f"{asset.code}:{asset.issuer}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    fi = Keypair.random()
    toml_server, domain = serve_toml(fi)
    if args.db == "postgresql":
        dbname = f"gateway_bench_sep3_{stamp.lower()}"
        subprocess.run(
            ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {dbname}"],
            check=True,
        )
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    else:
        url = f"sqlite+aiosqlite:///{RESULTS / f'bench-sep3-{stamp}.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_CONFIG=str(ROOT / "config/testnet.toml"),
        GATEWAY_DATABASE_URL=url,
        **fresh_secrets(),
        GATEWAY_SEPS_SEP3="true",
        GATEWAY_SEP3_REVIEW_ABOVE="0",
        GATEWAY_SEP31_WATCH_IN_SERVER="false",
        GATEWAY_HORIZON_URL="http://127.0.0.1:9",
    )
    destination, asset_text = asyncio.run(setup(env))
    code, issuer = asset_text.split(":")
    per_run = int(4000 * args.duration)  # each gateway request is new: a nonce of its own
    forms = requests(per_run * args.runs, fi, domain, destination, Asset(code, issuer))
    gw_port, bare_port = free_port(), free_port()
    log = (RESULTS / f"sep3-{stamp}.log").open("wb")
    gateway = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gateway"),
            "serve",
            "--port",
            str(gw_port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    bare = subprocess.Popen(
        [
            PY,
            str(ROOT / "bench/bare_verify.py"),
            "--port",
            str(bare_port),
            "--key",
            fi.public_key,
            "--workers",
            str(args.workers),
        ],
        stdout=log,
        stderr=log,
    )
    out = RESULTS / f"sep3-{stamp}.jsonl"
    results: dict[str, list[dict[str, Any]]] = {"gateway": [], "bare": []}
    try:
        wait_up(f"http://127.0.0.1:{gw_port}/health", gateway)
        time.sleep(1)
        # Warm-up: the sender's toml is fetched and cached, code paths are loaded.
        asyncio.run(load(gw_port, "/compliance/auth", forms[:200], 4, 1.0))
        for run in range(args.runs):
            chunk = forms[(run * per_run) + 200 : (run + 1) * per_run]
            for name, port, path, pid in (
                ("gateway", gw_port, "/compliance/auth", gateway.pid),
                ("bare", bare_port, "/verify", bare.pid),
            ):
                cpu0 = clock_ticks(pid)
                # The bare endpoint keeps nothing: it may see the same requests again.
                todo = chunk if name == "gateway" else itertools.cycle(chunk)
                result = asyncio.run(load(port, path, todo, args.clients, args.duration))
                result.update(
                    target=name,
                    run=run + 1,
                    db=args.db,
                    server_cpu_s=round(clock_ticks(pid) - cpu0, 2),
                )
                results[name].append(result)
                with out.open("a") as f:
                    f.write(json.dumps(result) + "\n")
                print(json.dumps(result), file=sys.stderr)
    finally:
        for proc in (gateway, bare):
            proc.terminate()
            proc.wait(10)
        toml_server.shutdown()
        if args.db == "postgresql":
            subprocess.run(
                [
                    "psql",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-c",
                    f"DROP DATABASE {dbname} WITH (FORCE)",
                ]
            )

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    ratio = med("gateway", "rps") / med("bare", "rps")
    print("| server | requests/s | p50 ms | p99 ms | CPU ms/request |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ("gateway", "bare"):
        cpu = statistics.median(r["server_cpu_s"] * 1000 / max(r["ok"], 1) for r in results[name])
        rps, p50, p99 = med(name, "rps"), med(name, "p50_ms"), med(name, "p99_ms")
        print(f"| {name} | {rps:,.0f} | {p50} | {p99} | {cpu:.2f} |")
    print(f"gateway / bare: {ratio:.2f}; raw results: {out}")


if __name__ == "__main__":
    main()
