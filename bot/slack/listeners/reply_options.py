"""Inside the reply modal: searching the e-mail to answer, choosing it, and "Reply all".

Options requests must be answered within Slack's 3 seconds, so the search is the one Bitrix24
call made before an ack, and it is cut off after SEARCH_TIME_BOX with a "type more" hint.
Choosing an e-mail or toggling "Reply all" is acked first; the view is refilled afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.bitrix24 import Bitrix24Error
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.mail.replying import parse_message_id
from bot.slack import ids
from bot.slack.listeners.reply import fill_reply_view
from bot.slack.metadata import ViewOrigin
from bot.slack.render.reply import (
    REPLY_ALL_VALUE,
    ReplyForm,
    field_block_ids,
    has_block,
    hint_option,
    target_option,
)
from bot.slack.view_state import (
    checked,
    rich_text_value,
    selected_conversation,
    selected_value,
    text_value,
)
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)

# Slack gives up on an options request after 3 s; leave room for the round trip.
SEARCH_TIME_BOX = 2.0
SEARCH_RESULTS = 20


async def on_target_options(
    ack: AsyncAck, body: dict[str, Any], user: SlackUser, t: Texts, services: Services
) -> None:
    # The Texts were read without waiting for Slack (bot/slack/middleware.py): Slack waits 3 s
    # for options and the search takes most of it.
    words = str(body.get("value") or "")
    if await services.links.get(user) is None:
        await ack(options=[hint_option(t, "reply.search_not_linked")])
        return
    try:
        found = await services.replying.search(
            user, words, limit=SEARCH_RESULTS, time_box=SEARCH_TIME_BOX
        )
    except TimeoutError:
        log.info("reply search too slow user=%s", user.user_id)
        await ack(options=[hint_option(t, "reply.search_more")])
        return
    except (Bitrix24Error, MailError) as exc:
        log.info("reply search failed user=%s: %s", user.user_id, exc.code)
        await ack(options=[hint_option(t, "reply.search_failed")])
        return
    options = [target_option(t, m) for m in found] or [hint_option(t, "reply.search_none")]
    await ack(options=options)


async def on_target_chosen(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    selected = action.get("selected_option") or {}
    target_id = parse_message_id(selected.get("value"))
    if target_id is None:
        # A hint ("type more") was picked: nothing to load; submitting it is refused inline.
        return
    await _refill(services, body, client, user, t, target_id=target_id)


async def on_reply_all(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    view = body.get("view") or {}
    origin = ViewOrigin.decode(view.get("private_metadata"))
    target_id = (
        parse_message_id(selected_value(view, ids.REPLY_TARGET_BLOCK, ids.REPLY_TARGET_ACTION))
        or origin.reply_to_message_id
    )
    if target_id is None:
        return
    reply_all = any(
        isinstance(o, Mapping) and o.get("value") == REPLY_ALL_VALUE
        for o in action.get("selected_options") or []
    )
    await _refill(services, body, client, user, t, target_id=target_id, reply_all=reply_all)


def register(app: AsyncApp) -> None:
    app.options(ids.REPLY_TARGET_ACTION)(on_target_options)
    app.action(ids.REPLY_TARGET_ACTION)(on_target_chosen)
    app.action(ids.REPLY_ALL_ACTION)(on_reply_all)


async def _refill(
    services: Services,
    body: Mapping[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    *,
    target_id: int,
    reply_all: bool | None = None,
) -> None:
    """Rebuild the open modal for `target_id`, keeping what the user wrote in the body and Bcc."""
    link = await services.links.get(user)
    view = body.get("view") or {}
    if link is None or not view.get("id"):
        return
    form = form_of(view)
    if reply_all is not None:
        form = form.with_changes(reply_all=reply_all)
    services.background.spawn(
        fill_reply_view(
            services=services,
            client=client,
            t=t,
            user=user,
            link=link,
            view_id=str(view["id"]),
            form=form,
            target_id=target_id,
        ),
        name="refill-reply-modal",
    )


def form_of(view: Mapping[str, Any]) -> ReplyForm:
    """What the open reply modal holds besides the prefilled fields."""
    blocks = field_block_ids(view)
    origin = ViewOrigin.decode(view.get("private_metadata"))
    show_post_to = has_block(view, ids.POST_TO_BLOCK)
    return ReplyForm(
        origin=origin,
        body=rich_text_value(view, blocks["body"], ids.BODY_ACTION)
        or _initial(view, blocks["body"]),
        bcc=text_value(view, blocks["bcc"], ids.ADDRESSES_ACTION),
        choose_target=has_block(view, ids.REPLY_TARGET_BLOCK),
        show_post_to=show_post_to,
        post_to=(
            selected_conversation(view, ids.POST_TO_BLOCK, ids.POST_TO_ACTION) or origin.channel_id
        )
        if show_post_to
        else None,
        reply_all=checked(view, ids.REPLY_ALL_BLOCK, ids.REPLY_ALL_ACTION, REPLY_ALL_VALUE),
    )


def _initial(view: Mapping[str, Any], block_id: str) -> dict[str, Any] | None:
    """The body the modal was opened with, when Slack's state has no entry for it yet."""
    for block in view.get("blocks") or []:
        if isinstance(block, Mapping) and block.get("block_id") == block_id:
            element = block.get("element")
            if isinstance(element, Mapping) and isinstance(element.get("initial_value"), Mapping):
                return dict(element["initial_value"])
    return None
