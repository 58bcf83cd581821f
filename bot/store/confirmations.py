"""E-mails waiting for their sender's "send outside the allowed domains?" confirmation.

Slack's confirm view is pushed over the compose modal and its submission carries none of the
modal's values, so the checked e-mail waits here, keyed by a random id the confirm view holds.
Taken once (deleted as it is read), by its own sender only; an hour later it is pruned.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.identity import SlackUser
from bot.store.base import Base, UTCDateTime, utcnow
from bot.store.db import SessionFactory
from bot.store.models import SLACK_ID


class PendingSend(Base):
    __tablename__ = "pending_sends"
    __table_args__ = (Index("ix_pending_sends_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PendingSendRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def hold(self, user: SlackUser, payload: dict[str, Any]) -> str:
        key = str(uuid.uuid4())
        async with self._sessions.begin() as session:
            session.add(
                PendingSend(
                    id=key,
                    enterprise_id=user.enterprise_id,
                    team_id=user.team_id,
                    slack_user_id=user.user_id,
                    payload=payload,
                    created_at=utcnow(),
                )
            )
        return key

    async def take(
        self, key: str, user: SlackUser, *, newer_than: datetime
    ) -> dict[str, Any] | None:
        """The payload held under `key` for this user (then gone), or None."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(PendingSend)
                .where(
                    PendingSend.id == key,
                    PendingSend.enterprise_id == user.enterprise_id,
                    PendingSend.team_id == user.team_id,
                    PendingSend.slack_user_id == user.user_id,
                )
                .with_for_update()
            )
            if row is None:
                return None
            await session.delete(row)
            return dict(row.payload) if row.created_at > newer_than else None

    async def prune(self, *, before: datetime) -> int:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(PendingSend).where(PendingSend.created_at < before)
            )
        return int(getattr(result, "rowcount", 0) or 0)
