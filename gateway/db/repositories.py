"""Repositories: the only code that writes SQL. Each takes the unit of work's connection."""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.tables import sep10_used_challenges


class UsedChallenges:
    """SEP-10 challenges already exchanged for a token."""

    def __init__(self, conn: AsyncConnection):
        self._conn = conn

    # One statement both dialects run, prepared once: this is on every token's path.
    _CONSUME = text(
        "INSERT INTO sep10_used_challenges (tx_hash, expires_at) VALUES (:h, :e) "
        "ON CONFLICT (tx_hash) DO NOTHING"
    )

    async def consume(self, tx_hash: str, expires_at: int) -> bool:
        """Record the challenge as used; False when it had been used already."""
        result = await self._conn.execute(self._CONSUME, {"h": tx_hash, "e": expires_at})
        return result.rowcount == 1

    async def forget_expired(self, now: int) -> int:
        result = await self._conn.execute(
            delete(sep10_used_challenges).where(sep10_used_challenges.c.expires_at < now)
        )
        return result.rowcount
