"""Names of what a message mentions (users, channels, user groups), for e-mail bodies: cached,
and never allowed to be slow. A recipient outside Slack cannot read an id such as C0123ABCD."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError, SlackClientError

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

# Public channels start with C, private ones (older) with G; D is a DM, which has no name.
_CHANNEL_PREFIXES = frozenset("CG")


class UserNames:
    """users.info, conversations.info and usergroups.list lookups (told apart by the id's
    first letter) with a TTL cache; a lookup that is slow or fails leaves the id unnamed."""

    def __init__(
        self, *, ttl: float = 3600.0, timeout: float = 1.0, max_size: int = 10_000
    ) -> None:
        self._ttl = ttl
        self._timeout = timeout
        self._max_size = max_size
        self._cache: dict[str, tuple[float, str]] = {}

    async def resolve(self, client: AsyncWebClient, user_ids: Iterable[str]) -> dict[str, str]:
        now = time.monotonic()
        names: dict[str, str] = {}
        missing = []
        for user_id in set(user_ids):
            cached = self._cache.get(user_id)
            if cached and cached[0] > now:
                names[user_id] = cached[1]
            else:
                missing.append(user_id)
        if missing:
            try:
                async with asyncio.timeout(self._timeout):
                    found = await asyncio.gather(*(self._lookup(client, u) for u in missing[:20]))
            except TimeoutError:
                log.info("users.info too slow; %d mention(s) stay as ids", len(missing))
                found = []
            for user_id, name in found:
                if name:
                    names[user_id] = name
                    self._remember(user_id, name, now)
        return names

    async def _lookup(self, client: AsyncWebClient, user_id: str) -> tuple[str, str | None]:
        if user_id[:1] in _CHANNEL_PREFIXES:
            return user_id, await self._channel(client, user_id)
        if user_id[:1] == "S":
            return user_id, await self._usergroup(client, user_id)
        try:
            response = await client.users_info(user=user_id)
        except (SlackApiError, SlackClientError):
            return user_id, None
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
        )
        return user_id, str(name) if name else None

    async def _channel(self, client: AsyncWebClient, channel_id: str) -> str | None:
        """The channel's name (needs channels:read / groups:read; a private channel the bot is
        not in stays unnamed)."""
        try:
            response = await client.conversations_info(channel=channel_id)
        except (SlackApiError, SlackClientError):
            return None
        name = (response.get("channel") or {}).get("name")
        return str(name) if name else None

    async def _usergroup(self, client: AsyncWebClient, group_id: str) -> str | None:
        """The group's handle, as people type it after @ (one usergroups.list names them all)."""
        try:
            response = await client.usergroups_list()
        except (SlackApiError, SlackClientError):
            return None
        now = time.monotonic()
        found = None
        for group in response.get("usergroups") or []:
            handle = group.get("handle") if isinstance(group, dict) else None
            ident = group.get("id") if isinstance(group, dict) else None
            if isinstance(handle, str) and handle and isinstance(ident, str):
                self._remember(ident, handle, now)
                if ident == group_id:
                    found = handle
        return found

    def _remember(self, user_id: str, name: str, now: float) -> None:
        if len(self._cache) >= self._max_size:
            self._cache.clear()
        self._cache[user_id] = (now + self._ttl, name)
