"""A workspace's e-mail policy: one row per workspace, written only by its admins' changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, UniqueConstraint, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, UTCDateTime, utcnow
from bot.store.db import SessionFactory
from bot.store.models import SLACK_ID


class WorkspacePolicyRow(Base):
    """What a workspace's admins decided (absent: no restriction beyond the instance's settings)."""

    __tablename__ = "workspace_policies"
    __table_args__ = (UniqueConstraint("enterprise_id", "team_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(SLACK_ID), default="")
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    # IDNA (punycode) domains or *.domain patterns, lower case.
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    blocked_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_recipients: Mapped[int | None] = mapped_column(Integer)
    hourly_cap: Mapped[int | None] = mapped_column(Integer)
    confirm_outside: Mapped[bool] = mapped_column(Boolean, default=False)
    audit_channel: Mapped[str | None] = mapped_column(String(SLACK_ID))
    language: Mapped[str | None] = mapped_column(String(8))
    updated_by: Mapped[str] = mapped_column(String(SLACK_ID))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


@dataclass(frozen=True, kw_only=True)
class PolicyValues:
    allowed_domains: Sequence[str]
    blocked_domains: Sequence[str]
    max_recipients: int | None
    hourly_cap: int | None
    confirm_outside: bool
    audit_channel: str | None
    language: str | None


class PolicyRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("PolicyRepository needs a session factory bound to an AsyncEngine")
        # The worker reads the policy for every e-mail it delivers (fresh each time: a rule
        # changed a second ago applies): one prebuilt statement, and on PostgreSQL no
        # BEGIN/ROLLBACK around it, instead of an ORM session (several times the CPU).
        self._reader = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if bind.dialect.name == "postgresql"
            else bind
        )

    async def get(self, *, enterprise_id: str, team_id: str) -> WorkspacePolicyRow | None:
        """The workspace's policy as stored now, detached from any session (read it only)."""
        async with self._reader.connect() as connection:
            row = (
                (
                    await connection.execute(
                        _GET_POLICY, {"enterprise": enterprise_id, "team": team_id}
                    )
                )
                .mappings()
                .first()
            )
        return WorkspacePolicyRow(**row) if row is not None else None

    async def save(
        self, *, enterprise_id: str, team_id: str, values: PolicyValues, updated_by: str
    ) -> None:
        """Insert or update; two first saves at once: the loser updates the winner's row."""
        try:
            await self._save(
                enterprise_id=enterprise_id, team_id=team_id, values=values, updated_by=updated_by
            )
        except IntegrityError:
            await self._save(
                enterprise_id=enterprise_id, team_id=team_id, values=values, updated_by=updated_by
            )

    async def _save(
        self, *, enterprise_id: str, team_id: str, values: PolicyValues, updated_by: str
    ) -> None:
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(WorkspacePolicyRow)
                .where(
                    WorkspacePolicyRow.enterprise_id == enterprise_id,
                    WorkspacePolicyRow.team_id == team_id,
                )
                .with_for_update()
            )
            if row is None:
                row = WorkspacePolicyRow(enterprise_id=enterprise_id, team_id=team_id)
                session.add(row)
            row.allowed_domains = list(values.allowed_domains)
            row.blocked_domains = list(values.blocked_domains)
            row.max_recipients = values.max_recipients
            row.hourly_cap = values.hourly_cap
            row.confirm_outside = values.confirm_outside
            row.audit_channel = values.audit_channel
            row.language = values.language
            row.updated_by = updated_by
            row.updated_at = utcnow()


_GET_POLICY = select(*WorkspacePolicyRow.__table__.columns).where(
    WorkspacePolicyRow.enterprise_id == bindparam("enterprise"),
    WorkspacePolicyRow.team_id == bindparam("team"),
)
