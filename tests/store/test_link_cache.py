"""The listeners' link cache: answers from memory, voided by any link write in the process,
and what is sent (require_stored) always comes from the database."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import Bitrix24Client
from bot.identity import SlackUser
from bot.mail.linking import LinkService
from bot.store.crypto import SecretBox
from bot.store.db import create_session_factory
from bot.store.link_cache import CachedLinkRepository, LinkWrites
from bot.store.links import LinkRepository
from bot.store.models import Link

ANNA = SlackUser(team_id="T1", user_id="UANNA")


async def save(repository: LinkRepository, host: str) -> None:
    await repository.save(
        ANNA, scheme="https", host=host, b24_user_id=1, secret=SecretStr("code"), senders=[]
    )


async def test_hooks_are_registered_once_however_many_caches_are_built(
    engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(engine)
    box = SecretBox([SecretStr(Fernet.generate_key().decode())])
    CachedLinkRepository(sessions=sessions, box=box)
    CachedLinkRepository(sessions=sessions, box=box)
    LinkWrites.watch()
    before = LinkWrites.generation
    await LinkRepository(sessions=sessions, box=box).delete(ANNA)  # one statement, one commit
    # The statement and its commit each count once (0 would mean no hooks are listening).
    assert LinkWrites.generation - before == 2


async def test_a_write_anywhere_in_the_process_voids_the_cache(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    box = SecretBox([SecretStr(Fernet.generate_key().decode())])
    now = [0.0]
    cached = CachedLinkRepository(sessions=sessions, box=box, clock=lambda: now[0])
    plain = LinkRepository(sessions=sessions, box=box)
    await save(plain, "one.example")
    first = await cached.get(ANNA)
    assert first is not None and first.portal_host == "one.example"

    # A change the hooks cannot see (another process's) is served from memory until the TTL.
    async with engine.begin() as connection:
        await connection.execute(update(Link.__table__).values(portal_host="other.example"))
    hit = await cached.get(ANNA)
    assert hit is not None and hit.portal_host == "one.example"
    now[0] += 31
    expired = await cached.get(ANNA)
    assert expired is not None and expired.portal_host == "other.example"

    # A change through any repository of this process shows at once.
    await save(plain, "two.example")
    fresh = await cached.get(ANNA)
    assert fresh is not None and fresh.portal_host == "two.example"


async def test_what_is_sent_is_read_from_the_database(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    box = SecretBox([SecretStr(Fernet.generate_key().decode())])
    bitrix24 = Bitrix24Client()
    links = LinkService(
        links=CachedLinkRepository(sessions=sessions, box=box, clock=lambda: 0.0),
        bitrix24=bitrix24,
        allow_insecure=False,
        probe_timeout=1,
        sender_ttl=timedelta(hours=1),
    )
    await save(LinkRepository(sessions=sessions, box=box), "one.example")
    assert (await links.require(ANNA)).portal_host == "one.example"
    async with engine.begin() as connection:
        await connection.execute(update(Link.__table__).values(portal_host="other.example"))
    assert (await links.require(ANNA)).portal_host == "one.example"  # the cache
    assert (await links.require_stored(ANNA)).portal_host == "other.example"
    await bitrix24.aclose()
