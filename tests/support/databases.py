"""Real databases for tests: a SQLite file per test, a PostgreSQL database per session."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
from sqlalchemy.engine import make_url

ADMIN_URL_VARIABLE = "B24MAIL_TEST_PG_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    """The server's maintenance database; read on every call, because the session may start a
    throwaway server (tests/support/throwaway_postgres.py) after this module was imported."""
    return os.environ.get(ADMIN_URL_VARIABLE) or DEFAULT_ADMIN_URL


def postgres_required() -> bool:
    return os.environ.get("B24MAIL_SKIP_POSTGRES") != "1"


def pg_database_url(database: str, *, driver: str = "postgresql") -> str:
    """The URL of `database` on the test server; also for a Unix-socket admin URL (?host=/dir)."""
    url = make_url(pg_admin_url()).set(drivername=driver, database=database)
    return url.render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(pg_admin_url(), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database(prefix: str = "b24mail_test") -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return name, pg_database_url(name, driver="postgresql+asyncpg")


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(path: os.PathLike[str] | str) -> str:
    return f"sqlite+aiosqlite:///{path}"
