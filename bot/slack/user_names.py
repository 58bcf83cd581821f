"""Display names of mentioned users, for e-mail bodies: cached, and never allowed to be slow."""

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


class UserNames:
    """users.info lookups with a TTL cache; a lookup that is slow or fails leaves the id as is."""

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

    def _remember(self, user_id: str, name: str, now: float) -> None:
        if len(self._cache) >= self._max_size:
            self._cache.clear()
        self._cache[user_id] = (now + self._ttl, name)
