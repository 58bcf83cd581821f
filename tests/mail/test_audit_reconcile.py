"""The housekeeping sweep writes the audit records a crash between "sent" and "recorded" left
out, once, and never a second record for an e-mail the worker did record."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.mail.audit import RECONCILE_SETTLE, RECONCILE_WINDOW, AuditService
from bot.mail.wakeup import Wakeup
from bot.store.audit import AuditRecord, AuditRepository
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.models import OutboxEmail, OutboxStatus
from bot.store.policy import PolicyRepository


def _audit(engine: AsyncEngine) -> AuditService:
    sessions = create_session_factory(engine)
    return AuditService(
        repository=AuditRepository(sessions=sessions),
        policies=PolicyRepository(sessions=sessions),
        wakeup=Wakeup(),
        retention_days=365,
    )


async def _settled(
    engine: AsyncEngine,
    name: str,
    *,
    status: OutboxStatus,
    at: datetime,
    code: str | None = None,
) -> OutboxEmail:
    row = OutboxEmail(
        id=f"{name:0>36}",
        submission_key=name,
        team_id="T0001",
        slack_user_id="U0001",
        sender="Anna <anna@example.com>",
        to_addrs=["bob@example.org"],
        cc_addrs=[],
        bcc_addrs=[],
        subject=f"subject {name}",
        body_html="<p>secret body</p>",
        result_channel="C0001",
        status=status,
        error_code=code,
        deadline_at=at + timedelta(minutes=30),
        created_at=at,
        updated_at=at,
    )
    async with create_session_factory(engine).begin() as session:
        session.add(row)
    return row


async def _records(engine: AsyncEngine) -> list[AuditRecord]:
    async with create_session_factory(engine)() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def test_the_sweep_writes_what_a_crash_left_out_once(engine: AsyncEngine) -> None:
    """Sent and failed e-mails without a record get one (no body); a second sweep adds none."""
    now = utcnow()
    past = now - RECONCILE_SETTLE - timedelta(minutes=1)
    await _settled(engine, "a", status=OutboxStatus.SENT, at=past)
    await _settled(engine, "b", status=OutboxStatus.FAILED, at=past, code="gave_up")
    audit = _audit(engine)

    assert await audit.reconcile(now=now) == 2
    assert await audit.reconcile(now=now) == 0

    records = await _records(engine)
    assert sorted((r.email_id[-1], r.outcome) for r in records if r.email_id) == [
        ("a", "sent"),
        ("b", "failed:gave_up"),
    ]
    assert all("secret body" not in repr(vars(r)) for r in records)


async def test_the_sweep_leaves_what_it_must_not_record(engine: AsyncEngine) -> None:
    """Recorded, just settled, outside the window, never left (not linked), still queued."""
    now = utcnow()
    past = now - RECONCILE_SETTLE - timedelta(minutes=1)
    audit = _audit(engine)
    recorded = await _settled(engine, "done", status=OutboxStatus.SENT, at=past)
    assert await audit.email_left(recorded, outcome="sent") is True
    await _settled(engine, "fresh", status=OutboxStatus.SENT, at=now - timedelta(seconds=5))
    await _settled(
        engine, "old", status=OutboxStatus.SENT, at=now - RECONCILE_WINDOW - timedelta(hours=1)
    )
    await _settled(engine, "unlinked", status=OutboxStatus.FAILED, at=past, code="not_linked")
    await _settled(engine, "queued", status=OutboxStatus.QUEUED, at=past)

    assert await audit.reconcile(now=now) == 0
    assert [r.email_id for r in await _records(engine)] == [recorded.id]


async def test_a_second_record_of_one_email_is_refused(engine: AsyncEngine) -> None:
    """The worker and the sweep racing: the e-mail's second record is not written."""
    row = await _settled(engine, "race", status=OutboxStatus.SENT, at=utcnow())
    audit = _audit(engine)
    assert await audit.email_left(row, outcome="sent") is True
    assert await audit.email_left(row, outcome="sent") is False
    assert len(await _records(engine)) == 1
