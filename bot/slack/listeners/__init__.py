"""Listeners, grouped by feature: module-level handlers, each module registering its own.

A handler takes what Bolt injects by name (ack, body, view, client, respond…) and what
RequestScope (bot/slack/middleware.py) puts into the context: `user`, `t` and `services`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.slack.listeners import (
    actions,
    commands,
    compose,
    events,
    forward,
    home,
    inbox,
    later,
    message_actions,
    notify,
    recipients,
    reply,
    reply_options,
    views,
    writing,
)
from bot.slack.middleware import RequestScope

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.services import Services


def register_all(app: AsyncApp, services: Services) -> None:
    app.middleware(RequestScope(services))
    for module in (
        commands,
        views,
        actions,
        compose,
        later,
        writing,
        inbox,
        reply,
        reply_options,
        forward,
        message_actions,
        recipients,
        notify,
        events,
        home,
    ):
        module.register(app)
