"""app_uninstalled / tokens_revoked: the workspace's data goes, other workspaces keep theirs;
queued e-mails of a removed workspace fail visibly and the notifier gives up without spinning."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.store.cards import CardRepository, NewCard
from bot.store.models import Draft, EmailCard, OutboxEmail, Signature, Template
from bot.store.outbox import OutboxStatus
from bot.store.preferences import PreferenceRepository, UserPreference
from bot.worker import Worker
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_uninstalled, tokens_revoked
from tests.slack.test_oauth import (
    BOB,
    SENDERS,
    install,
    oauth_app,
    queue_email,
    store_of,
)
from tests.support.app import RunningApp, running_app

# slack_sdk sends the app's credentials with aiohttp's BasicAuth, which aiohttp deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

ALICE = SlackUser(team_id="T0001", user_id="U0A01")


async def event(app: RunningApp, payload: dict[str, object]) -> None:
    response = await app.post_signed(json.dumps(payload), content_type="application/json")
    assert response.status_code == 200, response.text


async def seed(app: RunningApp, portal: FakePortal, user: SlackUser, b24_id: int) -> None:
    """A link, an e-mail card and a language preference for `user`."""
    await app.services.links.connect(user, portal.add_user(b24_id, senders=SENDERS).webhook_url)
    await CardRepository(sessions=app.services.sessions).record(
        NewCard(
            enterprise_id=user.enterprise_id,
            team_id=user.team_id,
            channel_id=f"C{user.team_id}",
            message_ts=f"1700000000.{b24_id:06d}",
            b24_message_id=b24_id,
            portal_host="portal.example",
            shared_by=user.user_id,
        )
    )
    await PreferenceRepository(sessions=app.services.sessions).set_language(user, "ru")
    writing = app.services.writing
    await writing.keep_draft(user, {"subject": "unfinished"}, draft_id=None)
    body = {"type": "rich_text", "elements": []}
    await writing.set_signature(user, "a@corp.example", body)
    assert await writing.add_template(user, name="T", subject="S", body=body) is None


async def teams_with(
    engine: AsyncEngine,
    model: type[EmailCard] | type[UserPreference] | type[Draft] | type[Signature] | type[Template],
) -> set[str]:
    async with engine.connect() as connection:
        return set((await connection.execute(select(model.team_id))).scalars())


async def test_app_uninstalled_removes_that_workspace_only(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with oauth_app(engine, slack) as app:
        token_a = await install(app, slack, "T0001")
        await install(app, slack, "T0002")
        await seed(app, portal, ALICE, 11)
        await seed(app, portal, BOB, 12)

        await event(app, app_uninstalled(team_id="T0002"))

        store = store_of(app)
        assert await store.async_find_bot(enterprise_id=None, team_id="T0002") is None
        assert await store.async_find_installation(enterprise_id=None, team_id="T0002") is None
        assert await app.services.link_repository.get(BOB) is None
        # Workspace A is untouched.
        bot_a = await store.async_find_bot(enterprise_id=None, team_id="T0001")
        assert bot_a is not None and bot_a.bot_token == token_a
        assert await app.services.link_repository.get(ALICE) is not None
        assert await teams_with(engine, EmailCard) == {"T0001"}
        assert await teams_with(engine, UserPreference) == {"T0001"}
        for model in (Draft, Signature, Template):
            assert await teams_with(engine, model) == {"T0001"}
        # Slack retries events: a second delivery changes nothing and is still answered 200.
        await event(app, app_uninstalled(team_id="T0002"))
        assert await app.services.link_repository.get(ALICE) is not None


async def test_tokens_revoked_removes_only_the_revoked_tokens_owners(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with oauth_app(engine, slack) as app:
        await install(app, slack, "T0001")
        await install(app, slack, "T0002", user_id="U0B01")
        await install(app, slack, "T0002", user_id="U0B02")  # a second admin reinstalled
        await seed(app, portal, BOB, 13)
        store = store_of(app)

        await event(app, tokens_revoked(oauth=["U0B02"], team_id="T0002"))
        assert (
            await store.async_find_installation(
                enterprise_id=None, team_id="T0002", user_id="U0B02"
            )
            is None
        )
        kept = await store.async_find_installation(
            enterprise_id=None, team_id="T0002", user_id="U0B01"
        )
        assert kept is not None
        assert await store.async_find_bot(enterprise_id=None, team_id="T0002") is not None

        await event(app, tokens_revoked(bot=["UBOTT0002"], team_id="T0002"))
        assert await store.async_find_bot(enterprise_id=None, team_id="T0002") is None
        # Not an uninstall: the workspace's users keep their links; workspace A keeps its bot.
        assert await app.services.link_repository.get(BOB) is not None
        assert await store.async_find_bot(enterprise_id=None, team_id="T0001") is not None


async def wait_until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def settled(app: RunningApp, email_id: str) -> OutboxEmail | None:
    """The row once it failed and nothing about it is left to show in Slack."""
    row = await app.services.outbox.get(email_id)
    if row and row.status == OutboxStatus.FAILED and row.notified_version == row.state_version:
        return row
    return None


async def test_queued_email_of_an_uninstalled_workspace_fails_visibly_and_the_status_is_given_up(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with oauth_app(engine, slack) as app:
        token_b = await install(app, slack, "T0002")
        await app.services.links.connect(BOB, portal.add_user(14, senders=SENDERS).webhook_url)
        queued = await queue_email(app, BOB, "u1")  # no worker yet: it waits in the outbox
        await event(app, app_uninstalled(team_id="T0002"))
        slack.revoke_token(token_b)

        worker = Worker(app.services)
        await worker.start()
        try:
            await wait_until(lambda: settled(app, queued.id))
            # Given up: nothing is left for the notifier to retry, so it sleeps instead of spinning.
            assert await app.services.outbox.next_notification_at() is None
            calls_before = len(slack.calls)
            await asyncio.sleep(0.5)
            assert len(slack.calls) == calls_before
        finally:
            await worker.stop()
        history = await app.services.outbox.history(BOB)
    assert [(row.id, row.status, row.error_code) for row in history] == [
        (queued.id, OutboxStatus.FAILED, "not_linked")
    ]
    # Nothing was posted with the revoked token (or any token) for the gone workspace.
    assert not slack.calls_to("chat.postMessage")


async def test_single_workspace_uninstall_removes_links_and_the_notifier_gives_up(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    alice = SlackUser(team_id="T0001", user_id="U0001")
    async with running_app(engine=engine, slack=slack) as app:
        await app.services.links.connect(alice, portal.add_user(15, senders=SENDERS).webhook_url)
        queued = await queue_email(app, alice, "s1")
        await event(app, app_uninstalled(team_id="T0001"))
        assert await app.services.link_repository.get(alice) is None
        slack.revoke_token(slack.token)  # Slack revokes the bot token on uninstall

        worker = Worker(app.services)
        await worker.start()
        try:
            await wait_until(lambda: settled(app, queued.id))
            assert await app.services.outbox.next_notification_at() is None
        finally:
            await worker.stop()
        row = await app.services.outbox.get(queued.id)
    assert row is not None and row.error_code == "not_linked" and not row.status_ts
    # One refused attempt to post, then no more.
    refused = slack.calls_to("chat.postMessage")
    assert [c.error for c in refused] == ["token_revoked"]
