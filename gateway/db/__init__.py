"""Persistence: engine, tables, repositories, unit of work and alembic migrations."""
