"""What one delivery costs the database: the worker's hot path stays a few statements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import Bitrix24Client, ClientConfig
from bot.mail.audit import AuditService
from bot.mail.delivery import DeliveryWorker
from bot.mail.policy import PolicyService
from bot.mail.wakeup import Wakeup
from bot.store.audit import AuditPost, AuditRecord, AuditRepository
from bot.store.crypto import SecretBox
from bot.store.db import create_session_factory
from bot.store.outbox import OutboxStatus
from bot.store.policy import PolicyRepository, PolicyValues
from tests.fakes.bitrix24_portal import FakePortal
from tests.mail.test_delivery import ALICE, FAST, Setup, an_email, linked

# A delivery in a workspace without a policy: the link, the policy (read fresh: none), the
# "sent" mark and the audit record. One more means a second policy read or a new per-e-mail
# query on the hot path: look at what was added before raising this.
STATEMENTS_PER_EMAIL = 4


@pytest.fixture
async def client() -> AsyncIterator[Bitrix24Client]:
    config = ClientConfig(limiter_enabled=False, read_timeout=5, transport_retries=0)
    async with Bitrix24Client(config=config) as c:
        yield c


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SecretStr(Fernet.generate_key().decode())])


async def _deliver_counting(
    engine: AsyncEngine, setup: Setup, worker: DeliveryWorker, key: str
) -> list[str]:
    await setup.sending.submit(ALICE, an_email(), submission_key=key, result_channel="C1")
    (row,) = await setup.outbox.claim_due(owner=worker.owner, lease=timedelta(minutes=1), limit=1)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await worker.deliver(row)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert (await setup.outbox.get(row.id)).status == OutboxStatus.SENT  # type: ignore[union-attr]
    return statements


def _audited_worker(setup: Setup, engine: AsyncEngine) -> tuple[DeliveryWorker, PolicyRepository]:
    sessions = create_session_factory(engine)
    policies = PolicyRepository(sessions=sessions)
    audit = AuditService(
        repository=AuditRepository(sessions=sessions),
        policies=policies,
        wakeup=Wakeup(),
        retention_days=365,
    )
    worker = DeliveryWorker(
        outbox=setup.outbox,
        links=setup.links,
        bitrix24=setup.client,
        wakeup=setup.wakeup,
        on_change=lambda: None,
        config=FAST,
        policy=PolicyService(store=policies, audit=audit, max_recipients=50, hourly_cap=200),
        audit=audit,
    )
    return worker, policies


async def test_a_delivery_without_a_policy_costs_a_few_statements_and_one_policy_read(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """The policy read at delivery feeds both the check and the audit record: read once."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    worker, _policies = _audited_worker(setup, engine)
    # The first delivery also remembers the sender for next time; the second one is the norm.
    await _deliver_counting(engine, setup, worker, "k1")
    statements = await _deliver_counting(engine, setup, worker, "k2")
    policy_reads = [s for s in statements if "workspace_policies" in s]
    assert len(policy_reads) == 1, statements
    assert len(statements) <= STATEMENTS_PER_EMAIL, statements
    async with create_session_factory(engine)() as session:
        records = list(await session.scalars(select(AuditRecord)))
    assert [r.outcome for r in records] == ["sent", "sent"]


async def test_the_audit_channel_read_at_delivery_gets_the_record_posted(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """With an audit channel, the one policy read also routes the record to the channel."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    worker, policies = _audited_worker(setup, engine)
    await policies.save(
        enterprise_id="",
        team_id=ALICE.team_id,
        values=PolicyValues(
            allowed_domains=[],
            blocked_domains=[],
            max_recipients=None,
            hourly_cap=None,
            confirm_outside=False,
            audit_channel="CAUDIT",
            language="ru",
        ),
        updated_by="UADMIN",
    )
    statements = await _deliver_counting(engine, setup, worker, "k1")
    assert len([s for s in statements if "workspace_policies" in s]) == 1, statements
    async with create_session_factory(engine)() as session:
        posts = list(await session.scalars(select(AuditPost)))
    assert [(p.channel, p.language) for p in posts] == [("CAUDIT", "ru")]
