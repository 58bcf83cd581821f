"""The tables: a user's link to Bitrix24, the outbox of e-mails with their Slack status, and a
user's drafts, signatures and templates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
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
    # Undone in the undo window, or a scheduled e-mail cancelled before its time: never sent.
    CANCELLED = "cancelled"


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
    forward_message_id: Mapped[int | None] = mapped_column(BigInteger)

    result_channel: Mapped[str] = mapped_column(String(SLACK_ID))
    result_thread_ts: Mapped[str | None] = mapped_column(String(SLACK_ID))

    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The earliest moment the e-mail may leave: the end of the undo window, or the time the
    # user chose (send_at, set only for "Send later"). Claims go by next_attempt_at, which
    # starts out equal to it; these two stay as submitted, for the status message and history.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
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


class MailSubscription(Base):
    """A user's wish to see new e-mails in Slack: what to look for, where to post, when next.

    One per Slack user (`/b24mail notify on` again replaces the words and the destination). It
    belongs to the user's link: disconnecting (or uninstalling) deletes it with the link.
    `next_due_at` orders the round robin; the lease marks a check in progress in some worker.
    """

    __tablename__ = "mail_subscriptions"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "team_id", "slack_user_id"),
        Index("ix_mail_subscriptions_due", "state", "next_due_at"),
        Index("ix_mail_subscriptions_portal", "portal_host"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"), index=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    portal_host: Mapped[str] = mapped_column(String(255))
    search: Mapped[str | None] = mapped_column(String(200))
    # None: the user's DM with the bot (its D… id is found once and kept in dm_channel_id).
    channel_id: Mapped[str | None] = mapped_column(String(SLACK_ID))
    dm_channel_id: Mapped[str | None] = mapped_column(String(SLACK_ID))
    state: Mapped[str] = mapped_column(String(16), default="active")
    pause_reason: Mapped[str | None] = mapped_column(String(64))
    pause_detail: Mapped[str | None] = mapped_column(String(255))
    owner_told: Mapped[bool] = mapped_column(Boolean, default=False)
    pauses: Mapped[int] = mapped_column(Integer, default=0)
    baseline_done: Mapped[bool] = mapped_column(Boolean, default=False)
    # E-mails of one check beyond the cards posted: one "and N more" line, posted once.
    more_count: Mapped[int] = mapped_column(Integer, default=0)
    more_token: Mapped[str | None] = mapped_column(String(36))
    more_attempts: Mapped[int] = mapped_column(Integer, default=0)
    more_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return (
            f"MailSubscription(id={self.id!r}, team_id={self.team_id!r}, "
            f"slack_user_id={self.slack_user_id!r}, state={self.state!r})"
        )


class SeenMail(Base):
    """A Bitrix24 e-mail a subscription has seen: baseline (there before it started, never
    posted), pending (to post; `token` rides in the card's metadata), posted (channel + ts), or
    more (counted in an "and N more" line). The unique pair is what makes a card post once."""

    __tablename__ = "mail_seen"
    __table_args__ = (
        UniqueConstraint("subscription_id", "b24_message_id"),
        Index("ix_mail_seen_state", "subscription_id", "state"),
        Index("ix_mail_seen_first_seen", "first_seen_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("mail_subscriptions.id", ondelete="CASCADE")
    )
    b24_message_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    token: Mapped[str | None] = mapped_column(String(36))
    # What the card shows, kept only until it is posted (no e-mail text stays in the database).
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    post_attempts: Mapped[int] = mapped_column(Integer, default=0)
    channel_id: Mapped[str | None] = mapped_column(String(SLACK_ID))
    message_ts: Mapped[str | None] = mapped_column(String(SLACK_ID))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    message_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return (
            f"SeenMail(subscription_id={self.subscription_id!r}, "
            f"b24_message_id={self.b24_message_id!r}, state={self.state!r})"
        )


class PollPacing(Base):
    """Per portal, when the next poll request may start: every worker claims checks against
    this row, so polls of all processes together stay within the poll budget."""

    __tablename__ = "mail_poll_pacing"

    portal_host: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Draft(Base):
    """A compose or reply modal closed with content. Everything typed is in `content_encrypted`
    (JSON, encrypted with the webhook's keys): recipients and body are as private as the mail."""

    __tablename__ = "drafts"
    __table_args__ = (Index("ix_drafts_owner_updated", "team_id", "slack_user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    content_encrypted: Mapped[str] = mapped_column(Text)
    # "Start a new e-mail" was chosen over it: /b24mail stops offering it (it stays listed).
    dismissed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Draft(id={self.id!r}, slack_user_id={self.slack_user_id!r})"


class Signature(Base):
    """A user's signature for one of their sender addresses, as Slack rich text (JSON)."""

    __tablename__ = "signatures"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "team_id", "slack_user_id", "sender_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    sender_email: Mapped[str] = mapped_column(String(320))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the rich_text block
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Signature(slack_user_id={self.slack_user_id!r}, sender={self.sender_email!r})"


class Template(Base):
    """A user's named subject and body, to start an e-mail from."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("enterprise_id", "team_id", "slack_user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    name: Mapped[str] = mapped_column(String(75))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the rich_text block
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Template(id={self.id!r}, name={self.name!r})"
