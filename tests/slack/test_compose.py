"""Compose and send, through the real HTTP endpoint, the fake Slack and the fake portal."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.slack import ids
from bot.store.models import OutboxEmail
from bot.store.outbox import OutboxStatus
from tests.fakes.bitrix24_portal import FakePortal, FakeUser
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    block_actions,
    rich_text_input,
    static_select,
    text_input,
    view_submission,
)
from tests.support.app import RunningApp, running_app

ALICE = SlackUser(team_id="T0001", user_id="U0001")


async def link(
    app: RunningApp, portal: FakePortal, *, user: SlackUser = ALICE, b24_id: int = 5
) -> FakeUser:
    b24 = portal.add_user(
        b24_id, senders=[("Alice Smith", "alice@corp.example"), ("Sales", "sales@corp.example")]
    )
    await app.services.links.connect(user, b24.webhook_url)
    return b24


def compose_values(
    *,
    sender: str | None = "alice@corp.example",
    to: str | None = "Bob <bob@client.example>",
    cc: str | None = None,
    bcc: str | None = None,
    subject: str | None = "Quarterly report",
    body: str | dict[str, Any] = "Hello Bob,\nthe report is attached.",
    post_to: str | None = "C0001",
) -> dict[str, Any]:
    body_value = (
        rich_text_input(body)
        if isinstance(body, str)
        else {"type": "rich_text_input", "rich_text_value": body}
    )
    return {
        ids.FROM_BLOCK: {ids.FROM_ACTION: static_select(sender)},
        ids.TO_BLOCK: {ids.ADDRESSES_ACTION: text_input(to)},
        ids.CC_BLOCK: {ids.ADDRESSES_ACTION: text_input(cc)},
        ids.BCC_BLOCK: {ids.ADDRESSES_ACTION: text_input(bcc)},
        ids.SUBJECT_BLOCK: {ids.SUBJECT_ACTION: text_input(subject)},
        ids.BODY_BLOCK: {ids.BODY_ACTION: body_value},
        ids.POST_TO_BLOCK: {
            ids.POST_TO_ACTION: {"type": "conversations_select", "selected_conversation": post_to}
        },
    }


def submission(
    values: dict[str, Any], *, view_id: str = "V100", view_hash: str = "h1", user_id: str = "U0001"
) -> dict[str, Any]:
    return view_submission(
        callback_id=ids.COMPOSE_VIEW,
        values=values,
        private_metadata=json.dumps({"channel_id": "C0001"}),
        view_id=view_id,
        view_hash=view_hash,
        user_id=user_id,
    )


async def final_status(slack: FakeSlack, *, contains: str, timeout: float = 10.0) -> dict[str, Any]:
    """The status message once it says `contains` (posted or updated), polled with a time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for (channel, ts), message in slack.messages.items():
            if contains in json.dumps(message.get("blocks")):
                return {**message, "channel": channel, "ts": ts}
        await asyncio.sleep(0.02)
    raise AssertionError(f"no status message saying {contains!r}: {list(slack.messages.values())}")


async def test_unlinked_user_gets_a_connect_button(engine: AsyncEngine, slack: FakeSlack) -> None:
    """/b24mail without a link answers with an ephemeral prompt and a Connect button."""
    async with running_app(engine=engine, slack=slack) as app:
        answer = app.json(await app.command(""))
    assert ids.OPEN_CONNECT_ACTION in json.dumps(answer["blocks"])
    assert not slack.calls_to("views.open")


async def test_send_opens_the_compose_modal_prefilled(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """`/b24mail send a@b` opens the modal with To filled and the user's senders to choose from."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        response = await app.command(
            "send anna@client.example; <mailto:bo@client.example|bo@client.example>"
        )
        assert response.status_code == 200
        call = await slack.await_for("views.open", lambda c: c.ok)
    view = call.args["view"]
    assert view["callback_id"] == ids.COMPOSE_VIEW
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert (
        blocks[ids.TO_BLOCK]["element"]["initial_value"] == "anna@client.example, bo@client.example"
    )
    options = [o["value"] for o in blocks[ids.FROM_BLOCK]["element"]["options"]]
    assert options == ["alice@corp.example", "sales@corp.example"]
    assert blocks[ids.POST_TO_BLOCK]["element"]["initial_conversation"] == "C0001"


async def test_happy_path_sends_exactly_what_was_written(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The portal receives from, to, cc, bcc, subject and escaped HTML; the status says Sent."""
    body = {
        "type": "rich_text",
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [
                    {"type": "text", "text": "Hi "},
                    {"type": "text", "text": "<Bob>", "style": {"bold": True}},
                    {"type": "text", "text": ", see "},
                    {"type": "link", "url": "https://example.com/r?a=1&b=2", "text": "the report"},
                ],
            }
        ],
    }
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        answer = await app.interactive(
            submission(
                compose_values(
                    sender="sales@corp.example",
                    to="Bob <bob@client.example>, carol@client.example",
                    cc="dave@client.example",
                    bcc="eve@corp.example",
                    body=body,
                )
            )
        )
        assert answer.status_code == 200
        assert answer.text == ""
        delivered = await portal.await_delivered(1)
        message = await final_status(slack, contains="Sent")
    email = delivered[0]
    assert email.method == "mail.message.send"
    assert email.user_id == b24.user_id
    assert email.from_ == "Sales <sales@corp.example>"
    # The documented form: bare addresses; the names stay in our own texts.
    assert email.to == ["bob@client.example", "carol@client.example"]
    assert email.cc == ["dave@client.example"]
    assert email.bcc == ["eve@corp.example"]
    assert email.subject == "Quarterly report"
    assert email.body == (
        '<p>Hi <b>&lt;Bob&gt;</b>, see <a href="https://example.com/r?a=1&amp;b=2">the report</a></p>'
    )
    assert email.idempotency_key
    shown = json.dumps(message["blocks"])
    assert "Quarterly report" in shown
    assert "2 recipients in To, 1 in Cc, 1 in Bcc" in shown
    assert "eve@corp.example" not in shown  # Bcc stays private in a shared channel
    assert message["channel"] == "C0001"


@pytest.mark.parametrize(
    ("values", "block", "expected"),
    [
        (
            {"to": "bob@client.example, not-an-address, x@"},
            ids.TO_BLOCK,
            "Not a valid e-mail address: not-an-address, x@",
        ),
        ({"cc": "carol@@client.example"}, ids.CC_BLOCK, "carol@@client.example"),
        ({"bcc": "eve"}, ids.BCC_BLOCK, "Not a valid e-mail address: eve"),
        ({"to": ""}, ids.TO_BLOCK, "Add at least one recipient"),
        ({"subject": "   "}, ids.SUBJECT_BLOCK, "Please fill this in"),
        ({"body": "  \n "}, ids.BODY_BLOCK, "Write a message"),
        (
            {"sender": "mallory@evil.example"},
            ids.FROM_BLOCK,
            "Choose one of your Bitrix24 sender addresses",
        ),
        (
            {"cc": "bob@client.example, иван@пример.рф"},
            ids.CC_BLOCK,
            "иван@пример.рф: the part before @ has non-Latin characters",
        ),
        (
            {"to": " ".join(f"r{i}@client.example" for i in range(51))},
            ids.TO_BLOCK,
            "Too many recipients: 51 (at most 50",
        ),
    ],
)
async def test_invalid_fields_get_inline_errors_and_nothing_is_queued(
    engine: AsyncEngine,
    slack: FakeSlack,
    portal: FakePortal,
    values: dict[str, Any],
    block: str,
    expected: str,
) -> None:
    """Each invalid field is named in the modal with the bad value; no outbox row is written."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        answer = app.json(await app.interactive(submission(compose_values(**values))))
    assert answer["response_action"] == "errors"
    assert expected in answer["errors"][block]
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(OutboxEmail)) == 0


async def test_bidi_controls_and_zero_width_characters_never_reach_bitrix24(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """`Invoice \u202efdp.exe` goes out as `Invoice fdp.exe`; display names are cleaned alike."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        values = compose_values(
            to="\u2067Bob\u2069 Tr\u200bust <bob@client.example>",
            subject="Invoice \u202efdp.exe\ufeff",
        )
        assert (await app.interactive(submission(values))).status_code == 200
        delivered = await portal.await_delivered(1)
    assert delivered[0].subject == "Invoice fdp.exe"
    # Bitrix24 gets bare addresses (the documented form); the name is kept, cleaned, for our texts.
    assert delivered[0].to == ["bob@client.example"]
    async with engine.connect() as connection:
        stored = await connection.scalar(select(OutboxEmail.to_addrs))
    assert stored == ["Bob Trust <bob@client.example>"]


async def test_same_submission_twice_sends_one_email(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A duplicate delivery of one submission (same view id and hash) creates nothing new."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        payload = submission(compose_values(), view_id="VDUP", view_hash="same")
        for _ in range(3):
            assert (await app.interactive(payload)).status_code == 200
        await portal.await_delivered(1)
        await final_status(slack, contains="Sent")
        await asyncio.sleep(0.3)  # time for a wrongly queued second copy to go out
    assert len(portal.delivered) == 1
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(OutboxEmail)) == 1


async def test_portal_down_for_a_while_is_retried_and_delivered_once(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """5xx answers are retried with back-off, the status says Retrying, then Sent; one e-mail."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        portal.fail_next(3, status=500, methods=["mail.message.send"])
        await app.interactive(submission(compose_values()))
        message = await final_status(slack, contains="Sent")
        history = slack.message_history(message["channel"], message["ts"])
    assert len(portal.delivered) == 1
    assert any("Retrying (attempt" in json.dumps(v.get("blocks")) for v in history)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("send_failed", "could not send the e-mail"),
        ("resolve", "could not read one of the addresses"),
        ("no_recipients", "found no recipients"),
        ("expired", "did not accept the webhook"),
        ("plan", "commercial plan"),
        ("moved", "has moved to *renamed.bitrix24.com*"),
    ],
)
async def test_permanent_portal_errors_fail_at_once_with_a_readable_reason(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, fault: str, expected: str
) -> None:
    """Validation, credential, plan and moved-portal errors are not retried and say what to do."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = await link(app, portal)
        if fault == "send_failed":
            portal.set_send_failure("MESSAGE_SEND_FAILED")
        elif fault == "resolve":
            portal.set_send_failure("RESOLVE_RECIPIENTS_ERROR")
        elif fault == "no_recipients":
            portal.set_send_failure("NO_RECIPIENTS")
        elif fault == "expired":
            portal.expire_webhook(b24.user_id)
        elif fault == "plan":
            portal.set_plan_restricted(True)
        else:
            portal.rename("renamed.bitrix24.com")
        await app.interactive(submission(compose_values()))
        message = await final_status(slack, contains="Not sent")
        row = (await app.services.sending.history(ALICE))[0]
    shown = json.dumps(message["blocks"])
    assert expected in shown
    assert ids.RETRY_ACTION in shown
    assert ids.EDIT_RESEND_ACTION in shown
    assert row.attempts == 1
    assert portal.delivered == []
    assert b24.code not in shown
    if fault == "moved":
        assert "Bitrix24 said" not in shown  # the new host is named once, in the explanation


async def test_retry_button_requeues_the_same_email_and_only_for_its_owner(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Retry by someone else is refused; by the owner it sends the same row, same key, once."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        portal.set_send_failure("MESSAGE_SEND_FAILED")
        await app.interactive(submission(compose_values()))
        message = await final_status(slack, contains="Not sent")
        row = (await app.services.sending.history(ALICE))[0]
        portal.reset_faults()

        intruder = block_actions(
            action_id=ids.RETRY_ACTION,
            value=row.id,
            user_id="UMALLORY",
            response_url=slack.response_url("intruder"),
        )
        assert (await app.interactive(intruder)).status_code == 200
        refusal = await slack.await_for_response(lambda r: "intruder" in r.url)
        assert "cannot find that e-mail" in json.dumps(refusal.json)
        assert (await app.services.outbox.get(row.id)).status == OutboxStatus.FAILED

        owner = block_actions(
            action_id=ids.RETRY_ACTION,
            value=row.id,
            message=message,
            response_url=slack.response_url(),
        )
        assert (await app.interactive(owner)).status_code == 200
        delivered = await portal.await_delivered(1)
        await final_status(slack, contains="Sent")
    assert delivered[0].idempotency_key == row.id
    assert len(portal.delivered) == 1


async def test_result_goes_to_a_dm_when_the_channel_refuses_the_bot(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """not_in_channel → the status lands in a DM with the user, with a note why."""
    slack.add_user("U0001")
    slack.add_channel("CPRIVATE", member=False, is_private=True)
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values(post_to="CPRIVATE")))
        message = await final_status(slack, contains="Sent")
    assert message["channel"].startswith("D")
    assert "I could not post in <#CPRIVATE>" in json.dumps(message["blocks"])


async def test_slack_rate_limit_delays_the_status_but_never_loses_it(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """chat.postMessage answering 429 (Retry-After) is tried again later; the status arrives."""
    slack.rate_limit("chat.postMessage", times=2, retry_after=0)
    slack.server_error("chat.update", times=1)
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values()))
        await final_status(slack, contains="Sent")
    assert len(portal.delivered) == 1
    assert len([c for c in slack.calls_to("chat.postMessage") if c.status == 429]) == 2


async def test_history_lists_the_users_last_emails_only(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """/b24mail history shows the user's own e-mails with status and subject."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values(subject="First one"), view_id="V1"))
        await app.interactive(submission(compose_values(subject="Second one"), view_id="V2"))
        await portal.await_delivered(2)
        mine = json.dumps(app.json(await app.command("history")))
        theirs = json.dumps(app.json(await app.command("history", user_id="UOTHER")))
    assert "First one" in mine
    assert "Second one" in mine
    assert "First one" not in theirs
    assert "not sent any e-mail" in theirs


async def test_edit_and_resend_opens_the_modal_prefilled(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Edit and resend reopens the e-mail's fields for the owner."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        portal.set_send_failure("MESSAGE_SEND_FAILED")
        await app.interactive(
            submission(compose_values(cc="carol@client.example", subject="Draft me"))
        )
        await final_status(slack, contains="Not sent")
        row = (await app.services.sending.history(ALICE))[0]
        click = block_actions(
            action_id=ids.EDIT_RESEND_ACTION,
            value=row.id,
            trigger_id="trig-edit",
            response_url=slack.response_url(),
        )
        await app.interactive(click)
        call = await slack.await_for(
            "views.open", lambda c: c.args.get("trigger_id") == "trig-edit"
        )
    blocks = {b.get("block_id"): b for b in call.args["view"]["blocks"]}
    assert blocks[ids.SUBJECT_BLOCK]["element"]["initial_value"] == "Draft me"
    assert blocks[ids.CC_BLOCK]["element"]["initial_value"] == "carol@client.example"
    assert blocks[ids.BODY_BLOCK]["element"]["initial_value"]["type"] == "rich_text"


async def test_mentions_dates_and_underline_reach_the_email_as_a_person_reads_them(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Rich text from Slack's samples: underline kept, #channel and @group by name (through
    Slack, like users), an unnamed group readable, two dates apart."""
    slack.add_user("U0042", name="ann", real_name="Ann Lee")
    slack.add_channel("C0777", name="sales")
    slack.add_usergroup("S0555", handle="devs")
    body = {
        "type": "rich_text",
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [
                    {"type": "text", "text": "ask ", "style": {"underline": True}},
                    {"type": "user", "user_id": "U0042"},
                    {"type": "text", "text": " in "},
                    {"type": "channel", "channel_id": "C0777"},
                    {"type": "text", "text": " or "},
                    {"type": "usergroup", "usergroup_id": "S0555"},
                    {"type": "text", "text": " and "},
                    {"type": "usergroup", "usergroup_id": "S0999"},
                    {"type": "text", "text": ": "},
                    {"type": "date", "timestamp": 1720000000, "fallback": "Jul 3"},
                    {"type": "date", "timestamp": 1720086400, "fallback": "Jul 4"},
                ],
            }
        ],
    }
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        answer = await app.interactive(submission(compose_values(body=body)))
        assert answer.status_code == 200 and answer.text == ""
        delivered = await portal.await_delivered(1)
    assert delivered[0].body == (
        "<p><u>ask </u>@ann in #sales or @devs and @group: Jul 3 Jul 4</p>"
    )
