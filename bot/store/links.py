"""Links between Slack users and their Bitrix24 webhooks; the webhook code is stored encrypted.

Every method takes the full SlackUser key (enterprise, team, user) taken from a verified Slack
request, never a link id from user input, so one user cannot reach another user's link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.crypto import SecretBox
from bot.store.db import SessionFactory
from bot.store.models import Link


class LinkRepository:
    def __init__(self, *, sessions: SessionFactory, box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("LinkRepository needs a session factory bound to an AsyncEngine")
        # The worker reads a link for every e-mail: one prebuilt statement, and on PostgreSQL
        # no BEGIN/ROLLBACK around it, instead of an ORM session (several times the CPU).
        self._reader = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if bind.dialect.name == "postgresql"
            else bind
        )

    async def get(self, user: SlackUser) -> Link | None:
        """The user's link, detached from any session (read it; change it through this class)."""
        return await self.get_stored(user)

    async def get_stored(self, user: SlackUser) -> Link | None:
        """get() from the database itself, whatever a subclass may cache."""
        async with self._reader.connect() as connection:
            row = (
                (
                    await connection.execute(
                        _GET_LINK,
                        {
                            "enterprise": user.enterprise_id,
                            "team": user.team_id,
                            "user": user.user_id,
                        },
                    )
                )
                .mappings()
                .first()
            )
        return Link(**row) if row is not None else None

    async def save(
        self,
        user: SlackUser,
        *,
        scheme: str,
        host: str,
        b24_user_id: int,
        secret: SecretStr,
        senders: Sequence[dict[str, Any]],
    ) -> Link:
        """Create or replace the user's link (re-running connect replaces the webhook)."""
        now = utcnow()
        async with self._sessions.begin() as session:
            link = await session.scalar(_by_user(user))
            if link is None:
                link = Link(
                    enterprise_id=user.enterprise_id,
                    team_id=user.team_id,
                    slack_user_id=user.user_id,
                    created_at=now,
                )
                session.add(link)
            link.portal_scheme = scheme
            link.portal_host = host
            link.b24_user_id = b24_user_id
            link.secret_encrypted = self._box.encrypt(secret.get_secret_value())
            link.senders = list(senders)
            link.senders_refreshed_at = now
            link.last_verified_at = now
            link.updated_at = now
            if link.last_sender and link.last_sender not in {s.get("sender") for s in senders}:
                link.last_sender = None
        return link

    async def delete(self, user: SlackUser) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(Link).where(
                    Link.enterprise_id == user.enterprise_id,
                    Link.team_id == user.team_id,
                    Link.slack_user_id == user.user_id,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def update_senders(
        self, user: SlackUser, senders: Sequence[dict[str, Any]], *, verified_at: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            link = await session.scalar(_by_user(user))
            if link is not None:
                link.senders = list(senders)
                link.senders_refreshed_at = verified_at
                link.last_verified_at = verified_at

    async def remember_sender(self, user: SlackUser, sender: str) -> None:
        async with self._sessions.begin() as session:
            link = await session.scalar(_by_user(user))
            if link is not None and link.last_sender != sender:
                link.last_sender = sender

    def secret_of(self, link: Link) -> SecretStr:
        return self._box.decrypt(link.secret_encrypted)

    async def rotate_keys(self) -> int:
        """Re-encrypt every stored secret with the first key; returns how many were rewritten."""
        count = 0
        async with self._sessions.begin() as session:
            for link in (await session.scalars(select(Link).with_for_update())).all():
                link.secret_encrypted = self._box.rotate(link.secret_encrypted)
                count += 1
        return count


_GET_LINK = select(*Link.__table__.columns).where(
    Link.enterprise_id == bindparam("enterprise"),
    Link.team_id == bindparam("team"),
    Link.slack_user_id == bindparam("user"),
)


def _by_user(user: SlackUser) -> Select[Link]:
    return select(Link).where(
        Link.enterprise_id == user.enterprise_id,
        Link.team_id == user.team_id,
        Link.slack_user_id == user.user_id,
    )
