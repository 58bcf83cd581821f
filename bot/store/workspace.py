"""Everything stored about one Slack workspace, removed in one transaction.

The Slack installation tables are built with slack_sdk's table builders in the Slack layer
(bot/slack/installation_tables.py), which this layer may not import: their deletions come in
as statements through InstallationRows, and run in the same transaction as ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Delete, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable

from bot.store.audit import AuditPost, AuditRecord
from bot.store.confirmations import PendingSend
from bot.store.db import SessionFactory
from bot.store.models import Draft, EmailCard, Link, Signature, Template
from bot.store.policy import WorkspacePolicyRow
from bot.store.preferences import UserPreference


class InstallationRows(Protocol):
    """Deletions of Slack installation rows (OAuth mode), keyed as slack_sdk keys them."""

    def of_workspace(
        self, *, enterprise_id: str | None, team_id: str | None
    ) -> Sequence[Executable]:
        """The workspace's bot and every installation in it."""
        ...

    def of_tokens(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_ids: Sequence[str],
        bot: bool,
    ) -> Sequence[Executable]:
        """The installations of `user_ids`, and the bot when `bot`."""
        ...


@dataclass(frozen=True)
class RemovedRows:
    links: int
    cards: int
    preferences: int
    policies: int = 0
    audit_records: int = 0
    writing: int = 0  # drafts, signatures and templates


class WorkspaceRepository:
    def __init__(
        self, *, sessions: SessionFactory, installations: InstallationRows | None = None
    ) -> None:
        self._sessions = sessions
        self._installations = installations

    @property
    def keeps_installations(self) -> bool:
        return self._installations is not None

    async def delete_workspace(
        self, *, enterprise_id: str | None, team_id: str | None
    ) -> RemovedRows:
        """Installation, links, e-mail cards, preferences, e-mail policy, audit log (with its
        unposted channel lines), e-mails held for confirmation, drafts, signatures and templates
        of a workspace (of a whole org install when team_id is None), all or nothing."""
        ours = enterprise_id or ""  # b24mail's tables key non-Grid workspaces with ""
        async with self._sessions.begin() as session:
            removed = RemovedRows(
                links=await _count(session, _of_team(delete(Link), Link, ours, team_id)),
                cards=await _count(session, _of_team(delete(EmailCard), EmailCard, ours, team_id)),
                preferences=await _count(
                    session, _of_team(delete(UserPreference), UserPreference, ours, team_id)
                ),
                policies=await _count(
                    session,
                    _of_team(delete(WorkspacePolicyRow), WorkspacePolicyRow, ours, team_id),
                ),
                audit_records=await _count(
                    session, _of_team(delete(AuditRecord), AuditRecord, ours, team_id)
                ),
                writing=sum(
                    [
                        await _count(session, _of_team(delete(model), model, ours, team_id))
                        for model in (Draft, Signature, Template)
                    ]
                ),
            )
            await session.execute(_of_team(delete(AuditPost), AuditPost, ours, team_id))
            await session.execute(_of_team(delete(PendingSend), PendingSend, ours, team_id))
            if self._installations is not None:
                for statement in self._installations.of_workspace(
                    enterprise_id=enterprise_id, team_id=team_id
                ):
                    await session.execute(statement)
        return removed

    async def delete_tokens(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_ids: Sequence[str],
        bot: bool,
    ) -> None:
        """The installation rows of revoked tokens, all or nothing; no-op without installations."""
        if self._installations is None:
            return
        statements = self._installations.of_tokens(
            enterprise_id=enterprise_id, team_id=team_id, user_ids=user_ids, bot=bot
        )
        async with self._sessions.begin() as session:
            for statement in statements:
                await session.execute(statement)


def _of_team(
    statement: Delete,
    model: type[Link]
    | type[EmailCard]
    | type[UserPreference]
    | type[WorkspacePolicyRow]
    | type[AuditRecord]
    | type[AuditPost]
    | type[PendingSend]
    | type[Draft]
    | type[Signature]
    | type[Template],
    enterprise_id: str,
    team_id: str | None,
) -> Delete:
    statement = statement.where(model.enterprise_id == enterprise_id)
    return statement if team_id is None else statement.where(model.team_id == team_id)


async def _count(session: AsyncSession, statement: Delete) -> int:
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
