"""The background half of b24mail: delivery and status messages, in `serve` or on its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.mail.delivery import DeliveryWorker
from bot.services import Services
from bot.slack.notifier import StatusNotifier
from bot.store.listen import OUTBOX_CHANNEL, asyncpg_dsn, listen

log = logging.getLogger(__name__)


class Worker:
    """Runs the delivery loop and the status-message loop until stopped."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.delivery = DeliveryWorker(
            outbox=services.outbox,
            links=services.links,
            bitrix24=services.bitrix24,
            wakeup=services.delivery_wakeup,
            on_change=services.notify_wakeup.notify,
            config=services.delivery_config,
        )
        self.notifier = StatusNotifier(
            outbox=services.outbox,
            clients=services.slack_clients,
            wakeup=services.notify_wakeup,
            texts_for=services.language.texts_for_email,
            retry_window_minutes=services.settings.b24mail_retry_window_minutes,
        )

    async def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            self._spawn("delivery", self.delivery.run),
            self._spawn("notifier", self.notifier.run),
        ]
        url = self._services.settings.database_url
        if url.startswith("postgresql"):
            wake = self._services.delivery_wakeup.notify
            dsn = asyncpg_dsn(url)
            self._tasks.append(
                self._spawn("listen", lambda stop: listen(dsn, OUTBOX_CHANNEL, wake, stop))
            )

    async def stop(self) -> None:
        """Stop claiming; let in-flight sends finish (their leases protect them if we die)."""
        self._stop.set()
        self._services.delivery_wakeup.notify()
        self._services.notify_wakeup.notify()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _spawn(
        self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]]
    ) -> asyncio.Task[None]:
        async def guarded() -> None:
            # A loop that died would leave e-mails unsent with nobody noticing: restart it.
            while not self._stop.is_set():
                try:
                    await loop(self._stop)
                    return
                except Exception:
                    log.exception("%s loop crashed; restarting in 1 s", name)
                    await asyncio.sleep(1)

        return asyncio.create_task(guarded(), name=f"b24mail-{name}")
