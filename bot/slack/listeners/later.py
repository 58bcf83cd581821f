"""Undo, and e-mails waiting for their time: Undo, Send now, Edit, Cancel, `/b24mail scheduled`.

Every button names an outbox row; the use case checks, at the moment of the click, that the
clicking user owns it and that no worker has taken it yet, so a stale button is harmless.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.drafting import resend_modal
from bot.slack.errors import explain
from bot.slack.home_tab import refresh_home
from bot.slack.listeners.command_call import CommandCall
from bot.slack.render.connect import escape_mrkdwn
from bot.slack.render.status import scheduled_blocks
from bot.slack.slack_calls import open_view_or_explain, reachable, tell
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)


async def show_scheduled(call: CommandCall) -> None:
    """`/b24mail scheduled`: what waits for its time, with Send now, Edit and Cancel."""
    emails = await call.services.sending.scheduled(call.user)
    await call.ack(text=call.t("scheduled.title"), blocks=scheduled_blocks(call.t, emails))


async def on_cancel(
    ack: AsyncAck,
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Undo (the status message's button) and Cancel (a scheduled e-mail): never sent, or
    "too late to undo" when a worker already has it. The status message then says which."""
    await ack()
    try:
        email = await services.sending.cancel(str(action.get("value", "")), user)
    except MailError as exc:
        _tell(services, client, user, respond, explain(t, exc), "cancel-refused")
        return
    services.notify_wakeup.notify()
    refresh_home(services, client, user)
    if action.get("action_id") == ids.CANCEL_SCHEDULED_ACTION:
        _tell(
            services,
            client,
            user,
            respond,
            t("scheduled.cancelled", subject=escape_mrkdwn(email.subject)),
            "cancel-done",
        )


async def on_send_now(
    ack: AsyncAck,
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    email_id = str(action.get("value", ""))
    try:
        await services.sending.send_now(email_id, user)
        email = await services.sending.owned(email_id, user)
    except MailError as exc:
        _tell(services, client, user, respond, explain(t, exc), "send-now-refused")
        return
    services.notify_wakeup.notify()
    refresh_home(services, client, user)
    _tell(
        services,
        client,
        user,
        respond,
        t("scheduled.sending_now", subject=escape_mrkdwn(email.subject)),
        "send-now-done",
    )


async def on_edit_scheduled(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Edit a waiting e-mail: it is cancelled first (so it cannot leave while being edited)
    and the modal opens filled in, its time included; submitting queues it anew."""
    await ack()
    try:
        email = await services.sending.cancel(str(action.get("value", "")), user)
        link = await services.links.require(user)
    except MailError as exc:
        _tell(services, client, user, respond, explain(t, exc), "edit-scheduled-refused")
        return
    services.notify_wakeup.notify()
    refresh_home(services, client, user)
    view = resend_modal(t, email, senders=link.senders, keep_time=True)
    services.background.spawn(
        open_view_or_explain(
            client=client,
            trigger_id=body["trigger_id"],
            view=view,
            respond=reachable(respond),
            t=t,
        ),
        name="open-edit-scheduled-modal",
    )


def _tell(
    services: Services,
    client: AsyncWebClient,
    user: SlackUser,
    respond: AsyncRespond,
    text: str,
    name: str,
) -> None:
    """Under the message clicked, or in the DM for a button on the Home tab."""
    services.background.spawn(tell(client, user.user_id, respond, text), name=name)


def register(app: AsyncApp) -> None:
    app.action(ids.UNDO_ACTION)(on_cancel)
    app.action(ids.CANCEL_SCHEDULED_ACTION)(on_cancel)
    app.action(ids.SEND_NOW_ACTION)(on_send_now)
    app.action(ids.EDIT_SCHEDULED_ACTION)(on_edit_scheduled)
