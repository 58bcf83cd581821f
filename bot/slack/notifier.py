"""Keeps each e-mail's status message in Slack in step with the outbox, whatever Slack does.

A row is "behind" while its state_version is ahead of what Slack shows. The notifier posts the
first message (where the user chose, in the thread when there is one), then chat.update's it.
If the bot may not post there, the message goes to a DM with the user, saying why. Rate limits,
outages and errors push the row back with a delay (Retry-After when Slack gives one); the row
stays pending until Slack has it, so a status is never lost.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError, SlackClientError, SlackTokenRotationError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.mail.backoff import backoff_delay
from bot.mail.wakeup import Wakeup
from bot.slack.clients import NotInstalled, SlackClients
from bot.slack.post_once import (
    CLOCK_SKEW,
    HISTORY_ERRORS,
    HISTORY_PAGE,
    MAX_PAGES,
    HistoryUnreadable,
    find_posted,
    token_of,
    with_token,
)
from bot.slack.render.status import status_message
from bot.slack.wording import Texts
from bot.store.base import utcnow
from bot.store.models import OutboxEmail
from bot.store.outbox import OutboxRepository, OutboxStatus

log = logging.getLogger(__name__)

# Errors after which the conversation will not take the message: fall back to a DM.
UNPOSTABLE = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "restricted_action",
        "cant_post_in_thread",
    }
)
# The metadata event type of status messages; the payload carries the outbox row id as token.
STATUS_EVENT = "b24mail_email_status"
NOTIFY_BACKOFF_BASE = 2.0
NOTIFY_BACKOFF_MAX = 600.0
# After a workspace's token was refused, its other statuses are given up without asking Slack
# again for this long (a reinstall with a new token is seen after it).
GONE_MEMORY_SECONDS = 60.0
# Errors after which no status message can be posted in the workspace at all (the app was
# uninstalled, its token revoked or unrefreshable): give the status up instead of retrying.
AUTH_GONE = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "invalid_refresh_token",
        "team_not_found",
        "team_access_not_granted",
        NotInstalled.error,
    }
)


class StatusNotifier:
    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        clients: SlackClients,
        wakeup: Wakeup,
        # The owner's language (LanguageService.texts_for_email); English by default.
        texts_for: Callable[[OutboxEmail], Texts | Awaitable[Texts]] = lambda _row: Texts(),
        retry_window_minutes: float = 30,
        # Posting a status takes about a second; a crashed worker's claims free up after this.
        lease: timedelta = timedelta(seconds=20),
        batch: int = 20,
        idle_poll: float = 5.0,
    ) -> None:
        self._outbox = outbox
        self._clients = clients
        self._wakeup = wakeup
        self._texts_for = texts_for
        self._retry_window_minutes = retry_window_minutes
        self._lease = lease
        self._batch = batch
        self._idle_poll = idle_poll
        self._gave_up_in: set[tuple[str, str, str]] = set()  # logged once each
        self._gone: dict[tuple[str, str], tuple[str, float]] = {}  # team → error, when

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if await self.run_once():
                    continue
                await self._wakeup.wait(await self._sleep_time())
        finally:
            await self._clients.aclose()

    async def run_once(self) -> int:
        rows = await self._outbox.claim_notifications(lease=self._lease, limit=self._batch)
        if rows:
            await asyncio.gather(*(self._notify_guarded(row) for row in rows))
        return len(rows)

    async def _sleep_time(self) -> float:
        due = await self._outbox.next_notification_at()
        if due is None:
            return self._idle_poll
        return max(0.0, min(self._idle_poll, (due - utcnow()).total_seconds()))

    async def _notify_guarded(self, row: OutboxEmail) -> None:
        try:
            await self.notify(row)
        except Exception:
            log.exception("status message of email=%s failed; trying again later", row.id)
            await self._later(row, None)

    async def notify(self, row: OutboxEmail) -> None:
        gone = self._gone.get((row.enterprise_id, row.team_id))
        if gone is not None and time.monotonic() - gone[1] < GONE_MEMORY_SECONDS:
            # This workspace refused us a moment ago: do not ask Slack again for every row.
            await self._give_up(row, gone[0], fresh=False)
            return
        found = self._texts_for(row)
        t = await found if inspect.isawaitable(found) else found
        try:
            client = await self._clients.for_team(
                enterprise_id=row.enterprise_id, team_id=row.team_id
            )
        except NotInstalled:
            await self._give_up(row, NotInstalled.error)
            return
        except SlackTokenRotationError as exc:
            error = str(getattr(exc.api_error, "response", {}).get("error", "") or "")
            if error in AUTH_GONE:
                await self._give_up(row, error)
            else:
                log.warning("token refresh for status of email=%s failed: %s", row.id, error)
                await self._later(row, None)
            return
        dm_note = self._dm_note(t, row.result_channel, row.status_note) if row.status_note else None
        text, blocks = status_message(t, row, explanation=self._explain(t, row), dm_note=dm_note)
        try:
            if row.status_ts and row.status_channel:
                await client.chat_update(
                    channel=row.status_channel, ts=row.status_ts, text=text, blocks=blocks
                )
                channel, ts, note = row.status_channel, row.status_ts, row.status_note
            else:
                channel, ts, note = await self._post_first(client, t, row, text, blocks)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error == "message_not_found" and row.status_ts:
                # Someone deleted the status message: post a fresh one next time.
                row.status_ts = None
                channel, ts, note = await self._post_first(client, t, row, text, blocks)
            elif error in AUTH_GONE:
                await self._give_up(row, error)
                return
            else:
                log.warning(
                    "slack refused status of email=%s: %s",
                    row.id,
                    error or exc.response.status_code,
                )
                await self._later(row, _retry_after(exc))
                return
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("slack unreachable for status of email=%s: %s", row.id, type(exc).__name__)
            await self._later(row, None)
            return
        await self._record(row, channel, ts, note)
        metrics.STATUS_MESSAGES.labels("ok").inc()

    async def _record(self, row: OutboxEmail, channel: str, ts: str, note: str | None) -> None:
        """Store which message Slack now has. Without its ts the next pass posts a second message
        and this one keeps its old state for good, so ride out a database restart (for at most
        half the lease, so no other notifier takes the row meanwhile)."""
        give_up = time.monotonic() + self._lease.total_seconds() / 2
        delay = 0.2
        while True:
            try:
                await self._outbox.mark_notified(
                    row.id, version=row.state_version, channel=channel, ts=ts, note=note
                )
                return
            except (SQLAlchemyError, OSError) as exc:
                if time.monotonic() + delay > give_up:
                    raise
                log.warning("recording status of email=%s failed (%s)", row.id, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _post_first(
        self,
        client: AsyncWebClient,
        t: Texts,
        row: OutboxEmail,
        text: str,
        blocks: list[dict[str, object]],
    ) -> tuple[str, str, str | None]:
        """Post the first status message exactly once: the intent is recorded before posting,
        and a row that already had one is looked up (by the metadata token) before posting."""
        if row.status_post_started_at is not None:
            found = await find_status_message(client, row)
            if found is not None:
                channel, ts, note = found
                if note:
                    dm_note = self._dm_note(t, row.result_channel, note)
                    text, blocks = status_message(
                        t, row, explanation=self._explain(t, row), dm_note=dm_note
                    )
                await client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
                log.info("status of email=%s was posted before a restart; reused", row.id)
                return channel, ts, note
        else:
            row.status_post_started_at = utcnow()
            await self._outbox.mark_post_started(row.id, at=row.status_post_started_at)
        metadata = with_token(None, token=row.id, event_type=STATUS_EVENT)
        try:
            response = await client.chat_postMessage(
                channel=row.result_channel,
                thread_ts=row.result_thread_ts,
                text=text,
                blocks=blocks,
                metadata=metadata,
            )
            return str(response["channel"]), str(response["ts"]), None
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error not in UNPOSTABLE:
                raise
        note = self._dm_note(t, row.result_channel, error)
        text, blocks = status_message(t, row, explanation=self._explain(t, row), dm_note=note)
        opened = await client.conversations_open(users=row.slack_user_id)
        dm = str(opened["channel"]["id"])
        response = await client.chat_postMessage(
            channel=dm, text=text, blocks=blocks, metadata=metadata
        )
        log.info("status of email=%s went to a DM (%s)", row.id, error)
        return str(response["channel"]), str(response["ts"]), error

    @staticmethod
    def _dm_note(t: Texts, channel: str, error: str) -> str:
        """Why the status is in a DM; kept on every later update of that message."""
        reason_key = (
            f"post_reason.{error}" if t.has(f"post_reason.{error}") else "post_reason.other"
        )
        return t("status_msg.dm_note", channel=channel, reason=t(reason_key))

    def _explain(self, t: Texts, row: OutboxEmail) -> str | None:
        if row.status != OutboxStatus.FAILED or not row.error_code:
            return None
        if row.error_code == "gave_up":
            return t("error.gave_up", minutes=int(self._retry_window_minutes))
        params: dict[str, object] = {}
        if row.error_code == "portal_moved":
            params["new_host"] = row.error_detail or "?"
        return t.error(row.error_code, **params)

    async def _give_up(self, row: OutboxEmail, error: str, *, fresh: bool = True) -> None:
        """No token can post in this workspace: record this state as shown (it is not), so the
        row stops being claimed until its state changes again. Logged once per workspace."""
        if fresh:
            self._gone[(row.enterprise_id, row.team_id)] = (error, time.monotonic())
        key = (row.enterprise_id, row.team_id, error)
        if key not in self._gave_up_in:
            self._gave_up_in.add(key)
            log.warning(
                "cannot post status messages in team=%s (%s): the app was uninstalled or its "
                "token revoked; giving up on them (first: email=%s)",
                row.team_id,
                error,
                row.id,
            )
        else:
            log.debug("status of email=%s given up (%s)", row.id, error)
        await self._record(row, row.status_channel or "", row.status_ts or "", row.status_note)

    async def _later(self, row: OutboxEmail, retry_after: float | None) -> None:
        delay = (
            retry_after
            if retry_after is not None
            else backoff_delay(
                row.notify_attempts, base=NOTIFY_BACKOFF_BASE, cap=NOTIFY_BACKOFF_MAX, rng=None
            )
        )
        metrics.STATUS_MESSAGES.labels("deferred").inc()
        await self._outbox.notify_later(row.id, at=utcnow() + timedelta(seconds=delay))


async def find_status_message(
    client: AsyncWebClient, row: OutboxEmail
) -> tuple[str, str, str | None] | None:
    """Where an earlier attempt posted this row's status message, if it did: (channel, ts,
    DM note or None). Searched where it would be: the thread or channel, then the DM.

    A destination whose history the bot may not read (a public channel it posts in without
    being a member) cannot be searched: then it is treated as holding none, and a second
    message is possible there, as before this lookup existed."""
    since = row.status_post_started_at
    places: list[tuple[str | None, str | None, str | None]] = [
        (row.result_channel, row.result_thread_ts, None)
    ]
    places.append((None, None, "posted_to_dm"))
    for channel, thread_ts, note in places:
        try:
            if channel is None:
                try:
                    opened = await client.conversations_open(users=row.slack_user_id)
                except SlackApiError as exc:
                    # No DM to look in (the user is gone, or Slack is busy): a message could
                    # only have gone there had this worked before, so there is none to find.
                    log.info(
                        "status of email=%s: no DM to search (%s)",
                        row.id,
                        exc.response.get("error"),
                    )
                    continue
                channel = str(opened["channel"]["id"])
            if thread_ts:
                ts = await _find_reply(client, channel, thread_ts, token=row.id, since=since)
            else:
                ts = await find_posted(client, channel=channel, token=row.id, since=since)
        except HistoryUnreadable as exc:
            log.info("status of email=%s: history of %s unreadable (%s)", row.id, channel, exc)
            continue
        if ts is not None:
            return channel, ts, note
    return None


async def _find_reply(
    client: AsyncWebClient, channel: str, thread_ts: str, *, token: str, since: datetime | None
) -> str | None:
    """The ts of the reply in the thread carrying `token` (conversations.replies)."""
    oldest = f"{(since - CLOCK_SKEW).timestamp():.6f}" if since is not None else None
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        args: dict[str, object] = {
            "channel": channel,
            "ts": thread_ts,
            "include_all_metadata": True,
            "limit": HISTORY_PAGE,
        }
        if oldest is not None:
            args["oldest"] = oldest
        if cursor:
            args["cursor"] = cursor
        try:
            response = await client.conversations_replies(**args)  # type: ignore[arg-type]
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in HISTORY_ERRORS or error == "thread_not_found":
                raise HistoryUnreadable(error) from exc
            raise
        for message in response.get("messages") or []:
            if token_of(message) == token:
                return str(message["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not response.get("has_more") or not cursor:
            return None
    return None


def _retry_after(exc: SlackApiError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
