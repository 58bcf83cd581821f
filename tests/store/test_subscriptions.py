"""The poll budget with an injected clock: slots per portal, round robin, the real period."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.notify import PollConfig
from bot.store.db import create_session_factory
from bot.store.models import Link
from bot.store.subscriptions import SubscriptionRepository

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


async def _subscribe(
    engine: AsyncEngine, count: int, *, host: str = "a.bitrix24.com"
) -> SubscriptionRepository:
    sessions = create_session_factory(engine)
    repo = SubscriptionRepository(sessions=sessions)
    async with sessions.begin() as session:
        for n in range(count):
            session.add(
                Link(
                    id=1000 + n if host.startswith("a") else 2000 + n,
                    team_id="T1",
                    slack_user_id=f"U{host[0]}{n}",
                    portal_host=host,
                    b24_user_id=n + 1,
                    secret_encrypted="x",
                )
            )
    for n in range(count):
        await repo.subscribe(
            SlackUser(team_id="T1", user_id=f"U{host[0]}{n}"),
            link_id=(1000 if host.startswith("a") else 2000) + n,
            portal_host=host,
            search=None,
            channel_id=None,
            now=T0,
        )
    return repo


def test_period_is_the_interval_or_what_the_budget_allows() -> None:
    config = PollConfig(interval=timedelta(seconds=60), budget=0.25, rate=2.0)
    assert config.spacing == timedelta(seconds=2)
    assert config.period(10) == timedelta(seconds=60)  # 10 x 2 s fits in a minute
    assert config.period(200) == timedelta(seconds=400)  # 200 / (0.25 x 2)


async def test_claims_follow_the_budget_and_take_turns(engine: AsyncEngine) -> None:
    """10 subscriptions, a slot every 2 s: 0.5 checks/s, each checked once per 20 s, in turn."""
    config = PollConfig(interval=timedelta(seconds=5), budget=0.25, rate=2.0)
    repo = await _subscribe(engine, 10)
    checked: dict[int, list[float]] = {}
    now = T0
    step = timedelta(milliseconds=250)
    while now < T0 + timedelta(seconds=60):
        row = await repo.claim(
            owner="w", now=now, lease=timedelta(seconds=30), spacing=config.spacing
        )
        if row is not None:
            checked.setdefault(row.id, []).append((now - T0).total_seconds())
            await repo.finish(row.id, owner="w", now=now, next_due_at=now + config.interval)
        now += step
    total = sum(len(times) for times in checked.values())
    assert total == 30  # one per 2 s for 60 s, never more
    assert len(checked) == 10  # everyone had turns
    for times in checked.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps and all(gap == 20.0 for gap in gaps)  # max(5 s, 10 x 2 s)


async def test_a_second_portal_has_its_own_budget(engine: AsyncEngine) -> None:
    config = PollConfig(interval=timedelta(seconds=60), budget=0.25, rate=2.0)
    repo = await _subscribe(engine, 2, host="a.bitrix24.com")
    await _subscribe(engine, 2, host="b.bitrix24.com")
    lease = timedelta(seconds=30)
    first = await repo.claim(owner="w", now=T0, lease=lease, spacing=config.spacing)
    second = await repo.claim(owner="w", now=T0, lease=lease, spacing=config.spacing)
    third = await repo.claim(owner="w", now=T0, lease=lease, spacing=config.spacing)
    assert first is not None and second is not None and third is None
    assert {first.portal_host, second.portal_host} == {"a.bitrix24.com", "b.bitrix24.com"}
    # A further page of a check costs a slot too: the portal's next claim waits two spacings.
    await repo.spend(first.portal_host, now=T0, spacing=config.spacing)
    later = T0 + config.spacing
    other = await repo.claim(owner="w", now=later, lease=lease, spacing=config.spacing)
    assert other is not None and other.portal_host == second.portal_host
    assert await repo.claim(owner="w", now=later, lease=lease, spacing=config.spacing) is None
    # Both portals' slots are now two spacings on; the free subscriptions wait for them.
    assert await repo.next_claim_at() == T0 + 2 * config.spacing


async def test_uninstall_and_disconnect_remove_subscriptions_and_what_they_saw(
    engine: AsyncEngine,
) -> None:
    """The subscription belongs to the link: deleting links deletes it (and its seen rows)."""
    from cryptography.fernet import Fernet
    from pydantic import SecretStr
    from sqlalchemy import func, select

    from bot.store.crypto import SecretBox
    from bot.store.links import LinkRepository
    from bot.store.models import MailSubscription, SeenMail
    from bot.store.subscriptions import NewMail
    from bot.store.workspace import WorkspaceRepository

    repo = await _subscribe(engine, 3)
    row = await repo.claim(
        owner="w", now=T0, lease=timedelta(seconds=30), spacing=timedelta(seconds=1)
    )
    assert row is not None
    await repo.record_check(
        row.id, owner="w", now=T0, baseline=[NewMail(message_id=1, date=T0, card={})]
    )
    links = LinkRepository(
        sessions=create_session_factory(engine),
        box=SecretBox([SecretStr(Fernet.generate_key().decode())]),
    )
    assert await links.delete(SlackUser(team_id="T1", user_id="Ua0"))
    async with engine.connect() as connection:
        left = await connection.scalar(select(func.count()).select_from(MailSubscription))
        seen = await connection.scalar(select(func.count()).select_from(SeenMail))
    assert left == 2 and seen == (0 if row.slack_user_id == "Ua0" else 1)
    # app_uninstalled: every row of the workspace goes, in one transaction.
    await WorkspaceRepository(sessions=create_session_factory(engine)).delete_workspace(
        enterprise_id=None, team_id="T1"
    )
    async with engine.connect() as connection:
        left = await connection.scalar(select(func.count()).select_from(MailSubscription))
        seen = await connection.scalar(select(func.count()).select_from(SeenMail))
    assert (left, seen) == (0, 0)


async def test_prune_forgets_only_what_no_check_can_list_again(engine: AsyncEngine) -> None:
    from bot.store.subscriptions import NewMail

    repo = await _subscribe(engine, 1)
    row = await repo.claim(
        owner="w", now=T0, lease=timedelta(seconds=30), spacing=timedelta(seconds=1)
    )
    assert row is not None
    lookback = timedelta(hours=24)
    await repo.record_check(
        row.id,
        owner="w",
        now=T0,
        baseline=[
            NewMail(message_id=1, date=T0 - timedelta(days=3), card={}),  # long gone
            NewMail(message_id=2, date=T0 - timedelta(hours=20), card={}),  # still listed
            NewMail(message_id=3, date=None, card={}),  # undated: kept for a month
        ],
    )
    # At T0 + 1 day a check lists e-mails dated from T0; a day more is kept for clock skew.
    assert await repo.prune(now=T0 + timedelta(days=1), lookback=lookback) == 1
    assert await repo.known_ids(row.id, [1, 2, 3]) == {2, 3}


async def test_concurrent_claims_share_one_slot(engine: AsyncEngine) -> None:
    """Eight claimers at once (several workers, several loops): one slot, one claim."""
    import asyncio

    config = PollConfig(interval=timedelta(seconds=60), budget=0.25, rate=2.0)
    repo = await _subscribe(engine, 10)
    claims = await asyncio.gather(
        *(
            repo.claim(owner=f"w{n}", now=T0, lease=timedelta(seconds=30), spacing=config.spacing)
            for n in range(8)
        )
    )
    assert sum(claim is not None for claim in claims) == 1
