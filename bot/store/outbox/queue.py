"""The delivery queue: durable e-mails, claimed by workers under a lease, and their outcomes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.listen import OUTBOX_CHANNEL
from bot.store.models import OutboxEmail, OutboxStatus
from bot.store.outbox.statements import (
    COUNT_SINCE,
    INSERT,
    NEXT_LEASE_END,
    NEXT_QUEUED,
    NOTIFY,
    TABLE,
    OutboxConnections,
    claim_statement,
    transition_statement,
)


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
    forward_message_id: int | None = None
    result_thread_ts: str | None = None
    # Not before this moment (the undo window's end, or the chosen time); None: at once.
    not_before: datetime | None = None
    send_at: datetime | None = None  # set when the user chose the time (Send later)
    extra: dict[str, Any] = field(default_factory=dict)


class DeliveryQueue(OutboxConnections):
    """The e-mails themselves: queued, claimed by workers under a lease, and their outcomes.

    The worker's hot statements and the submission's insert are prebuilt (see ``statements``).
    """

    # --- writing e-mails ------------------------------------------------------------------

    async def enqueue(
        self, new: NewEmail, *, hourly_cap: int | None = None
    ) -> tuple[OutboxEmail, bool]:
        """Store a submitted e-mail; a second delivery of the same submission returns the first.

        With `hourly_cap`, raises CapReached when the user already queued that many in the last
        hour, counted in the inserting transaction under a per-user lock (see _check_cap).
        """
        now = utcnow()
        due = new.not_before or now
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
            forward_message_id=new.forward_message_id,
            result_channel=new.result_channel,
            result_thread_ts=new.result_thread_ts,
            status=OutboxStatus.QUEUED,
            attempts=0,
            next_attempt_at=due,
            not_before=new.not_before,
            send_at=new.send_at,
            deadline_at=new.deadline,
            created_at=now,
            updated_at=now,
            state_version=1,
            notified_version=0,
            notify_due_at=now,
            notify_attempts=0,
        )
        values = {
            column.key: row.__dict__[column.key]
            for column in TABLE.columns
            if column.key in row.__dict__
        }
        try:
            async with self._engine.begin() as connection:
                if hourly_cap is not None:
                    await _check_cap(
                        connection, new.user, hourly_cap, since=now - timedelta(hours=1)
                    )
                await connection.execute(INSERT, values)
                await _notify_workers_core(connection, row.id)
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
        async with self._one_statement() as connection:
            statement = claim_statement("due", connection.dialect.name == "postgresql")
            result = await connection.execute(
                statement, {"now": now, "until": now + lease, "owner": owner, "limit": limit}
            )
            return [OutboxEmail(**row._mapping) for row in result]

    async def next_due_at(self) -> datetime | None:
        """When the earliest queued e-mail or expiring lease is due (to sleep exactly that long)."""
        async with self._engine.connect() as connection:
            queued = await connection.scalar(NEXT_QUEUED)
            leased = await connection.scalar(NEXT_LEASE_END)
        times = [t for t in (queued, leased) if t is not None]
        return min(times) if times else None

    async def mark_sent(self, email_id: str, *, owner: str) -> bool:
        now = utcnow()
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": OutboxStatus.SENT,
                "sent_at": now,
                "error_code": None,
                "error_detail": None,
            },
        )

    async def mark_retry(
        self, email_id: str, *, owner: str, at: datetime, code: str, detail: str | None
    ) -> bool:
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": OutboxStatus.QUEUED,
                "next_attempt_at": at,
                "error_code": code,
                "error_detail": detail,
            },
        )

    async def mark_failed(
        self, email_id: str, *, owner: str, code: str, detail: str | None
    ) -> bool:
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": OutboxStatus.FAILED,
                "error_code": code,
                "error_detail": detail,
            },
        )

    async def release(self, email_id: str, *, owner: str) -> bool:
        """Give a claimed row back untouched (graceful shutdown before the call was made)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.lease_owner == owner)
                .values(
                    status=OutboxStatus.QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=OutboxEmail.attempts - 1,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def _transition(self, email_id: str, *, owner: str, values: dict[str, Any]) -> bool:
        """Record an outcome and end our lease, only while we hold it (else another worker does)."""
        values = {**values, "lease_owner": None, "lease_expires_at": None}
        params = {f"v_{key}": value for key, value in values.items()}
        params.update(email_id=email_id, owner=owner, now=utcnow())
        async with self._one_statement() as connection:
            result = await connection.execute(transition_statement(frozenset(values)), params)
        return bool(result.rowcount)

    async def requeue(self, email_id: str, user: SlackUser, *, deadline: datetime) -> bool:
        """The Retry button: the same row (same key) goes back to the queue; owner only."""
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(
                    OutboxEmail.id == email_id,
                    OutboxEmail.status == OutboxStatus.FAILED,
                    *_owned_by(user),
                )
                .values(
                    status=OutboxStatus.QUEUED,
                    next_attempt_at=now,
                    # It went to the portal before: no more undo window, nothing to cancel.
                    not_before=None,
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

    async def cancel(self, email_id: str, user: SlackUser) -> bool:
        """Undo or cancel: queued → cancelled, only if no worker ever claimed it; owner only.

        One conditional UPDATE, like the claim (status = queued there too), so when both race
        for the row exactly one changes it: SQLite runs one writer at a time; on PostgreSQL the
        loser waits for the winner's row lock and then sees a status that no longer matches (or
        the claim skips the row the cancel has locked). `attempts = 0` keeps a row that went to
        the portal once (and waits for a retry) from being reported as never sent, and a row
        without `not_before` (no undo window, or queued again by Retry) is never cancelled.
        """
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(
                    OutboxEmail.id == email_id,
                    OutboxEmail.status == OutboxStatus.QUEUED,
                    OutboxEmail.attempts == 0,
                    OutboxEmail.not_before.is_not(None),
                    *_owned_by(user),
                )
                .values(
                    status=OutboxStatus.CANCELLED,
                    cancelled_at=now,
                    updated_at=now,
                    state_version=OutboxEmail.state_version + 1,
                    notify_due_at=now,
                    notify_attempts=0,
                )
            )
            if getattr(result, "rowcount", 0):
                # The worker's notifier (maybe in another process) shows "Cancelled" at once.
                await _notify_workers(session, email_id)
        return bool(getattr(result, "rowcount", 0))

    async def send_now(self, email_id: str, user: SlackUser) -> bool:
        """A waiting e-mail becomes due at once (Send now); owner only, not yet claimed."""
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(
                    OutboxEmail.id == email_id,
                    OutboxEmail.status == OutboxStatus.QUEUED,
                    OutboxEmail.attempts == 0,
                    *_owned_by(user),
                )
                .values(
                    next_attempt_at=now,
                    not_before=now,
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

    async def scheduled(self, user: SlackUser, *, limit: int = 20) -> list[OutboxEmail]:
        """The user's e-mails waiting for the time they chose, soonest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OutboxEmail)
                .where(
                    *_owned_by(user),
                    OutboxEmail.status == OutboxStatus.QUEUED,
                    OutboxEmail.attempts == 0,
                    OutboxEmail.send_at.is_not(None),
                )
                .order_by(OutboxEmail.next_attempt_at)
                .limit(limit)
            )
            return list(rows.all())

    async def count_since(self, user: SlackUser, since: datetime) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                COUNT_SINCE,
                {
                    "enterprise_id": user.enterprise_id,
                    "team_id": user.team_id,
                    "user_id": user.user_id,
                    "since": since,
                },
            )
        return int(count or 0)

    async def queue_depth(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxEmail)
                .where(OutboxEmail.status.in_((OutboxStatus.QUEUED, OutboxStatus.SENDING)))
            )
        return int(count or 0)


async def _notify_workers(session: AsyncSession, email_id: str) -> None:
    """On PostgreSQL, wake workers in other processes; delivered when this transaction commits."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, email_id)))


async def _notify_workers_core(connection: AsyncConnection, email_id: str) -> None:
    if connection.dialect.name == "postgresql":
        await connection.execute(NOTIFY, {"email_id": email_id})


class CapReached(Exception):
    """The user's hourly sending cap is reached."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"hourly cap of {cap} reached")
        self.cap = cap


async def _check_cap(
    connection: AsyncConnection, user: SlackUser, cap: int, *, since: datetime
) -> None:
    """Count the user's e-mails of the last hour inside the inserting transaction.

    On PostgreSQL a transaction-scoped advisory lock per user makes concurrent submissions, in
    any number of web processes, count one after the other. SQLite has one writer (one process).
    """
    if connection.dialect.name == "postgresql":
        key = f"b24mail-cap:{user.enterprise_id}:{user.team_id}:{user.user_id}"
        await connection.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    count = await connection.scalar(
        select(func.count())
        .select_from(OutboxEmail)
        .where(
            *_owned_by(user),
            OutboxEmail.created_at >= since,
            OutboxEmail.status != OutboxStatus.CANCELLED,
        )
    )
    if int(count or 0) >= cap:
        raise CapReached(cap)


def _owned_by(user: SlackUser) -> tuple[Any, ...]:
    return (
        OutboxEmail.enterprise_id == user.enterprise_id,
        OutboxEmail.team_id == user.team_id,
        OutboxEmail.slack_user_id == user.user_id,
    )
