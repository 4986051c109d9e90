"""The real server process (`gateway serve`, two workers) with the sandbox Horizon process:
a wallet using only stellar-sdk and httpx gets tokens over TCP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from stellar_sdk import (
    Asset,
    Keypair,
    MuxedAccount,
    Server,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk.sep.stellar_web_authentication import read_challenge_transaction

from tests.conftest import REPO

GATEWAY = [sys.executable, "-m", "gateway"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class WalletToml(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/.well-known/stellar.toml":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def wallet_domain() -> Iterator[tuple[str, Keypair]]:
    """A wallet's web host on localhost serving its stellar.toml (SIGNING_KEY)."""
    key = Keypair.random()
    handler = type(
        "Handler", (WalletToml,), {"body": f'SIGNING_KEY = "{key.public_key}"\n'.encode()}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"localhost:{server.server_address[1]}", key
    finally:
        server.shutdown()
        server.server_close()


RUNNING_ENV: dict[str, str] = {}  # the environment the running server was started with


@pytest.fixture(scope="module")
def running_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("server")
    horizon_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_CONFIG=str(REPO / "config/testnet.toml"),
        GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'gateway.db'}",
        GATEWAY_HORIZON_URL=f"http://localhost:{horizon_port}",
        GATEWAY_HOME_DOMAIN=f"localhost:{port}",
        GATEWAY_BASE_URL=f"http://localhost:{port}",
        GATEWAY_TESTNET_SECRETS_FILE=str(tmp / "testnet-secrets.json"),
        # Payments are watched by `gateway watch-payments` here, to test that command.
        GATEWAY_SEP31_WATCH_IN_SERVER="false",
    )
    horizon = subprocess.Popen(
        [*GATEWAY, "sandbox", "horizon", "--port", str(horizon_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    log = (tmp / "server.log").open("wb")
    try:
        wait_until_up(f"http://localhost:{horizon_port}/", horizon)
        subprocess.run([*GATEWAY, "db", "upgrade"], env=env, check=True, capture_output=True)
        server = subprocess.Popen(
            [*GATEWAY, "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        wait_until_up(f"http://localhost:{port}/health", server)
        RUNNING_ENV.clear()
        RUNNING_ENV.update(env, HORIZON=f"http://localhost:{horizon_port}")
        yield f"http://localhost:{port}"
    finally:
        if server is not None:
            stop(server)
        stop(horizon)
        log.close()


class SdkWallet:
    """Only stellar-sdk and httpx, as an outside wallet would be written."""

    def __init__(self, base: str, keypair: Keypair | None = None):
        self.base = base
        self.kp = keypair or Keypair.random()
        toml = tomllib.loads(httpx.get(f"{base}/.well-known/stellar.toml").text)
        self.endpoint = toml["WEB_AUTH_ENDPOINT"]
        self.server_key = toml["SIGNING_KEY"]
        self.passphrase = toml["NETWORK_PASSPHRASE"]
        self.home = base.split("://")[1]

    def signed_challenge(self, *extra_signers: Keypair, **params: str) -> str:
        params.setdefault("account", self.kp.public_key)
        with httpx.Client() as c:  # a new connection: any worker may answer
            r = c.get(self.endpoint, params=params)
        assert r.status_code == 200, r.text
        xdr = r.json()["transaction"]
        read_challenge_transaction(xdr, self.server_key, self.home, self.home, self.passphrase)
        envelope = TransactionEnvelope.from_xdr(xdr, self.passphrase)
        for signer in (self.kp, *extra_signers):
            envelope.sign(signer)
        return envelope.to_xdr()

    def post(self, xdr: str) -> httpx.Response:
        with httpx.Client() as c:
            return c.post(self.endpoint, data={"transaction": xdr})

    def token_claims(self, *extra_signers: Keypair, **params: str) -> dict:
        r = self.post(self.signed_challenge(*extra_signers, **params))
        assert r.status_code == 200, r.text
        return jwt.decode(r.json()["token"], options={"verify_signature": False})


def test_new_account_gets_a_token(running_gateway):
    wallet = SdkWallet(running_gateway)
    assert wallet.token_claims()["sub"] == wallet.kp.public_key


def test_muxed_account_gets_a_token(running_gateway):
    wallet = SdkWallet(running_gateway)
    muxed = MuxedAccount(wallet.kp.public_key, 1234).account_muxed
    assert wallet.token_claims(account=muxed)["sub"] == muxed


def test_account_with_memo_gets_a_token(running_gateway):
    wallet = SdkWallet(running_gateway)
    assert wallet.token_claims(memo="99")["sub"] == f"{wallet.kp.public_key}:99"


def test_client_domain_gets_a_token(running_gateway, wallet_domain):
    domain, key = wallet_domain
    wallet = SdkWallet(running_gateway)
    assert wallet.token_claims(key, client_domain=domain)["client_domain"] == domain


def test_replay_is_refused_across_workers(running_gateway):
    wallet = SdkWallet(running_gateway)
    signed = wallet.signed_challenge()
    # New connections spread over both workers (one socket each), so some of these
    # re-posts reach the worker that did not issue the token.
    answers = [wallet.post(signed).status_code for _ in range(12)]
    assert answers == [200] + [400] * 11


def test_existing_account_thresholds_come_from_horizon(running_gateway):
    horizon = httpx.get(f"{running_gateway}/.well-known/stellar.toml").text
    horizon_url = tomllib.loads(horizon)["HORIZON_URL"]
    wallet = SdkWallet(running_gateway)
    signer = Keypair.random()
    seeded = httpx.post(
        f"{horizon_url}/_fake/accounts",
        json={
            "account_id": wallet.kp.public_key,
            "xlm": "100",
            "signers": [{"key": signer.public_key, "weight": 1}],
            "thresholds": {"low": 2, "med": 2, "high": 2},
        },
    )
    assert seeded.status_code in (200, 201), seeded.text
    assert wallet.post(wallet.signed_challenge()).status_code == 400  # weight 1 < 2
    assert wallet.token_claims(signer)["sub"] == wallet.kp.public_key  # 1 + 1 >= 2


def test_a_horizon_on_another_network_is_refused(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    horizon = subprocess.Popen(
        [
            *GATEWAY,
            "sandbox",
            "horizon",
            "--port",
            str(port),
            "--passphrase",
            "Test SDF Future Network ; October 2022",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://localhost:{port}/", horizon)
        env.update(
            GATEWAY_CONFIG=str(REPO / "config/testnet.toml"),
            GATEWAY_TESTNET_SECRETS_FILE=str(tmp_path / "testnet-secrets.json"),
            GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
            GATEWAY_HORIZON_URL=f"http://localhost:{port}",
        )
        for command in (["config", "check"], ["serve", "--port", str(free_port())]):
            if command[0] == "serve":
                subprocess.run(
                    [*GATEWAY, "db", "upgrade"], env=env, check=True, capture_output=True
                )
            done = subprocess.run(
                [*GATEWAY, *command], env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 2, done.stderr
            assert "serves 'Test SDF Future Network ; October 2022', not" in done.stderr
    finally:
        stop(horizon)


def test_a_sep31_transfer_over_tcp_is_paid_and_watched(running_gateway):
    """A sending anchor with only stellar-sdk and httpx: customers, a transfer, a real payment
    through the sandbox Horizon; `gateway watch-payments --once` matches it and `gateway
    transfers` shows and acts on it."""
    env = dict(RUNNING_ENV)
    horizon = env.pop("HORIZON")
    wallet = SdkWallet(running_gateway)
    token = httpx.post(wallet.endpoint, data={"transaction": wallet.signed_challenge()}).json()[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    toml = tomllib.loads(httpx.get(f"{running_gateway}/.well-known/stellar.toml").text)
    kyc, sep31 = toml["KYC_SERVER"], toml["DIRECT_PAYMENT_SERVER"]
    [currency] = toml["CURRENCIES"]
    sender = httpx.put(
        f"{kyc}/customer",
        json={"first_name": "A", "last_name": "B", "email_address": "a@example.com"},
        headers=auth,
    ).json()["id"]
    receiver = httpx.put(
        f"{kyc}/customer",
        json={
            "memo": "2",
            "first_name": "C",
            "last_name": "D",
            "bank_account_number": "1",
            "bank_number": "2",
        },
        headers=auth,
    ).json()["id"]
    created = httpx.post(
        f"{sep31}/transactions",
        json={
            "amount": 25,
            "asset_code": currency["code"],
            "funding_method": "SWIFT",
            "sender_id": sender,
            "receiver_id": receiver,
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    transfer = created.json()

    # The receiving account and a payer on the sandbox Horizon; the payer pays with the memo.
    issuer, code = currency["issuer"], currency["code"]
    line = {"asset_code": code, "asset_issuer": issuer}
    httpx.post(f"{horizon}/_fake/accounts", json={"account_id": issuer}).raise_for_status()
    httpx.post(
        f"{horizon}/_fake/accounts",
        json={"account_id": transfer["stellar_account_id"], "trustlines": [line]},
    ).raise_for_status()
    payer = Keypair.random()
    httpx.post(
        f"{horizon}/_fake/accounts",
        json={"account_id": payer.public_key, "trustlines": [{**line, "balance": "100"}]},
    ).raise_for_status()
    server = Server(horizon)
    tx = (
        TransactionBuilder(server.load_account(payer.public_key), wallet.passphrase, 100)
        .append_payment_op(transfer["stellar_account_id"], Asset(code, issuer), "25")
        .add_id_memo(int(transfer["stellar_memo"]))
        .set_timeout(60)
        .build()
    )
    tx.sign(payer)
    server.submit_transaction(tx)

    def transaction() -> dict:
        r = httpx.get(f"{sep31}/transactions/{transfer['id']}", headers=auth)
        assert r.status_code == 200, r.text
        return dict(r.json()["transaction"])

    assert transaction()["status"] == "pending_sender"
    watched = subprocess.run(
        [*GATEWAY, "watch-payments", "--once"], env=env, capture_output=True, text=True
    )
    assert watched.returncode == 0, watched.stderr
    assert f"caught up on {transfer['stellar_account_id']}" in watched.stdout
    assert transaction()["status"] == "pending_receiver"

    shown = subprocess.run(
        [*GATEWAY, "transfers", "show", transfer["id"]], env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert [e["to_status"] for e in view["events"]] == ["pending_sender", "pending_receiver"]
    # 25 less a fee of 0.50 + 1 %.
    assert [(p["purpose"], p["amount"], p["rail"]) for p in view["payouts"]] == [
        ("payout", 242_500_000, "SWIFT")
    ]
    acted = subprocess.run(
        [
            *GATEWAY,
            "transfers",
            "act",
            transfer["id"],
            "release",
            "--reason",
            "x",
            "--operator",
            "ana",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert acted.returncode == 1 and "cannot become released" in acted.stderr
    listed = subprocess.run(
        [*GATEWAY, "payments", "list", "--outcome", "matched"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert json.loads(listed.stdout)["transfer_id"] == transfer["id"]


def test_a_sending_institution_with_only_the_sdk_gets_each_answer(running_gateway, wallet_domain):
    """SEP-3 as its text describes it, with stellar-sdk, hashlib and httpx only: resolve the
    recipient by SEP-2, build the attachment and the unsigned payment whose memo is its
    hash, sign `data` with the institution's SIGNING_KEY (its stellar.toml is served on
    localhost), and post the form. 200, 202 (review), 403 (sanctions) and 400 (signature)."""
    import base64
    import hashlib

    from stellar_sdk import Account

    domain, fi_key = wallet_domain
    env = dict(RUNNING_ENV)
    env.pop("HORIZON")
    wallet = SdkWallet(running_gateway)
    token = httpx.post(wallet.endpoint, data={"transaction": wallet.signed_challenge()}).json()[
        "token"
    ]
    toml = tomllib.loads(httpx.get(f"{running_gateway}/.well-known/stellar.toml").text)
    receiver = httpx.put(
        f"{toml['KYC_SERVER']}/customer",
        json={"first_name": "Bo", "last_name": "B", "bank_account_number": "1", "bank_number": "2"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["id"]
    subprocess.run(
        [*GATEWAY, "federation", "add", "bob", receiver], env=env, check=True, capture_output=True
    )
    home = running_gateway.split("://")[1]
    record = httpx.get(toml["FEDERATION_SERVER"], params={"type": "name", "q": f"bob*{home}"})
    assert record.status_code == 200, record.text
    [currency] = toml["CURRENCIES"]
    asset = Asset(currency["code"], currency["issuer"])

    def ask(nonce: str, amount: str = "10", name: str = "Alice", signer: Keypair = fi_key):
        attachment = json.dumps(
            {
                "nonce": nonce,
                "transaction": {
                    "sender_info": {"first_name": name, "last_name": "Badguy"},
                    "route": "bob",
                    "note": "",
                    "extra": "",
                },
                "operations": [],
            }
        )
        source = Account(Keypair.random().public_key, -1)  # the SEP asks for sequence 0
        tx = (
            TransactionBuilder(source, toml["NETWORK_PASSPHRASE"], base_fee=100)
            .append_payment_op(record.json()["account_id"], asset, amount)
            .add_hash_memo(hashlib.sha256(attachment.encode()).digest())
            .set_timeout(300)
            .build()
            .transaction
        )
        data = json.dumps(
            {
                "sender": f"alice*{domain}",
                "need_info": False,
                "tx": tx.to_xdr_object().to_xdr(),
                "attachment": attachment,
            }
        )
        sig = base64.b64encode(signer.sign(data.encode())).decode()
        return httpx.post(toml["AUTH_SERVER"], data={"data": data, "sig": sig})

    ok = ask("n-1")
    assert (ok.status_code, ok.json()) == (200, {"info_status": "ok", "tx_status": "ok"})
    pending = ask("n-2", amount="20000")
    assert (pending.status_code, pending.json()["pending"]) == (202, 600)
    denied = ask("n-3", name="Ivan")
    assert (denied.status_code, denied.json()["tx_status"]) == (403, "denied")
    forged = ask("n-4", signer=Keypair.random())
    assert forged.status_code == 400 and forged.json()["error"].startswith("sig: ")
