"""Slack Web API clients for work done outside a request (the worker's status messages)."""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

SLACK_API_DEFAULT = "https://slack.com/api/"
TIMEOUT = 10.0
_MAX_CLIENTS = 256


class NotInstalled(Exception):
    """The workspace has no installation with a bot token (uninstalled, or its token revoked)."""

    error = "not_installed"

    def __init__(self, *, enterprise_id: str, team_id: str) -> None:
        super().__init__(f"no installation for enterprise={enterprise_id!r} team={team_id!r}")
        self.enterprise_id = enterprise_id
        self.team_id = team_id


class TokenSource(Protocol):
    """Where multi-workspace tokens come from (bot.slack.oauth.BotTokens)."""

    async def bot_token(self, *, enterprise_id: str, team_id: str) -> str | None: ...


class SlackClients:
    """Hands out a client with the bot token of a workspace.

    Single workspace: one client with SLACK_BOT_TOKEN. OAuth mode (`tokens` given): the
    workspace's bot token from the installation store, refreshed there when it is about to
    expire; `NotInstalled` when the workspace has none.

    Every client shares one aiohttp session, so calls reuse connections: without one, slack_sdk
    opens a new session (a new TCP and TLS connection, a new SSL context) for every call. The
    session belongs to the event loop that made it and is closed by `aclose()`.
    """

    def __init__(
        self,
        *,
        token: str | None,
        base_url: str | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        self._token = token
        self._tokens = tokens
        self._base_url = base_url or SLACK_API_DEFAULT
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[str | None, AsyncWebClient] = {}

    @property
    def base_url(self) -> str:
        return self._base_url

    async def for_team(self, *, enterprise_id: str, team_id: str) -> AsyncWebClient:
        if self._tokens is None:
            return self._client(self._token)
        token = await self._tokens.bot_token(enterprise_id=enterprise_id, team_id=team_id)
        if token is None:
            raise NotInstalled(enterprise_id=enterprise_id, team_id=team_id)
        return self._client(token)

    def _client(self, token: str | None) -> AsyncWebClient:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
            self._loop = loop
            self._clients = {}
        client = self._clients.get(token)
        if client is None:
            if len(self._clients) >= _MAX_CLIENTS:
                self._clients = {}  # rotated tokens leave old entries behind
            # No retry handlers: a 429 or an outage is handed back to the caller, which
            # reschedules the row with Retry-After instead of sleeping inside the worker.
            client = self._clients[token] = AsyncWebClient(
                token=token,
                base_url=self._base_url,
                timeout=int(TIMEOUT),
                session=self._session,
            )
        return client

    async def aclose(self) -> None:
        session, self._session, self._clients = self._session, None, {}
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
