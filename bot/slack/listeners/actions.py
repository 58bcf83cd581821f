"""Buttons in our messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import ids
from bot.slack.metadata import ViewOrigin
from bot.slack.render.connect import connect_modal
from bot.slack.slack_calls import open_view_or_explain
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services


async def on_open_connect(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    channel = (body.get("channel") or {}).get("id")
    view = connect_modal(t, private_metadata=ViewOrigin(channel_id=channel).encode())
    services.background.spawn(
        open_view_or_explain(
            client=client, trigger_id=body["trigger_id"], view=view, respond=respond, t=t
        ),
        name="open-connect-modal",
    )


def register(app: AsyncApp) -> None:
    app.action(ids.OPEN_CONNECT_ACTION)(on_open_connect)
