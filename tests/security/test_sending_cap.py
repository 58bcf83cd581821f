"""The per-user hourly sending cap: a clear inline refusal, and nothing queued over it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.settings import Settings
from bot.slack import ids
from bot.store.base import utcnow
from bot.store.models import OutboxEmail
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.security.support import ALICE, compose_payload, count_rows, link
from tests.support.app import RunningApp, running_app

CAP = 3
BOB = SlackUser(team_id="T0002", user_id="U0001")


async def submit(app: RunningApp, view_id: str, user: SlackUser = ALICE) -> dict[str, object]:
    payload = compose_payload(view_id=view_id, user_id=user.user_id, team_id=user.team_id)
    return app.json(await app.interactive(payload))


async def test_over_the_cap_the_modal_says_so_and_nothing_is_queued(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The (cap+1)-th e-mail in an hour gets an inline error naming the cap; no row is written."""
    async with running_app(engine=engine, slack=slack, b24mail_hourly_cap=CAP) as app:
        await link(app, portal)
        accepted = [await submit(app, f"V{i}") for i in range(CAP)]
        refused = await submit(app, "VOVER")
        rows = await count_rows(engine)
    assert accepted == [{}] * CAP
    assert refused["response_action"] == "errors"
    assert "reached the limit of 3 e-mails per hour" in refused["errors"][ids.TO_BLOCK]
    assert rows["outbox"] == CAP


async def test_the_cap_is_per_user(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """One user at the cap does not stop another (the same user id in another workspace)."""
    async with running_app(engine=engine, slack=slack, b24mail_hourly_cap=CAP) as app:
        await link(app, portal)
        await link(app, portal, BOB, b24_id=6)
        for i in range(CAP):
            await submit(app, f"V{i}")
        other = await submit(app, "VBOB", BOB)
        rows = await count_rows(engine)
    assert other == {}
    assert rows["outbox"] == CAP + 1


async def test_emails_older_than_an_hour_no_longer_count(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The window slides: once the earlier e-mails are an hour old, sending works again."""
    async with running_app(engine=engine, slack=slack, b24mail_hourly_cap=CAP) as app:
        await link(app, portal)
        for i in range(CAP):
            await submit(app, f"V{i}")
        async with engine.begin() as connection:
            await connection.execute(
                update(OutboxEmail).values(created_at=utcnow() - timedelta(minutes=61))
            )
        again = await submit(app, "VLATER")
    assert again == {}


async def test_concurrent_submissions_cannot_overshoot_the_cap(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Ten submissions at once with room for three: three are queued, seven told why not."""
    async with running_app(engine=engine, slack=slack, b24mail_hourly_cap=CAP) as app:
        await link(app, portal)
        answers = await asyncio.gather(*(submit(app, f"V{i}") for i in range(10)))
        rows = await count_rows(engine)
    assert rows["outbox"] == CAP
    refused = [answer for answer in answers if answer != {}]
    assert len(refused) == 10 - CAP
    for answer in refused:
        assert "reached the limit of 3 e-mails per hour" in str(answer["errors"][ids.TO_BLOCK])


def test_the_cap_defaults_to_200_and_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B24MAIL_HOURLY_CAP sets the cap; without it, 200 e-mails per hour."""
    monkeypatch.delenv("B24MAIL_HOURLY_CAP", raising=False)
    assert Settings(_env_file=None).b24mail_hourly_cap == 200  # type: ignore[call-arg]
    monkeypatch.setenv("B24MAIL_HOURLY_CAP", "7")
    assert Settings(_env_file=None).b24mail_hourly_cap == 7  # type: ignore[call-arg]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_web_processes_sharing_postgresql_cannot_overshoot_the_cap_together(
    engine: AsyncEngine,
) -> None:
    """Two services with their own engines (as two web processes): 12 racing submits, cap 5."""
    from bot.mail.compose import ValidEmail
    from bot.mail.errors import SendingCapReached
    from bot.mail.sending import SendingService
    from bot.mail.wakeup import Wakeup
    from bot.store.db import create_engine, create_session_factory
    from bot.store.outbox import OutboxRepository

    other = create_engine(engine.url.render_as_string(hide_password=False))
    services = [
        SendingService(
            outbox=OutboxRepository(sessions=create_session_factory(e)),
            wakeup=Wakeup(),
            retry_window=timedelta(minutes=5),
            hourly_cap=5,
        )
        for e in (engine, other)
    ]
    email = ValidEmail(
        sender="a@corp.example",
        to=["b@client.example"],
        cc=[],
        bcc=[],
        subject="s",
        body_html="<p>b</p>",
        body_source=None,
    )

    async def submit(n: int) -> bool:
        try:
            await services[n % 2].submit(
                ALICE, email, submission_key=f"multi-{n}", result_channel="C1"
            )
        except SendingCapReached:
            return False
        return True

    try:
        accepted = await asyncio.gather(*(submit(n) for n in range(12)))
    finally:
        await other.dispose()
    assert sum(accepted) == 5
    assert (await count_rows(engine))["outbox"] == 5
