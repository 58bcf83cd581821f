"""`/b24mail inbox [search words]`, its More button, Share to channel and Open in Bitrix24.

Bitrix24 may be slow, so every handler acks first and answers through response_url afterwards.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.bitrix24 import Bitrix24Error
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.mail.replying import parse_message_id
from bot.slack import ids
from bot.slack.errors import explain
from bot.slack.listeners.command_call import CommandCall
from bot.slack.listeners.reply import explain_original
from bot.slack.render.card import email_card
from bot.slack.render.connect import connect_prompt, escape_mrkdwn
from bot.slack.render.inbox import InboxPosition, inbox_blocks
from bot.slack.wording import Texts
from bot.store.cards import NewCard

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)

_SLACK_LINK = re.compile(r"<(?:mailto:)?([^<>|]*)(?:\|([^<>]*))?>")


async def show_inbox(call: CommandCall) -> None:
    """The first page of the user's e-mails, fetched after the ack."""
    if await call.services.links.get(call.user) is None:
        await call.ack(text=call.t("connect.prompt"), blocks=connect_prompt(call.t))
        return
    await call.ack()
    call.services.background.spawn(
        _show_page(
            call.services,
            call.t,
            call.user,
            call.respond,
            InboxPosition(search=search_words(call.parsed.argument), page=1),
            replace=False,
        ),
        name="inbox-page",
    )


def search_words(argument: str) -> str | None:
    """The words typed after `inbox`, without Slack's link markup (`<mailto:a@b.c|a@b.c>`)."""
    text = _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), argument)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split()) or None


async def on_more(
    ack: AsyncAck,
    action: dict[str, Any],
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    position = InboxPosition.decode(action.get("value"))
    if position is None:
        log.warning("inbox More with an unreadable value")
        return
    services.background.spawn(
        _show_page(services, t, user, respond, position, replace=True),
        name="inbox-page",
    )


async def on_share(
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
    message_id = parse_message_id(action.get("value"))
    container = body.get("container") or {}
    channel_id = container.get("channel_id") or (body.get("channel") or {}).get("id")
    if message_id is None or not channel_id:
        log.warning("share with an unreadable value or no channel user=%s", user.user_id)
        return
    services.background.spawn(
        _share(services, t, user, client, respond, message_id=message_id, channel=channel_id),
        name="share-email",
    )


async def on_open_in_bitrix24(ack: AsyncAck) -> None:
    # A link button still sends an action; Slack marks it failed unless it is acked.
    await ack()


def register(app: AsyncApp) -> None:
    app.action(ids.INBOX_MORE_ACTION)(on_more)
    app.action(ids.INBOX_SHARE_ACTION)(on_share)
    app.action(ids.OPEN_IN_BITRIX_ACTION)(on_open_in_bitrix24)


async def _show_page(
    services: Services,
    t: Texts,
    user: SlackUser,
    respond: AsyncRespond,
    position: InboxPosition,
    *,
    replace: bool,
) -> None:
    try:
        page = await services.replying.inbox(user, search=position.search, page=position.page)
    except (Bitrix24Error, MailError) as exc:
        log.info("inbox failed user=%s: %s", user.user_id, exc.code)
        await respond(text=explain(t, exc), response_type="ephemeral", replace_original=False)
        return
    text, blocks = inbox_blocks(t, page, search=position.search)
    await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=replace)


async def _share(
    services: Services,
    t: Texts,
    user: SlackUser,
    client: AsyncWebClient,
    respond: AsyncRespond,
    *,
    message_id: int,
    channel: str,
) -> None:
    """Post the e-mail's card where the inbox was opened and remember it for its thread."""
    link = await services.links.get(user)
    if link is None:
        await respond(text=t("connect.prompt"), blocks=connect_prompt(t), replace_original=False)
        return
    try:
        original = await services.replying.original(user, message_id)
    except (Bitrix24Error, MailError) as exc:
        await respond(text=explain_original(t, exc), replace_original=False)
        return
    text, blocks, metadata = email_card(
        t, original, portal=link.portal_host, shared_by=user.user_id
    )
    try:
        posted = await client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )
    except (SlackApiError, SlackClientError) as exc:
        error = str(exc.response.get("error", "")) if isinstance(exc, SlackApiError) else ""
        log.info("share refused channel=%s: %s", channel, error or type(exc).__name__)
        key = f"post_reason.{error}" if t.has(f"post_reason.{error}") else "post_reason.other"
        await respond(
            text=t("share.failed", channel=channel, reason=t(key)), replace_original=False
        )
        return
    await services.replying.remember_card(
        NewCard(
            enterprise_id=user.enterprise_id,
            team_id=user.team_id,
            channel_id=str(posted["channel"]),
            message_ts=str(posted["ts"]),
            b24_message_id=original.id,
            portal_host=link.portal_host,
            shared_by=user.user_id,
        )
    )
    log.info("shared email=%s channel=%s user=%s", original.id, channel, user.user_id)
    await respond(
        text=t("share.done", subject=escape_mrkdwn(original.subject), channel=posted["channel"]),
        replace_original=False,
    )
