"""New e-mail to Slack, through the real endpoint, the worker's poller, fake Slack and fake portal.

Each test runs on SQLite and PostgreSQL. Nothing waits for a wall-clock time: the tests wait for
the poller's checks (its counter) or for the fake Slack's calls.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.slack import ids
from bot.store.models import EmailCard, MailSubscription
from tests.fakes.bitrix24_portal import FakePortal, FakeUser
from tests.fakes.slack_api import FakeSlack
from tests.support.app import RunningApp, running_app

ALICE = SlackUser(team_id="T0001", user_id="U0001")
_b24_ids = itertools.count(7001)
WAIT = 60.0


@pytest.fixture
async def app(engine: AsyncEngine, slack: FakeSlack) -> AsyncIterator[RunningApp]:
    slack.add_user("U0001")
    async with running_app(
        engine=engine, slack=slack, worker=True, b24mail_poll_interval_seconds=1
    ) as running:
        yield running


async def link(app: RunningApp, portal: FakePortal, *, code: str | None = None) -> FakeUser:
    b24 = portal.add_user(next(_b24_ids), code=code)
    await app.services.links.connect(ALICE, b24.webhook_url)
    return b24


def mail(portal: FakePortal, b24: FakeUser, subject: str, **fields: Any) -> int:
    fields.setdefault("from_", "Client <client@example.com>")
    fields.setdefault("body", f"<p>About {subject}</p>")
    return portal.add_message(b24.user_id, subject=subject, **fields)


async def checks(app: RunningApp, n: int = 2) -> None:
    """Until the poller has finished `n` more checks."""
    assert app.worker is not None
    poller = app.worker.poller
    target = poller.checks + n
    deadline = time.monotonic() + WAIT
    while poller.checks < target:
        assert time.monotonic() < deadline, "the poller made no progress"
        await asyncio.sleep(0.02)


async def subscription(app: RunningApp) -> MailSubscription:
    async with app.services.sessions() as session:
        row = await session.scalar(select(MailSubscription))
    assert row is not None
    return row


def cards_in(slack: FakeSlack, channel: str | None = None) -> list[dict[str, Any]]:
    return [
        m
        for (ch, _ts), m in slack.messages.items()
        if (channel is None or ch == channel)
        and (m.get("metadata") or {}).get("event_type") == ids.EMAIL_CARD_EVENT
    ]


def paused_notices(slack: FakeSlack) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages.values()
        if (m.get("metadata") or {}).get("event_type") == ids.NEW_MAIL_PAUSED_EVENT
    ]


async def told(slack: FakeSlack) -> None:
    """Until the owner got the pause notice (posted right after the pause)."""
    deadline = time.monotonic() + WAIT
    while not paused_notices(slack):
        assert time.monotonic() < deadline, "no pause notice"
        await asyncio.sleep(0.05)


async def opt_in(app: RunningApp, text: str = "notify on", **kw: Any) -> dict[str, Any]:
    answer = app.json(await app.command(text, **kw))
    await checks(app, 1)  # the baseline
    return answer


async def test_opt_in_then_exactly_one_card_for_a_new_email_and_none_for_old_ones(
    app: RunningApp, portal: FakePortal, slack: FakeSlack, engine: AsyncEngine
) -> None:
    """E-mails there before opting in are the baseline; a new one arrives once, as a card."""
    b24 = await link(app, portal)
    mail(portal, b24, "Old news")
    answer = await opt_in(app)
    assert "DM" in answer["text"] and "every 1 s" in answer["text"]
    new_id = mail(
        portal,
        b24,
        "Contract draft",
        has_attachments=True,
        body="<p>Hi</p><blockquote>Quoted history</blockquote>",
    )
    await checks(app, 3)
    cards = cards_in(slack)
    assert len(cards) == 1
    card = cards[0]
    assert "Contract draft" in card["text"]
    shown = str(card["blocks"])
    assert "Quoted history" not in shown and "<p>" not in shown and "Hi" in shown
    elements = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {e["action_id"] for e in elements} >= {ids.CARD_REPLY_ACTION, ids.CARD_SHARE_ACTION}
    async with app.services.sessions() as session:
        remembered = (await session.scalars(select(EmailCard))).all()
    assert [r.b24_message_id for r in remembered] == [new_id]
    status = app.json(await app.command("notify"))
    assert "are on" in status["text"] and "every 1 s" in status["text"]


async def test_a_portal_that_lists_only_per_mailbox_still_notifies_once(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    """A portal refusing mail.message.list without mailboxId: the poller asks per mailbox."""
    portal.set_require_mailbox_id(True)
    try:
        b24 = await link(app, portal)
        mail(portal, b24, "Old news")
        await opt_in(app)
        mail(portal, b24, "Fresh news")
        await checks(app, 3)
        assert ["Fresh news" in c["text"] for c in cards_in(slack)] == [True]
        stored = await app.services.links.require_stored(ALICE)
        assert app.services.listing.needs_mailbox_id(app.services.links.credentials(stored))
    finally:
        portal.set_require_mailbox_id(False)


async def test_search_words_filter_what_is_posted(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    await opt_in(app, "notify on invoice")
    mail(portal, b24, "Lunch plans")
    mail(portal, b24, "Invoice 42")
    await checks(app, 3)
    assert [c["text"] for c in cards_in(slack)] == [
        next(c["text"] for c in cards_in(slack) if "Invoice 42" in c["text"])
    ]


async def test_here_routes_cards_to_the_channel_the_user_and_bot_are_in(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    slack.add_channel("C0500", member=True)
    slack.add_channel("C0600", member=False)
    slack.set_channel_members("C0500", ["U0001"])
    slack.add_channel("C0700", member=True)
    for channel in ("C0600", "C0700", "C0500"):
        before = len(slack.responses_to("command"))
        await app.command("notify here", channel_id=channel)
        deadline = time.monotonic() + WAIT
        while len(slack.responses_to("command")) == before:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    texts = [r.json.get("text", "") for r in slack.responses_to("command")]
    assert "Invite me" in texts[0]
    assert "not a member of <#C0700>" in texts[1]
    assert "<#C0500>" in texts[2] and "Done" in texts[2]
    await checks(app, 1)
    mail(portal, b24, "For the team")
    await checks(app, 3)
    assert len(cards_in(slack, "C0500")) == 1 and len(cards_in(slack)) == 1
    card = cards_in(slack, "C0500")[0]
    assert "inbox of <@U0001>" in str(card["blocks"])  # whose mailbox, in a channel
    assert ids.CARD_SHARE_ACTION not in str(card["blocks"])  # Share only from the DM


async def test_an_email_dated_before_the_last_check_still_arrives_once(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    """Bitrix24 fetched it late: its date is 15 minutes before the last check."""
    b24 = await link(app, portal)
    await opt_in(app)
    await checks(app, 2)
    last = (await subscription(app)).last_checked_at
    assert last is not None
    mail(portal, b24, "Fetched late", date=last - timedelta(minutes=15))
    await checks(app, 3)
    assert len(cards_in(slack)) == 1


async def test_more_than_twenty_new_emails_post_twenty_cards_and_one_more_line(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    await opt_in(app)
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(23):
        mail(portal, b24, f"Bulk {n:02d}", date=start + timedelta(minutes=n))
    await checks(app, 3)
    cards = cards_in(slack)
    assert len(cards) == 20
    posted = sorted(cards, key=lambda m: float(m["ts"]))
    assert "Bulk 00" in posted[0]["text"] and "Bulk 19" in posted[-1]["text"]  # oldest first
    more = [
        m
        for m in slack.messages.values()
        if (m.get("metadata") or {}).get("event_type") == ids.NEW_MAIL_MORE_EVENT
    ]
    assert len(more) == 1 and "3 more" in more[0]["text"]


async def test_expired_webhook_one_dm_paused_then_resumed_by_reconnect(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    await opt_in(app)
    portal.expire_webhook(b24.user_id)
    deadline = time.monotonic() + WAIT
    while (await subscription(app)).state != "paused":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await told(slack)
    await asyncio.sleep(3)  # several intervals: a paused subscription is not checked again
    paused = paused_notices(slack)
    assert len(paused) == 1 and "/b24mail connect" in paused[0]["text"]
    status = app.json(await app.command("notify"))
    assert "paused" in status["text"]
    portal.reset_faults()  # a new webhook works again
    await app.services.links.connect(ALICE, b24.webhook_url)
    assert (await subscription(app)).state == "active"
    mail(portal, b24, "After reconnect")
    await checks(app, 3)
    assert len(cards_in(slack)) == 1
    assert len(paused) == 1


async def test_notify_off_stops_the_cards(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    await opt_in(app)
    answer = app.json(await app.command("notify off"))
    assert "off" in answer["text"]
    mail(portal, b24, "Nobody listens")
    await asyncio.sleep(2.5)
    assert cards_in(slack) == []
    status = app.json(await app.command("notify"))
    assert "are off" in status["text"]


async def test_disconnect_removes_the_subscription(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    await link(app, portal)
    await opt_in(app)
    app.json(await app.command("disconnect"))
    async with app.services.sessions() as session:
        assert (await session.scalar(select(MailSubscription))) is None


async def test_notify_needs_a_link_and_explains_unknown_options(app: RunningApp) -> None:
    assert "Link your Bitrix24" in app.json(await app.command("notify on"))["text"]
    assert "notify sometimes" in app.json(await app.command("notify sometimes"))["text"]


async def test_a_slack_rate_limit_delays_a_card_but_posts_it_once(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    await opt_in(app)
    slack.rate_limit("chat.postMessage", times=2, retry_after=1)
    mail(portal, b24, "Despite 429")
    deadline = time.monotonic() + WAIT
    while not cards_in(slack):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await checks(app, 3)
    assert len(cards_in(slack)) == 1
    assert len([c for c in slack.calls_to("chat.postMessage") if c.status == 429]) == 2


async def test_an_archived_channel_pauses_tells_once_and_keeps_the_cards(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    b24 = await link(app, portal)
    slack.add_channel("C0800", member=True)
    slack.set_channel_members("C0800", ["U0001"])
    await app.command("notify here", channel_id="C0800")
    deadline = time.monotonic() + WAIT
    while not slack.responses_to("command"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await checks(app, 1)
    slack.add_channel("C0800", member=True, archived=True)
    mail(portal, b24, "Kept for later")
    while (await subscription(app)).state != "paused":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await told(slack)
    await asyncio.sleep(2.5)
    notices = paused_notices(slack)
    assert len(notices) == 1 and "<#C0800>" in notices[0]["text"]
    assert cards_in(slack) == []
    await opt_in(app)  # back to the DM: the kept card arrives there, once
    await checks(app, 2)
    cards = cards_in(slack)
    assert len(cards) == 1 and "Kept for later" in cards[0]["text"]
    assert len(paused_notices(slack)) == 1


async def test_share_from_a_dm_card_posts_the_card_in_the_chosen_channel(
    app: RunningApp, portal: FakePortal, slack: FakeSlack
) -> None:
    """The DM card's *Share to…* picker: the card goes to the channel, and its thread knows it."""
    from tests.fakes.slack_requests import block_actions

    b24 = await link(app, portal)
    await opt_in(app)
    message_id = mail(portal, b24, "Worth sharing")
    deadline = time.monotonic() + WAIT
    while not cards_in(slack):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    card = cards_in(slack)[0]
    dm = next(ch for (ch, ts) in slack.messages if ts == card["ts"])
    # The DM card's own thread knows its e-mail (Reply and the shortcut work there); it is
    # remembered right after Slack took the card.
    while (found := await app.services.replying.card_for(dm, [card["ts"]])) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert found.b24_message_id == message_id
    payload = block_actions(
        action_id=ids.CARD_SHARE_ACTION,
        block_id=ids.CARD_BLOCK,
        channel_id=dm,
        message=card,
        action_type="conversations_select",
        response_url=slack.response_url("share"),
    )
    payload["actions"][0]["selected_conversation"] = "C0900"
    assert (await app.interactive(payload)).status_code == 200
    while not cards_in(slack, "C0900"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    shared = cards_in(slack, "C0900")
    assert len(shared) == 1 and "Worth sharing" in shared[0]["text"]
    while (found := await app.services.replying.card_for("C0900", [shared[0]["ts"]])) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert found.b24_message_id == message_id


@pytest.mark.parametrize("fault", ["scope_removed", "portal_moved"])
async def test_a_broken_link_pauses_with_one_dm_saying_what_to_do(
    app: RunningApp, portal: FakePortal, slack: FakeSlack, fault: str
) -> None:
    b24 = await link(app, portal)
    await opt_in(app)
    if fault == "scope_removed":
        portal.add_user(b24.user_id, code=b24.code, scopes=())
    else:
        portal.rename("new-name.bitrix24.com")
    deadline = time.monotonic() + WAIT
    while (await subscription(app)).state != "paused":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await told(slack)
    await asyncio.sleep(2.5)
    notices = paused_notices(slack)
    assert len(notices) == 1 and "/b24mail connect" in notices[0]["text"]
    if fault == "portal_moved":
        assert "new-name.bitrix24.com" in notices[0]["text"]
    row = await subscription(app)
    assert row.pause_reason == ("missing_scope" if fault == "scope_removed" else "portal_moved")
