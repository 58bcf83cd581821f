"""The Home tab's notifications, signatures and templates, and scheduled e-mails through the real
endpoint: drawn for a linked user, their buttons work, and the tab is republished after each
change made from it or by the matching sub-commands. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack import ids
from bot.slack.render.writing import signature_block_id
from bot.store.base import utcnow
from bot.store.models import MailSubscription
from bot.store.outbox import OutboxStatus
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions, rich_text_input, text_input, view_submission
from tests.slack.test_compose import ALICE, compose_values, link, submission
from tests.slack.test_home import LOCALES, open_home, texts_of
from tests.slack.test_later import later
from tests.slack.test_writing import opened
from tests.support.app import RunningApp, running_app

SECTION_ACTIONS = (
    ids.HOME_NOTIFY_ON_ACTION,
    ids.HOME_NOTIFY_OFF_ACTION,
    ids.SIGNATURE_OPEN_ACTION,
    ids.TEMPLATE_ADD_ACTION,
    ids.SEND_NOW_ACTION,
)


async def republished(app: RunningApp, slack: FakeSlack, before: int) -> str:
    """The Home tab as published after the change that follows `before` publishes."""
    await slack.await_for_calls("views.publish", before + 1)
    return texts_of(slack.home_view("U0001") or {})


def click(action_id: str, view: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A button on the Home tab, as Slack sends it: in a view, with no response_url."""
    return block_actions(action_id=action_id, view=view, **extra)


async def test_an_unlinked_user_sees_none_of_the_sections(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    slack.add_user("U0001")
    async with running_app(engine=engine, slack=slack) as app:
        shown = texts_of(await open_home(app, slack))
    assert not [a for a in SECTION_ACTIONS if a in shown]
    assert "New-mail notifications" not in shown and "Signatures and templates" not in shown


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_notifications_off_on_paused_and_off_again_from_the_tab(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, language: str
) -> None:
    words = {
        "en": ("are off", "are on", "paused", "Start again in my DM"),
        "ru": ("выключены", "включены", "приостановлены", "Возобновить в личных сообщениях"),
    }[language]
    slack.add_user("U0001", locale=LOCALES[language])
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        view = await open_home(app, slack)
        shown = texts_of(view)
        assert words[0] in shown and ids.HOME_NOTIFY_ON_ACTION in shown

        before = len(slack.calls_to("views.publish"))
        await app.interactive(click(ids.HOME_NOTIFY_ON_ACTION, view))
        shown = await republished(app, slack, before)
        status = await app.services.notify.status(ALICE)
        assert status is not None and status.subscription.channel_id is None
        assert words[1] in shown and ids.HOME_NOTIFY_OFF_ACTION in shown
        assert "127.0.0.1" in shown  # the portal whose budget the check period comes from

        async with app.services.sessions.begin() as session:
            await session.execute(
                update(MailSubscription).values(state="paused", pause_reason="slack_is_archived")
            )
        view = await open_home(app, slack)
        shown = texts_of(view)
        assert words[2] in shown and words[3] in shown
        before = len(slack.calls_to("views.publish"))
        await app.interactive(click(ids.HOME_NOTIFY_ON_ACTION, view))
        await republished(app, slack, before)
        status = await app.services.notify.status(ALICE)
        assert status is not None and status.subscription.state == "active"

        before = len(slack.calls_to("views.publish"))
        await app.interactive(click(ids.HOME_NOTIFY_OFF_ACTION, view))
        shown = await republished(app, slack, before)
        assert await app.services.notify.status(ALICE) is None
        assert words[0] in shown and ids.HOME_NOTIFY_ON_ACTION in shown


async def test_notify_sub_command_refreshes_the_tab(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_user("U0001")
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await open_home(app, slack)
        before = len(slack.calls_to("views.publish"))
        await app.command("notify on invoice")
        shown = await republished(app, slack, before)
        assert "are on" in shown and "invoice" in shown
        before = len(slack.calls_to("views.publish"))
        await app.command("notify off")
        assert "are off" in await republished(app, slack, before)


async def test_signatures_and_templates_shown_their_buttons_open_the_modals_and_refresh(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_user("U0001")
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        view = await open_home(app, slack)
        assert "no address yet" in texts_of(view) and "none yet" in texts_of(view)

        await app.interactive(click(ids.SIGNATURE_OPEN_ACTION, view, trigger_id="t-sig"))
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-sig")
        modal = opened(slack, call)
        assert modal["callback_id"] == ids.SIGNATURE_VIEW
        before = len(slack.calls_to("views.publish"))
        values = {
            signature_block_id(0): {ids.BODY_ACTION: rich_text_input("")},
            signature_block_id(1): {ids.BODY_ACTION: rich_text_input("The Sales team")},
        }
        await app.interactive(view_submission(from_view=modal, values=values))
        shown = await republished(app, slack, before)
        assert "*Signature for:* sales@corp.example" in shown

        await app.interactive(click(ids.TEMPLATE_ADD_ACTION, view, value="add", trigger_id="t-t"))
        call = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-t")
        modal = opened(slack, call)
        assert modal["callback_id"] == ids.TEMPLATE_VIEW
        before = len(slack.calls_to("views.publish"))
        values = {
            ids.TEMPLATE_NAME_BLOCK: {ids.TEMPLATE_NAME_ACTION: text_input("Invoice")},
            ids.SUBJECT_BLOCK: {ids.SUBJECT_ACTION: text_input("Your invoice")},
            ids.BODY_BLOCK: {ids.BODY_ACTION: rich_text_input("Please find the invoice.")},
        }
        await app.interactive(view_submission(from_view=modal, values=values))
        assert "“Invoice”" in await republished(app, slack, before)

        template = (await app.services.writing.templates(ALICE))[0]
        before = len(slack.calls_to("views.publish"))
        await app.interactive(
            block_actions(
                action_id=ids.TEMPLATE_DELETE_ACTION,
                value=str(template.id),
                response_url=slack.response_url(),
            )
        )
        assert "*Templates:* none yet" in await republished(app, slack, before)


async def test_scheduled_emails_listed_with_their_buttons_which_work_from_the_tab(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    ahead = int(utcnow().timestamp()) + 3600
    slack.add_user("U0001")
    slack.add_user("UOTHER")
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        for n, subject in enumerate(("Keep me", "Drop me")):
            await app.interactive(
                submission(later(compose_values(subject=subject), ahead), view_id=f"V{n}")
            )
        rows = {r.subject: r for r in await app.services.sending.scheduled(ALICE)}
        view = await open_home(app, slack)
        shown = texts_of(view)
        assert "E-mails waiting for their time" in shown
        assert f"<!date^{ahead}^" in shown  # the time, in the reader's own zone
        for row in rows.values():
            assert f'"value": "{row.id}"' in shown
        assert shown.count(ids.EDIT_SCHEDULED_ACTION) == 2

        before = len(slack.calls_to("views.publish"))
        await app.interactive(click(ids.CANCEL_SCHEDULED_ACTION, view, value=rows["Drop me"].id))
        shown = await republished(app, slack, before)
        # Told in the DM, since a Home tab button has no message to answer under.
        told = await slack.await_for(
            "chat.postMessage", lambda c: "Cancelled" in str(c.args.get("text"))
        )
        assert told.args["channel"] == "U0001"
        stored = await app.services.outbox.get(rows["Drop me"].id)
        assert stored is not None and stored.status == OutboxStatus.CANCELLED
        assert shown.count(ids.EDIT_SCHEDULED_ACTION) == 1
        assert "cancelled, not sent" in shown

        # Someone else's forged click changes nothing: the handler checks the owner.
        await app.interactive(
            click(ids.SEND_NOW_ACTION, view, value=rows["Keep me"].id, user_id="UOTHER")
        )
        refused = await slack.await_for(
            "chat.postMessage", lambda c: c.args.get("channel") == "UOTHER"
        )
        assert refused.ok and "Cancelled" not in str(refused.args.get("text"))
        assert [r.subject for r in await app.services.sending.scheduled(ALICE)] == ["Keep me"]

        before = len(slack.calls_to("views.publish"))
        await app.interactive(click(ids.SEND_NOW_ACTION, view, value=rows["Keep me"].id))
        shown = await republished(app, slack, before)
        await slack.await_for("chat.postMessage", lambda c: "Sending" in str(c.args.get("text")))
        # Due now and on its way (no worker here to take it): no longer waiting on the tab.
        assert ids.EDIT_SCHEDULED_ACTION not in shown


async def test_edit_from_the_tab_opens_the_modal_and_refreshes(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    ahead = int(utcnow().timestamp()) + 3600
    slack.add_user("U0001")
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await app.interactive(submission(later(compose_values(subject="Edit me"), ahead)))
        row = (await app.services.sending.scheduled(ALICE))[0]
        view = await open_home(app, slack)
        before = len(slack.calls_to("views.publish"))
        await app.interactive(
            click(ids.EDIT_SCHEDULED_ACTION, view, value=row.id, trigger_id="t-edit")
        )
        await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-edit")
        shown = await republished(app, slack, before)
    assert ids.EDIT_SCHEDULED_ACTION not in shown and json.dumps("Edit me")[1:-1] in shown
