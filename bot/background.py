"""Work that runs after a Slack request was acknowledged, tracked so nothing is dropped silently."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def new_error_id() -> str:
    """A short id shown to the user and written to the log, to find one from the other."""
    return uuid.uuid4().hex[:10]


class Background:
    """Holds strong references to post-ack tasks (asyncio keeps only weak ones) and logs failures."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "background task %s failed (error id %s)",
                task.get_name(),
                new_error_id(),
                exc_info=exc,
            )

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Let running tasks finish (graceful shutdown); cancel what is left after `timeout`."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
