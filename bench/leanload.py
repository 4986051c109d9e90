"""A lean load generator for SEP-1, 10, 12 and 31, so the client does not eat the cores it
shares with the server under test.

anchorbench spends about 3 ms of CPU per SEP-10 token operation on its own side (httpx and
stellar-sdk parsing); on a 2-core machine that caps what any server can show. This client
speaks HTTP/1.1 over raw keep-alive sockets and signs the challenge hash directly, checking
the server's signature first as a wallet must.

    python bench/leanload.py http://localhost:8000 sep10-token -c 16 -d 10 [--watch-pid PID]

Scenarios are anchorbench's: toml, sep10-challenge, sep10-token, sep12-put, sep12-get,
sep31-info (GET /info with a JWT) and sep31-post (POST /transactions for a sender and a
receiver each client registered during setup). SEP-31's asset, amount, funding method and
SEP-12 customer types come from the server's /info, as anchorbench reads them.

Prints one JSON line like anchorbench: rps, p50/p90/p99/max ms, errors, client/server CPU s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import resource
import struct
import time
import tomllib
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from stellar_sdk import Keypair, StrKey


class Conn:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            data = bytearray()
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            body = bytes(data)
        else:
            body = await self.reader.readexactly(length)
        if close:  # servers without keep-alive (gunicorn sync workers)
            self.writer.close()
            self.reader = self.writer = None
        return status, body


class Target:
    def __init__(self, base: str, toml: dict[str, Any]):
        self.base = base
        self.toml_path = "/.well-known/stellar.toml"
        self.kyc_path = urlsplit(toml.get("KYC_SERVER", "")).path + "/customer"
        self.sep31_path = urlsplit(toml.get("DIRECT_PAYMENT_SERVER", "")).path
        self.issuers = {
            c.get("code"): c.get("issuer") for c in toml.get("CURRENCIES", ()) if c.get("issuer")
        }
        auth = urlsplit(toml["WEB_AUTH_ENDPOINT"])
        self.auth_path = auth.path
        self.auth_host = auth.hostname or "localhost"
        self.auth_port = auth.port or 80
        self.server_key = VerifyKey(StrKey.decode_ed25519_public_key(toml["SIGNING_KEY"]))
        passphrase = toml["NETWORK_PASSPHRASE"].encode()
        self.network_id = hashlib.sha256(passphrase).digest()


ENVELOPE_TYPE_TX = struct.pack(">I", 2)


def sign_challenge(target: Target, xdr: str, kp: SigningKey, hint: bytes) -> str:
    raw = base64.b64decode(xdr)
    count = struct.unpack(">I", raw[-76:-72])[0]
    if raw[:4] != ENVELOPE_TYPE_TX or count != 1:
        raise ValueError("not a v1 envelope with one signature")
    tx = raw[4:-76]
    digest = hashlib.sha256(target.network_id + ENVELOPE_TYPE_TX + tx).digest()
    server_sig = raw[-64:]
    try:
        target.server_key.verify(digest, server_sig)
    except BadSignatureError:
        raise ValueError("challenge not signed by SIGNING_KEY") from None
    ours = kp.sign(digest).signature
    signatures = struct.pack(">I", 2) + raw[-72:] + hint + struct.pack(">I", 64) + ours
    return base64.b64encode(raw[:4] + tx + signatures).decode()


async def op_toml(target: Target, conn: Conn, _kp: Any) -> None:
    status, body = await conn.request("GET", target.toml_path)
    if status != 200 or b"SIGNING_KEY" not in body:
        raise RuntimeError(f"toml HTTP {status}")


async def op_challenge(target: Target, conn: Conn, kp: tuple[str, SigningKey, bytes]) -> str:
    status, body = await conn.request("GET", f"{target.auth_path}?account={quote(kp[0])}")
    if status != 200:
        raise RuntimeError(f"challenge HTTP {status}")
    return str(json.loads(body)["transaction"])


async def op_token(target: Target, conn: Conn, kp: tuple[str, SigningKey, bytes]) -> str:
    xdr = await op_challenge(target, conn, kp)
    signed = sign_challenge(target, xdr, kp[1], kp[2])
    status, body = await conn.request(
        "POST", target.auth_path, json.dumps({"transaction": signed}).encode()
    )
    if status != 200 or b"token" not in body:
        raise RuntimeError(f"token HTTP {status}: {body[:200]!r}")
    return str(json.loads(body)["token"])


_memos = itertools.count(int.from_bytes(os.urandom(4), "big") << 16)


def customer_body(n: int) -> bytes:
    """What anchorbench's sep12-put sends: a new customer (fresh memo) with SEP-9 fields."""
    return json.dumps(
        {
            "memo": str(next(_memos)),
            "memo_type": "id",
            "first_name": "Alice",
            "last_name": f"Bench{n}",
            "email_address": f"sender{n}@example.com",
            "address": f"{n} Benchmark Street",
            "city": "Springfield",
            "address_country_code": "USA",
        }
    ).encode()


async def put_customer(target: Target, conn: Conn, token: str, n: int) -> str:
    status, body = await conn.request(
        "PUT", target.kyc_path, customer_body(n), headers={"Authorization": f"Bearer {token}"}
    )
    if status not in (200, 202):
        raise RuntimeError(f"PUT /customer HTTP {status}: {body[:200]!r}")
    return str(json.loads(body)["id"])


async def op_sep12_put(target: Target, conn: Conn, state: dict[str, Any]) -> None:
    state["n"] += 1
    await put_customer(target, conn, state["token"], state["n"])


async def op_sep12_get(target: Target, conn: Conn, state: dict[str, Any]) -> None:
    status, body = await conn.request(
        "GET",
        f"{target.kyc_path}?id={state['customer_id']}",
        headers={"Authorization": f"Bearer {state['token']}"},
    )
    if status != 200 or b'"status"' not in body:
        raise RuntimeError(f"GET /customer HTTP {status}: {body[:200]!r}")


def party_body(kind: str, customer_type: str | None, n: int) -> bytes:
    """What anchorbench PUTs for a SEP-31 sender or receiver: a new customer of the type
    /info names, with SEP-9 fields (a receiver also has bank details)."""
    body: dict[str, Any] = {"memo": str(next(_memos)), "memo_type": "id"}
    if customer_type:
        body["type"] = customer_type
    body.update(
        {
            "first_name": "Alice" if kind == "sender" else "Bob",
            "last_name": f"Bench{n}",
            "email_address": f"{kind}{n}@example.com",
            "address": f"{n} Benchmark Street",
            "city": "Springfield",
            "address_country_code": "USA",
        }
    )
    if kind == "receiver":
        body["bank_account_number"] = str(100000000 + n % 900000000)
        body["bank_number"] = "021000021"
    return json.dumps(body).encode()


def first_type(asset: dict[str, Any], role: str) -> str | None:
    types = ((asset.get("sep12") or {}).get(role) or {}).get("types") or {}
    return next(iter(types)) if isinstance(types, dict) and types else None


async def sep31_setup(target: Target, conn: Conn, token: str, n: int, pairs: int) -> dict:
    """Read /info as anchorbench does (first enabled asset, amount 100 within its limits,
    the first customer type of each role) and register ``pairs`` senders and receivers."""
    auth = {"Authorization": f"Bearer {token}"}
    status, body = await conn.request("GET", target.sep31_path + "/info", headers=auth)
    if status != 200:
        raise RuntimeError(f"GET /info HTTP {status}")
    receive = json.loads(body)["receive"]
    code = next(c for c, a in receive.items() if a.get("enabled", True))
    asset = receive[code]
    amount = Decimal("100")
    if asset.get("min_amount") is not None:
        amount = max(amount, Decimal(str(asset["min_amount"])))
    if asset.get("max_amount") is not None:
        amount = min(amount, Decimal(str(asset["max_amount"])))
    tx_fields = {
        name: str(spec["choices"][0]) if spec.get("choices") else "bench"
        for name, spec in ((asset.get("fields") or {}).get("transaction") or {}).items()
        if not spec.get("optional")
    }
    template: dict[str, Any] = {
        "amount": format(amount, "f"),
        "asset_code": code,
        "fields": {"transaction": tx_fields} if tx_fields else {},
    }
    if target.issuers.get(code):
        template["asset_issuer"] = target.issuers[code]
    if asset.get("funding_methods"):
        template["funding_method"] = asset["funding_methods"][0]
    bodies = []
    for j in range(pairs):
        ids = []
        for kind in ("sender", "receiver"):
            party = party_body(kind, first_type(asset, kind), n * 1000 + j)
            status, answer = await conn.request("PUT", target.kyc_path, party, headers=auth)
            if status not in (200, 202):
                raise RuntimeError(f"PUT /customer HTTP {status}: {answer[:200]!r}")
            ids.append(str(json.loads(answer)["id"]))
        bodies.append(json.dumps({**template, "sender_id": ids[0], "receiver_id": ids[1]}).encode())
    return {"token": token, "auth": auth, "bodies": bodies, "n": 0}


async def op_sep31_info(target: Target, conn: Conn, state: dict[str, Any]) -> None:
    status, body = await conn.request("GET", target.sep31_path + "/info", headers=state["auth"])
    if status != 200 or b'"receive"' not in body:
        raise RuntimeError(f"GET /info HTTP {status}: {body[:200]!r}")


async def op_sep31_post(target: Target, conn: Conn, state: dict[str, Any]) -> None:
    state["n"] += 1
    body = state["bodies"][state["n"] % len(state["bodies"])]
    status, answer = await conn.request(
        "POST", target.sep31_path + "/transactions", body, headers=state["auth"]
    )
    if status not in (200, 201) or b'"id"' not in answer:
        raise RuntimeError(f"POST /transactions HTTP {status}: {answer[:200]!r}")


OPS = {
    "toml": op_toml,
    "sep10-challenge": op_challenge,
    "sep10-token": op_token,
    "sep12-put": op_sep12_put,
    "sep12-get": op_sep12_get,
    "sep31-info": op_sep31_info,
    "sep31-post": op_sep31_post,
}


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for task in (f"/proc/{pid}/stat",):
            try:
                fields = open(task).read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
            except OSError:
                pass
    return total


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


async def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("base_url")
    p.add_argument("scenario", choices=sorted(OPS))
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--watch-pid", type=int)
    args = p.parse_args()

    base = urlsplit(args.base_url)
    host, port = base.hostname or "localhost", base.port or 80
    for name in {host}:
        if name not in ("localhost", "127.0.0.1", "::1"):
            raise SystemExit("leanload only targets loopback")
    boot = Conn(host, port)
    status, body = await boot.request("GET", "/.well-known/stellar.toml")
    if status != 200:
        raise SystemExit(f"stellar.toml answered {status}")
    target = Target(args.base_url, tomllib.loads(body.decode()))
    op = OPS[args.scenario]

    keys = []
    for _ in range(args.concurrency):
        k = Keypair.random()
        raw = k.raw_public_key()
        keys.append((k.public_key, SigningKey(k.raw_secret_key()), raw[-4:]))

    latencies: list[float] = []
    errors: dict[str, int] = {}
    state = {"measure": False, "stop": False}

    async def worker(i: int) -> None:
        conn = Conn(
            target.auth_host if args.scenario != "toml" else host,
            target.auth_port if args.scenario != "toml" else port,
        )
        client: Any = keys[i]
        try:
            if args.scenario.startswith("sep12"):  # untimed setup: a token and one customer
                token = await op_token(target, conn, keys[i])
                client = {"token": token, "n": i * 10_000_000}
                client["customer_id"] = await put_customer(target, conn, token, i)
            elif args.scenario.startswith("sep31"):  # untimed: a token, /info, customers
                token = await op_token(target, conn, keys[i])
                pairs = 2 if args.scenario == "sep31-post" else 0
                client = await sep31_setup(target, conn, token, i, pairs)
        except Exception as exc:
            key = "setup: " + type(exc).__name__ + ": " + str(exc)[:60]
            errors[key] = errors.get(key, 0) + 1
            return
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                await op(target, conn, client)
            except Exception as exc:
                if state["measure"]:
                    key = type(exc).__name__ + ": " + str(exc)[:60]
                    errors[key] = errors.get(key, 0) + 1
                conn = Conn(conn.host, conn.port)
                continue
            if state["measure"]:
                latencies.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(worker(i)) for i in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    pids = process_tree(args.watch_pid) if args.watch_pid else []
    server0, client0 = cpu_ticks(pids), resource.getrusage(resource.RUSAGE_SELF)
    state["measure"] = True
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    state["measure"] = False
    elapsed = time.perf_counter() - started
    server1, client1 = cpu_ticks(pids), resource.getrusage(resource.RUSAGE_SELF)
    state["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)

    lat = sorted(latencies)

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q / 100 * len(lat)))] * 1000, 2) if lat else None

    hz = os.sysconf("SC_CLK_TCK")
    result = {
        "tool": "leanload",
        "scenario": args.scenario,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "ok": len(lat),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "client_cpu_s": round(
            client1.ru_utime - client0.ru_utime + client1.ru_stime - client0.ru_stime, 2
        ),
    }
    if pids:
        result["server_cpu_s"] = round((server1 - server0) / hz, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
