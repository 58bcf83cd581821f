"""Slack Web API clients for work done outside a request (the worker's status messages)."""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

SLACK_API_DEFAULT = "https://slack.com/api/"
TIMEOUT = 10.0


class SlackClients:
    """Hands out a client with the bot token of a workspace (single-workspace: one token).

    The client keeps one aiohttp session, so calls reuse connections: without one, slack_sdk
    opens a new session (a new TCP and TLS connection, a new SSL context) for every call. The
    session belongs to the event loop that made it and is closed by `aclose()`.
    """

    def __init__(self, *, token: str | None, base_url: str | None = None) -> None:
        self._token = token
        self._base_url = base_url or SLACK_API_DEFAULT
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._single: AsyncWebClient | None = None

    @property
    def base_url(self) -> str:
        return self._base_url

    async def for_team(self, *, enterprise_id: str, team_id: str) -> AsyncWebClient:
        loop = asyncio.get_running_loop()
        if (
            self._single is None
            or self._session is None
            or self._session.closed
            or self._loop is not loop
        ):
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
            self._loop = loop
            # No retry handlers: a 429 or an outage is handed back to the caller, which
            # reschedules the row with Retry-After instead of sleeping inside the worker.
            self._single = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=int(TIMEOUT),
                session=self._session,
            )
        return self._single

    async def aclose(self) -> None:
        session, self._session, self._single = self._session, None, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
