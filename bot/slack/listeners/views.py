"""Modal submissions. Validation errors go back inline (response_action=errors)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.bitrix24 import Bitrix24Error
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.errors import explain
from bot.slack.home_tab import refresh_home
from bot.slack.render.connect import connected_view
from bot.slack.view_state import text_value
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)


async def on_connect_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    url = text_value(view, ids.CONNECT_URL_BLOCK, ids.CONNECT_URL_ACTION)
    if not url:
        await ack(
            response_action="errors", errors={ids.CONNECT_URL_BLOCK: t("validation.required")}
        )
        return
    try:
        link = await services.links.connect(user, url)
    except (Bitrix24Error, MailError) as exc:
        log.info("connect refused user=%s team=%s code=%s", user.user_id, user.team_id, exc.code)
        await ack(
            response_action="errors",
            errors={ids.CONNECT_URL_BLOCK: explain(t, exc, limit=ERROR_TEXT_MAX)},
        )
        return
    await ack(
        response_action="update",
        view=connected_view(
            t, host=link.portal_host, b24_user_id=link.b24_user_id, senders=link.senders
        ),
    )
    refresh_home(services, client, user)


def register(app: AsyncApp) -> None:
    app.view_submission(ids.CONNECT_VIEW)(on_connect_submit)


# Slack shows inline errors under the field; long texts are cut there, so keep them in bounds.
ERROR_TEXT_MAX = 2000
