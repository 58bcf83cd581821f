"""Removing a workspace is all or nothing: a failure midway leaves every row where it was."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import Executable

from bot.identity import SlackUser
from bot.mail.workspace import WorkspaceRemoval
from bot.store.cards import CardRepository, NewCard
from bot.store.crypto import SecretBox
from bot.store.db import SessionFactory, create_session_factory
from bot.store.links import LinkRepository
from bot.store.models import EmailCard, Link
from bot.store.preferences import PreferenceRepository, UserPreference
from bot.store.workspace import WorkspaceRepository

ALICE = SlackUser(team_id="T0001", user_id="U0001")
BOB = SlackUser(team_id="T0002", user_id="U0002")


class Installations:
    """InstallationRows whose workspace deletion ends with a statement the database refuses."""

    def __init__(self, *, fail: bool) -> None:
        self.fail = fail

    def of_workspace(
        self, *, enterprise_id: str | None, team_id: str | None
    ) -> Sequence[Executable]:
        return [text("DELETE FROM no_such_table")] if self.fail else []

    def of_tokens(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_ids: Sequence[str],
        bot: bool,
    ) -> Sequence[Executable]:
        return []


async def seed(sessions: SessionFactory, user: SlackUser, number: int) -> None:
    box = SecretBox([SecretStr(Fernet.generate_key().decode())])
    await LinkRepository(sessions=sessions, box=box).save(
        user,
        scheme="https",
        host="corp.example",
        b24_user_id=number,
        secret=SecretStr("c"),
        senders=[],
    )
    await CardRepository(sessions=sessions).record(
        NewCard(
            enterprise_id=user.enterprise_id,
            team_id=user.team_id,
            channel_id="C1",
            message_ts=f"1700000000.{number:06d}",
            b24_message_id=number,
            portal_host="corp.example",
            shared_by=user.user_id,
        )
    )
    await PreferenceRepository(sessions=sessions).set_language(user, "ru")


async def rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            model.__tablename__: int(
                await connection.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (Link, EmailCard, UserPreference)
        }


async def test_a_failure_midway_removes_nothing(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    await seed(sessions, ALICE, 1)
    await seed(sessions, BOB, 2)
    removal = WorkspaceRemoval(
        WorkspaceRepository(sessions=sessions, installations=Installations(fail=True))
    )
    # The links, cards and preferences are deleted before the installation rows fail.
    with pytest.raises(DBAPIError):
        await removal.app_uninstalled(enterprise_id=None, team_id="T0001", org_wide=False)
    assert await rows(engine) == {"links": 2, "email_cards": 2, "user_preferences": 2}


async def test_the_workspace_goes_and_the_others_stay(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    await seed(sessions, ALICE, 1)
    await seed(sessions, BOB, 2)
    removal = WorkspaceRemoval(
        WorkspaceRepository(sessions=sessions, installations=Installations(fail=False))
    )
    await removal.app_uninstalled(enterprise_id=None, team_id="T0001", org_wide=False)
    assert await rows(engine) == {"links": 1, "email_cards": 1, "user_preferences": 1}
    async with engine.connect() as connection:
        assert set((await connection.execute(select(Link.team_id))).scalars()) == {"T0002"}
