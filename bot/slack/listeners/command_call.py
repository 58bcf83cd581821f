"""What a /b24mail subcommand handler receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.slack.command_text import Command
from bot.slack.metadata import ViewOrigin
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services


@dataclass(frozen=True, kw_only=True)
class CommandCall:
    services: Services
    t: Texts
    user: SlackUser
    ack: AsyncAck
    command: dict[str, Any]
    parsed: Command
    client: AsyncWebClient
    respond: AsyncRespond

    @property
    def origin(self) -> ViewOrigin:
        return ViewOrigin(channel_id=self.command.get("channel_id"))

    @property
    def trigger_id(self) -> str:
        return str(self.command.get("trigger_id", ""))
