"""`/b24mail` and its subcommands. Each answers well inside Slack's 3 seconds: local work
happens before the ack; anything that calls Slack again runs after it, in the background."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.slack import ids
from bot.slack.command_text import parse_command_text
from bot.slack.home_tab import refresh_home
from bot.slack.language import parse_choice
from bot.slack.listeners.command_call import CommandCall
from bot.slack.listeners.compose import open_compose, show_history
from bot.slack.listeners.inbox import show_inbox
from bot.slack.listeners.later import show_scheduled
from bot.slack.listeners.notify import notify_command
from bot.slack.listeners.writing import open_signature, show_drafts, show_templates
from bot.slack.render.connect import (
    connect_modal,
    escape_mrkdwn,
    help_blocks,
    slack_date,
    status_blocks,
)
from bot.slack.slack_calls import open_view_or_explain
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)


async def on_b24mail(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    parsed = parse_command_text(command.get("text"))
    # The request itself is logged once, at INFO, by bot.web; this adds who and what.
    log.debug("command user=%s team=%s sub=%s", user.user_id, user.team_id, parsed.name)
    handler = _HANDLERS.get(parsed.name, _unknown)
    await handler(
        CommandCall(
            services=services,
            t=t,
            user=user,
            ack=ack,
            command=command,
            parsed=parsed,
            client=client,
            respond=respond,
        )
    )


def register(app: AsyncApp) -> None:
    app.command(ids.COMMAND)(on_b24mail)


async def _help(call: CommandCall) -> None:
    linked = await call.services.links.get(call.user) is not None
    blocks = help_blocks(call.t, linked=linked)
    await call.ack(text=call.t("help.title"), blocks=blocks)


async def _unknown(call: CommandCall) -> None:
    linked = await call.services.links.get(call.user) is not None
    blocks = help_blocks(call.t, unknown=call.parsed.raw_name, linked=linked)
    await call.ack(text=call.t("help.title"), blocks=blocks)


async def _connect(call: CommandCall) -> None:
    await call.ack()
    view = connect_modal(call.t, private_metadata=call.origin.encode())
    call.services.background.spawn(
        open_view_or_explain(
            client=call.client,
            trigger_id=call.trigger_id,
            view=view,
            respond=call.respond,
            t=call.t,
        ),
        name="open-connect-modal",
    )


async def _disconnect(call: CommandCall) -> None:
    removed = await call.services.links.disconnect(call.user)
    await call.ack(text=call.t("disconnect.done" if removed else "disconnect.none"))
    refresh_home(call.services, call.client, call.user)


async def _status(call: CommandCall) -> None:
    link = await call.services.links.get(call.user)
    if link is None:
        await call.ack(text=call.t("status.not_linked"), blocks=help_blocks(call.t, linked=False))
        return
    checked = link.last_verified_at
    blocks = status_blocks(
        call.t,
        host=link.portal_host,
        b24_user_id=link.b24_user_id,
        senders=link.senders,
        last_checked=slack_date(checked, call.t.format_datetime(checked)) if checked else None,
        linked_at=slack_date(link.created_at, call.t.format_datetime(link.created_at)),
    )
    await call.ack(text=call.t("status.title"), blocks=blocks)


async def _lang(call: CommandCall) -> None:
    """`/b24mail lang ru|en|auto`: confirmed in the new language; anything else → usage."""
    language = call.services.language
    understood, choice = parse_choice(call.parsed.argument)
    if not understood:
        profile = await language.profile(call.user, client=None)
        name = call.t(f"lang.name.{profile.language}")
        current = name if profile.chosen else call.t("lang.current_auto", language=name)
        lines = [call.t("lang.usage", current=current)]
        if call.parsed.argument:
            value = call.parsed.argument.replace("`", "'")[:40]
            lines.insert(0, call.t("lang.unknown", value=escape_mrkdwn(value)))
        await call.ack(text="\n".join(lines))
        return
    await language.choose(call.user, choice)
    t = await language.texts_for(call.user, client=call.client)
    if choice is None:
        await call.ack(text=t("lang.done_auto", language=t(f"lang.name.{t.locale}")))
    else:
        await call.ack(text=t("lang.done"))
    refresh_home(call.services, call.client, call.user)


_HANDLERS = {
    "send": open_compose,
    "history": show_history,
    "scheduled": show_scheduled,
    "drafts": show_drafts,
    "signature": open_signature,
    "templates": show_templates,
    "inbox": show_inbox,
    "notify": notify_command,
    "help": _help,
    "connect": _connect,
    "disconnect": _disconnect,
    "status": _status,
    "lang": _lang,
}
