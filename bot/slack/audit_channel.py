"""Posting the audit log's lines in each workspace's audit channel, off the send path.

A record's line waits in `audit_posts` (written with the record); this loop claims due lines
under a lease, posts each with chat.postMessage, and deletes it once posted. A refusal or an
unreachable Slack only delays the line (exponential back-off); after MAX_ATTEMPTS it is dropped
with a warning (the record itself stays in the audit log and in every export). Nothing here can
delay, block or fail an e-mail.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from slack_sdk.errors import SlackApiError, SlackClientError, SlackTokenRotationError

from bot.mail.backoff import backoff_delay
from bot.mail.wakeup import Wakeup
from bot.slack.clients import NotInstalled, SlackClients
from bot.slack.render.policy import audit_line
from bot.slack.wording import Texts
from bot.store.audit import AuditRepository, ClaimedPost
from bot.store.base import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12


class AuditChannelPoster:
    def __init__(
        self,
        *,
        repository: AuditRepository,
        clients: SlackClients,
        wakeup: Wakeup,
        lease: timedelta = timedelta(seconds=30),
        batch: int = 20,
        idle_poll: float = 10.0,
        backoff_base: float = 5.0,
        backoff_max: float = 900.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._repository = repository
        self._clients = clients
        self._wakeup = wakeup
        self._lease = lease
        self._batch = batch
        self._idle_poll = idle_poll
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_attempts = max_attempts

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await self.run_once():
                    continue
                pause = await self._sleep_time()
            except Exception:
                # The database may be away for a moment: the lines wait in their table.
                log.exception("audit channel pass failed; trying again shortly")
                pause = self._idle_poll
            await self._wakeup.wait(pause)

    async def run_once(self) -> int:
        claimed = await self._repository.claim_posts(lease=self._lease, limit=self._batch)
        for post in claimed:
            await self._post(post)
        return len(claimed)

    async def _sleep_time(self) -> float:
        due = await self._repository.next_post_due()
        if due is None:
            return self._idle_poll
        return max(0.0, min(self._idle_poll, (due - utcnow()).total_seconds()))

    async def _post(self, post: ClaimedPost) -> None:
        record = post.record
        try:
            client = await self._clients.for_team(
                enterprise_id=record.enterprise_id, team_id=record.team_id
            )
            await client.chat_postMessage(
                channel=post.channel,
                text=audit_line(Texts(post.language or "en"), record),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            await self._later(post, str(exc.response.get("error", "")) or "http_error")
            return
        except (NotInstalled, SlackTokenRotationError, SlackClientError, OSError) as exc:
            await self._later(post, type(exc).__name__)
            return
        await self._repository.posted(post.post_id)

    async def _later(self, post: ClaimedPost, error: str) -> None:
        if post.attempts >= self._max_attempts:
            log.warning(
                "audit line %d for channel=%s dropped after %d attempts (%s); the record stays "
                "in the audit log",
                post.record.id,
                post.channel,
                post.attempts,
                error,
            )
            await self._repository.posted(post.post_id)
            return
        delay = backoff_delay(post.attempts, base=self._backoff_base, cap=self._backoff_max)
        log.warning(
            "audit line %d for channel=%s not posted (%s); retrying in %.0f s",
            post.record.id,
            post.channel,
            error,
            delay,
        )
        await self._repository.post_later(post.post_id, at=utcnow() + timedelta(seconds=delay))
