"""create_app: the only place that wires Slack, the use cases, storage and Bitrix24 together."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

from bot.services import Services
from bot.settings import ConfigurationError
from bot.slack import oauth as slack_oauth
from bot.slack.clients import SLACK_API_DEFAULT
from bot.slack.error_handler import handle_listener_error
from bot.slack.install_pages import InstallFlow
from bot.slack.listeners import register_all

log = logging.getLogger(__name__)


def create_app(services: Services) -> AsyncApp:
    """The Bolt app. Listeners ack first and run before the response is returned
    (process_before_response): Bolt's other mode polls for the ack every 10 ms.

    The Slack mode is settings.slack_mode, never Bolt's guess from os.environ: OAuth mode gets
    explicit OAuth settings (installation store, state store, authorize), single-workspace mode
    the bot token, and refuses to start if Bolt would switch to OAuth behind its back."""
    settings = services.settings
    oauth = settings.slack_mode == "oauth"
    if oauth and (problem := settings.slack_credentials_problem()):
        raise ConfigurationError(problem)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    bolt_logger = logging.getLogger("bot.slack.bolt")
    oauth_settings: AsyncOAuthSettings | None = None
    if oauth:
        if services.installations is None or services.bot_tokens is None:
            raise ConfigurationError("OAuth mode needs services built for it (build_services)")
        oauth_settings = slack_oauth.oauth_settings(
            settings,
            store=services.installations,
            tokens=services.bot_tokens,
            engine=services.engine,
            logger=bolt_logger,
        )
    # Bolt gets the token, not a client: given a client it still reads SLACK_BOT_TOKEN from
    # os.environ and warns at every start that the token will be unused.
    app = AsyncApp(
        token=None if oauth else token,
        signing_secret=signing_secret,
        # The flow Bolt would build from these settings, with b24mail's own install page; Bolt
        # hands it the app's client (whose base_url is set below).
        oauth_flow=InstallFlow(logger=bolt_logger, settings=oauth_settings)
        if oauth_settings is not None
        else None,
        process_before_response=True,
        # Socket Mode has no signed requests to verify; HTTP mode always verifies.
        request_verification_enabled=not settings.socket_mode,
        logger=bolt_logger,
    )
    app.client.base_url = settings.slack_api_url or SLACK_API_DEFAULT
    if not oauth and app.oauth_flow is not None:
        raise ConfigurationError(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are in the process environment (perhaps "
            "empty), so Bolt would switch to OAuth mode and ignore SLACK_BOT_TOKEN. Unset both "
            "for a single workspace, or configure OAuth (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, "
            "SLACK_STATE_SECRET; see README)."
        )
    register_all(app, services)
    app.error(handle_listener_error)
    return app
