"""E-mail cards posted in Slack: which Bitrix24 e-mail a card (and so its thread) is about."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.store.base import utcnow
from bot.store.db import SessionFactory
from bot.store.models import EmailCard


@dataclass(frozen=True, kw_only=True)
class NewCard:
    enterprise_id: str
    team_id: str
    channel_id: str
    message_ts: str
    b24_message_id: int
    portal_host: str
    shared_by: str


class CardRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def record(self, card: NewCard) -> None:
        """Remember a posted card; recording the same message twice keeps the first row."""
        row = EmailCard(
            enterprise_id=card.enterprise_id,
            team_id=card.team_id,
            channel_id=card.channel_id,
            message_ts=card.message_ts,
            b24_message_id=card.b24_message_id,
            portal_host=card.portal_host,
            shared_by=card.shared_by,
            created_at=utcnow(),
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            # Slack gives every message its own ts, so only a repeated record lands here.
            return

    async def find(self, channel_id: str, message_ts: Sequence[str]) -> EmailCard | None:
        """The card posted as any of `message_ts` in the channel (a message's ts, its thread's)."""
        candidates = [ts for ts in message_ts if ts]
        if not channel_id or not candidates:
            return None
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(EmailCard).where(
                        EmailCard.channel_id == channel_id, EmailCard.message_ts.in_(candidates)
                    )
                )
            ).all()
        by_ts = {row.message_ts: row for row in rows}
        # The message itself wins over its thread's parent (a card is never inside a thread).
        return next((by_ts[ts] for ts in candidates if ts in by_ts), None)
