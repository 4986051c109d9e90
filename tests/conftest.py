"""Shared fixtures: settings, databases (SQLite and a real PostgreSQL), the app under test.

PostgreSQL: GATEWAY_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
names a server; the session creates a fresh database there and drops it at the end. If the
server cannot be reached the run fails: the PostgreSQL half is never skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.db.tables import metadata
from gateway.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
# Every log record of the run is scanned for secrets and SEP-9 values (tests/log_scan.py).
pytest_plugins = ["tests.log_scan"]
PG_ADMIN_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# Tests never reach the internet: only loopback (and the test PostgreSQL host) may be dialled.
_real_connect = socket.socket.connect
_ALLOWED_HOSTS = {"127.0.0.1", "::1", "localhost", make_url(PG_ADMIN_URL).host or "127.0.0.1"}


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in _ALLOWED_HOSTS:
            raise OSError(f"tests must not reach the network (tried {host})")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


# -- settings ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _testnet_secrets_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands under test that generate testnet secrets keep them in the test's folder."""
    monkeypatch.setenv("GATEWAY_TESTNET_SECRETS_FILE", str(tmp_path / "testnet-secrets.json"))


TEST_SIGNING_SECRET = "SBGWSG6BTNCKCOB3DIFBGCVMUPQFYPA2G4O34RMTB343OYPXU5DJDVMN"
TEST_JWT_SECRET = "test-jwt-secret-" + "x" * 32
TEST_KYC_KEY = "dGVzdC1reWMta2V5LTMyLWJ5dGVzLWxvbmctLS0tLS0="

# Customer types whose sender must verify a mobile number with a code.
VERIFY_PHONE = {
    "GATEWAY_SEP12_TYPES": json.dumps(
        [
            {
                "name": "sep31-sender",
                "direction": "sender",
                "description": "Sender",
                "required": ["first_name", "mobile_number"],
                "verify": ["mobile_number"],
            },
            {
                "name": "sep31-receiver",
                "direction": "receiver",
                "description": "Receiver",
                "required": ["first_name"],
            },
        ]
    )
}


def write_config(tmp_path: Path, body: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Testnet settings from the repository's config with environment-style overrides."""

    def make(config: str | Path = REPO / "config/testnet.toml", **env: str) -> Settings:
        environ = {
            "GATEWAY_SIGNING_SECRET": TEST_SIGNING_SECRET,
            "GATEWAY_JWT_SECRET": TEST_JWT_SECRET,
            "GATEWAY_KYC_KEY": TEST_KYC_KEY,
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        }
        environ.update(env)
        return load_settings(config, environ)

    return make


# -- databases --------------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run (SQLAlchemy URL)."""
    admin = _asyncpg_dsn(PG_ADMIN_URL)
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        try:
            conn = await asyncpg.connect(admin, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); "
                "run scripts/test, which starts or installs it",
                pytrace=False,
            )
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    sa_url = url.render_as_string(hide_password=False)

    async def migrate() -> None:
        engine = create_engine(sa_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    try:
        yield sa_url
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "gateway.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def migrate() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both databases: every test using this runs on SQLite and on PostgreSQL."""
    name = "sqlite_database" if request.param == "sqlite" else "postgres_database"
    url: str = request.getfixturevalue(name)
    return url


async def _wipe(engine: AsyncEngine) -> None:
    """Empty every table. The audit log refuses DELETE (row triggers): PostgreSQL empties it
    with TRUNCATE, which fires none; SQLite's triggers are dropped and made again."""
    async with engine.begin() as conn:
        triggers: list[str] = []
        if conn.dialect.name == "sqlite":
            found = await conn.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            )
            for name, sql in found.all():
                await conn.execute(text(f'DROP TRIGGER "{name}"'))
                triggers.append(sql)
        for table in reversed(metadata.sorted_tables):
            if table.name == "audit_log" and conn.dialect.name == "postgresql":
                await conn.execute(text("TRUNCATE audit_log"))
            else:
                await conn.execute(table.delete())
        for sql in triggers:
            await conn.execute(text(sql))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    await _wipe(eng)
    try:
        yield eng
    finally:
        await _wipe(eng)
        await eng.dispose()


@pytest.fixture
async def sqlite_engine(sqlite_database: str) -> AsyncIterator[AsyncEngine]:
    """SQLite only, for tests whose subject is not the database."""
    eng = create_engine(sqlite_database)
    await _wipe(eng)
    try:
        yield eng
    finally:
        await _wipe(eng)
        await eng.dispose()
