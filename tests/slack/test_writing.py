"""Drafts, signatures and templates through the real endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack import ids
from bot.slack.render.writing import signature_block_id
from bot.store.models import Draft
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    block_actions,
    rich_text_input,
    text_input,
    view_closed,
    view_submission,
)
from tests.slack.test_compose import ALICE, compose_values, link
from tests.support.app import RunningApp, running_app


def blocks_of(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(b.get("block_id")): b for b in view["blocks"]}


def opened(slack: FakeSlack, call: Any) -> dict[str, Any]:
    """The view as the fake Slack keeps it after views.open (its id, hash and blocks)."""
    assert call.response is not None
    return dict(slack.views[call.response["view"]["id"]])


def body_text(block: dict[str, Any]) -> str:
    return json.dumps(block["element"].get("initial_value"), ensure_ascii=False)


async def open_compose(app: RunningApp, slack: FakeSlack, trigger: str) -> dict[str, Any]:
    await app.command("", trigger_id=trigger)
    call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == trigger)
    return opened(slack, call)


async def test_closing_a_modal_with_content_keeps_a_draft_that_reopens_filled_in(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Close with text → an encrypted draft; `/b24mail` offers it; Open restores the fields;
    sending it deletes the draft. An untouched modal keeps nothing."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        view = await open_compose(app, slack, "t-1")
        assert view["notify_on_close"] is True
        await app.interactive(view_closed(from_view=view, values={}))
        async with engine.connect() as connection:
            assert (await connection.execute(select(Draft))).all() == []

        values = compose_values(subject="Half written", body="Dear Bob, about the contract")
        await app.interactive(view_closed(from_view=view, values=values))
        async with engine.connect() as connection:
            stored = (await connection.execute(select(Draft))).all()
        assert len(stored) == 1
        assert "Half written" not in stored[0].content_encrypted  # encrypted at rest

        offer = app.json(await app.command(""))
        assert ids.DRAFT_OPEN_ACTION in json.dumps(offer["blocks"])
        assert "Half written" in json.dumps(offer["blocks"])
        listed = json.dumps(app.json(await app.command("drafts")))
        assert "Half written" in listed and ids.DRAFT_DISCARD_ACTION in listed
        theirs = json.dumps(app.json(await app.command("drafts", user_id="UOTHER")))
        assert "Half written" not in theirs

        draft_id = stored[0].id
        intruder_url = slack.response_url("intruder")
        await app.interactive(
            block_actions(
                action_id=ids.DRAFT_OPEN_ACTION,
                value=draft_id,
                user_id="UOTHER",
                response_url=intruder_url,
            )
        )
        refusal = await slack.await_for_response(lambda r: r.url == intruder_url)
        assert "draft is gone" in json.dumps(refusal.json)

        await app.interactive(
            block_actions(
                action_id=ids.DRAFT_OPEN_ACTION,
                value=draft_id,
                trigger_id="t-open",
                response_url=slack.response_url(),
            )
        )
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-open")
        reopened = opened(slack, call)
        blocks = blocks_of(reopened)
        assert blocks[ids.SUBJECT_BLOCK]["element"]["initial_value"] == "Half written"
        assert "about the contract" in body_text(blocks[ids.BODY_BLOCK])
        assert json.loads(reopened["private_metadata"])["draft_id"] == draft_id

        await app.interactive(view_submission(from_view=reopened, values=values))
        await portal.await_delivered(1)
        assert await app.services.writing.drafts(ALICE) == []


async def test_discard_deletes_the_draft(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        view = await open_compose(app, slack, "t-1")
        await app.interactive(view_closed(from_view=view, values=compose_values(subject="Bin")))
        ((draft, _content),) = await app.services.writing.drafts(ALICE)
        url = slack.response_url("discard")
        await app.interactive(
            block_actions(action_id=ids.DRAFT_DISCARD_ACTION, value=draft.id, response_url=url)
        )
        done = await slack.await_for_response(lambda r: r.url == url)
        assert "Draft discarded" in json.dumps(done.json)
        assert await app.services.writing.drafts(ALICE) == []


async def test_signature_per_sender_is_in_the_new_emails_body(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """`/b24mail signature` sets one per sender; a new e-mail from that sender shows it in the
    body (what is sent); an untouched modal with only the signature keeps no draft."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await app.command("signature", trigger_id="t-sig")
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-sig")
        modal = opened(slack, call)
        labels = [b["label"]["text"] for b in modal["blocks"] if b["type"] == "input"]
        assert labels == ["Alice Smith <alice@corp.example>", "Sales <sales@corp.example>"]
        values = {
            signature_block_id(0): {ids.BODY_ACTION: rich_text_input("Alice Smith, CFO")},
            signature_block_id(1): {ids.BODY_ACTION: rich_text_input("The Sales team")},
        }
        answer = app.json(await app.interactive(view_submission(from_view=modal, values=values)))
        assert answer["response_action"] == "update"
        assert "2 signatures" in json.dumps(answer["view"])
        assert set(await app.services.writing.signatures(ALICE)) == {
            "alice@corp.example",
            "sales@corp.example",
        }
        await app.services.links.remember_sender(ALICE, "Sales <sales@corp.example>")
        view = await open_compose(app, slack, "t-new")
        shown = body_text(blocks_of(view)[ids.BODY_BLOCK])
        assert "The Sales team" in shown and "-- " in shown
        assert "Alice Smith, CFO" not in shown
        await app.interactive(view_closed(from_view=view, values=_untouched(view)))
        assert await app.services.writing.drafts(ALICE) == []

        # An empty field removes that sender's signature.
        values[signature_block_id(1)] = {ids.BODY_ACTION: rich_text_input("")}
        await app.interactive(view_submission(from_view=modal, values=values))
        assert set(await app.services.writing.signatures(ALICE)) == {"alice@corp.example"}


def _untouched(view: dict[str, Any]) -> dict[str, Any]:
    """The state of a modal nobody typed in: the prefilled body and sender, nothing else."""
    blocks = blocks_of(view)
    body = blocks[ids.BODY_BLOCK]["element"]["initial_value"]
    sender = blocks[ids.FROM_BLOCK]["element"]["initial_option"]
    return {
        ids.FROM_BLOCK: {ids.FROM_ACTION: {"type": "static_select", "selected_option": sender}},
        ids.BODY_BLOCK: {ids.BODY_ACTION: {"type": "rich_text_input", "rich_text_value": body}},
    }


async def test_templates_are_saved_listed_chosen_and_deleted(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        listed = app.json(await app.command("templates"))
        assert "No templates yet" in json.dumps(listed["blocks"])
        await app.interactive(
            block_actions(
                action_id=ids.TEMPLATE_ADD_ACTION,
                value="add",
                trigger_id="t-add",
                response_url=slack.response_url(),
            )
        )
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-add")
        modal = opened(slack, call)
        values = {
            ids.TEMPLATE_NAME_BLOCK: {ids.TEMPLATE_NAME_ACTION: text_input("Invoice")},
            ids.SUBJECT_BLOCK: {ids.SUBJECT_ACTION: text_input("Your invoice")},
            ids.BODY_BLOCK: {ids.BODY_ACTION: rich_text_input("Please find the invoice.")},
        }
        saved = app.json(await app.interactive(view_submission(from_view=modal, values=values)))
        assert saved["response_action"] == "update"
        again = app.json(await app.interactive(view_submission(from_view=modal, values=values)))
        assert "already have a template" in again["errors"][ids.TEMPLATE_NAME_BLOCK]

        view = await open_compose(app, slack, "t-compose")
        picker = blocks_of(view)[ids.TEMPLATE_BLOCK]["elements"][0]
        option = picker["options"][0]
        assert option["text"]["text"] == "Invoice"
        typed = compose_values(to="carol@client.example", subject="", body="")
        in_modal = {**view, "state": {"values": typed}}
        await app.interactive(
            block_actions(
                action_id=ids.TEMPLATE_ACTION,
                block_id=ids.TEMPLATE_BLOCK,
                view=in_modal,
                selected_option=option,
            )
        )
        update = await slack.await_for(
            "views.update", lambda c: c.args.get("view_id") == view["id"]
        )
        filled = {str(b.get("block_id")): b for b in update.args["view"]["blocks"]}
        subject = next(b for k, b in filled.items() if k.startswith(ids.SUBJECT_BLOCK + "-"))
        body = next(b for k, b in filled.items() if k.startswith(ids.BODY_BLOCK + "-"))
        assert subject["element"]["initial_value"] == "Your invoice"
        assert "Please find the invoice." in body_text(body)
        assert filled[ids.TO_BLOCK]["element"]["initial_value"] == "carol@client.example"

        template_id = option["value"]
        theirs = slack.response_url("theirs")
        await app.interactive(
            block_actions(
                action_id=ids.TEMPLATE_DELETE_ACTION,
                value=template_id,
                user_id="UOTHER",
                response_url=theirs,
            )
        )
        assert "template is gone" in json.dumps(
            (await slack.await_for_response(lambda r: r.url == theirs)).json
        )
        mine = slack.response_url("mine")
        await app.interactive(
            block_actions(
                action_id=ids.TEMPLATE_DELETE_ACTION, value=template_id, response_url=mine
            )
        )
        await slack.await_for_response(lambda r: r.url == mine)
        assert await app.services.writing.templates(ALICE) == []


async def test_a_reply_gets_the_receiving_senders_signature_send_at_and_a_draft(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Replying to an e-mail the Sales mailbox received: Sales' signature after the body, a
    Send at picker, and closing it keeps a draft that reopens as the same reply."""
    from tests.slack import test_reply as replies

    async with running_app(engine=engine, slack=slack) as app:
        b24 = await replies.link(app, portal)
        message_id = replies.add_offer(portal, b24)
        await app.services.writing.set_signature(
            ALICE, "sales@corp.example", rich_text_input("Sales desk")["rich_text_value"]
        )
        await app.interactive(
            block_actions(
                action_id=ids.INBOX_REPLY_ACTION,
                value=str(message_id),
                trigger_id="t-reply",
                response_url=slack.response_url("inbox"),
            )
        )
        view_id = await replies.opened(slack, "t-reply")
        view = await replies.updated_view(slack, view_id)
        assert "Sales desk" in body_text(blocks_of(view)[ids.BODY_BLOCK])
        assert blocks_of(view)[ids.SEND_AT_BLOCK]["element"]["type"] == "datetimepicker"
        assert view["notify_on_close"] is True

        values = replies.values_as_shown(view, body="Numbers confirmed.")
        await app.interactive(view_closed(from_view=view, values=values))
        ((draft, content),) = await app.services.writing.drafts(ALICE)
        assert content["callback_id"] == ids.REPLY_VIEW
        await app.interactive(
            block_actions(
                action_id=ids.DRAFT_OPEN_ACTION,
                value=draft.id,
                trigger_id="t-draft",
                response_url=slack.response_url(),
            )
        )
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-draft")
        reopened = opened(slack, call)
        answer = await replies.submit(app, slack, reopened["id"])
        assert answer == {}
        row = (await app.services.sending.history(ALICE))[0]
        assert await app.services.writing.drafts(ALICE) == []
    assert row.reply_to_message_id == message_id and row.kind == "reply"
    assert reopened["callback_id"] == ids.REPLY_VIEW
    assert json.loads(reopened["private_metadata"])["reply_to_message_id"] == message_id
    assert "Numbers confirmed." in body_text(blocks_of(reopened)[ids.BODY_BLOCK])


async def test_old_drafts_are_pruned(engine: AsyncEngine, slack: FakeSlack) -> None:
    """The worker's housekeeping deletes drafts untouched for B24MAIL_DRAFT_DAYS."""
    from datetime import timedelta

    from sqlalchemy import update

    from bot.store.base import utcnow

    async with running_app(engine=engine, slack=slack, b24mail_draft_days=30) as app:
        writing = app.services.writing
        old = await writing.keep_draft(ALICE, {"subject": "old"}, draft_id=None)
        fresh = await writing.keep_draft(ALICE, {"subject": "fresh"}, draft_id=None)
        async with engine.begin() as connection:
            await connection.execute(
                update(Draft)
                .where(Draft.id == old)
                .values(updated_at=utcnow() - timedelta(days=31))
            )
        assert await writing.prune() == 1
        assert [d.id for d, _ in await writing.drafts(ALICE)] == [fresh]


async def test_start_fresh_opens_a_new_email_and_stops_offering_the_draft(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        view = await open_compose(app, slack, "t-1")
        await app.interactive(view_closed(from_view=view, values=compose_values(subject="Later")))
        ((draft, _content),) = await app.services.writing.drafts(ALICE)
        offer = app.json(await app.command(""))
        assert ids.DRAFT_FRESH_ACTION in json.dumps(offer["blocks"])
        await app.interactive(
            block_actions(
                action_id=ids.DRAFT_FRESH_ACTION,
                value=draft.id,
                trigger_id="t-fresh",
                response_url=slack.response_url(),
            )
        )
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-fresh")
        fresh = opened(slack, call)
        assert "initial_value" not in blocks_of(fresh)[ids.SUBJECT_BLOCK]["element"]
        assert "draft_id" not in json.loads(fresh["private_metadata"])
        # /b24mail now opens the modal at once; the draft is still listed.
        assert await app.command("", trigger_id="t-2") is not None
        await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-2")
        assert "Later" in json.dumps(app.json(await app.command("drafts")))


async def test_a_forward_gets_the_signature_send_at_and_a_draft_that_reopens_as_a_forward(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Forward from a shared card: Sales' signature in the note, Send at offered; closed with a
    note, the draft reopens as the forward of the same e-mail, and scheduled it is queued as one."""
    from bot.store.base import utcnow
    from tests.slack import test_email_actions as actions
    from tests.slack import test_reply as replies

    async with running_app(engine=engine, slack=slack) as app:
        b24 = await actions.link(app, portal)
        message_id = actions.add_offer(portal, b24)
        await app.services.writing.set_signature(
            ALICE, "sales@corp.example", rich_text_input("Sales desk")["rich_text_value"]
        )
        card = await replies.share_card(app, slack, message_id)
        forward = actions.element(card, ids.CARD_FORWARD_ACTION)
        await app.interactive(
            block_actions(
                action_id=ids.CARD_FORWARD_ACTION,
                value=forward["value"],
                message=card,
                trigger_id="t-fwd",
                response_url=slack.response_url("forward"),
            )
        )
        view = await replies.updated_view(slack, await replies.opened(slack, "t-fwd"))
        assert "Sales desk" in body_text(blocks_of(view)[ids.BODY_BLOCK])
        assert ids.SEND_AT_BLOCK in blocks_of(view)
        values = replies.values_as_shown(view, to="dan@partner.example", body="Dan, see below.")
        await app.interactive(view_closed(from_view=view, values=values))
        ((draft, _content),) = await app.services.writing.drafts(ALICE)
        await app.interactive(
            block_actions(
                action_id=ids.DRAFT_OPEN_ACTION,
                value=draft.id,
                trigger_id="t-fwd-draft",
                response_url=slack.response_url(),
            )
        )
        call = await slack.await_for(
            "views.open", lambda c: c.args.get("trigger_id") == "t-fwd-draft"
        )
        reopened = opened(slack, call)
        ahead = int(utcnow().timestamp()) + 3600
        values = replies.values_as_shown(reopened)
        values[ids.SEND_AT_BLOCK] = {
            ids.SEND_AT_ACTION: {"type": "datetimepicker", "selected_date_time": ahead}
        }
        answer = await app.interactive(view_submission(from_view=reopened, values=values))
        assert app.json(answer) == {}
        (row,) = await app.services.sending.scheduled(ALICE)
    assert reopened["callback_id"] == ids.FORWARD_VIEW
    assert json.loads(reopened["private_metadata"])["forward_message_id"] == message_id
    assert (row.kind, row.forward_message_id, row.to_addrs) == (
        "forward",
        message_id,
        ["dan@partner.example"],
    )
    assert await app.services.writing.drafts(ALICE) == []
