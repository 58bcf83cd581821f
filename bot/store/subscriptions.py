"""New-mail subscriptions and the e-mails each has seen (claims: bot.store.poll_pacing).

Every write made during a check names the lease owner, so a worker whose lease ran out changes
nothing; the unique (subscription, Bitrix24 id) pair is what makes each card post once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, or_, select, update

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.db import SessionFactory
from bot.store.models import MailSubscription, SeenMail
from bot.store.poll_pacing import ACTIVE, PollClaims, ensure_pacing, insert_ignore

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


class SubscriptionRepository(PollClaims):
    """Subscriptions and what they saw; the claims of checks come from PollClaims."""

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
            await ensure_pacing(session, portal_host, now)
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
                await ensure_pacing(session, portal_host, now)
        return resumed

    # --- the poller's side -------------------------------------------------------------------

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
                insert = insert_ignore(session)(SeenMail).values(chunk)
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
                        and_(SeenMail.message_date.is_not(None), SeenMail.message_date < horizon),
                        and_(SeenMail.message_date.is_(None), SeenMail.first_seen_at < undated),
                    ),
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)


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
