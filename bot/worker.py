"""The background half of b24mail: delivery and status messages, in `serve` or on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.bitrix24 import shared_limiters
from bot.mail.delivery import DeliveryWorker
from bot.services import Services
from bot.slack.audit_channel import AuditChannelPoster
from bot.slack.new_mail import NewMailPoller
from bot.slack.notifier import StatusNotifier
from bot.store.listen import OUTBOX_CHANNEL, asyncpg_dsn, listen

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.identity import SlackUser
    from bot.slack.wording import Texts

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 3600.0


class Worker:
    """Runs the delivery loop and the status-message loop until stopped.

    Stopping is graceful and bounded by `grace` seconds (B24MAIL_SHUTDOWN_GRACE_SECONDS): no
    new claims; a claimed e-mail not yet handed to Bitrix24 goes back to the queue at once;
    sends in flight may finish within the grace period, and any still running then are
    cancelled and left to their leases (the lease outlasts any request the portal may still
    run, so the next worker's attempt with the same key is safe). Then the status messages of
    what finished are posted, in whatever is left of the grace period.
    """

    def __init__(self, services: Services, *, grace: float | None = None) -> None:
        self._services = services
        settings = services.settings
        self._grace = settings.b24mail_shutdown_grace_seconds if grace is None else grace
        self._stop_delivery = asyncio.Event()
        self._stop_notifier = asyncio.Event()
        self._delivery_tasks: list[asyncio.Task[None]] = []
        self._notifier_task: asyncio.Task[None] | None = None
        self._stop_poller = asyncio.Event()
        self._poller_task: asyncio.Task[None] | None = None
        self.delivery = DeliveryWorker(
            outbox=services.outbox,
            links=services.links,
            bitrix24=services.bitrix24,
            wakeup=services.delivery_wakeup,
            on_change=services.notify_wakeup.notify,
            config=services.delivery_config,
            policy=services.policy,
            audit=services.audit,
        )
        self.notifier = StatusNotifier(
            outbox=services.outbox,
            clients=services.slack_clients,
            wakeup=services.notify_wakeup,
            texts_for=services.language.texts_for_email,
            retry_window_minutes=settings.b24mail_retry_window_minutes,
        )
        self.audit_poster = AuditChannelPoster(
            repository=services.audit.repository,
            clients=services.slack_clients,
            wakeup=services.audit_wakeup,
        )
        self._audit_task: asyncio.Task[None] | None = None
        self._stop_audit = asyncio.Event()

        async def texts_for(user: SlackUser, client: AsyncWebClient | None) -> Texts:
            return await services.language.texts_for(user, client=client)

        self.poller = NewMailPoller(
            notify=services.notify,
            clients=services.slack_clients,
            cards=services.cards,
            texts_for=texts_for,
            wakeup=services.poll_wakeup,
            # The limiters the Bitrix24 client paces its requests with in this process.
            limiters=shared_limiters(rate=settings.bitrix24_rate, burst=settings.bitrix24_burst),
        )

    async def start(self) -> None:
        self._stop_delivery.clear()
        self._stop_notifier.clear()
        self._delivery_tasks = [self._spawn("delivery", self.delivery.run, self._stop_delivery)]
        self._notifier_task = self._spawn("notifier", self.notifier.run, self._stop_notifier)
        self._stop_audit.clear()
        self._audit_task = self._spawn("audit", self._audit_loop, self._stop_audit)
        self._stop_poller.clear()
        self._poller_task = self._spawn("new-mail", self.poller.run, self._stop_poller)
        url = self._services.settings.database_url
        if url.startswith("postgresql"):
            services = self._services

            def wake() -> None:
                # A row changed in another process: maybe due (delivery), and maybe its status
                # message is behind ("Sending in 10 s…" with Undo should not wait a poll).
                services.delivery_wakeup.notify()
                services.notify_wakeup.notify()

            dsn = asyncpg_dsn(url)
            self._delivery_tasks.append(
                self._spawn(
                    "listen",
                    lambda stop: listen(dsn, OUTBOX_CHANNEL, wake, stop),
                    self._stop_delivery,
                )
            )

    def alive(self) -> bool:
        """True while every loop runs (for the worker's /healthz)."""
        tasks = [
            *self._delivery_tasks,
            *([self._notifier_task] if self._notifier_task else []),
            *([self._poller_task] if self._poller_task else []),
        ]
        return bool(tasks) and not self._stop_delivery.is_set() and not any(t.done() for t in tasks)

    async def housekeeping(self) -> None:
        """Write audit records a crash left out; prune records past their retention,
        confirmations nobody gave, and drafts older than B24MAIL_DRAFT_DAYS."""
        await self._services.audit.reconcile()
        await self._services.audit.prune()
        await self._services.pending_sends.prune()
        await self._services.writing.prune()

    async def _audit_loop(self, stop: asyncio.Event) -> None:
        """The audit channel's lines, and housekeeping once an hour (first at start)."""
        poster = asyncio.create_task(self.audit_poster.run(stop), name="b24mail-audit-poster")
        try:
            while not stop.is_set():
                try:
                    await self.housekeeping()
                except Exception:
                    log.exception("audit housekeeping failed; trying again in an hour")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), HOUSEKEEPING_SECONDS)
        finally:
            self._services.audit_wakeup.notify()
            await _finish([poster], 5.0)

    async def stop(self) -> None:
        """Stop claiming; release what has not started, let sends in flight finish within the
        grace period (their leases cover them after it), then post the statuses that changed."""
        self._stop_audit.set()
        self._services.audit_wakeup.notify()
        if self._audit_task is not None:
            await _finish([self._audit_task], 5.0)
            self._audit_task = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        # Checks under way finish their card (each is recorded before it is posted, and found
        # again by its metadata if the process dies), within the same grace period as sends.
        self._stop_poller.set()
        self._services.poll_wakeup.notify()
        poller = [self._poller_task] if self._poller_task else []
        self._stop_delivery.set()
        self._services.delivery_wakeup.notify()
        if self._delivery_tasks and not await _finish(self._delivery_tasks, self._grace):
            log.warning(
                "sends still in flight after the %.0f s grace period were cancelled; "
                "their leases keep them until another worker takes them",
                self._grace,
            )
        self._delivery_tasks = []
        if poller:
            await _finish(poller, max(0.0, deadline - loop.time()))
        self._poller_task = None
        remaining = max(0.0, deadline - loop.time())
        await self._final_status_pass(remaining)
        self._stop_notifier.set()
        self._services.notify_wakeup.notify()
        if self._notifier_task is not None:
            # The notifier ends after the batch it is posting; give it a moment even when the
            # grace period is spent (a status left now is posted by the next worker).
            await _finish([self._notifier_task], max(remaining, 2.0))
        self._notifier_task = None

    async def _final_status_pass(self, budget: float) -> None:
        """Post the statuses of the e-mails that just finished, rather than leave them to the
        next worker. Claims are leased, so this and the running notifier never post twice."""
        if budget <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget):
                try:
                    while await self.notifier.run_once():
                        pass
                except Exception:
                    log.exception("final status pass failed; the next worker posts them")

    def _spawn(
        self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
    ) -> asyncio.Task[None]:
        async def guarded() -> None:
            # A loop that died would leave e-mails unsent with nobody noticing: restart it.
            while not stop.is_set():
                try:
                    await loop(stop)
                    return
                except Exception:
                    log.exception("%s loop crashed; restarting in 1 s", name)
                    await asyncio.sleep(1)

        return asyncio.create_task(guarded(), name=f"b24mail-{name}")


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> bool:
    """Wait up to `timeout` for the tasks; cancel what is left. True when all finished."""
    pending = {task for task in tasks if not task.done()}
    if pending and timeout > 0:
        _done, pending = await asyncio.wait(pending, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return not pending
