"""Submitting e-mails to the outbox, retrying them, and reading a user's history."""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import datetime, timedelta

from bot import metrics
from bot.identity import SlackUser
from bot.mail.compose import ValidEmail
from bot.mail.errors import EmailNotFound, SendingCapReached, TooLateToUndo
from bot.mail.wakeup import Wakeup
from bot.store.base import utcnow
from bot.store.models import OutboxEmail
from bot.store.outbox import CapReached, NewEmail, OutboxRepository

log = logging.getLogger(__name__)


class SendingService:
    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        wakeup: Wakeup,
        retry_window: timedelta,
        hourly_cap: int,
        undo_seconds: float = 0.0,
    ) -> None:
        self.outbox = outbox
        self.undo_seconds = undo_seconds
        self._wakeup = wakeup
        self._retry_window = retry_window
        self._hourly_cap = hourly_cap
        # One lock per user while a submission is counted and stored (see submit).
        self._cap_locks: weakref.WeakValueDictionary[SlackUser, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @property
    def hourly_cap(self) -> int:
        return self._hourly_cap

    async def check_cap(self, user: SlackUser, *, cap: int | None = None) -> None:
        """Raise SendingCapReached at `cap` (the workspace policy's) or the instance's cap."""
        cap = self._hourly_cap if cap is None else cap
        sent = await self.outbox.count_since(user, utcnow() - timedelta(hours=1))
        if sent >= cap:
            raise SendingCapReached(cap)

    async def submit(
        self,
        user: SlackUser,
        email: ValidEmail,
        *,
        submission_key: str,
        result_channel: str,
        result_thread_ts: str | None = None,
        reply_to_message_id: int | None = None,
        hourly_cap: int | None = None,
        forward_message_id: int | None = None,
        send_at: datetime | None = None,
    ) -> tuple[OutboxEmail, bool]:
        """Queue the e-mail durably; returns (row, created). A repeated submission creates nothing.

        It leaves at `send_at` when given (checked by check_send_at), else once the undo window
        (B24MAIL_UNDO_SECONDS) has passed. Either way it is just the row's due time: the worker
        claims nothing earlier, and Undo or Cancel is a conditional update before the claim.

        Raises SendingCapReached when the user's hourly cap is reached. The count is taken in
        the inserting transaction (under a per-user advisory lock on PostgreSQL, so across
        processes) and under a per-user lock here (SQLite has no advisory locks), so
        submissions arriving together cannot all pass a check made before any was stored.
        """
        now = utcnow()
        if send_at is not None:
            not_before: datetime | None = max(send_at, now)
        elif self.undo_seconds > 0:
            not_before = now + timedelta(seconds=self.undo_seconds)
        else:
            not_before = None
        new = NewEmail(
            submission_key=submission_key,
            user=user,
            kind=_kind(reply_to_message_id, forward_message_id),
            sender=email.sender,
            to=email.to,
            cc=email.cc,
            bcc=email.bcc,
            subject=email.subject,
            body_html=email.body_html,
            body_source=email.body_source,
            reply_to_message_id=reply_to_message_id,
            forward_message_id=forward_message_id,
            result_channel=result_channel,
            result_thread_ts=result_thread_ts,
            not_before=not_before,
            send_at=send_at,
            # Temporary failures are retried for the retry window after the e-mail was due.
            deadline=(not_before or now) + self._retry_window,
        )
        lock = self._cap_locks.get(user)
        if lock is None:
            lock = self._cap_locks[user] = asyncio.Lock()
        try:
            async with lock:
                row, created = await self.outbox.enqueue(
                    new, hourly_cap=self._hourly_cap if hourly_cap is None else hourly_cap
                )
        except CapReached as exc:
            raise SendingCapReached(exc.cap) from exc
        if created:
            if send_at is not None:
                metrics.SCHEDULED.labels(row.kind).inc()
            self._wakeup.notify()
            log.info(
                "queued email=%s kind=%s user=%s recipients=%d",
                row.id,
                row.kind,
                user.user_id,
                len(row.to_addrs) + len(row.cc_addrs) + len(row.bcc_addrs),
            )
        else:
            log.info("duplicate submission ignored email=%s", row.id)
        return row, created

    async def retry(self, email_id: str, user: SlackUser) -> None:
        """Queue a failed e-mail again: same row, same Idempotency-Key, so never sent twice."""
        if not await self.outbox.requeue(email_id, user, deadline=utcnow() + self._retry_window):
            raise EmailNotFound()
        self._wakeup.notify()

    async def cancel(self, email_id: str, user: SlackUser) -> OutboxEmail:
        """Undo (or cancel a scheduled e-mail): it is never sent, or TooLateToUndo is raised
        because a worker already took it (then it is sent and its status says so)."""
        cancelled = await self.outbox.cancel(email_id, user)
        row = await self.owned(email_id, user)
        if not cancelled:
            metrics.UNDOS.labels("too_late").inc()
            raise TooLateToUndo()
        metrics.UNDOS.labels("cancelled").inc()
        log.info("cancelled email=%s user=%s", email_id, user.user_id)
        return row

    async def send_now(self, email_id: str, user: SlackUser) -> None:
        """A scheduled (or undo-window) e-mail leaves at once."""
        if not await self.outbox.send_now(email_id, user):
            await self.owned(email_id, user)  # EmailNotFound when it is not the user's
            raise TooLateToUndo()
        self._wakeup.notify()

    async def scheduled(self, user: SlackUser, *, limit: int = 20) -> list[OutboxEmail]:
        return await self.outbox.scheduled(user, limit=limit)

    async def owned(self, email_id: str, user: SlackUser) -> OutboxEmail:
        row = await self.outbox.get_owned(email_id, user)
        if row is None:
            raise EmailNotFound()
        return row

    async def history(self, user: SlackUser, *, limit: int = 10) -> list[OutboxEmail]:
        return await self.outbox.history(user, limit=limit)


def _kind(reply_to_message_id: int | None, forward_message_id: int | None) -> str:
    if reply_to_message_id is not None and forward_message_id is not None:
        raise ValueError("an e-mail is a reply or a forward, not both")
    if forward_message_id is not None:
        return "forward"
    return "reply" if reply_to_message_id is not None else "send"
