"""Slack Web API clients for work done outside a request (the worker's status messages)."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

SLACK_API_DEFAULT = "https://slack.com/api/"


class SlackClients:
    """Hands out a client with the bot token of a workspace (single-workspace: one token)."""

    def __init__(self, *, token: str | None, base_url: str | None = None) -> None:
        self._base_url = base_url or SLACK_API_DEFAULT
        # No retry handlers: a 429 or an outage is handed back to the caller, which reschedules
        # the row with Retry-After instead of sleeping inside the worker.
        self._single = AsyncWebClient(token=token, base_url=self._base_url, timeout=10)

    @property
    def base_url(self) -> str:
        return self._base_url

    async def for_team(self, *, enterprise_id: str, team_id: str) -> AsyncWebClient:
        return self._single
