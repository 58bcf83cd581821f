"""The poller: checks subscribed mailboxes in turn and posts each new e-mail's card once.

Each loop claims the check due longest ago on a portal with a free poll slot (see
bot.store.subscriptions), waits until this process's rate limiter for the portal has headroom
(sends go first), runs the check (bot.mail.notify) and posts the pending cards with post_once:
the row is pending with its token before chat.postMessage, so a worker killed between posting
and recording finds the card in the history instead of posting it again.

Slack failures never drop a card: 429 and outages retry later (Retry-After when given); a
destination that refuses the bot (archived, bot removed) pauses the subscription with the cards
still pending, and its owner is told once, in a DM. Bitrix24 failures only the user can mend
pause it too (told once); `/b24mail connect` or `/b24mail notify` resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import NoReturn

from pydantic import ValidationError
from slack_sdk.errors import SlackApiError, SlackClientError, SlackTokenRotationError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.bitrix24 import Message, PortalLimiters
from bot.identity import SlackUser
from bot.mail.notify import NotifyService
from bot.mail.wakeup import Wakeup
from bot.slack import ids
from bot.slack.clients import NotInstalled, SlackClients
from bot.slack.notifier import AUTH_GONE, UNPOSTABLE, _retry_after
from bot.slack.post_once import HistoryUnreadable, find_posted, post_once
from bot.slack.render.card import email_card
from bot.slack.render.notify import paused_text
from bot.slack.wording import Texts
from bot.store.base import utcnow
from bot.store.cards import CardRepository, NewCard
from bot.store.models import MailSubscription, SeenMail

log = logging.getLogger(__name__)

TextsFor = Callable[[SlackUser, AsyncWebClient | None], Awaitable[Texts]]
SLACK_BACKOFF = timedelta(seconds=30)
HEADROOM_WAIT_MAX = 30.0
PRUNE_EVERY = 3600.0
TELL_EVERY = 60.0


class _Stop(Exception):
    """The check cannot go on now (lease lost, paused, Slack asked to wait)."""

    def __init__(self, retry_at: datetime | None = None) -> None:
        super().__init__()
        self.retry_at = retry_at


class NewMailPoller:
    def __init__(
        self,
        *,
        notify: NotifyService,
        clients: SlackClients,
        cards: CardRepository,
        texts_for: TextsFor,
        wakeup: Wakeup,
        limiters: PortalLimiters | None = None,
        # Polls wait while this process's bucket for the portal is fuller than this share of
        # its burst: the rest is left to sends.
        headroom: float = 0.5,
        concurrency: int = 4,
        idle_poll: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        # Real seconds per second of `clock` when waiting (a benchmark runs a faster clock).
        time_scale: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self._notify = notify
        self._subscriptions = notify.subscriptions
        self._config = notify.config
        self._clients = clients
        self._cards = cards
        self._texts_for = texts_for
        self._wakeup = wakeup
        self._limiters = limiters
        self._headroom = headroom
        self._concurrency = concurrency
        self._idle_poll = idle_poll
        self._clock = clock
        self._time_scale = time_scale
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._told_at = 0.0
        self._pruned_at = 0.0
        self.checks = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Check mailboxes until `stop` is set; a check under way finishes first."""
        loops = [asyncio.create_task(self._loop(stop)) for _ in range(self._concurrency)]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await self.run_once():
                    continue
                await self._housekeeping()
                await self._pause(stop, await self._sleep_time() * self._time_scale)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("new-mail poller: database unavailable (%s)", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep until a check may be due, a subscription changed, or the worker stops (every
        loop must see the stop at once, while one wake-up only wakes one loop)."""
        stopping = asyncio.ensure_future(stop.wait())
        waking = asyncio.ensure_future(self._wakeup.wait(seconds))
        try:
            await asyncio.wait({stopping, waking}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopping, waking):
                task.cancel()
            await asyncio.gather(stopping, waking, return_exceptions=True)

    async def _sleep_time(self) -> float:
        due = await self._subscriptions.next_claim_at()
        if due is None:
            return self._idle_poll
        return max(0.005, min(self._idle_poll, (due - self._clock()).total_seconds()))

    async def run_once(self) -> bool:
        """Claim and run one check; False when none is due."""
        row = await self._subscriptions.claim(
            owner=self.owner,
            now=self._clock(),
            lease=self._config.lease,
            spacing=self._config.spacing,
        )
        if row is None:
            return False
        await self.check(row)
        return True

    async def check(self, row: MailSubscription) -> None:
        started = self._clock()
        next_due = started + self._config.interval
        failed = False
        try:
            await self._wait_for_headroom(row.portal_host)
            outcome = await self._notify.check(row, owner=self.owner)
            self.checks += 1
            if outcome.gone:
                return
            if outcome.paused is not None:
                if outcome.newly:
                    await self._tell(row.id)
                return
            if outcome.retry_at is not None:
                next_due, failed = outcome.retry_at, True
            await self._post_pending(row)
        except _Stop as stop:
            if stop.retry_at is not None:
                next_due = max(next_due, stop.retry_at)
        except Exception:
            log.exception("new-mail check of subscription=%s failed", row.id)
            next_due, failed = self._clock() + SLACK_BACKOFF, True
        finally:
            await self._subscriptions.finish(
                row.id, owner=self.owner, now=self._clock(), next_due_at=next_due, failed=failed
            )

    async def _wait_for_headroom(self, host: str) -> None:
        """Sends take precedence: poll only while the portal's bucket is not filling up."""
        if self._limiters is None:
            return
        bucket = self._limiters.get(host)
        threshold = bucket.burst * self._headroom
        waited = 0.0
        while bucket.level > threshold and waited < HEADROOM_WAIT_MAX:
            delay = (bucket.level - threshold) / bucket.rate
            await asyncio.sleep(delay * self._time_scale)
            waited += delay

    # --- posting -------------------------------------------------------------------------

    async def _client(self, row: MailSubscription) -> AsyncWebClient:
        try:
            return await self._clients.for_team(
                enterprise_id=row.enterprise_id, team_id=row.team_id
            )
        except NotInstalled:
            await self._gone(row, NotInstalled.error)
        except SlackTokenRotationError as exc:
            error = str(getattr(exc.api_error, "response", {}).get("error", "") or "")
            if error in AUTH_GONE:
                await self._gone(row, error)
            raise _Stop(self._clock() + SLACK_BACKOFF) from exc

    async def _post_pending(self, row: MailSubscription) -> None:
        pending = await self._subscriptions.pending(row.id)
        fresh = await self._subscriptions.get_by_id(row.id)
        if fresh is None or (not pending and not fresh.more_token):
            return
        client = await self._client(row)
        t = await self._texts_for(_user_of(row), client)
        channel = await self._destination(client, fresh)
        for seen in pending:
            await self._post_card(client, t, fresh, seen, channel)
        if fresh.more_token:
            await self._post_more(client, t, fresh, channel)

    async def _destination(self, client: AsyncWebClient, row: MailSubscription) -> str:
        if row.channel_id:
            return row.channel_id
        if row.dm_channel_id:
            return row.dm_channel_id
        try:
            opened = await client.conversations_open(users=row.slack_user_id)
        except SlackApiError as exc:
            await self._slack_failure(row, exc)
        except (SlackClientError, OSError, TimeoutError) as exc:
            raise _Stop(self._clock() + SLACK_BACKOFF) from exc
        channel = str(opened["channel"]["id"])
        await self._subscriptions.set_dm_channel(row.id, channel)
        return channel

    async def _post_card(
        self, client: AsyncWebClient, t: Texts, row: MailSubscription, seen: SeenMail, channel: str
    ) -> None:
        try:
            message = Message.model_validate(seen.card or {"id": seen.b24_message_id})
        except ValidationError:
            message = Message(id=seen.b24_message_id)
        text, blocks, metadata = email_card(
            t,
            message,
            portal=row.portal_host,
            shared_by=None,
            # In a channel, say whose mailbox it came from.
            note=t("notify.card_note_of", user=row.slack_user_id)
            if row.channel_id
            else t("notify.card_note"),
            share=row.channel_id is None,
        )
        token = seen.token or f"seen-{seen.id}"
        tried_elsewhere = seen.post_attempts > 0 and seen.channel_id not in (None, channel)
        try:
            if tried_elsewhere and seen.channel_id:
                # The destination changed after an attempt: the card may be in the old one.
                found = await find_posted(
                    client, channel=seen.channel_id, token=token, since=seen.first_seen_at
                )
                if found is not None:
                    await self._posted(row, seen, message, seen.channel_id, found)
                    return
            if not await self._subscriptions.start_post(
                seen.id, owner=self.owner, channel=channel, now=self._clock()
            ):
                raise _Stop()  # another worker holds the check now
            posted = await post_once(
                client,
                channel=channel,
                token=token,
                event_type=ids.EMAIL_CARD_EVENT,
                text=text,
                blocks=blocks,
                metadata=metadata,
                maybe_posted=seen.post_attempts > 0 and not tried_elsewhere,
                since=seen.first_seen_at,
            )
        except HistoryUnreadable as exc:
            await self._pause_for_slack(row, exc.error)
        except SlackApiError as exc:
            await self._slack_failure(row, exc)
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("slack unreachable for new-mail card: %s", type(exc).__name__)
            raise _Stop(self._clock() + SLACK_BACKOFF) from exc
        await self._posted(row, seen, message, posted.channel, posted.ts)

    async def _posted(
        self, row: MailSubscription, seen: SeenMail, message: Message, channel: str, ts: str
    ) -> None:
        await self._subscriptions.mark_posted(seen.id, channel=channel, ts=ts, now=self._clock())
        # The card's thread knows its e-mail: Reply and "Reply by e-mail" work there.
        await self._cards.record(
            NewCard(
                enterprise_id=row.enterprise_id,
                team_id=row.team_id,
                channel_id=channel,
                message_ts=ts,
                b24_message_id=message.id,
                portal_host=row.portal_host,
                shared_by=row.slack_user_id,
            )
        )
        log.info("new-mail card email=%s subscription=%s channel=%s", message.id, row.id, channel)

    async def _post_more(
        self, client: AsyncWebClient, t: Texts, row: MailSubscription, channel: str
    ) -> None:
        token = row.more_token
        if token is None or not await self._subscriptions.start_more(
            row.id, owner=self.owner, now=self._clock()
        ):
            return
        try:
            await post_once(
                client,
                channel=channel,
                token=token,
                event_type=ids.NEW_MAIL_MORE_EVENT,
                text=t.plural("notify.more", row.more_count),
                maybe_posted=row.more_attempts > 0,
                since=row.more_since,
            )
        except HistoryUnreadable as exc:
            await self._pause_for_slack(row, exc.error)
        except SlackApiError as exc:
            await self._slack_failure(row, exc)
        except (SlackClientError, OSError, TimeoutError) as exc:
            raise _Stop(self._clock() + SLACK_BACKOFF) from exc
        await self._subscriptions.more_posted(row.id, token=token)

    async def _slack_failure(self, row: MailSubscription, exc: SlackApiError) -> NoReturn:
        """Decide what a refused post means; always ends the posting of this check."""
        error = str(exc.response.get("error", ""))
        if exc.response.status_code == 429 or error == "ratelimited":
            delay = _retry_after(exc) or 1.0
            raise _Stop(self._clock() + timedelta(seconds=delay))
        if error in AUTH_GONE:
            await self._gone(row, error)
        if error in UNPOSTABLE or error in {"account_inactive", "user_disabled", "user_not_found"}:
            await self._pause_for_slack(row, error)
        log.warning("slack refused new-mail card subscription=%s: %s", row.id, error)
        raise _Stop(self._clock() + SLACK_BACKOFF)

    async def _pause_for_slack(self, row: MailSubscription, error: str) -> NoReturn:
        """The destination refuses the bot: the cards stay pending, the owner is told once."""
        if await self._subscriptions.pause(row.id, owner=self.owner, reason=f"slack_{error}"):
            log.warning("new-mail subscription=%s paused: slack %s", row.id, error)
            await self._tell(row.id)
        raise _Stop()

    async def _gone(self, row: MailSubscription, error: str) -> NoReturn:
        """No token can post in the workspace: nobody can be told; keep the cards pending."""
        await self._subscriptions.pause(
            row.id, owner=self.owner, reason=f"slack_{error}", told=True
        )
        log.warning(
            "new-mail subscription=%s paused: the workspace refuses the bot (%s)", row.id, error
        )
        raise _Stop()

    # --- telling the owner -------------------------------------------------------------------

    async def _tell(self, subscription_id: int) -> None:
        """One DM saying why the subscription paused and what to do (post_once: never twice)."""
        row = await self._subscriptions.get_by_id(subscription_id)
        if row is None or row.owner_told or row.state != "paused":
            return
        try:
            client = await self._clients.for_team(
                enterprise_id=row.enterprise_id, team_id=row.team_id
            )
            t = await self._texts_for(_user_of(row), client)
            opened = await client.conversations_open(users=row.slack_user_id)
            dm = str(opened["channel"]["id"])
            await post_once(
                client,
                channel=dm,
                token=f"paused-{row.id}-{row.pauses}",
                event_type=ids.NEW_MAIL_PAUSED_EVENT,
                text=paused_text(t, row),
                maybe_posted=True,
                since=self._clock() - timedelta(days=1),
            )
        except (SlackApiError, SlackClientError, NotInstalled, HistoryUnreadable, OSError) as exc:
            log.warning(
                "could not tell user=%s that notifications paused (%s); trying again later",
                row.slack_user_id,
                type(exc).__name__,
            )
            return
        await self._subscriptions.mark_told(row.id, pauses=row.pauses)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._told_at >= TELL_EVERY:
            self._told_at = now
            for row in await self._subscriptions.untold():
                await self._tell(row.id)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            pruned = await self._subscriptions.prune(
                now=self._clock(), lookback=self._config.lookback
            )
            if pruned:
                log.info("forgot %d e-mail(s) seen before the look-back window", pruned)


def _user_of(row: MailSubscription) -> SlackUser:
    return SlackUser(
        enterprise_id=row.enterprise_id, team_id=row.team_id, user_id=row.slack_user_id
    )
