from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from gateway.__main__ import main
from gateway.db.engine import create_engine
from gateway.db.migrate import head_revision, schema_status, upgrade
from gateway.db.uow import UnitOfWorkFactory
from tests.conftest import REPO


async def test_migrated_schema_is_current(engine):
    status = await schema_status(engine)
    assert status.is_current and status.current == head_revision()


async def test_used_challenge_is_accepted_once(engine):
    uow = UnitOfWorkFactory(engine)
    async with uow() as u:
        assert await u.challenges.consume("a" * 64, 2_000_000_000) is True
        await u.commit()
    async with uow() as u:
        assert await u.challenges.consume("a" * 64, 2_000_000_000) is False
        await u.commit()


async def test_concurrent_uses_of_one_challenge_yield_one_winner(engine):
    uow = UnitOfWorkFactory(engine)

    async def attempt() -> bool:
        async with uow() as u:
            won = await u.challenges.consume("b" * 64, 2_000_000_000)
            await u.commit()
            return won

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(True) == 1


async def test_unit_of_work_rolls_back_without_commit(engine):
    uow = UnitOfWorkFactory(engine)
    async with uow() as u:
        await u.challenges.consume("c" * 64, 1)
    async with uow() as u:
        assert await u.challenges.consume("c" * 64, 1) is True
        await u.commit()


async def test_expired_used_challenges_are_forgotten(engine):
    uow = UnitOfWorkFactory(engine)
    async with uow() as u:
        await u.challenges.consume("d" * 64, 100)
        await u.challenges.consume("e" * 64, 300)
        await u.commit()
    async with uow() as u:
        assert await u.challenges.forget_expired(200) == 1
        await u.commit()
    async with uow() as u:
        assert await u.challenges.consume("d" * 64, 100) is True
        assert await u.challenges.consume("e" * 64, 300) is False


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A database with no schema at all, of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_empty"


@pytest.fixture
async def fresh_database(empty_database_url):
    if empty_database_url.startswith("postgresql"):
        import asyncpg

        admin = empty_database_url.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0]
        name = empty_database_url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(admin + "/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        yield empty_database_url
        conn = await asyncpg.connect(admin + "/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    else:
        yield empty_database_url


def run_cli(*argv: str) -> int:
    return main(list(argv))


async def test_db_upgrade_command_builds_the_schema_on_both_databases(
    fresh_database, monkeypatch, capsys
):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", fresh_database)
    config = str(REPO / "config/testnet.toml")
    assert await asyncio.to_thread(run_cli, "db", "status", "--config", config) == 1
    assert "run `gateway db upgrade`" in capsys.readouterr().err
    assert await asyncio.to_thread(run_cli, "db", "upgrade", "--config", config) == 0
    assert await asyncio.to_thread(run_cli, "db", "status", "--config", config) == 0
    engine = create_engine(fresh_database)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(text("SELECT count(*) FROM sep10_used_challenges"))
        assert count == 0
        # Upgrading a current schema is a no-op.
        await upgrade(engine)
        assert (await schema_status(engine)).is_current
    finally:
        await engine.dispose()


async def test_autocommit_unit_of_work_keeps_each_statement(engine):
    uow = UnitOfWorkFactory(engine)
    async with uow(autocommit=True) as u:
        assert await u.challenges.consume("f" * 64, 1) is True
        # no commit: each statement committed by itself
    async with uow() as u:
        assert await u.challenges.consume("f" * 64, 1) is False


async def test_sqlite_writers_of_one_process_queue_instead_of_failing(sqlite_engine):
    uow = UnitOfWorkFactory(sqlite_engine)

    async def write(i: int) -> None:
        async with uow() as u:
            await u.challenges.consume(f"{i:064d}", 1)
            await asyncio.sleep(0.01)  # hold the transaction open across an await
            await u.commit()

    await asyncio.gather(*(write(i) for i in range(10)))
    async with uow() as u:
        assert await u.challenges.forget_expired(2) == 10


async def test_concurrent_autocommit_uses_of_one_challenge_yield_one_winner(engine):
    uow = UnitOfWorkFactory(engine)

    async def attempt() -> bool:
        async with uow(autocommit=True) as u:
            return await u.challenges.consume("9" * 64, 2_000_000_000)

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(True) == 1


async def test_a_unit_of_work_that_cannot_begin_gives_everything_back(sqlite_engine, monkeypatch):
    from sqlalchemy.ext.asyncio import AsyncConnection

    uow = UnitOfWorkFactory(sqlite_engine)
    real_begin = AsyncConnection.begin
    failures = iter([RuntimeError("database is locked")])

    def begin(self):
        for exc in failures:
            raise exc
        return real_begin(self)

    monkeypatch.setattr(AsyncConnection, "begin", begin)
    with pytest.raises(RuntimeError):
        async with uow():
            pass
    # The write lock and the connection came back: the next unit of work runs.
    async with asyncio.timeout(5):
        async with uow() as u:
            assert await u.challenges.consume("8" * 64, 1)
            await u.commit()
    assert sqlite_engine.pool.checkedout() == 0


async def test_tables_match_the_migrations(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gateway.db.tables import metadata

    def diff(connection):
        return compare_metadata(MigrationContext.configure(connection), metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_the_sweeper_keeps_challenges_for_a_clock_margin(engine, monkeypatch):
    from gateway import app as app_module
    from gateway.deps import Deps

    now = 2_000_000_000
    uow = UnitOfWorkFactory(engine)
    async with uow() as u:
        await u.challenges.consume("1" * 64, now - app_module.CLOCK_MARGIN_SECONDS - 1)
        await u.challenges.consume("2" * 64, now - 1)  # expired, but within the margin
        await u.commit()
    deps = Deps(engine=engine, horizon=None, tomls=None, clock=lambda: now)  # type: ignore[arg-type]
    steps = dict(
        (name, step)
        for name, step, _ in app_module.background_steps(
            _settings(),
            deps,
            None,  # type: ignore[arg-type]
        )
        if name == "sweep-challenges"
    )
    await steps["sweep-challenges"]()
    async with uow() as u:
        assert await u.challenges.consume("1" * 64, 1) is True  # swept
        assert await u.challenges.consume("2" * 64, 1) is False  # still remembered


def _settings():
    from gateway.settings import load_settings

    return load_settings(
        REPO / "config/testnet.toml",
        {"GATEWAY_OUTBOX_RUN_IN_SERVER": "false", "GATEWAY_SEP31_WATCH_IN_SERVER": "false"},
    )
