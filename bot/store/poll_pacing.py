"""Claims of mailbox checks, paced per portal so polls of every worker share one budget.

A check is claimed like an outbox row: one transaction picks the subscription due longest ago
whose portal has a free poll slot (PostgreSQL: `FOR UPDATE … SKIP LOCKED` on both rows, so
several workers never take the same check or the same slot; SQLite runs one process), leases
it, and moves the portal's slot on by one request's share of the poll budget (`spacing`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.db import SessionFactory
from bot.store.models import MailSubscription, PollPacing

ACTIVE = "active"


class PollClaims:
    _sessions: SessionFactory

    async def claim(
        self, *, owner: str, now: datetime, lease: timedelta, spacing: timedelta
    ) -> MailSubscription | None:
        """Lease the check due longest ago on a portal with a free poll slot, and take the slot."""
        try:
            return await self._claim(owner=owner, now=now, lease=lease, spacing=spacing)
        except _Lost:
            return None

    async def _claim(
        self, *, owner: str, now: datetime, lease: timedelta, spacing: timedelta
    ) -> MailSubscription | None:
        async with self._sessions.begin() as session:
            postgres = _is_postgres(session)
            candidates = (
                select(MailSubscription, PollPacing)
                .join(PollPacing, PollPacing.portal_host == MailSubscription.portal_host)
                .where(
                    MailSubscription.state == ACTIVE,
                    MailSubscription.next_due_at <= now,
                    or_(
                        MailSubscription.lease_until.is_(None), MailSubscription.lease_until <= now
                    ),
                    PollPacing.next_slot_at <= now,
                )
                .order_by(MailSubscription.next_due_at, MailSubscription.id)
                .limit(1)
            )
            if postgres:
                candidates = candidates.with_for_update(
                    skip_locked=True, of=(MailSubscription, PollPacing)
                )
            found = (await session.execute(candidates)).first()
            if found is None:
                return None
            row, pacing = found
            # Conditional writes: a claim that read the same rows concurrently (SQLite has no
            # row locks; several loops of one process claim too) changes nothing and gets None.
            slot = await session.execute(
                update(PollPacing)
                .where(
                    PollPacing.portal_host == pacing.portal_host,
                    PollPacing.next_slot_at == pacing.next_slot_at,
                )
                .values(next_slot_at=_next_slot(pacing.next_slot_at, now, spacing))
                .execution_options(synchronize_session=False)
            )
            leased = await session.execute(
                update(MailSubscription)
                .where(
                    MailSubscription.id == row.id,
                    MailSubscription.state == ACTIVE,
                    or_(
                        MailSubscription.lease_until.is_(None), MailSubscription.lease_until <= now
                    ),
                )
                .values(lease_owner=owner, lease_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            if not getattr(slot, "rowcount", 0) or not getattr(leased, "rowcount", 0):
                raise _Lost
            session.expunge(row)
            row.lease_owner = owner
            row.lease_until = now + lease
        return row

    async def spend(self, portal_host: str, *, now: datetime, spacing: timedelta) -> None:
        """One more request of a check (a further page): the portal's next slot moves on."""
        async with self._sessions.begin() as session:
            pacing = await session.get(PollPacing, portal_host, with_for_update=True)
            if pacing is not None:
                pacing.next_slot_at = max(pacing.next_slot_at, now) + spacing

    async def next_claim_at(self) -> datetime | None:
        """When a check may next be claimed: its due time, its portal's slot, or a lease end."""
        claimable = case(
            (
                and_(
                    MailSubscription.lease_until.is_not(None),
                    MailSubscription.lease_until > MailSubscription.next_due_at,
                ),
                MailSubscription.lease_until,
            ),
            else_=MailSubscription.next_due_at,
        )
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(PollPacing.next_slot_at, func.min(claimable))
                    .join(MailSubscription, PollPacing.portal_host == MailSubscription.portal_host)
                    .where(MailSubscription.state == ACTIVE)
                    .group_by(PollPacing.portal_host, PollPacing.next_slot_at)
                )
            ).all()
        times = [max(slot, first) for slot, first in rows if slot is not None and first is not None]
        return min(times) if times else None


class _Lost(Exception):
    """Another claim took the row or the slot first (rolls the claim back)."""


def _next_slot(slot: datetime, now: datetime, spacing: timedelta) -> datetime:
    """The slot after this claim. A claim a little late (the loop woke late) does not lose
    its time, but an idle portal does not bank slots for a burst either."""
    return max(slot, now - spacing) + spacing


async def ensure_pacing(session: AsyncSession, portal_host: str, now: datetime) -> None:
    insert = insert_ignore(session)(PollPacing).values(portal_host=portal_host, next_slot_at=now)
    await session.execute(insert.on_conflict_do_nothing(index_elements=["portal_host"]))


def insert_ignore(session: AsyncSession) -> Any:
    return postgresql.insert if _is_postgres(session) else sqlite.insert


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"
