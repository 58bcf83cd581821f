"""create_app: the only place that wires Slack, the use cases, storage and Bitrix24 together."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.slack.error_handler import handle_listener_error
from bot.slack.listeners import register_all

log = logging.getLogger(__name__)

SLACK_API_DEFAULT = "https://slack.com/api/"


def create_app(services: Services) -> AsyncApp:
    """The Bolt app. Listeners ack first and run before the response is returned
    (process_before_response): Bolt's other mode polls for the ack every 10 ms."""
    settings = services.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url or SLACK_API_DEFAULT)
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        # Socket Mode has no signed requests to verify; HTTP mode always verifies.
        request_verification_enabled=not settings.socket_mode,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    register_all(app, services)
    app.error(handle_listener_error)
    return app
