"""The migrations build the schema the models describe, both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.schema import metadata as schema
from bot.store.db import create_engine
from bot.store.migrations import ALEMBIC_DIR, current_revision, downgrade, head_revision, upgrade
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    postgres_required,
    sqlite_url,
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "m.db")
        return
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, url = create_pg_database("b24mail_migrations")
    yield url
    drop_pg_database(name)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, schema))


async def test_upgrade_downgrade_upgrade_and_models_agree(empty_database: str) -> None:
    """head → base → head works, and autogenerate then finds no difference from the models."""
    engine = create_engine(empty_database)
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set(schema.tables)
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


def test_migration_files_are_named_by_date() -> None:
    """Every migration file name starts with its creation date, so they sort in history order."""
    names = sorted(p.name for p in (ALEMBIC_DIR / "versions").glob("*.py"))
    assert names
    for name in names:
        stamp = name.split("_", 2)
        assert len(stamp[0]) == 8 and stamp[0].isdigit() and stamp[1].isdigit(), name
