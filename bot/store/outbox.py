"""The outbox: durable e-mails, claimed by workers under a lease, and their pending Slack status.

Claims are one UPDATE … RETURNING over a sub-select of due rows. On PostgreSQL the sub-select
takes `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row; SQLite runs one
writer at a time, which gives the same guarantee. A row whose lease ran out (its worker died) is
due again; the Idempotency-Key (the row id) makes the second attempt safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.base import utcnow
from bot.store.db import SessionFactory
from bot.store.links import SlackUser
from bot.store.listen import OUTBOX_CHANNEL
from bot.store.models import OutboxEmail

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class NewEmail:
    submission_key: str
    user: SlackUser
    sender: str
    to: Sequence[str]
    subject: str
    body_html: str
    result_channel: str
    deadline: datetime
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    kind: str = "send"
    body_source: dict[str, Any] | None = None
    reply_to_message_id: int | None = None
    result_thread_ts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class OutboxRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    # --- writing e-mails ------------------------------------------------------------------

    async def enqueue(self, new: NewEmail) -> tuple[OutboxEmail, bool]:
        """Store a submitted e-mail; a second delivery of the same submission returns the first."""
        now = utcnow()
        row = OutboxEmail(
            id=str(uuid.uuid4()),
            submission_key=new.submission_key,
            enterprise_id=new.user.enterprise_id,
            team_id=new.user.team_id,
            slack_user_id=new.user.user_id,
            kind=new.kind,
            sender=new.sender,
            to_addrs=list(new.to),
            cc_addrs=list(new.cc),
            bcc_addrs=list(new.bcc),
            subject=new.subject,
            body_html=new.body_html,
            body_source=new.body_source,
            reply_to_message_id=new.reply_to_message_id,
            result_channel=new.result_channel,
            result_thread_ts=new.result_thread_ts,
            status=QUEUED,
            attempts=0,
            next_attempt_at=now,
            deadline_at=new.deadline,
            created_at=now,
            updated_at=now,
            state_version=1,
            notified_version=0,
            notify_due_at=now,
            notify_attempts=0,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await _notify_workers(session, row.id)
        except IntegrityError:
            async with self._sessions() as session:
                existing = await session.scalar(
                    select(OutboxEmail).where(OutboxEmail.submission_key == new.submission_key)
                )
            if existing is None:
                raise
            return existing, False
        return row, True

    async def claim_due(
        self, *, owner: str, lease: timedelta, limit: int, now: datetime | None = None
    ) -> list[OutboxEmail]:
        now = now or utcnow()
        due = or_(
            and_(OutboxEmail.status == QUEUED, OutboxEmail.next_attempt_at <= now),
            and_(OutboxEmail.status == SENDING, OutboxEmail.lease_expires_at <= now),
        )
        async with self._sessions.begin() as session:
            candidates = (
                select(OutboxEmail.id).where(due).order_by(OutboxEmail.next_attempt_at).limit(limit)
            )
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            statement = (
                update(OutboxEmail)
                .where(OutboxEmail.id.in_(candidates.scalar_subquery()), due)
                .values(
                    status=SENDING,
                    lease_owner=owner,
                    lease_expires_at=now + lease,
                    attempts=OutboxEmail.attempts + 1,
                    updated_at=now,
                )
                .returning(OutboxEmail)
                .execution_options(synchronize_session=False)
            )
            return list((await session.scalars(statement)).all())

    async def next_due_at(self) -> datetime | None:
        """When the earliest queued e-mail or expiring lease is due (to sleep exactly that long)."""
        async with self._sessions() as session:
            queued = await session.scalar(
                select(func.min(OutboxEmail.next_attempt_at)).where(OutboxEmail.status == QUEUED)
            )
            leased = await session.scalar(
                select(func.min(OutboxEmail.lease_expires_at)).where(OutboxEmail.status == SENDING)
            )
        times = [t for t in (queued, leased) if t is not None]
        return min(times) if times else None

    async def mark_sent(self, email_id: str, *, owner: str) -> bool:
        now = utcnow()
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": SENT,
                "sent_at": now,
                "error_code": None,
                "error_detail": None,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    async def mark_retry(
        self, email_id: str, *, owner: str, at: datetime, code: str, detail: str | None
    ) -> bool:
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": QUEUED,
                "next_attempt_at": at,
                "error_code": code,
                "error_detail": detail,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    async def mark_failed(
        self, email_id: str, *, owner: str, code: str, detail: str | None
    ) -> bool:
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": FAILED,
                "error_code": code,
                "error_detail": detail,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    async def release(self, email_id: str, *, owner: str) -> bool:
        """Give a claimed row back untouched (graceful shutdown before the call was made)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.lease_owner == owner)
                .values(
                    status=QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=OutboxEmail.attempts - 1,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def _transition(self, email_id: str, *, owner: str, values: dict[str, Any]) -> bool:
        """Record an outcome, but only while we still hold the lease (else another worker does)."""
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(
                    OutboxEmail.id == email_id,
                    OutboxEmail.status == SENDING,
                    OutboxEmail.lease_owner == owner,
                )
                .values(
                    **values,
                    updated_at=now,
                    state_version=OutboxEmail.state_version + 1,
                    notify_due_at=now,
                    notify_attempts=0,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def requeue(self, email_id: str, user: SlackUser, *, deadline: datetime) -> bool:
        """The Retry button: the same row (same key) goes back to the queue; owner only."""
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.status == FAILED, *_owned_by(user))
                .values(
                    status=QUEUED,
                    next_attempt_at=now,
                    deadline_at=deadline,
                    attempts=0,
                    error_code=None,
                    error_detail=None,
                    updated_at=now,
                    state_version=OutboxEmail.state_version + 1,
                    notify_due_at=now,
                    notify_attempts=0,
                )
            )
            await _notify_workers(session, email_id)
        return bool(getattr(result, "rowcount", 0))

    # --- reading ------------------------------------------------------------------------------

    async def get(self, email_id: str) -> OutboxEmail | None:
        async with self._sessions() as session:
            return await session.get(OutboxEmail, email_id)

    async def get_owned(self, email_id: str, user: SlackUser) -> OutboxEmail | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(OutboxEmail).where(OutboxEmail.id == email_id, *_owned_by(user))
            )

    async def history(self, user: SlackUser, *, limit: int = 10) -> list[OutboxEmail]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OutboxEmail)
                .where(*_owned_by(user))
                .order_by(OutboxEmail.created_at.desc())
                .limit(limit)
            )
            return list(rows.all())

    async def count_since(self, user: SlackUser, since: datetime) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxEmail)
                .where(*_owned_by(user), OutboxEmail.created_at >= since)
            )
        return int(count or 0)

    async def queue_depth(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxEmail)
                .where(OutboxEmail.status.in_((QUEUED, SENDING)))
            )
        return int(count or 0)

    # --- the Slack status message ------------------------------------------------------------

    async def claim_notifications(
        self, *, lease: timedelta, limit: int, now: datetime | None = None
    ) -> list[OutboxEmail]:
        """Rows whose status message is behind their state; each is held for `lease`."""
        now = now or utcnow()
        due = and_(
            OutboxEmail.notify_due_at <= now,
            OutboxEmail.notified_version < OutboxEmail.state_version,
            or_(OutboxEmail.notify_lease_until.is_(None), OutboxEmail.notify_lease_until <= now),
        )
        async with self._sessions.begin() as session:
            candidates = (
                select(OutboxEmail.id).where(due).order_by(OutboxEmail.notify_due_at).limit(limit)
            )
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            statement = (
                update(OutboxEmail)
                .where(OutboxEmail.id.in_(candidates.scalar_subquery()), due)
                .values(
                    notify_lease_until=now + lease, notify_attempts=OutboxEmail.notify_attempts + 1
                )
                .returning(OutboxEmail)
                .execution_options(synchronize_session=False)
            )
            return list((await session.scalars(statement)).all())

    async def mark_notified(
        self,
        email_id: str,
        *,
        version: int,
        channel: str,
        ts: str,
        note: str | None,
    ) -> None:
        """Remember which state the status message shows; newer states stay pending."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(
                    status_channel=channel,
                    status_ts=ts,
                    status_note=note,
                    notified_version=func.max(OutboxEmail.notified_version, version)
                    if session.bind is not None and session.bind.dialect.name == "sqlite"
                    else func.greatest(OutboxEmail.notified_version, version),
                    notify_lease_until=None,
                    notify_attempts=0,
                )
            )

    async def notify_later(self, email_id: str, *, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(notify_due_at=at, notify_lease_until=None)
            )

    async def next_notification_at(self) -> datetime | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(func.min(OutboxEmail.notify_due_at)).where(
                    OutboxEmail.notified_version < OutboxEmail.state_version
                )
            )


async def _notify_workers(session: AsyncSession, email_id: str) -> None:
    """On PostgreSQL, wake workers in other processes; delivered when this transaction commits."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, email_id)))


def _owned_by(user: SlackUser) -> tuple[Any, ...]:
    return (
        OutboxEmail.enterprise_id == user.enterprise_id,
        OutboxEmail.team_id == user.team_id,
        OutboxEmail.slack_user_id == user.user_id,
    )
