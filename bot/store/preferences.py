"""Per-user preferences: the chosen language, and the Slack locale and time zone we cached."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Select, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.identity import SlackUser
from bot.store.base import Base, UTCDateTime, utcnow
from bot.store.db import SessionFactory
from bot.store.models import SLACK_ID


class UserPreference(Base):
    """What we know of a Slack user's language and time zone (no secrets here)."""

    __tablename__ = "user_preferences"
    __table_args__ = (UniqueConstraint("enterprise_id", "team_id", "slack_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    language: Mapped[str | None] = mapped_column(String(8))  # "en", "ru", or None for auto
    slack_locale: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    tz_offset: Mapped[int | None] = mapped_column(Integer)
    profile_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class PreferenceRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def get(self, user: SlackUser) -> UserPreference | None:
        async with self._sessions() as session:
            return await session.scalar(_by_user(user))

    async def set_language(self, user: SlackUser, language: str | None) -> None:
        async with self._sessions.begin() as session:
            row = await session.scalar(_by_user(user)) or _new(session, user)
            row.language = language

    async def remember_profile(
        self, user: SlackUser, *, locale: str | None, time_zone: str | None, tz_offset: int | None
    ) -> None:
        async with self._sessions.begin() as session:
            row = await session.scalar(_by_user(user)) or _new(session, user)
            row.slack_locale = locale
            row.time_zone = time_zone
            row.tz_offset = tz_offset
            row.profile_refreshed_at = utcnow()


def _new(session: AsyncSession, user: SlackUser) -> UserPreference:
    row = UserPreference(
        enterprise_id=user.enterprise_id, team_id=user.team_id, slack_user_id=user.user_id
    )
    session.add(row)
    return row


def _by_user(user: SlackUser) -> Select[UserPreference]:
    return select(UserPreference).where(
        UserPreference.enterprise_id == user.enterprise_id,
        UserPreference.team_id == user.team_id,
        UserPreference.slack_user_id == user.user_id,
    )
