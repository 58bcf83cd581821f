"""Apply and inspect Alembic migrations from inside the app (serve, migrate, readiness)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# The migrations live beside the package in a source checkout (the deployment unit).
ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if url is not None:
        # attributes, not set_main_option: a password with "%" would break configparser.
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class UnknownRevision(Exception):
    """The database is at a migration this code does not have (a newer b24mail migrated it)."""


def pending_revisions(current: str | None) -> list[tuple[str, str]]:
    """(revision, description) of each migration after `current`, in the order they apply."""
    script = ScriptDirectory.from_config(alembic_config())
    try:
        after = list(script.iterate_revisions(script.get_current_head(), current))
    except RevisionError as exc:
        raise UnknownRevision(str(current)) from exc
    return [(each.revision, each.doc) for each in reversed(after)]


def describe_revisions(revisions: list[tuple[str, str]]) -> str:
    return ", ".join(f"{revision} ({doc})" for revision, doc in revisions)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_run, "downgrade", revision)


def _run(connection: Connection, direction: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    getattr(command, direction)(cfg, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
