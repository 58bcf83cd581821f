"""The audit log: an append-only record of e-mails that left and of policy changes.

Nothing here updates or deletes an audit record except `prune` (the retention period) and
the workspace's removal (bot/store/workspace.py, when it uninstalls b24mail). Posting a record's line in the workspace's
audit channel is a separate, disposable piece of work (`audit_posts`), claimed under a lease
like the outbox's rows and deleted once posted, so the record itself is never touched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, UTCDateTime, utcnow
from bot.store.db import SessionFactory
from bot.store.models import SLACK_ID, OutboxEmail, OutboxStatus

EMAIL = "email"
POLICY = "policy"

EXPORT_BATCH = 500


class AuditRecord(Base):
    """One e-mail that left (delivered or failed for good) or one policy change. Never a body."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_team_occurred", "team_id", "occurred_at"),
        Index("ix_audit_records_occurred", "occurred_at"),
        # One record per e-mail: the worker's record and the reconciling sweep (which writes what
        # a crash between "sent" and "recorded" left out) may race; the second insert loses.
        Index("uq_audit_records_email_id", "email_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    kind: Mapped[str] = mapped_column(String(16))  # email | policy
    actor: Mapped[str] = mapped_column(String(SLACK_ID))  # the Slack user who sent or changed
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    email_id: Mapped[str | None] = mapped_column(String(36))
    sender: Mapped[str | None] = mapped_column(String(400))
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    bcc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(80))  # sent | failed:<code> | changed
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a policy before and after


class AuditPost(Base):
    """A record's line still to be posted in the workspace's audit channel."""

    __tablename__ = "audit_posts"
    __table_args__ = (Index("ix_audit_posts_due", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[int] = mapped_column(Integer)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    channel: Mapped[str] = mapped_column(String(SLACK_ID))
    language: Mapped[str | None] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True, kw_only=True)
class NewAuditRecord:
    enterprise_id: str
    team_id: str
    kind: str
    actor: str
    outcome: str
    email_id: str | None = None
    sender: str | None = None
    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    subject: str | None = None
    detail: dict[str, Any] | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PostTarget:
    channel: str
    language: str | None = None


@dataclass(frozen=True)
class ClaimedPost:
    post_id: int
    channel: str
    language: str | None
    attempts: int
    record: AuditRecord


class AuditRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("AuditRepository needs a session factory bound to an AsyncEngine")
        self._engine = bind
        # The worker writes a record for every e-mail that leaves: a prebuilt Core insert, and
        # on PostgreSQL a lone insert (no channel post) needs no BEGIN/COMMIT around it.
        self._single = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if bind.dialect.name == "postgresql"
            else bind
        )

    async def append(self, new: NewAuditRecord, *, post: PostTarget | None = None) -> int | None:
        """Insert a record (and its channel post, in the same transaction); returns its id, or
        None when the e-mail already has its record (then nothing is written)."""
        try:
            return await self._append(new, post=post)
        except IntegrityError:
            if new.email_id is None:
                raise
            return None

    async def _append(self, new: NewAuditRecord, *, post: PostTarget | None) -> int:
        now = utcnow()
        record = {
            "enterprise_id": new.enterprise_id,
            "team_id": new.team_id,
            "kind": new.kind,
            "actor": new.actor,
            "occurred_at": new.occurred_at or now,
            "email_id": new.email_id,
            "sender": new.sender,
            "to_addrs": list(new.to),
            "cc_addrs": list(new.cc),
            "bcc_addrs": list(new.bcc),
            "subject": new.subject,
            "outcome": new.outcome,
            "detail": new.detail,
        }
        async with (self._engine if post is not None else self._single).begin() as connection:
            result = await connection.execute(_INSERT_RECORD, record)
            record_id = int(result.scalar_one())
            if post is not None:
                await connection.execute(
                    _INSERT_POST,
                    {
                        "audit_id": record_id,
                        "enterprise_id": new.enterprise_id,
                        "team_id": new.team_id,
                        "channel": post.channel,
                        "language": post.language,
                        "attempts": 0,
                        "due_at": now,
                    },
                )
        return record_id

    async def unrecorded_emails(
        self,
        *,
        settled_between: tuple[datetime, datetime],
        excluded_codes: Sequence[str],
        limit: int = EXPORT_BATCH,
    ) -> list[OutboxEmail]:
        """E-mails that reached a final state in the window but have no audit record."""
        start, end = settled_between
        recorded = select(AuditRecord.id).where(AuditRecord.email_id == OutboxEmail.id)
        statement = (
            select(OutboxEmail)
            .where(
                OutboxEmail.status.in_((OutboxStatus.SENT, OutboxStatus.FAILED)),
                OutboxEmail.updated_at >= start,
                OutboxEmail.updated_at < end,
                or_(
                    OutboxEmail.error_code.is_(None), OutboxEmail.error_code.not_in(excluded_codes)
                ),
                ~recorded.exists(),
            )
            .order_by(OutboxEmail.updated_at)
            .limit(limit)
        )
        async with self._sessions() as session:
            return list(await session.scalars(statement))

    # --- the audit channel's queue --------------------------------------------------------

    async def claim_posts(self, *, lease: timedelta, limit: int) -> list[ClaimedPost]:
        """Take due posts under a lease (SKIP LOCKED on PostgreSQL; SQLite has one writer)."""
        now = utcnow()
        due = (
            select(AuditPost.id)
            .where(
                AuditPost.due_at <= now,
                or_(AuditPost.lease_until.is_(None), AuditPost.lease_until < now),
            )
            .order_by(AuditPost.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._sessions.begin() as session:
            claimed = (
                await session.execute(
                    update(AuditPost)
                    .where(AuditPost.id.in_(due.scalar_subquery()))
                    .values(lease_until=now + lease, attempts=AuditPost.attempts + 1)
                    .returning(
                        AuditPost.id,
                        AuditPost.audit_id,
                        AuditPost.channel,
                        AuditPost.language,
                        AuditPost.attempts,
                    )
                )
            ).all()
            if not claimed:
                return []
            records = {
                r.id: r
                for r in await session.scalars(
                    select(AuditRecord).where(AuditRecord.id.in_([c.audit_id for c in claimed]))
                )
            }
        return [
            ClaimedPost(c.id, c.channel, c.language, c.attempts, records[c.audit_id])
            for c in claimed
            if c.audit_id in records
        ]

    async def posted(self, post_id: int) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(AuditPost).where(AuditPost.id == post_id))

    async def post_later(self, post_id: int, *, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(AuditPost).where(AuditPost.id == post_id).values(due_at=at, lease_until=None)
            )

    async def next_post_due(self) -> datetime | None:
        async with self._sessions() as session:
            found: datetime | None = await session.scalar(
                select(AuditPost.due_at).order_by(AuditPost.due_at).limit(1)
            )
            return found

    async def pending_posts(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count(AuditPost.id))) or 0)

    # --- reading ---------------------------------------------------------------------------

    async def records(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        team_id: str | None = None,
        batch: int = EXPORT_BATCH,
    ) -> AsyncIterator[AuditRecord]:
        """Records from `since` (inclusive) in id order, read in batches (an export may be big)."""
        after = 0
        while True:
            statement = (
                select(AuditRecord)
                .where(AuditRecord.id > after, AuditRecord.occurred_at >= since)
                .order_by(AuditRecord.id)
                .limit(batch)
            )
            if until is not None:
                statement = statement.where(AuditRecord.occurred_at < until)
            if team_id is not None:
                statement = statement.where(AuditRecord.team_id == team_id)
            async with self._sessions() as session:
                rows = list(await session.scalars(statement))
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            after = rows[-1].id

    # --- the only delete here: retention (an uninstall's is bot/store/workspace.py) ---------

    async def prune(self, *, before: datetime) -> int:
        """Delete records older than `before` (the retention period), with their pending posts."""
        old = select(AuditRecord.id).where(AuditRecord.occurred_at < before)
        async with self._sessions.begin() as session:
            await session.execute(delete(AuditPost).where(AuditPost.audit_id.in_(old)))
            result = await session.execute(
                delete(AuditRecord).where(AuditRecord.occurred_at < before)
            )
        return int(getattr(result, "rowcount", 0) or 0)


_INSERT_RECORD = insert(AuditRecord).returning(AuditRecord.id)
_INSERT_POST = insert(AuditPost)

__all__ = [
    "EMAIL",
    "POLICY",
    "AuditPost",
    "AuditRecord",
    "AuditRepository",
    "ClaimedPost",
    "NewAuditRecord",
    "PostTarget",
]
