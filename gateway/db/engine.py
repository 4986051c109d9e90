"""Async engine creation for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


def resolve_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path absolute against ``base_dir`` and create its folder."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return url
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    path = Path(database)
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).drivername.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    # hide_parameters: bound values (personal data, later) never reach logs or exceptions.
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if is_sqlite(url):
        # Each connection is a file handle served by its own thread; SQLite has one writer
        # at a time anyway, so a few connections serve a process best. WAL lets readers run
        # beside the writer; busy_timeout makes writers of other processes wait, not fail.
        kwargs["connect_args"] = {"timeout": 30}
        if ":memory:" in url:
            kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=min(pool_size, 4), max_overflow=4)
    else:
        # No pre-ping: it costs a round trip per checkout. A connection that died with a
        # server restart is detected on use and the pool is invalidated, so one request
        # per pooled connection may fail once after a restart.
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_begin) instead of pysqlite's lazy one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


READ_ONLY = {"gateway_read_only": True}
# One statement, one transaction. On SQLite the connections are already in the DBAPI's
# autocommit mode (the begin listener adds BEGIN), so skipping BEGIN is all it takes and
# saves the isolation-level round trips that SQLAlchemy's AUTOCOMMIT makes per checkout.
SQLITE_AUTOCOMMIT = {"gateway_autocommit": True}


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead
    # of one failing with "database is locked" when it upgrades a read lock mid-transaction.
    # Connections marked with READ_ONLY execution options read from a snapshot instead, and
    # AUTOCOMMIT ones run each statement as its own transaction (the lock is held briefly).
    options = conn.get_execution_options()
    if options.get("gateway_autocommit") or options.get("isolation_level") == "AUTOCOMMIT":
        return
    if options.get("gateway_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
