"""Real databases for tests: a SQLite file per test, a PostgreSQL database per session."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg

PG_ADMIN_URL = os.environ.get(
    "B24MAIL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_required() -> bool:
    return os.environ.get("B24MAIL_SKIP_POSTGRES") != "1"


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database(prefix: str = "b24mail_test") -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(path: os.PathLike[str] | str) -> str:
    return f"sqlite+aiosqlite:///{path}"
