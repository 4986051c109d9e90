"""SEP-12 test helpers: a wallet's KYC client, a fake KYC provider, a settable clock, sample
files, and the app built like tests/e2e/conftest.py with a chosen clock and KYC provider."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.db.tables import metadata
from gateway.deps import Deps
from gateway.outbound.horizon import HttpxHorizon
from gateway.outbound.kyc_provider import ReviewDecision, ReviewRequest
from gateway.outbound.stellar_toml import HttpxStellarTomls
from gateway.sandbox.horizon import FakeHorizonTransport, FakeLedger
from gateway.settings import Settings
from tests.fakes.callbacks import FakeCallbackEndpoints, FakeNotifier
from tests.fakes.toml_hosts import TomlHosts

# Smallest files that pass the magic-number check, padded with recognisable bytes.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"png-body-" * 8
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"jpeg-body-" * 8
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"pdf-body-" * 8

KYC = "/kyc"


class ManualClock:
    """Real time plus an offset the test moves forward (SEP-10 challenges are checked by the
    wallet against real time, so the offset starts at zero)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class FakeKycProvider:
    """The operator's KYC provider: answers what the test queued (first to last), then
    ``default``; records each request. ``during_review`` runs while a review is in flight."""

    answers: list[ReviewDecision | Exception] = field(default_factory=list)
    default: ReviewDecision = field(default_factory=lambda: ReviewDecision("PROCESSING"))
    requests: list[ReviewRequest] = field(default_factory=list)
    during_review: Callable[[], Awaitable[None]] | None = None

    async def review(self, request: ReviewRequest) -> ReviewDecision:
        self.requests.append(request)
        if self.during_review is not None:
            hook, self.during_review = self.during_review, None
            await hook()
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return self.default


@dataclass
class Kyc:
    """A wallet's SEP-12 calls with one SEP-10 token."""

    client: httpx.AsyncClient
    token: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def get(self, **params: Any) -> httpx.Response:
        return await self.client.get(f"{KYC}/customer", params=params, headers=self.headers)

    async def put(
        self,
        json_body: Mapping[str, Any] | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
    ) -> httpx.Response:
        if json_body is not None:
            return await self.client.put(
                f"{KYC}/customer", json=dict(json_body), headers=self.headers
            )
        return await self.client.put(
            f"{KYC}/customer", data=dict(data or {}), files=files, headers=self.headers
        )

    async def put_id(self, json_body: Mapping[str, Any]) -> str:
        response = await self.put(json_body)
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {"id"} and isinstance(body["id"], str)
        return str(body["id"])

    async def status(self, **params: Any) -> dict[str, Any]:
        response = await self.get(**params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def verification(self, body: Mapping[str, Any]) -> httpx.Response:
        return await self.client.put(
            f"{KYC}/customer/verification", json=dict(body), headers=self.headers
        )

    async def callback(self, body: Mapping[str, Any]) -> httpx.Response:
        return await self.client.put(
            f"{KYC}/customer/callback", json=dict(body), headers=self.headers
        )

    async def delete(self, account: str, body: Mapping[str, Any] | None = None) -> httpx.Response:
        if body is None:
            return await self.client.delete(f"{KYC}/customer/{account}", headers=self.headers)
        return await self.client.request(
            "DELETE",
            f"{KYC}/customer/{account}",
            content=json.dumps(body),
            headers={**self.headers, "Content-Type": "application/json"},
        )

    async def upload(
        self, content: bytes, content_type: str = "image/png", name: str = "file"
    ) -> httpx.Response:
        return await self.client.post(
            f"{KYC}/customer/files",
            files={name: ("upload.bin", content, content_type)},
            headers=self.headers,
        )

    async def files(self, **params: Any) -> httpx.Response:
        return await self.client.get(f"{KYC}/customer/files", params=params, headers=self.headers)


async def kyc_for(gateway: Any, *, memo: str | None = None, wallet: Any = None) -> Kyc:
    """A Kyc client with a fresh SEP-10 token of ``wallet`` (a new account by default)."""
    wallet = wallet or gateway.wallet()
    token = await wallet.token(memo=memo) if memo is not None else await wallet.token()
    return Kyc(gateway.client, token)


async def dump_tables(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the database returns them (nothing decrypted)."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = await conn.execute(select(table))
            out[table.name] = [dict(r._mapping) for r in rows]
    return out


def error_of(response: httpx.Response, status: int) -> str:
    """The ``error`` of a JSON error response with exactly that status and no other key."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return str(body["error"])


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings,
    engine: AsyncEngine,
    *,
    clock: Callable[[], float] = time.time,
    kyc_provider: Any = None,
    webhooks: Any = None,
) -> AsyncIterator[Any]:
    """The whole app in-process (the ``gateway`` fixture), with ``clock``, ``kyc_provider``
    and ``webhooks`` (where webhooks are POSTed): the fake Horizon, respx-served toml hosts,
    fake callback endpoints and notifier."""
    from tests.e2e.conftest import Gateway

    ledger = FakeLedger(settings.network_passphrase)
    transport = FakeHorizonTransport(ledger)
    horizon_client = httpx.AsyncClient(transport=transport, base_url="http://horizon.test")
    tomls = TomlHosts()
    toml_client = tomls.client()
    callbacks, notifier = FakeCallbackEndpoints(), FakeNotifier()
    deps = Deps(
        engine=engine,
        horizon=HttpxHorizon(horizon_client),
        tomls=HttpxStellarTomls(toml_client, insecure_hosts=settings.outbound.insecure_hosts),
        callbacks=callbacks,
        notifier=notifier,
        kyc_provider=kyc_provider,
        webhooks=webhooks,
        clock=clock,
    )
    app = create_app(settings, deps)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000"
    )
    gw = Gateway(
        app,
        client,
        settings,
        ledger,
        transport,
        tomls,
        callbacks,
        notifier,
        [horizon_client, toml_client],
    )
    try:
        yield gw
    finally:
        for c in (client, horizon_client, toml_client):
            await c.aclose()


def log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture DEBUG records of every logger, including those that `configure_logging` (run
    by other tests in this process) quietened, such as aiosqlite's parameter-level logs."""
    for name in (None, "gateway", "aiosqlite", "sqlalchemy", "httpx", "httpcore", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record would put in a log line: message, arguments, traceback."""
    text = record.getMessage() + repr(record.args)
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text + (record.exc_text or "") + (record.stack_info or "")


async def rows(gateway: Any, table: Any, **where: Any) -> list[dict[str, Any]]:
    """The rows of ``table`` in the gateway's database where each column equals its value."""
    async with gateway.app.state.deps.engine.connect() as conn:
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return [dict(r._mapping) for r in await conn.execute(query)]
