"""Suggestions for the "…or add people" selects beside To, Cc and Bcc.

Slack waits 3 s for options, so the Bitrix24 look-ups are cut off after SUGGEST_TIME_BOX and
what the user typed is always offered as well: any address works even when Bitrix24 is slow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.bitrix24.message_actions import Person
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.blocks import OPTION_TEXT_MAX, OPTION_VALUE_MAX, Block, option
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp

    from bot.services import Services

log = logging.getLogger(__name__)

# Slack gives up on an options request after 3 s; leave room for the round trip.
SUGGEST_TIME_BOX = 2.0
SUGGESTIONS = 20
HINT_VALUE = ids.SUGGEST_HINT_VALUE


async def on_suggest(
    ack: AsyncAck, body: dict[str, Any], user: SlackUser, t: Texts, services: Services
) -> None:
    # The Texts were read without waiting for Slack (bot/slack/middleware.py): the look-ups
    # take most of the 3 s.
    typed = " ".join(str(body.get("value") or "").split())
    if await services.links.get(user) is None:
        await ack(options=[option(t("suggest.not_linked"), HINT_VALUE)])
        return
    try:
        people = await services.message_actions.suggest_recipients(
            user, typed, limit=SUGGESTIONS, time_box=SUGGEST_TIME_BOX
        )
    except MailError as exc:
        log.info("suggestions failed user=%s: %s", user.user_id, exc.code)
        people = []
    await ack(options=suggestion_options(t, typed, people))


def register(app: AsyncApp) -> None:
    app.options(ids.SUGGEST_ACTION)(on_suggest)


def suggestion_options(t: Texts, typed: str, people: list[Person]) -> list[Block]:
    """The typed text first (any address can be used), then the people Bitrix24 found."""
    options: list[Block] = []
    seen: set[str] = set()
    if typed and len(typed) <= OPTION_VALUE_MAX:
        options.append(option(t("suggest.use_typed", typed=typed), typed))
        seen.add(typed.lower())
    for person in people:
        if person.email.lower() in seen or len(person.email) > OPTION_VALUE_MAX:
            continue
        seen.add(person.email.lower())
        label = f"{person.name} <{person.email}>" if person.name else person.email
        if len(label) > OPTION_TEXT_MAX:
            label = person.email
        # The value is the bare address: the name stays in Slack, Bitrix24 gets the address.
        options.append(option(label, person.email))
    if not options:
        options.append(option(t("suggest.slow"), HINT_VALUE))
    return options[:100]
