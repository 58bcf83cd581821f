"""`/b24mail notify on|here|off [search words]` and the Share picker of new-mail cards."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.errors import explain
from bot.slack.home_tab import refresh_home
from bot.slack.listeners.command_call import CommandCall
from bot.slack.listeners.inbox import _share, search_words
from bot.slack.render.card import card_reference
from bot.slack.render.connect import connect_prompt, escape_mrkdwn
from bot.slack.render.notify import period_text, status_lines, words_text
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)

MEMBER_PAGES = 50


async def notify_command(call: CommandCall) -> None:
    """Dispatch the words after `notify`; only `here` needs Slack, after the ack."""
    head, _, rest = call.parsed.argument.strip().partition(" ")
    option = head.lower()
    words = search_words(rest)
    if option in ("", "status"):
        await _status(call)
    elif option == "off":
        removed = await call.services.notify.turn_off(call.user)
        refresh_home(call.services, call.client, call.user)
        await call.ack(text=call.t("notify.off_done" if removed else "notify.off_none"))
    elif option not in ("on", "here"):
        value = escape_mrkdwn(head.replace("`", "'")[:40])
        await call.ack(text=call.t("notify.unknown", value=value) + "\n" + call.t("notify.usage"))
    elif await call.services.links.get(call.user) is None:
        await call.ack(text=call.t("connect.prompt"), blocks=connect_prompt(call.t))
    elif option == "on":
        await _turn_on(call, words=words, channel=None, respond=False)
    else:
        await call.ack()
        call.services.background.spawn(_here(call, words), name="notify-here")


async def _turn_on(
    call: CommandCall, *, words: str | None, channel: str | None, respond: bool
) -> None:
    try:
        status, _created = await call.services.notify.turn_on(
            call.user, words=words, channel_id=channel
        )
    except MailError as exc:
        await _answer(call, explain(call.t, exc), respond=respond)
        return
    call.services.poll_wakeup.notify()
    refresh_home(call.services, call.client, call.user)
    t = call.t
    key = "notify.on_channel" if channel else "notify.on_dm"
    text = t(
        key, words=words_text(t, status), period=period_text(t, status.period), channel=channel
    )
    await _answer(call, text, respond=respond)


async def _answer(call: CommandCall, text: str, *, respond: bool) -> None:
    if respond:
        await call.respond(text=text, response_type="ephemeral", replace_original=False)
    else:
        await call.ack(text=text)


async def _here(call: CommandCall, words: str | None) -> None:
    """Route the cards to the channel the command was run in, if the user and the bot are in it."""
    t = call.t
    channel = str(call.command.get("channel_id") or "")
    if not channel or channel.startswith("D"):
        await call.respond(text=t("notify.here_in_dm"), replace_original=False)
        await _turn_on(call, words=words, channel=None, respond=True)
        return
    problem = await _channel_problem(call.client, t, channel, call.user)
    if problem is not None:
        await call.respond(text=problem, replace_original=False)
        return
    await _turn_on(call, words=words, channel=channel, respond=True)


async def _channel_problem(
    client: AsyncWebClient, t: Texts, channel: str, user: SlackUser
) -> str | None:
    try:
        info = await client.conversations_info(channel=channel)
        details = info.get("channel") or {}
        if details.get("is_archived"):
            return t("notify.here_archived")
        if details.get("is_im"):
            return None
        if not details.get("is_member"):
            return t("notify.here_invite")
        cursor: str | None = None
        for _ in range(MEMBER_PAGES):
            page = await client.conversations_members(channel=channel, limit=1000, cursor=cursor)
            if user.user_id in (page.get("members") or []):
                return None
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return t("notify.here_not_member", channel=channel)
    except SlackApiError as exc:
        error = str(exc.response.get("error", ""))
        if error in ("channel_not_found", "not_in_channel"):
            return t("notify.here_invite")
        log.warning("notify here: slack refused channel=%s: %s", channel, error)
        key = f"post_reason.{error}" if t.has(f"post_reason.{error}") else "post_reason.other"
        return t("notify.here_failed", reason=t(key))
    except (SlackClientError, OSError, TimeoutError) as exc:
        log.warning("notify here: slack unreachable: %s", type(exc).__name__)
        return t("notify.here_failed", reason=t("post_reason.other"))


async def _status(call: CommandCall) -> None:
    t = call.t
    status = await call.services.notify.status(call.user)
    if status is None:
        await call.ack(text=t("notify.status_off") + "\n\n" + t("notify.usage"))
        return
    await call.ack(text="\n".join(status_lines(t, status)))


async def on_card_share(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """A conversation picked in a DM card's *Share to…*: the card is posted there."""
    await ack()
    ref = card_reference(body.get("message") or {})
    channel = action.get("selected_conversation")
    if ref is None or not isinstance(channel, str) or not channel:
        log.warning("card share without an e-mail or a channel user=%s", user.user_id)
        return
    services.background.spawn(
        _share(services, t, user, client, respond, message_id=ref.message_id, channel=channel),
        name="share-new-mail-card",
    )


def register(app: AsyncApp) -> None:
    app.action(ids.CARD_SHARE_ACTION)(on_card_share)
