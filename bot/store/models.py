"""The tables: a user's link to Bitrix24, and the outbox of e-mails with their Slack status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, UTCDateTime, utcnow

# Slack ids are short strings; enterprise_id is "" outside Enterprise Grid so the unique key works
# (NULLs never collide in a unique constraint).
SLACK_ID = 32


class Link(Base):
    """One Slack user's link to their own Bitrix24 inbound webhook."""

    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("enterprise_id", "team_id", "slack_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    portal_scheme: Mapped[str] = mapped_column(String(8), default="https")
    portal_host: Mapped[str] = mapped_column(String(255))
    b24_user_id: Mapped[int] = mapped_column(Integer)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    senders: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    senders_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sender: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return (
            f"Link(id={self.id!r}, team_id={self.team_id!r}, slack_user_id={self.slack_user_id!r}, "
            f"portal_host={self.portal_host!r}, b24_user_id={self.b24_user_id!r})"
        )


class OutboxStatus(StrEnum):
    """Where an e-mail of the outbox is: waiting, being sent under a lease, or done."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxEmail(Base):
    """An e-mail from the moment it is submitted until Bitrix24 confirms it (or it fails for good).

    The id is the Idempotency-Key sent to Bitrix24, so any number of attempts sends it once.
    The Slack status message is reconciled separately: `state_version` counts changes of the
    e-mail's state and `notified_version` the last one shown in Slack.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_notify_due", "notify_due_at"),
        Index("ix_outbox_owner_created", "team_id", "slack_user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_key: Mapped[str] = mapped_column(String(200), unique=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))

    kind: Mapped[str] = mapped_column(String(16), default="send")
    sender: Mapped[str] = mapped_column(String(400))
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    bcc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    body_source: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reply_to_message_id: Mapped[int | None] = mapped_column(BigInteger)

    result_channel: Mapped[str] = mapped_column(String(SLACK_ID))
    result_thread_ts: Mapped[str | None] = mapped_column(String(SLACK_ID))

    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    status_channel: Mapped[str | None] = mapped_column(String(SLACK_ID))
    status_ts: Mapped[str | None] = mapped_column(String(SLACK_ID))
    status_note: Mapped[str | None] = mapped_column(String(64))
    # Set just before the first status message is posted: a row with this and no status_ts
    # may have a message in Slack already (a worker died before recording it); it is looked
    # up by its metadata before anything is posted again.
    status_post_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state_version: Mapped[int] = mapped_column(Integer, default=1)
    notified_version: Mapped[int] = mapped_column(Integer, default=0)
    notify_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notify_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"OutboxEmail(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"


class EmailCard(Base):
    """An e-mail shared into a conversation as a card, so a message in its thread finds the e-mail.

    Slack would tell us the thread's parent only with channels:history, which b24mail does not ask
    for; this row answers "which e-mail is this thread about" from the card's channel and ts.
    """

    __tablename__ = "email_cards"
    __table_args__ = (UniqueConstraint("channel_id", "message_ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    channel_id: Mapped[str] = mapped_column(String(SLACK_ID))
    message_ts: Mapped[str] = mapped_column(String(SLACK_ID))
    b24_message_id: Mapped[int] = mapped_column(BigInteger)
    portal_host: Mapped[str] = mapped_column(String(255))
    shared_by: Mapped[str] = mapped_column(String(SLACK_ID))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return (
            f"EmailCard(channel_id={self.channel_id!r}, message_ts={self.message_ts!r}, "
            f"b24_message_id={self.b24_message_id!r}, portal_host={self.portal_host!r})"
        )
