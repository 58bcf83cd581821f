"""Waking the worker the moment there is work, instead of polling on a timer."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """A level-triggered signal: notify() makes the next (or current) wait() return at once."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait until notified or `timeout` seconds pass; True when notified."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0)):
                await self._event.wait()
        notified = self._event.is_set()
        self._event.clear()
        return notified
