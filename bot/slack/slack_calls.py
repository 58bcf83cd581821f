"""Slack Web API calls made after an ack, with failures turned into something the user sees."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.background import new_error_id
from bot.slack.render.connect import connect_prompt
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


async def open_view_or_explain(
    *,
    client: AsyncWebClient,
    trigger_id: str,
    view: dict[str, Any],
    respond: AsyncRespond | None,
    t: Texts,
) -> str | None:
    """Open a modal; if Slack refuses, tell the user (ephemeral) instead of failing silently.

    Returns the view id, or None when the modal could not be opened.
    """
    try:
        response = await client.views_open(trigger_id=trigger_id, view=view)
    except (SlackApiError, SlackClientError) as exc:
        error_id = new_error_id()
        log.warning(
            "views.open failed (error id %s): %s", error_id, _slack_error(exc), exc_info=False
        )
        if respond is not None:
            await respond(text=t("error.unknown", error_id=error_id), replace_original=False)
        return None
    view_data = response.get("view") or {}
    return str(view_data.get("id")) if view_data.get("id") else None


def _slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown"))
    return type(exc).__name__


async def prompt_connect(respond: AsyncRespond, t: Texts) -> None:
    """Tell a user with no link, where they acted and only to them, to run /b24mail connect."""
    await respond(
        text=t("connect.prompt"),
        blocks=connect_prompt(t),
        response_type="ephemeral",
        replace_original=False,
    )


def reachable(respond: AsyncRespond | None) -> AsyncRespond | None:
    """`respond` when the request came with a response_url; a Home tab button's does not."""
    return respond if respond is not None and respond.response_url else None


async def tell(
    client: AsyncWebClient, user_id: str, respond: AsyncRespond | None, text: str
) -> None:
    """An ephemeral answer where the user acted, or a DM when there is no message to answer
    (a button on the Home tab); a failure is logged."""
    try:
        if reachable(respond) is not None:
            assert respond is not None
            await respond(text=text, response_type="ephemeral", replace_original=False)
        else:
            await client.chat_postMessage(channel=user_id, text=text)
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("answer to user=%s not delivered: %s", user_id, _slack_error(exc))
