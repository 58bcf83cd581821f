"""Reply by e-mail, through the real HTTP endpoint, the fake Slack and the fake portal."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.slack import ids
from bot.store.models import OutboxEmail
from tests.fakes.bitrix24_portal import FakePortal, FakeUser
from tests.fakes.slack_api import Call, FakeSlack
from tests.fakes.slack_requests import (
    block_actions,
    block_suggestion,
    message_action,
    rich_text_input,
    static_select,
    text_input,
    view_submission,
)
from tests.support.app import RunningApp, running_app

ALICE = SlackUser(team_id="T0001", user_id="U0001")
CAROL = SlackUser(team_id="T0001", user_id="U0003")
# The fake portal keeps its e-mails for the whole session: each test has its own Bitrix24 users.
_b24_ids = itertools.count(3001)


async def link(app: RunningApp, portal: FakePortal, *, user: SlackUser = ALICE) -> FakeUser:
    b24 = portal.add_user(
        next(_b24_ids),
        senders=[("Alice Smith", "alice@corp.example"), ("Sales", "sales@corp.example")],
    )
    await app.services.links.connect(user, b24.webhook_url)
    return b24


def add_offer(portal: FakePortal, b24: FakeUser, *, subject: str = "Quarterly report") -> int:
    """An e-mail from Bob to the Sales mailbox, with Carol in Cc."""
    return portal.add_message(
        b24.user_id,
        subject=subject,
        from_="Bob Client <bob@client.example>",
        to="sales@corp.example",
        cc="Carol <carol@client.example>",
        body="<p>Please confirm the numbers.</p>",
        mailbox_email="sales@corp.example",
    )


async def share_card(app: RunningApp, slack: FakeSlack, message_id: int) -> dict[str, Any]:
    """Share the e-mail into C0001 through the inbox button; returns the card as Slack has it."""
    await app.interactive(
        block_actions(
            action_id=ids.INBOX_SHARE_ACTION,
            value=str(message_id),
            response_url=slack.response_url("share"),
        )
    )
    call = await slack.await_for("chat.postMessage", lambda c: c.ok)
    # The confirmation comes once the card is recorded (what a thread's shortcut looks up).
    await slack.await_for_response(lambda r: r.name == "share")
    ts = (call.response or {})["ts"]
    return slack.messages[("C0001", ts)]


async def shortcut(
    app: RunningApp, slack: FakeSlack, message: dict[str, Any], *, user: SlackUser = ALICE
) -> str:
    """Use Reply by e-mail on `message`; returns the trigger id it carried."""
    trigger = f"trigger-{time.monotonic_ns()}"
    payload = message_action(
        callback_id=ids.REPLY_SHORTCUT,
        message={k: v for k, v in message.items() if k != "channel"},
        user_id=user.user_id,
        response_url=slack.response_url("shortcut"),
        trigger_id=trigger,
    )
    response = await app.interactive(payload)
    assert response.status_code == 200
    return trigger


async def opened(slack: FakeSlack, trigger: str) -> str:
    """The id of the view the app opened with `trigger`."""
    call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == trigger)
    assert call.ok, call.error
    return str((call.response or {})["view"]["id"])


def first_view_opened(slack: FakeSlack, trigger: str) -> dict[str, Any]:
    """The view as views.open sent it (before any views.update)."""
    call: Call = next(
        c for c in slack.calls_to("views.open") if c.args.get("trigger_id") == trigger
    )
    return dict(call.args["view"])


async def updated_view(slack: FakeSlack, view_id: str, *, after: int = 0) -> dict[str, Any]:
    """The view once views.update has run on it more than `after` times."""
    await slack.await_for_calls(
        "views.update", after + 1, lambda c: c.args.get("view_id") == view_id and c.ok
    )
    return slack.views[view_id]


def blocks_by_field(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Input and actions blocks keyed by field name (block id without its revision)."""
    return {
        str(b["block_id"]).split("-")[0]: b
        for b in view["blocks"]
        if b.get("block_id") and b["type"] in ("input", "actions")
    }


def initial(view: dict[str, Any], field: str) -> Any:
    element = blocks_by_field(view)[field]["element"]
    for key in ("initial_value", "initial_option", "initial_conversation"):
        if key in element:
            return element[key]
    return None


def values_as_shown(view: dict[str, Any], **typed: Any) -> dict[str, Any]:
    """The state Slack submits when the user keeps every prefilled value, except `typed` ones."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        field = str(block["block_id"]).split("-")[0]
        element = block["element"]
        kind = element["type"]
        if field in typed:
            given = typed[field]
            if kind == "rich_text_input" and isinstance(given, str):
                state = rich_text_input(given)
            elif kind == "plain_text_input":
                state = text_input(given)
            elif kind in ("static_select", "external_select"):
                state = {**static_select(given), "type": kind}
            else:
                state = given
        elif kind == "plain_text_input":
            state = text_input(element.get("initial_value"))
        elif kind == "rich_text_input":
            state = {"type": kind, "rich_text_value": element.get("initial_value")}
        elif kind in ("static_select", "external_select"):
            state = {"type": kind, "selected_option": element.get("initial_option")}
        else:
            state = {"type": kind, "selected_conversation": element.get("initial_conversation")}
        values[block["block_id"]] = {element["action_id"]: state}
    return values


async def submit(
    app: RunningApp, slack: FakeSlack, view_id: str, *, user: SlackUser = ALICE, **typed: Any
) -> dict[str, Any]:
    view = slack.views[view_id]
    payload = view_submission(
        from_view=view, values=values_as_shown(view, **typed), user_id=user.user_id
    )
    return app.json(await app.interactive(payload))


async def status_message(
    slack: FakeSlack, *, contains: str, timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for (channel, ts), message in slack.messages.items():
            if contains in json.dumps(message.get("blocks")):
                return {**message, "channel": channel, "ts": ts}
        await asyncio.sleep(0.02)
    raise AssertionError(f"no message saying {contains!r}")


async def test_shortcut_on_a_card_prefills_and_replies_in_its_thread(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Card → Loading → form from the original → mail.message.reply → Sent in the card's thread."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        message_id = add_offer(portal, b24)
        card = await share_card(app, slack, message_id)
        trigger = await shortcut(app, slack, card)
        view_id = await opened(slack, trigger)
        loading = first_view_opened(slack, trigger)
        view = await updated_view(slack, view_id)
        answer = await submit(app, slack, view_id, body="Thanks Bob, the numbers are right.")
        delivered = await portal.await_delivered(1)
        status = await status_message(slack, contains="Sent")
    assert "Loading" in json.dumps(loading["blocks"])
    assert answer == {}
    assert view["callback_id"] == ids.REPLY_VIEW
    assert initial(view, "to") == "Bob Client <bob@client.example>"
    assert initial(view, "cc") is None
    assert initial(view, "subject") == "Re: Quarterly report"
    assert initial(view, "from")["value"] == "sales@corp.example"
    assert initial(view, "body") is None  # the card's text is the e-mail itself
    assert ids.POST_TO_BLOCK not in blocks_by_field(view)
    assert ids.REPLY_TARGET_BLOCK not in blocks_by_field(view)
    assert "Replying to *Quarterly report*" in json.dumps(view["blocks"])
    email = delivered[0]
    assert email.method == "mail.message.reply"
    assert email.reply_to_message_id == message_id
    assert email.user_id == b24.user_id
    assert email.from_ == "Sales <sales@corp.example>"
    assert email.to == ["bob@client.example"]
    assert email.cc == []
    assert email.bcc == []
    assert email.subject == "Re: Quarterly report"
    assert email.body == "<p>Thanks Bob, the numbers are right.</p>"
    assert (status["channel"], status["thread_ts"]) == ("C0001", card["ts"])


async def test_shortcut_in_a_cards_thread_answers_that_email_with_the_message_text(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A thread reply under a card (no metadata of its own) finds the card's e-mail; Re: once."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        message_id = add_offer(portal, b24, subject="RE: Re[2]: Offer")
        card = await share_card(app, slack, message_id)
        draft = slack.add_message(
            "C0001", text="We can ship on *Monday*.", user="U0002", thread_ts=card["ts"]
        )
        trigger = await shortcut(app, slack, draft)
        view_id = await opened(slack, trigger)
        view = await updated_view(slack, view_id)
        await submit(app, slack, view_id)
        delivered = await portal.await_delivered(1)
        status = await status_message(slack, contains="Sent")
    assert initial(view, "subject") == "Re: Offer"
    email = delivered[0]
    assert email.reply_to_message_id == message_id
    assert email.subject == "Re: Offer"
    assert email.to == ["bob@client.example"]
    assert email.body == "<p>We can ship on <b>Monday</b>.</p>"
    assert (status["channel"], status["thread_ts"]) == ("C0001", card["ts"])


async def test_shortcut_on_a_plain_message_searches_then_prefills_and_replies(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """No card: search select (searchQuery) → choosing prefills via views.update → reply."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        wanted = add_offer(portal, b24, subject="Invoice 2026-11")
        portal.add_message(b24.user_id, subject="Lunch", from_="dave@client.example")
        message = slack.add_message("C0001", text="Paid today, see the bank slip.", user="U0002")
        trigger = await shortcut(app, slack, message)
        view_id = await opened(slack, trigger)
        first = slack.views[view_id]
        suggestion = block_suggestion(
            action_id=ids.REPLY_TARGET_ACTION,
            block_id=ids.REPLY_TARGET_BLOCK,
            value="invoice",
            view=first,
        )
        options = app.json(await app.interactive(suggestion))["options"]
        chosen = next(o for o in options if o["value"] == str(wanted))
        await app.interactive(
            block_actions(
                action_id=ids.REPLY_TARGET_ACTION,
                block_id=ids.REPLY_TARGET_BLOCK,
                action_type="external_select",
                selected_option=chosen,
                view=first,
            )
        )
        view = await updated_view(slack, view_id)
        await submit(app, slack, view_id)
        delivered = await portal.await_delivered(1)
        status = await status_message(slack, contains="Sent")
    assert [o["value"] for o in options] == [str(wanted)]
    assert chosen["text"]["text"].startswith("Invoice 2026-11 · Bob Client · ")
    search = [r.json for r in portal.requests if r.method_name == "mail.message.list"]
    assert search[0]["searchQuery"] == "invoice"
    assert initial(first, "to") is None
    assert initial(first, "body")["type"] == "rich_text"
    assert ids.REPLY_TARGET_BLOCK in blocks_by_field(first)
    assert initial(view, "reply_target")["value"] == str(wanted)
    assert initial(view, "to") == "Bob Client <bob@client.example>"
    assert initial(view, "subject") == "Re: Invoice 2026-11"
    # The prefilled fields got new block ids, so Slack shows the new values.
    assert blocks_by_field(view)["to"]["block_id"] != blocks_by_field(first)["to"]["block_id"]
    assert json.loads(view["private_metadata"])["reply_to_message_id"] == wanted
    email = delivered[0]
    assert email.reply_to_message_id == wanted
    assert email.body == "<p>Paid today, see the bank slip.</p>"
    assert (status["channel"], status["thread_ts"]) == ("C0001", message["ts"])


async def test_search_on_a_slow_portal_answers_type_more_within_three_seconds(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A portal slower than the time box gets one clear hint option, in Slack's 3 seconds."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        add_offer(portal, b24)
        portal.set_latency(2.8, methods=["mail.message.list"])
        suggestion = block_suggestion(action_id=ids.REPLY_TARGET_ACTION, value="quarterly")
        # The hint is the time box's answer: the portal's (after 2.8 s) was not waited for.
        answer = app.json(await app.interactive(suggestion))
        portal.set_latency(0, methods=["mail.message.list"])
        unlinked = app.json(
            await app.interactive(
                block_suggestion(action_id=ids.REPLY_TARGET_ACTION, value="x", user_id="UNOBODY")
            )
        )
    assert [o["text"]["text"] for o in answer["options"]] == ["No results yet: type more"]
    assert [o["value"] for o in answer["options"]] == ["search"]
    assert "/b24mail connect" in unlinked["options"][0]["text"]["text"]


async def test_a_non_numeric_target_is_refused_inline(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Submitting the search hint (or any non-id) marks the target field; nothing is queued."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        message = slack.add_message("C0001", text="hello", user="U0002")
        view_id = await opened(slack, await shortcut(app, slack, message))
        answer = await submit(
            app, slack, view_id, reply_target="search", to="bob@client.example", subject="Hi"
        )
    assert answer["response_action"] == "errors"
    assert "not an e-mail from the list" in answer["errors"][ids.REPLY_TARGET_BLOCK]
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(OutboxEmail)) == 0


async def test_reply_all_toggles_the_cc(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Reply all on: Cc = the others (Carol); off: Cc empty again; on and sent: Carol in Cc."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        message_id = add_offer(portal, b24)
        card = await share_card(app, slack, message_id)
        view_id = await opened(slack, await shortcut(app, slack, card))
        view = await updated_view(slack, view_id)
        toggles = []
        for turn, on in enumerate((True, False, True), start=1):
            checkbox = blocks_by_field(view)[ids.REPLY_ALL_BLOCK]["elements"][0]
            await app.interactive(
                block_actions(
                    action_id=ids.REPLY_ALL_ACTION,
                    block_id=ids.REPLY_ALL_BLOCK,
                    action_type="checkboxes",
                    view=view,
                )
                | {
                    "actions": [
                        {
                            "action_id": ids.REPLY_ALL_ACTION,
                            "block_id": ids.REPLY_ALL_BLOCK,
                            "type": "checkboxes",
                            "selected_options": checkbox["options"] if on else [],
                        }
                    ]
                }
            )
            view = await updated_view(slack, view_id, after=turn)
            toggles.append(view)
        await submit(app, slack, view_id, body="Noted.")
        delivered = await portal.await_delivered(1)
    on, off, again = toggles
    assert initial(on, "cc") == "Carol <carol@client.example>"
    assert blocks_by_field(on)["cc"]["block_id"].endswith("-all")
    assert initial(off, "cc") is None
    assert blocks_by_field(off)["cc"]["block_id"].endswith("-one")
    assert "initial_options" in blocks_by_field(again)[ids.REPLY_ALL_BLOCK]["elements"][0]
    assert delivered[0].cc == ["carol@client.example"]
    assert delivered[0].to == ["bob@client.example"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"message_id": 987654321}, "no longer exists in Bitrix24"),
        ({"message_id": 1, "portal": "elsewhere.bitrix24.com"}, "portal *elsewhere.bitrix24.com*"),
    ],
)
async def test_a_card_of_a_missing_or_foreign_email_is_explained(
    engine: AsyncEngine,
    slack: FakeSlack,
    portal: FakePortal,
    payload: dict[str, Any],
    expected: str,
) -> None:
    """A deleted e-mail or another portal's: the modal says so, with no Send button."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        card = {
            "type": "message",
            "ts": "1700000100.000100",
            "text": "E-mail: gone",
            "bot_id": "B0001",
            "metadata": {"event_type": "b24mail_email", "event_payload": payload},
        }
        view_id = await opened(slack, await shortcut(app, slack, card))
        view = await updated_view(slack, view_id)
    assert expected in json.dumps(view["blocks"])
    assert view.get("submit") is None


async def test_a_user_who_cannot_see_the_email_is_told_so(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Carol's Bitrix24 user has no access to Alice's mailbox: the modal explains it."""
    async with running_app(engine=engine, slack=slack) as app:
        b24 = await link(app, portal)
        await link(app, portal, user=CAROL)
        card = await share_card(app, slack, add_offer(portal, b24))
        view_id = await opened(slack, await shortcut(app, slack, card, user=CAROL))
        view = await updated_view(slack, view_id)
    assert "cannot see that e-mail" in json.dumps(view["blocks"])
    assert view.get("submit") is None


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("reply_failed", "could not send the reply"),
        # The portal answers MESSAGE_REPLY_FAILED for a missing e-mail too (mail.message.reply).
        ("missing", "still exists (it may have been deleted or moved)"),
    ],
)
async def test_reply_refused_at_delivery_fails_with_a_readable_reason_in_the_thread(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, fault: str, expected: str
) -> None:
    """MESSAGE_REPLY_FAILED, or an e-mail gone since the modal opened: Failed, and why."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        message_id = add_offer(portal, b24)
        card = await share_card(app, slack, message_id)
        view_id = await opened(slack, await shortcut(app, slack, card))
        await updated_view(slack, view_id)
        if fault == "reply_failed":
            portal.set_send_failure("MESSAGE_REPLY_FAILED")
        else:
            view = slack.views[view_id]
            gone = json.loads(view["private_metadata"]) | {"reply_to_message_id": 987654321}
            view["private_metadata"] = json.dumps(gone)
            payload = view_submission(from_view=view, values=values_as_shown(view, body="Ok"))
            assert app.json(await app.interactive(payload)) == {}
        if fault == "reply_failed":
            assert await submit(app, slack, view_id, body="Ok") == {}
        status = await status_message(slack, contains="Not sent")
    shown = json.dumps(status["blocks"])
    assert expected in shown
    assert status["thread_ts"] == card["ts"]
    assert portal.delivered == []


async def test_reply_from_an_inbox_line_posts_the_result_where_chosen(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The inbox is ephemeral, so its Reply asks where the result goes (default: that channel)."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        message_id = add_offer(portal, b24)
        await app.interactive(
            block_actions(
                action_id=ids.INBOX_REPLY_ACTION,
                value=str(message_id),
                channel_id="C0002",
                trigger_id="trigger-inbox-reply",
                response_url=slack.response_url("inbox"),
            )
        )
        view_id = await opened(slack, "trigger-inbox-reply")
        view = await updated_view(slack, view_id)
        await submit(app, slack, view_id, body="On it.")
        delivered = await portal.await_delivered(1)
        status = await status_message(slack, contains="Sent")
    assert initial(view, "post_to") == "C0002"
    assert delivered[0].reply_to_message_id == message_id
    assert status["channel"] == "C0002"
    assert "thread_ts" not in status


async def test_unlinked_user_gets_the_connect_modal_from_the_shortcut(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Without a link the shortcut opens the connect modal right away; no portal call."""
    async with running_app(engine=engine, slack=slack) as app:
        message = slack.add_message("C0001", text="hello", user="U0002")
        trigger = await shortcut(app, slack, message)
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == trigger)
        card_button = block_actions(
            action_id=ids.CARD_REPLY_ACTION,
            value=json.dumps({"message_id": 1, "portal": urlsplit(portal.base_url).netloc}),
            message={"ts": "1700000000.000100"},
            response_url=slack.response_url("card"),
        )
        await app.interactive(card_button)
        prompt = await slack.await_for_response(lambda r: r.name == "card")
    assert call.args["view"]["callback_id"] == ids.CONNECT_VIEW
    assert ids.OPEN_CONNECT_ACTION in json.dumps(prompt.json["blocks"])
    assert portal.requests == []


async def test_edit_and_resend_of_a_failed_reply_sends_it_as_a_reply(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """compose's Edit and resend reopens a reply (callback REPLY_VIEW); it stays a reply."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        message_id = add_offer(portal, b24)
        card = await share_card(app, slack, message_id)
        view_id = await opened(slack, await shortcut(app, slack, card))
        await updated_view(slack, view_id)
        portal.set_send_failure("MESSAGE_REPLY_FAILED")
        await submit(app, slack, view_id, body="First try.")
        failed = await status_message(slack, contains="Not sent")
        portal.reset_faults()
        row = (await app.services.sending.history(ALICE))[0]
        await app.interactive(
            block_actions(
                action_id=ids.EDIT_RESEND_ACTION,
                value=row.id,
                message=failed,
                trigger_id="trigger-edit",
                response_url=slack.response_url("edit"),
            )
        )
        edit_id = await opened(slack, "trigger-edit")
        edit = slack.views[edit_id]
        await submit(app, slack, edit_id, body="Second try.")
        delivered = await portal.await_delivered(1)
        sent = await status_message(slack, contains="Sent")
    assert edit["callback_id"] == ids.REPLY_VIEW
    email = delivered[0]
    assert email.method == "mail.message.reply"
    assert email.reply_to_message_id == message_id
    assert email.subject == "Re: Quarterly report"
    assert email.body == "<p>Second try.</p>"
    assert (sent["channel"], sent["thread_ts"]) == ("C0001", card["ts"])
