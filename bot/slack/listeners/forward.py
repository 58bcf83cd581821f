"""Forward: the button under an e-mail opens the forward modal; its submission is queued in the
outbox with the e-mail's id (`forwardMessageId`), exactly like a send or a reply.

The modal opens at once as "Loading…" (a trigger lasts 3 s) and is filled from Bitrix24.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bot.bitrix24 import AccessDenied, Bitrix24Error, NotFound
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.mail.replying import OtherPortal
from bot.slack import ids
from bot.slack.drafting import with_signature
from bot.slack.errors import explain
from bot.slack.listeners.message_actions import ResultPlace
from bot.slack.listeners.reply import LOAD_TIME_BOX, update_view
from bot.slack.listeners.submission import submit_email
from bot.slack.metadata import ViewOrigin
from bot.slack.render.card import CardRef, card_reference_from_value
from bot.slack.render.compose import BLOCK_OF_FIELD
from bot.slack.render.forward import forward_modal, forward_sender
from bot.slack.render.reply import loading_modal, problem_modal
from bot.slack.slack_calls import open_view_or_explain, prompt_connect
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services
    from bot.store.models import Link

log = logging.getLogger(__name__)


async def on_forward_button(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    link = await services.links.get(user)
    if link is None:
        services.background.spawn(
            prompt_connect(respond, t),
            name="forward-needs-link",
        )
        return
    ref = card_reference_from_value(action.get("value"))
    if ref is None:
        log.warning("forward button with an unreadable value user=%s", user.user_id)
        return
    place = ResultPlace.of(body)
    # An inbox line is ephemeral: no thread can take the status, so the user picks a place.
    origin = ViewOrigin(
        channel_id=place.channel,
        thread_ts=None if place.ephemeral else place.thread_ts,
        forward_message_id=ref.message_id,
    )
    services.background.spawn(
        _open_then_fill(
            services,
            client=client,
            t=t,
            user=user,
            link=link,
            trigger_id=str(body.get("trigger_id", "")),
            respond=respond,
            origin=origin,
            target=ref,
            show_post_to=place.ephemeral,
        ),
        name="open-forward-modal",
    )


async def on_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """The forward modal, and the "Edit and resend" view of a forward: one submit flow."""
    origin = ViewOrigin.decode(view.get("private_metadata"))
    refused = {ids.TO_BLOCK: t("error.email_gone")} if origin.forward_message_id is None else None
    await submit_email(
        services=services,
        ack=ack,
        client=client,
        t=t,
        user=user,
        view=view,
        origin=origin,
        blocks=BLOCK_OF_FIELD,
        reply_to_message_id=None,
        forward_message_id=origin.forward_message_id,
        refused=refused,
    )


def register(app: AsyncApp) -> None:
    app.action(ids.CARD_FORWARD_ACTION)(on_forward_button)
    app.view_submission(ids.FORWARD_VIEW)(on_submit)


async def _open_then_fill(
    services: Services,
    *,
    client: AsyncWebClient,
    t: Texts,
    user: SlackUser,
    link: Link,
    trigger_id: str,
    respond: AsyncRespond,
    origin: ViewOrigin,
    target: CardRef,
    show_post_to: bool,
) -> None:
    view_id = await open_view_or_explain(
        client=client, trigger_id=trigger_id, view=loading_modal(t), respond=respond, t=t
    )
    if view_id is None:
        return
    try:
        async with asyncio.timeout(LOAD_TIME_BOX):
            original = await services.replying.original(
                user, target.message_id, portal=target.portal
            )
    except (Bitrix24Error, MailError, TimeoutError) as exc:
        log.info(
            "forward of %s unavailable user=%s: %s",
            target.message_id,
            user.user_id,
            getattr(exc, "code", type(exc).__name__),
        )
        view = problem_modal(t, _why_not(t, exc))
    else:
        sender = forward_sender(link.senders, original, link.last_sender)
        signature = await services.writing.signature_for(user, sender)
        view = forward_modal(
            t,
            senders=link.senders,
            last_sender=link.last_sender,
            origin=origin,
            original=original,
            show_post_to=show_post_to,
            note=with_signature(None, signature),
        )
    await update_view(client, view_id=view_id, view=view)


def _why_not(t: Texts, error: Exception) -> str:
    """Why the e-mail cannot be forwarded, in the words of the actions (not of a reply)."""
    if isinstance(error, NotFound | AccessDenied):
        return t("error.email_gone")
    if isinstance(error, OtherPortal):
        return t("action.other_portal", portal=error.portal, host=error.linked_host)
    if isinstance(error, Bitrix24Error | MailError):
        return explain(t, error)
    return t("error.timeout")
