"""/b24mail inbox and Share to channel, through the real HTTP endpoint, fake Slack and fake portal."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.slack import ids
from bot.store.models import EmailCard
from tests.fakes.bitrix24_portal import FakePortal, FakeUser
from tests.fakes.slack_api import FakeSlack, ResponsePost
from tests.fakes.slack_requests import block_actions
from tests.support.app import RunningApp, running_app

ALICE = SlackUser(team_id="T0001", user_id="U0001")
# The fake portal lives for the whole session and keeps its e-mails: each test gets its own
# Bitrix24 user, so it sees only the e-mails it put there.
_b24_ids = itertools.count(2001)
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def link(app: RunningApp, portal: FakePortal, *, user: SlackUser = ALICE) -> FakeUser:
    b24 = portal.add_user(
        next(_b24_ids),
        senders=[("Alice Smith", "alice@corp.example"), ("Sales", "sales@corp.example")],
    )
    await app.services.links.connect(user, b24.webhook_url)
    return b24


def fill_inbox(portal: FakePortal, b24: FakeUser, count: int) -> list[int]:
    """`count` e-mails, one an hour; e-mail i is "Mail i" (the newest has the highest i)."""
    return [
        portal.add_message(
            b24.user_id,
            subject=f"Mail {i:02d}",
            from_=f"Sender {i} <s{i}@client.example>",
            body=f"<p>Body {i}</p>",
            date=START + timedelta(hours=i),
            has_attachments=i % 5 == 0,
        )
        for i in range(count)
    ]


def subjects(response: ResponsePost) -> list[str]:
    lines = [
        b["text"]["text"]
        for b in response.json.get("blocks", [])
        if b.get("type") == "section" and b["text"]["text"].startswith("*Mail")
    ]
    return [line.split("*")[1] for line in lines]


def button(response: ResponsePost, action_id: str, value: str | None = None) -> dict[str, Any]:
    for block in response.json.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id and value in (None, element.get("value")):
                return dict(element)
    raise AssertionError(f"no {action_id} button in {response.json}")


def has_button(response: ResponsePost, action_id: str) -> bool:
    try:
        button(response, action_id)
    except AssertionError:
        return False
    return True


async def test_inbox_lists_ten_newest_first_and_more_pages_through(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """25 e-mails: 10, 10 and 5 per page, each newest first; More replaces the list until the end.

    mail.message.list documents no order (the fake answers an arbitrary one), so each page is
    sorted by date here, and the pages together hold every e-mail once."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        fill_inbox(portal, b24, 25)
        ack = await app.command("inbox")
        assert app.json(ack) == {}
        first = await slack.await_for_response(lambda r: r.name == "command")
        more = button(first, ids.INBOX_MORE_ACTION)
        await app.interactive(
            block_actions(
                action_id=ids.INBOX_MORE_ACTION,
                value=more["value"],
                response_url=slack.response_url("page2"),
            )
        )
        second = await slack.await_for_response(lambda r: r.name == "page2")
        await app.interactive(
            block_actions(
                action_id=ids.INBOX_MORE_ACTION,
                value=button(second, ids.INBOX_MORE_ACTION)["value"],
                response_url=slack.response_url("page3"),
            )
        )
        third = await slack.await_for_response(lambda r: r.name == "page3")
    pages = [subjects(first), subjects(second), subjects(third)]
    assert [len(page) for page in pages] == [10, 10, 5]
    for page in pages:
        assert page == sorted(page, reverse=True)  # "Mail NN" sorts as its date does
    assert sorted(s for page in pages for s in page) == [f"Mail {i:02d}" for i in range(25)]
    assert not has_button(third, ids.INBOX_MORE_ACTION)
    assert first.json["response_type"] == "ephemeral"
    assert first.json.get("replace_original") is False
    assert second.json["replace_original"] is True
    assert third.json["replace_original"] is True
    shown = json.dumps([r.json["blocks"] for r in (first, second, third)])
    assert "<!date^" in shown
    assert shown.count(":paperclip:") == 5  # Mail 00, 05, 10, 15 and 20 have attachments
    newest = portal.messages[-1]
    (holder,) = [r for r in (first, second, third) if newest.subject in subjects(r)]
    assert subjects(holder)[0] == newest.subject
    assert button(holder, ids.INBOX_REPLY_ACTION, str(newest.id))
    assert button(holder, ids.INBOX_SHARE_ACTION, str(newest.id))
    # Open in Bitrix24: the portal answers a relative url; the link is made absolute.
    assert f'"url": "{portal.base_url}/mail/message/{newest.id}"' in shown
    pages = [r.json["pagination"] for r in portal.requests if r.method_name == "mail.message.list"]
    assert pages == [{"page": 1, "limit": 10}, {"page": 2, "limit": 10}, {"page": 3, "limit": 10}]


async def test_search_words_go_to_the_portal_as_search_query(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """`/b24mail inbox quarterly report` asks for searchQuery "quarterly report" and shows matches."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        fill_inbox(portal, b24, 3)
        portal.add_message(
            b24.user_id, subject="The Quarterly Report", from_="bob@client.example", date=START
        )
        await app.command("inbox   quarterly  report ")
        answer = await slack.await_for_response(lambda r: r.name == "command")
        await app.command("inbox nothing-like-this")
        empty = await slack.await_for_response(
            lambda r: r.name == "command" and "nothing" in json.dumps(r.json)
        )
        # Slack may send a typed address as a link; the portal gets the address.
        await app.command("inbox <mailto:bob@client.example|bob@client.example>")
        by_address = await slack.await_for_response(
            lambda r: r.name == "command" and "bob@client.example" in json.dumps(r.json)
        )
    queries = [
        r.json.get("searchQuery") for r in portal.requests if r.method_name == "mail.message.list"
    ]
    assert queries == ["quarterly report", "nothing-like-this", "bob@client.example"]
    assert "The Quarterly Report" in json.dumps(by_address.json["blocks"])
    assert "The Quarterly Report" in json.dumps(answer.json["blocks"])
    assert "Mail 00" not in json.dumps(answer.json["blocks"])
    assert "No e-mail matches" in json.dumps(empty.json["blocks"])


async def test_inbox_acks_at_once_even_when_bitrix24_is_slow(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The command is acknowledged before the portal answers; the list follows by response_url."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        fill_inbox(portal, b24, 2)
        portal.set_latency(3, methods=["mail.message.list"])
        ack = await app.command("inbox")
        # Acknowledged while the portal still holds the list (no clock read): nothing has
        # come by response_url yet.
        before_the_list = list(slack.responses_to("command"))
        answer = await slack.await_for_response(lambda r: r.name == "command", timeout=15)
    assert ack.status_code == 200
    assert before_the_list == []
    assert subjects(answer) == ["Mail 01", "Mail 00"]


async def test_unlinked_user_gets_the_connect_prompt(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Without a link, inbox answers with the Connect button and asks no portal."""
    async with running_app(engine=engine, slack=slack) as app:
        answer = app.json(await app.command("inbox"))
    assert ids.OPEN_CONNECT_ACTION in json.dumps(answer["blocks"])
    assert portal.requests == []


async def test_portal_errors_are_explained(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A refused webhook becomes the readable explanation, never a code or the webhook."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        portal.expire_webhook(b24.user_id)
        await app.command("inbox")
        answer = await slack.await_for_response(lambda r: r.name == "command")
    assert "did not accept the webhook" in answer.json["text"]
    assert b24.code not in json.dumps(answer.json)


async def test_share_posts_a_card_with_metadata_and_records_it(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The card shows subject, sender, date and the start of the body; it names the e-mail."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        message_id = portal.add_message(
            b24.user_id,
            subject="Offer <for> you",
            from_="Bob Client <bob@client.example>",
            body="<p>Hello team,</p><p>please find our <b>offer</b> &amp; terms.</p>"
            + "".join(f"<p>line {i}</p>" for i in range(20)),
            date=START,
            has_attachments=True,
        )
        await app.interactive(
            block_actions(
                action_id=ids.INBOX_SHARE_ACTION,
                value=str(message_id),
                channel_id="C0001",
                response_url=slack.response_url("share"),
            )
        )
        call = await slack.await_for("chat.postMessage")
        confirmation = await slack.await_for_response(lambda r: r.name == "share")
        async with engine.connect() as connection:
            cards = (await connection.execute(select(EmailCard))).all()
    host = urlsplit(portal.base_url).netloc
    posted = call.response or {}
    card = slack.messages[("C0001", posted["ts"])]
    assert card["metadata"] == {
        "event_type": "b24mail_email",
        "event_payload": {"message_id": message_id, "portal": host},
    }
    shown = json.dumps(card["blocks"])
    assert "Offer &lt;for&gt; you" in shown
    assert "Bob Client &lt;bob@client.example&gt;" in shown
    assert "<!date^" in shown
    assert "please find our offer & terms." in shown
    assert "line 3" in shown
    assert "line 19" not in shown  # only the first lines
    assert ":paperclip:" in shown
    reply = next(
        e
        for b in card["blocks"]
        if b.get("block_id") == ids.CARD_BLOCK
        for e in b["elements"]
        if e["action_id"] == ids.CARD_REPLY_ACTION
    )
    assert json.loads(reply["value"]) == {"message_id": message_id, "portal": host}
    assert f'"url": "{portal.base_url}/mail/message/{message_id}"' in shown
    assert len(cards) == 1
    row = cards[0]
    assert (row.channel_id, row.message_ts, row.b24_message_id) == (
        "C0001",
        posted["ts"],
        message_id,
    )
    assert (row.portal_host, row.shared_by, row.team_id) == (host, "U0001", "T0001")
    assert "Shared *Offer &lt;for&gt; you* in <#C0001>" in confirmation.json["text"]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [("CPRIVATE", "I am not a member of that channel"), ("D0NOTMINE", "private or no longer")],
)
async def test_share_where_the_bot_cannot_post_says_why(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, channel: str, expected: str
) -> None:
    """not_in_channel / channel_not_found: the user reads why, no card is recorded."""
    slack.add_channel("CPRIVATE", member=False, is_private=True)
    # Strict: an unknown conversation (a DM between two people) is channel_not_found.
    slack.strict_channels = True
    try:
        async with running_app(engine=engine, slack=slack) as app:
            b24 = await link(app, portal)
            message_id = portal.add_message(b24.user_id, subject="Hi", from_="bob@client.example")
            await app.interactive(
                block_actions(
                    action_id=ids.INBOX_SHARE_ACTION,
                    value=str(message_id),
                    channel_id=channel,
                    response_url=slack.response_url("share"),
                )
            )
            answer = await slack.await_for_response(lambda r: r.name == "share")
    finally:
        slack.strict_channels = False
    async with engine.connect() as connection:
        cards = (await connection.execute(select(EmailCard))).all()
    assert "I could not share the e-mail" in answer.json["text"]
    assert expected in answer.json["text"]
    assert cards == []


@pytest.mark.parametrize("requires_mailbox_id", [False, True])
async def test_inbox_copes_with_a_portal_that_requires_a_mailbox_id(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, requires_mailbox_id: bool
) -> None:
    """A portal that refuses a list without mailboxId is asked per mailbox, and remembered:
    the next inbox goes per mailbox at once. One that does not is never asked per mailbox."""
    portal.set_require_mailbox_id(requires_mailbox_id)
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        for i in range(6):
            portal.add_message(
                b24.user_id,
                subject=f"Mail {i:02d}",
                from_=f"s{i}@client.example",
                date=START + timedelta(hours=i),
                mailbox_id=1 + i % 2,  # Alice's two mailboxes, alternating
            )
        for count in (1, 2):
            await app.command("inbox")
            for _ in range(500):
                answers = slack.responses_to("command")
                if len(answers) == count:
                    break
                await asyncio.sleep(0.01)
            assert subjects(answers[-1]) == [f"Mail {i:02d}" for i in range(5, -1, -1)], count
    lists = [r for r in portal.requests if r.method_name == "mail.message.list"]
    mailbox_lists = [r for r in portal.requests if r.method_name == "mail.mailbox.list"]
    if requires_mailbox_id:
        without = [r for r in lists if "mailboxId" not in (r.json or {})]
        assert len(without) == 1 and without[0].status == 400  # once, then remembered
        assert sorted(r.json["mailboxId"] for r in lists if r.status == 200) == [1, 1, 2, 2]
        assert len(mailbox_lists) == 2
    else:
        assert all("mailboxId" not in (r.json or {}) for r in lists) and not mailbox_lists
