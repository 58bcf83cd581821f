"""A user's writing aids: drafts of closed modals, signatures per sender, and templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, UTCDateTime, utcnow
from bot.store.models import SLACK_ID


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
