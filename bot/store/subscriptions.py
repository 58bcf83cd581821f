"""New-mail subscriptions, the e-mails each has seen, and the per-portal pacing of polls.

A check is claimed like an outbox row: one transaction picks the subscription due longest ago
whose portal has a free poll slot (PostgreSQL: `FOR UPDATE … SKIP LOCKED` on both rows, so
several workers never take the same check or the same slot; SQLite runs one process), leases
it, and moves the portal's slot on by one request's share of the poll budget. Every write made
during the check names the lease owner, so a worker whose lease ran out changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.db import SessionFactory
from bot.store.models import MailSubscription, PollPacing, SeenMail

ACTIVE = "active"
PAUSED = "paused"

BASELINE = "baseline"
PENDING = "pending"
POSTED = "posted"
MORE = "more"


@dataclass(frozen=True, kw_only=True)
class NewMail:
    """An e-mail a check found for the first time."""

    message_id: int
    date: datetime | None
    card: dict[str, Any]


class SubscriptionRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    # --- the user's side ---------------------------------------------------------------------

    async def subscribe(
        self,
        user: SlackUser,
        *,
        link_id: int,
        portal_host: str,
        search: str | None,
        channel_id: str | None,
        now: datetime | None = None,
    ) -> tuple[MailSubscription, bool]:
        """Start (or change) the user's subscription; True when it is new.

        New words mean a new set of matching e-mails: the baseline is taken again, so the
        e-mails that already match are not posted. E-mails still waiting to be posted stay.
        """
        now = now or utcnow()
        async with self._sessions.begin() as session:
            row = await session.scalar(_by_user(user).with_for_update())
            created = row is None
            if row is None:
                row = MailSubscription(
                    enterprise_id=user.enterprise_id,
                    team_id=user.team_id,
                    slack_user_id=user.user_id,
                    created_at=now,
                    baseline_done=False,
                    pauses=0,
                    failures=0,
                    more_count=0,
                    more_attempts=0,
                    owner_told=False,
                )
                session.add(row)
            elif row.search != search or row.portal_host != portal_host:
                await session.execute(
                    delete(SeenMail).where(
                        SeenMail.subscription_id == row.id, SeenMail.state != PENDING
                    )
                )
                row.baseline_done = False
            row.link_id = link_id
            row.portal_host = portal_host
            row.search = search
            row.channel_id = channel_id
            row.state = ACTIVE
            row.pause_reason = None
            row.pause_detail = None
            row.owner_told = False
            row.failures = 0
            row.next_due_at = now
            await _ensure_pacing(session, portal_host, now)
        return row, created

    async def unsubscribe(self, user: SlackUser) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(delete(MailSubscription).where(*_owned_by(user)))
        return bool(getattr(result, "rowcount", 0))

    async def get(self, user: SlackUser) -> MailSubscription | None:
        async with self._sessions() as session:
            return await session.scalar(_by_user(user))

    async def get_by_id(self, subscription_id: int) -> MailSubscription | None:
        async with self._sessions() as session:
            return await session.get(MailSubscription, subscription_id)

    async def count_on_portal(self, portal_host: str) -> int:
        """Active subscriptions polling this portal (they share its poll budget)."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(MailSubscription)
                .where(
                    MailSubscription.portal_host == portal_host, MailSubscription.state == ACTIVE
                )
            )
        return int(count or 0)

    async def resume_for_link(self, link_id: int, *, portal_host: str) -> int:
        """After a reconnect: paused subscriptions of the link run again (on the new portal,
        with a new baseline if the portal changed). Returns how many resumed."""
        now = utcnow()
        async with self._sessions.begin() as session:
            rows = (
                await session.scalars(
                    select(MailSubscription).where(MailSubscription.link_id == link_id)
                )
            ).all()
            resumed = 0
            for row in rows:
                if row.portal_host != portal_host:
                    await session.execute(
                        delete(SeenMail).where(
                            SeenMail.subscription_id == row.id, SeenMail.state != PENDING
                        )
                    )
                    row.baseline_done = False
                    row.portal_host = portal_host
                if row.state == PAUSED:
                    resumed += 1
                row.state = ACTIVE
                row.pause_reason = None
                row.pause_detail = None
                row.owner_told = False
                row.failures = 0
                row.next_due_at = now
            if rows:
                await _ensure_pacing(session, portal_host, now)
        return resumed

    # --- the poller's side -------------------------------------------------------------------

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

    async def known_ids(self, subscription_id: int, ids: Iterable[int]) -> set[int]:
        wanted = list(set(ids))
        known: set[int] = set()
        async with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                known.update(
                    (
                        await session.scalars(
                            select(SeenMail.b24_message_id).where(
                                SeenMail.subscription_id == subscription_id,
                                SeenMail.b24_message_id.in_(chunk),
                            )
                        )
                    ).all()
                )
        return known

    async def record_check(
        self,
        subscription_id: int,
        *,
        owner: str,
        now: datetime,
        baseline: Sequence[NewMail] = (),
        new: Sequence[NewMail] = (),
        more: Sequence[NewMail] = (),
    ) -> bool:
        """Remember what a check found, in one transaction, while the lease is ours.

        `baseline` are never posted; `new` become pending cards (each with its own token);
        `more` are counted in one "and N more" line. An e-mail recorded before (by an earlier
        check) keeps its row. False when the lease was lost (nothing is written).
        """
        async with self._sessions.begin() as session:
            row = await session.get(MailSubscription, subscription_id, with_for_update=True)
            if row is None or row.lease_owner != owner:
                return False
            values: list[dict[str, Any]] = []
            for state, mails in ((BASELINE, baseline), (PENDING, new), (MORE, more)):
                for mail in mails:
                    values.append(
                        {
                            "subscription_id": subscription_id,
                            "b24_message_id": mail.message_id,
                            "state": state,
                            "token": str(uuid.uuid4()) if state == PENDING else None,
                            "card": mail.card if state == PENDING else None,
                            "post_attempts": 0,
                            "first_seen_at": now,
                            "message_date": mail.date,
                        }
                    )
            inserted_more = 0
            for start in range(0, len(values), 200):
                chunk = values[start : start + 200]
                insert = _insert_ignore(session)(SeenMail).values(chunk)
                insert = insert.on_conflict_do_nothing(
                    index_elements=["subscription_id", "b24_message_id"]
                ).returning(SeenMail.state)
                states = (await session.scalars(insert)).all()
                inserted_more += sum(1 for state in states if state == MORE)
            row.baseline_done = True
            if inserted_more:
                row.more_count += inserted_more
                if row.more_token is None:
                    row.more_token = str(uuid.uuid4())
                    row.more_since = now
                    row.more_attempts = 0
        return True

    async def pending(self, subscription_id: int) -> list[SeenMail]:
        """Cards still to post, oldest e-mail first (an e-mail without a date goes last)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SeenMail)
                .where(SeenMail.subscription_id == subscription_id, SeenMail.state == PENDING)
                .order_by(
                    SeenMail.message_date.is_(None), SeenMail.message_date, SeenMail.b24_message_id
                )
            )
            return list(rows.all())

    async def start_post(self, seen_id: int, *, owner: str, channel: str, now: datetime) -> bool:
        """Record the attempt (and where) before chat.postMessage; False if the lease is gone."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(SeenMail)
                .where(
                    SeenMail.id == seen_id,
                    SeenMail.state == PENDING,
                    _lease_held(owner, now),
                )
                .values(post_attempts=SeenMail.post_attempts + 1, channel_id=channel)
            )
        return bool(getattr(result, "rowcount", 0))

    async def mark_posted(self, seen_id: int, *, channel: str, ts: str, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(SeenMail)
                .where(SeenMail.id == seen_id)
                .values(state=POSTED, channel_id=channel, message_ts=ts, card=None, posted_at=now)
            )

    async def start_more(self, subscription_id: int, *, owner: str, now: datetime) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(MailSubscription)
                .where(
                    MailSubscription.id == subscription_id,
                    MailSubscription.lease_owner == owner,
                    MailSubscription.more_token.is_not(None),
                )
                .values(more_attempts=MailSubscription.more_attempts + 1)
            )
        return bool(getattr(result, "rowcount", 0))

    async def more_posted(self, subscription_id: int, *, token: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(MailSubscription)
                .where(MailSubscription.id == subscription_id, MailSubscription.more_token == token)
                .values(more_count=0, more_token=None, more_since=None, more_attempts=0)
            )

    async def set_dm_channel(self, subscription_id: int, channel: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(MailSubscription)
                .where(MailSubscription.id == subscription_id)
                .values(dm_channel_id=channel)
            )

    async def pause(
        self,
        subscription_id: int,
        *,
        owner: str,
        reason: str,
        detail: str | None = None,
        told: bool = False,
    ) -> bool:
        """Stop checking until the user acts; True when this call paused it (tell them once)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(MailSubscription)
                .where(
                    MailSubscription.id == subscription_id,
                    MailSubscription.lease_owner == owner,
                    MailSubscription.state == ACTIVE,
                )
                .values(
                    state=PAUSED,
                    pause_reason=reason[:64],
                    pause_detail=(detail or None) and detail[:255],
                    owner_told=told,
                    pauses=MailSubscription.pauses + 1,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def untold(self, *, limit: int = 20) -> list[MailSubscription]:
        """Paused subscriptions whose owner has not been told yet."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(MailSubscription)
                .where(MailSubscription.state == PAUSED, MailSubscription.owner_told.is_(False))
                .order_by(MailSubscription.id)
                .limit(limit)
            )
            return list(rows.all())

    async def mark_told(self, subscription_id: int, *, pauses: int) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(MailSubscription)
                .where(MailSubscription.id == subscription_id, MailSubscription.pauses == pauses)
                .values(owner_told=True)
            )

    async def finish(
        self,
        subscription_id: int,
        *,
        owner: str,
        now: datetime,
        next_due_at: datetime,
        failed: bool = False,
    ) -> None:
        """End the check: the lease is given back and the next one is scheduled."""
        values: dict[str, Any] = {
            "lease_owner": None,
            "lease_until": None,
            "next_due_at": next_due_at,
        }
        if failed:
            values["failures"] = MailSubscription.failures + 1
        else:
            values["failures"] = 0
            values["last_checked_at"] = now
        async with self._sessions.begin() as session:
            await session.execute(
                update(MailSubscription)
                .where(
                    MailSubscription.id == subscription_id, MailSubscription.lease_owner == owner
                )
                .values(**values)
            )

    async def prune(self, *, now: datetime, lookback: timedelta) -> int:
        """Forget e-mails that no check can list again (dated well before the look-back window)."""
        horizon = now - lookback - timedelta(days=1)
        undated = now - max(lookback * 4, timedelta(days=30))
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(SeenMail).where(
                    SeenMail.state != PENDING,
                    or_(
                        and_(
                            SeenMail.message_date.is_not(None),
                            SeenMail.message_date < horizon,
                            SeenMail.first_seen_at < horizon,
                        ),
                        and_(SeenMail.message_date.is_(None), SeenMail.first_seen_at < undated),
                    ),
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)


class _Lost(Exception):
    """Another claim took the row or the slot first (rolls the claim back)."""


def _next_slot(slot: datetime, now: datetime, spacing: timedelta) -> datetime:
    """The slot after this claim. A claim a little late (the loop woke late) does not lose
    its time, but an idle portal does not bank slots for a burst either."""
    return max(slot, now - spacing) + spacing


async def _ensure_pacing(session: AsyncSession, portal_host: str, now: datetime) -> None:
    insert = _insert_ignore(session)(PollPacing).values(portal_host=portal_host, next_slot_at=now)
    await session.execute(insert.on_conflict_do_nothing(index_elements=["portal_host"]))


def _insert_ignore(session: AsyncSession) -> Any:
    return postgresql.insert if _is_postgres(session) else sqlite.insert


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def _lease_held(owner: str, now: datetime) -> Any:
    return exists().where(
        MailSubscription.id == SeenMail.subscription_id,
        MailSubscription.lease_owner == owner,
        MailSubscription.lease_until > now,
    )


def _owned_by(user: SlackUser) -> tuple[Any, ...]:
    return (
        MailSubscription.enterprise_id == user.enterprise_id,
        MailSubscription.team_id == user.team_id,
        MailSubscription.slack_user_id == user.user_id,
    )


def _by_user(user: SlackUser) -> Select[MailSubscription]:
    return select(MailSubscription).where(*_owned_by(user))
