"""Buttons in our messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import ids
from bot.slack.identity import acting_user
from bot.slack.metadata import ViewOrigin
from bot.slack.render.connect import connect_modal
from bot.slack.slack_calls import open_view_or_explain

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    async def on_open_connect(
        ack: AsyncAck,
        body: dict[str, Any],
        context: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        user = acting_user(context, body)
        t = await services.language.texts_for(user, client=client, context=context)
        channel = (body.get("channel") or {}).get("id")
        view = connect_modal(t, private_metadata=ViewOrigin(channel_id=channel).encode())
        services.background.spawn(
            open_view_or_explain(
                client=client, trigger_id=body["trigger_id"], view=view, respond=respond, t=t
            ),
            name="open-connect-modal",
        )

    app.action(ids.OPEN_CONNECT_ACTION)(on_open_connect)
