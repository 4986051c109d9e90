"""Unit of work: one database transaction; rolled back unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from gateway.db.engine import READ_ONLY
from gateway.db.repositories import UsedChallenges


class UnitOfWork:
    """``async with uow: ...; await uow.commit()``. Repositories hang off the instance."""

    challenges: UsedChallenges

    def __init__(self, engine: AsyncEngine, *, read_only: bool = False):
        self._engine = engine
        self._read_only = read_only
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    @property
    def connection(self) -> AsyncConnection:
        assert self._conn is not None, "unit of work used outside `async with`"
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        conn = await self._engine.connect()
        if self._read_only:
            conn = await conn.execution_options(**READ_ONLY)
        self._conn = conn
        self._tx = await conn.begin()
        self.challenges = UsedChallenges(conn)
        return self

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()

    async def rollback(self) -> None:
        assert self._tx is not None
        if self._tx.is_active:
            await self._tx.rollback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.rollback()
        finally:
            assert self._conn is not None
            await self._conn.close()
            self._conn = self._tx = None


class UnitOfWorkFactory:
    """Makes units of work on one engine; what services receive."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, read_only=read_only)
