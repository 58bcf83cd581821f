"""Reply by e-mail: the message shortcut, the Reply buttons, and the reply modal's submission.

The modal opens at once (a trigger lasts 3 s); when the e-mail is known, a "Loading…" view is
opened first and filled from Bitrix24 with views.update. The e-mail is known when the message
is one of our e-mail cards (metadata or blocks) or sits in a card's thread (email_cards table);
otherwise the user picks it with a search select (see reply_options).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.bitrix24 import AccessDenied, Bitrix24Error, Message, NotFound
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.mail.replying import (
    OtherPortal,
    ReplyDraft,
    build_reply_draft,
    default_sender_email,
    parse_message_id,
    reply_all_cc,
)
from bot.slack import ids
from bot.slack.drafting import with_signature
from bot.slack.errors import explain
from bot.slack.listeners.submission import submit_email
from bot.slack.metadata import ViewOrigin
from bot.slack.render.card import CardRef, card_reference, card_reference_from_value
from bot.slack.render.connect import connect_modal
from bot.slack.render.reply import (
    ReplyForm,
    field_block_ids,
    has_block,
    loading_modal,
    problem_modal,
    reply_modal,
)
from bot.slack.richtext import mrkdwn_to_rich_text
from bot.slack.slack_calls import open_view_or_explain, prompt_connect
from bot.slack.view_state import selected_value
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services
    from bot.store.models import Link

log = logging.getLogger(__name__)

# How long the modal may say "Loading…" before it says Bitrix24 did not answer.
LOAD_TIME_BOX = 15.0


async def on_shortcut(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    channel_id = _str((body.get("channel") or {}).get("id"))
    message = body.get("message") or {}
    trigger_id = str(body.get("trigger_id", ""))
    link = await services.links.get(user)
    if link is None:
        await ack()
        view = connect_modal(t, private_metadata=ViewOrigin(channel_id=channel_id).encode())
        services.background.spawn(
            open_view_or_explain(
                client=client, trigger_id=trigger_id, view=view, respond=respond, t=t
            ),
            name="open-connect-modal",
        )
        return
    ts = _str(message.get("ts"))
    thread_ts = _str(message.get("thread_ts"))
    origin = ViewOrigin(channel_id=channel_id, thread_ts=thread_ts or ts)
    ref = card_reference(message)
    is_card = ref is not None
    if ref is None and channel_id:
        card = await services.replying.card_for(channel_id, (ts, thread_ts))
        if card is not None:
            ref = CardRef(card.b24_message_id, card.portal_host)
            is_card = card.message_ts == ts
    # The card's own text is the e-mail itself: a reply starts from a thread message instead.
    form = ReplyForm(origin=origin, body=None if is_card else message_body(message))
    await ack()
    log.info("reply shortcut user=%s team=%s known=%s", user.user_id, user.team_id, ref is not None)
    if ref is not None:
        services.background.spawn(
            open_then_fill(
                services=services,
                client=client,
                t=t,
                user=user,
                link=link,
                trigger_id=trigger_id,
                respond=respond,
                form=form,
                target=ref,
            ),
            name="open-reply-modal",
        )
        return
    draft = blank_draft(link)
    form = await signed(services, user, form, draft.sender_email)
    view = reply_modal(
        t, senders=link.senders, form=form.with_changes(choose_target=True), draft=draft
    )
    services.background.spawn(
        open_view_or_explain(client=client, trigger_id=trigger_id, view=view, respond=respond, t=t),
        name="open-reply-modal",
    )


async def on_reply_button(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Reply on an inbox line (result: where the user chooses) or on a card (its thread)."""
    await ack()
    link = await services.links.get(user)
    if link is None:
        services.background.spawn(
            prompt_connect(respond, t),
            name="reply-needs-link",
        )
        return
    value = action.get("value")
    if action.get("action_id") == ids.CARD_REPLY_ACTION:
        ref = card_reference_from_value(value)
    else:
        message_id = parse_message_id(value)
        ref = CardRef(message_id) if message_id is not None else None
    if ref is None:
        log.warning("reply button with an unreadable value user=%s", user.user_id)
        return
    container = body.get("container") or {}
    channel_id = _str(container.get("channel_id")) or _str((body.get("channel") or {}).get("id"))
    message = body.get("message") or {}
    if container.get("is_ephemeral") or not message:
        # An inbox line is ephemeral: there is no message whose thread could take the result.
        form = ReplyForm(
            origin=ViewOrigin(channel_id=channel_id), show_post_to=True, post_to=channel_id
        )
    else:
        thread_ts = _str(message.get("thread_ts")) or _str(message.get("ts"))
        form = ReplyForm(origin=ViewOrigin(channel_id=channel_id, thread_ts=thread_ts))
    services.background.spawn(
        open_then_fill(
            services=services,
            client=client,
            t=t,
            user=user,
            link=link,
            trigger_id=str(body.get("trigger_id", "")),
            respond=respond,
            form=form,
            target=ref,
        ),
        name="open-reply-modal",
    )


async def on_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Also takes the "Edit and resend" view of a reply (compose's block ids, Post to)."""
    origin = ViewOrigin.decode(view.get("private_metadata"))
    blocks = field_block_ids(view)
    target_id, problem = _target_of(view, origin)
    refused = None
    if target_id is None:
        where = ids.REPLY_TARGET_BLOCK if has_block(view, ids.REPLY_TARGET_BLOCK) else blocks["to"]
        refused = {where: t(problem)}
    await submit_email(
        services=services,
        ack=ack,
        client=client,
        t=t,
        user=user,
        view=view,
        origin=origin,
        blocks=blocks,
        reply_to_message_id=target_id,
        refused=refused,
    )


def register(app: AsyncApp) -> None:
    app.message_shortcut(ids.REPLY_SHORTCUT)(on_shortcut)
    app.action(ids.INBOX_REPLY_ACTION)(on_reply_button)
    app.action(ids.CARD_REPLY_ACTION)(on_reply_button)
    app.view_submission(ids.REPLY_VIEW)(on_submit)


async def open_then_fill(
    *,
    services: Services,
    client: AsyncWebClient,
    t: Texts,
    user: SlackUser,
    link: Link,
    trigger_id: str,
    respond: AsyncRespond | None,
    form: ReplyForm,
    target: CardRef,
) -> None:
    """Open "Loading…" while the trigger is fresh, then fill it with the e-mail from Bitrix24."""
    view_id = await open_view_or_explain(
        client=client, trigger_id=trigger_id, view=loading_modal(t), respond=respond, t=t
    )
    if view_id is None:
        return
    await fill_reply_view(
        services=services,
        client=client,
        t=t,
        user=user,
        link=link,
        view_id=view_id,
        form=form,
        target_id=target.message_id,
        portal=target.portal,
        sign=True,
    )


async def fill_reply_view(
    *,
    services: Services,
    client: AsyncWebClient,
    t: Texts,
    user: SlackUser,
    link: Link,
    view_id: str,
    form: ReplyForm,
    target_id: int,
    portal: str | None = None,
    sign: bool = False,
) -> None:
    """Fetch the e-mail to answer and show the prefilled form, or say why it cannot be answered.

    `sign`: the body is shown for the first time, so it gets the signature of the sender the
    reply goes from (a refill keeps the body the user already has, signature included)."""
    try:
        async with asyncio.timeout(LOAD_TIME_BOX):
            original = await services.replying.original(user, target_id, portal=portal)
    except (Bitrix24Error, MailError, TimeoutError) as exc:
        log.info(
            "reply target %s unavailable user=%s: %s",
            target_id,
            user.user_id,
            getattr(exc, "code", type(exc).__name__),
        )
        reason = explain_original(t, exc)
        if form.choose_target:
            # Another e-mail can still be picked: keep the form and say what went wrong.
            view = reply_modal(
                t,
                senders=link.senders,
                form=form.with_changes(
                    notice=reason,
                    origin=form.origin.model_copy(update={"reply_to_message_id": None}),
                ),
                draft=blank_draft(link),
            )
        else:
            view = problem_modal(t, reason)
    else:
        if sign:
            sender = build_reply_draft(
                original,
                senders=link.senders,
                last_sender=link.last_sender,
                reply_all=form.reply_all,
            ).sender_email
            form = await signed(services, user, form, sender)
        view = prefilled_modal(t, link=link, form=form, original=original)
    await update_view(client, view_id=view_id, view=view)


def prefilled_modal(t: Texts, *, link: Link, form: ReplyForm, original: Message) -> dict[str, Any]:
    draft = build_reply_draft(
        original, senders=link.senders, last_sender=link.last_sender, reply_all=form.reply_all
    )
    return reply_modal(
        t,
        senders=link.senders,
        form=form.with_changes(notice=None),
        draft=draft,
        original=original,
        reply_all_cc=reply_all_cc(original, senders=link.senders),
    )


async def signed(
    services: Services, user: SlackUser, form: ReplyForm, sender_email: str | None
) -> ReplyForm:
    """The form with the sender's signature after the body (unchanged without a signature)."""
    signature = await services.writing.signature_for(user, sender_email)
    if signature is None:
        return form
    return form.with_changes(body=with_signature(form.body, signature))


def blank_draft(link: Link) -> ReplyDraft:
    """The form before an e-mail is chosen: only the sender is known."""
    return ReplyDraft(sender_email=default_sender_email(link.senders, last_sender=link.last_sender))


def explain_original(t: Texts, error: Exception) -> str:
    """Why the e-mail cannot be answered, in the words of a reply (not of a generic failure)."""
    if isinstance(error, NotFound):
        return t("reply.not_found")
    if isinstance(error, AccessDenied):
        return t("reply.no_access")
    if isinstance(error, OtherPortal):
        return t("reply.other_portal", portal=error.portal, host=error.linked_host)
    if isinstance(error, Bitrix24Error | MailError):
        return explain(t, error)
    return t("error.timeout")


async def update_view(client: AsyncWebClient, *, view_id: str, view: dict[str, Any]) -> None:
    """views.update; a modal closed meanwhile is not an error.

    No hash: two quick choices would both carry the same one, and the later (the user's last
    word) would be refused as a conflict. Slack keeps typed input across updates regardless.
    """
    try:
        await client.views_update(view_id=view_id, view=view)
    except SlackApiError as exc:
        log.info("views.update of %s refused: %s", view_id, exc.response.get("error", "?"))
    except SlackClientError as exc:
        log.warning("views.update of %s failed: %s", view_id, type(exc).__name__)


def message_body(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Slack message as the reply's starting text: its rich_text block, else its mrkdwn."""
    for block in message.get("blocks") or []:
        if isinstance(block, Mapping) and block.get("type") == "rich_text":
            return {"type": "rich_text", "elements": list(block.get("elements") or [])}
    text = message.get("text")
    if isinstance(text, str) and text.strip():
        return mrkdwn_to_rich_text(text)
    return None


def _target_of(view: Mapping[str, Any], origin: ViewOrigin) -> tuple[int | None, str]:
    """The e-mail to answer: the search select's choice, else the one the modal was opened for."""
    if has_block(view, ids.REPLY_TARGET_BLOCK):
        value = selected_value(view, ids.REPLY_TARGET_BLOCK, ids.REPLY_TARGET_ACTION)
        if value is None:
            return None, "reply.target_required"
        message_id = parse_message_id(value)
        return message_id, "reply.target_not_number"
    if origin.reply_to_message_id is None:
        return None, "reply.target_required"
    return origin.reply_to_message_id, ""


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
