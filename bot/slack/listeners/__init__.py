"""Listeners, grouped by kind; each module registers its own on the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.slack.listeners import (
    actions,
    commands,
    compose,
    events,
    inbox,
    reply,
    reply_options,
    views,
)

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.services import Services


def register_all(app: AsyncApp, services: Services) -> None:
    commands.register(app, services)
    views.register(app, services)
    actions.register(app, services)
    compose.register(app, services)
    inbox.register(app, services)
    reply.register(app, services)
    reply_options.register(app, services)
    events.register(app, services)
