"""A claim takes at most `limit` rows: a worker never holds e-mails it has no slot for."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.models import OutboxEmail
from bot.store.outbox import NewEmail, OutboxRepository, OutboxStatus

USER = SlackUser(team_id="T0001", user_id="U0001")


async def _queue(outbox: OutboxRepository, count: int) -> None:
    for n in range(count):
        await outbox.enqueue(
            NewEmail(
                submission_key=f"claim-{n}",
                user=USER,
                sender="alice@corp.example",
                to=["bob@client.example"],
                subject=f"Claim {n}",
                body_html="<p>Hi</p>",
                result_channel="C1",
                deadline=utcnow() + timedelta(hours=1),
            )
        )


async def test_claims_never_take_more_than_their_limit(engine: AsyncEngine) -> None:
    """12 due rows, limit 8: 8 claimed and 8 in `sending` (PostgreSQL once claimed all 12, its
    planner running the LIMIT … SKIP LOCKED subquery again for each row)."""
    outbox = OutboxRepository(sessions=create_session_factory(engine))
    await _queue(outbox, 12)
    claimed = await outbox.claim_due(owner="w1", lease=timedelta(seconds=30), limit=8)
    assert len(claimed) == 8
    async with engine.connect() as connection:
        sending = await connection.scalar(
            select(func.count())
            .select_from(OutboxEmail)
            .where(OutboxEmail.status == OutboxStatus.SENDING)
        )
    assert sending == 8
    rest = await outbox.claim_due(owner="w2", lease=timedelta(seconds=30), limit=8)
    assert len(rest) == 4 and not {r.id for r in rest} & {r.id for r in claimed}
    notifications = await outbox.claim_notifications(lease=timedelta(seconds=30), limit=5)
    assert len(notifications) == 5
