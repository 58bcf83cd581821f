"""Stored links: the webhook code is encrypted, and key rotation keeps every link readable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.store.crypto import SecretBox, SecretDecryptionError
from bot.store.db import create_session_factory
from bot.store.links import LinkRepository
from bot.store.models import Link

CODE = "a1b2c3d4e5f6g7h8"
ANNA = SlackUser(team_id="T1", user_id="UANNA")


def key() -> SecretStr:
    return SecretStr(Fernet.generate_key().decode())


async def test_rotation_keeps_old_links_working_and_retires_the_old_key(
    engine: AsyncEngine,
) -> None:
    """Link under key 1; rotate with [key 2, key 1]; afterwards key 2 alone reads the link."""
    sessions = create_session_factory(engine)
    old, new = key(), key()
    before = LinkRepository(sessions=sessions, box=SecretBox([old]))
    await before.save(
        ANNA,
        scheme="https",
        host="corp.bitrix24.com",
        b24_user_id=1,
        secret=SecretStr(CODE),
        senders=[],
    )
    during = LinkRepository(sessions=sessions, box=SecretBox([new, old]))
    link = await during.get(ANNA)
    assert link is not None
    assert during.secret_of(link).get_secret_value() == CODE  # old links keep working at once
    assert await during.rotate_keys() == 1
    after = LinkRepository(sessions=sessions, box=SecretBox([new]))
    rotated = await after.get(ANNA)
    assert rotated is not None
    assert after.secret_of(rotated).get_secret_value() == CODE
    with pytest.raises(SecretDecryptionError, match="rotate-keys"):
        LinkRepository(sessions=sessions, box=SecretBox([old])).secret_of(rotated)


async def test_the_code_is_stored_encrypted(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    repository = LinkRepository(sessions=sessions, box=SecretBox([key()]))
    await repository.save(
        ANNA,
        scheme="https",
        host="corp.bitrix24.com",
        b24_user_id=1,
        secret=SecretStr(CODE),
        senders=[],
    )
    async with sessions() as session:
        stored = (await session.scalars(select(Link.secret_encrypted))).one()
    assert CODE not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
