"""The outbox and its workers: crashes, leases and races never lose or duplicate an e-mail."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import Bitrix24Client, ClientConfig, OutgoingEmail
from bot.identity import SlackUser
from bot.mail.compose import ValidEmail
from bot.mail.delivery import DeliveryConfig, DeliveryWorker
from bot.mail.linking import LinkService
from bot.mail.sending import SendingService
from bot.mail.wakeup import Wakeup
from bot.store.base import utcnow
from bot.store.crypto import SecretBox
from bot.store.db import create_engine, create_session_factory
from bot.store.links import LinkRepository
from bot.store.outbox import OutboxRepository, OutboxStatus
from tests.fakes.bitrix24_portal import FakePortal

ALICE = SlackUser(team_id="T0001", user_id="U0001")
FAST = DeliveryConfig(
    lease=timedelta(seconds=2), backoff_base=0.05, backoff_max=0.1, idle_poll=0.05
)


class Setup:
    """Repositories, services and a worker over one engine, as `b24mail worker` builds them."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, client: Bitrix24Client) -> None:
        sessions = create_session_factory(engine)
        self.outbox = OutboxRepository(sessions=sessions)
        self.links = LinkService(
            links=LinkRepository(sessions=sessions, box=box),
            bitrix24=client,
            allow_insecure=True,
            probe_timeout=2,
            sender_ttl=timedelta(hours=1),
        )
        self.wakeup = Wakeup()
        self.sending = SendingService(
            outbox=self.outbox,
            wakeup=self.wakeup,
            retry_window=timedelta(minutes=5),
            hourly_cap=10_000,
        )
        self.client = client

    def worker(self, config: DeliveryConfig = FAST) -> DeliveryWorker:
        return DeliveryWorker(
            outbox=self.outbox,
            links=self.links,
            bitrix24=self.client,
            wakeup=self.wakeup,
            on_change=lambda: None,
            config=config,
        )


@pytest.fixture
async def client() -> Bitrix24Client:
    # No client-level retries: these tests are about the outbox's own retries and leases.
    config = ClientConfig(
        limiter_enabled=False, read_timeout=5, transport_retries=0, portal_request_limit=1.0
    )
    async with Bitrix24Client(config=config) as c:
        yield c  # type: ignore[misc]


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SecretStr(Fernet.generate_key().decode())])


def an_email(subject: str = "Hello") -> ValidEmail:
    return ValidEmail(
        sender="Alice <alice@corp.example>",
        to=["bob@client.example"],
        cc=[],
        bcc=[],
        subject=subject,
        body_html="<p>Hi</p>",
        body_source=None,
    )


async def linked(setup: Setup, portal: FakePortal) -> None:
    b24 = portal.add_user(3, senders=[("Alice", "alice@corp.example")])
    await setup.links.connect(ALICE, b24.webhook_url)


async def run_until(worker: DeliveryWorker, predicate: object, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # type: ignore[operator]
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        worker._wakeup.notify()
        await task


async def test_worker_killed_after_claim_before_send_delivers_once_after_its_lease(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """A row claimed by a worker that died is taken again when the lease runs out; one e-mail."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    row, _ = await setup.sending.submit(ALICE, an_email(), submission_key="k1", result_channel="C1")
    # claim_due takes the moment it claims at: the other worker is asked at that very moment
    # (the lease surely still held, however slow the machine), and the lease is 1 ms, so the
    # worker below finds it lapsed without the test sleeping for it.
    claimed_at = utcnow()
    claimed = await setup.outbox.claim_due(
        owner="dead-worker", lease=timedelta(milliseconds=1), limit=5, now=claimed_at
    )
    assert [r.id for r in claimed] == [row.id]
    assert (
        await setup.outbox.claim_due(
            owner="other", lease=timedelta(seconds=5), limit=5, now=claimed_at
        )
        == []
    )
    await run_until(setup.worker(), lambda: len(portal.delivered) == 1)
    stored = await setup.outbox.get(row.id)
    assert stored is not None
    assert stored.status == OutboxStatus.SENT
    assert stored.attempts == 2
    assert [d.idempotency_key for d in portal.delivered] == [row.id]


async def test_worker_killed_after_sending_before_recording_is_not_sent_twice(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """The dead worker's send reached the portal; the retry with the same key is replayed."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    row, _ = await setup.sending.submit(ALICE, an_email(), submission_key="k2", result_channel="C1")
    # A 1 ms lease: lapsed by the time the worker looks, without the test sleeping for it.
    await setup.outbox.claim_due(owner="dead-worker", lease=timedelta(milliseconds=1), limit=5)
    link = await setup.links.require(ALICE)
    email = OutgoingEmail(
        from_=row.sender, to=row.to_addrs, cc=[], bcc=[], subject=row.subject, body=row.body_html
    )
    await client.send(setup.links.credentials(link), email, idempotency_key=row.id)
    assert len(portal.delivered) == 1
    await run_until(setup.worker(), lambda: any(r.replayed for r in portal.requests))
    stored = await setup.outbox.get(row.id)
    assert stored is not None
    assert stored.status == OutboxStatus.SENT
    assert len(portal.delivered) == 1


async def test_lost_lease_cannot_overwrite_the_new_owners_outcome(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """A worker whose lease was taken over cannot record a result for the row any more."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    row, _ = await setup.sending.submit(ALICE, an_email(), submission_key="k3", result_channel="C1")
    await setup.outbox.claim_due(owner="slow", lease=timedelta(seconds=0), limit=1)
    await setup.outbox.claim_due(owner="fresh", lease=timedelta(seconds=60), limit=1)
    assert not await setup.outbox.mark_failed(row.id, owner="slow", code="timeout", detail=None)
    assert await setup.outbox.mark_sent(row.id, owner="fresh")


async def test_transient_failures_are_retried_until_the_deadline_then_reported(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """A portal that never recovers: retried with back-off, then failed as gave_up; none sent."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    setup.sending = SendingService(
        outbox=setup.outbox, wakeup=setup.wakeup, retry_window=timedelta(seconds=1), hourly_cap=100
    )
    portal.fail_next(10_000, status=503, methods=["mail.message.send"])
    row, _ = await setup.sending.submit(ALICE, an_email(), submission_key="k4", result_channel="C1")

    async def done() -> bool:
        stored = await setup.outbox.get(row.id)
        return stored is not None and stored.status == OutboxStatus.FAILED

    state = {"done": False}

    async def poll() -> None:
        while not state["done"]:
            state["done"] = await done()
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll())
    await run_until(setup.worker(), lambda: state["done"], timeout=15)
    await poller
    stored = await setup.outbox.get(row.id)
    assert stored is not None
    assert stored.error_code == "gave_up"
    assert stored.attempts >= 2  # retried at least once before giving up
    assert portal.delivered == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_workers_racing_over_200_rows_deliver_each_exactly_once(
    engine: AsyncEngine, portal: FakePortal, box: SecretBox
) -> None:
    """Two workers, each with its own connection pool, on PostgreSQL: 200 e-mails, 200 deliveries."""
    url = engine.url.render_as_string(hide_password=False)
    second_engine = create_engine(url)
    config = DeliveryConfig(lease=timedelta(seconds=30), concurrency=8, batch=8, idle_poll=0.05)
    async with (
        Bitrix24Client(config=ClientConfig(limiter_enabled=False)) as client_a,
        Bitrix24Client(config=ClientConfig(limiter_enabled=False)) as client_b,
    ):
        first = Setup(engine, box, client_a)
        second = Setup(second_engine, box, client_b)
        await linked(first, portal)
        for n in range(200):
            await first.sending.submit(
                ALICE, an_email(f"E-mail {n}"), submission_key=f"race-{n}", result_channel="C1"
            )
        workers = [first.worker(config), second.worker(config)]
        await asyncio.gather(
            *(run_until(w, lambda: len(portal.delivered) >= 200, timeout=60) for w in workers)
        )
        await asyncio.sleep(0.2)
    await second_engine.dispose()
    keys = Counter(d.idempotency_key for d in portal.delivered)
    assert len(keys) == 200
    assert max(keys.values()) == 1
    subjects = {d.subject for d in portal.delivered}
    assert len(subjects) == 200
    rows = await first.outbox.history(ALICE, limit=500)
    assert Counter(r.status for r in rows) == {OutboxStatus.SENT: 200}


async def test_a_claim_that_waited_too_long_is_handed_back_not_attempted(
    engine: AsyncEngine, box: SecretBox, client: Bitrix24Client, portal: FakePortal
) -> None:
    """chaos under a CPU hog: the attempt's budget counts from the claim. A row whose lease went
    (almost) by before the call is released untouched rather than sent into the last seconds of
    its lease, where another worker may take it and the two requests with one key overlap."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    config = DeliveryConfig(lease=timedelta(seconds=30), backoff_base=0.05, idle_poll=0.05)
    row, _ = await setup.sending.submit(ALICE, an_email(), submission_key="k9", result_channel="C1")
    (claimed,) = await setup.outbox.claim_due(owner="slow", lease=config.lease, limit=1)
    worker = setup.worker(config)
    worker.owner = "slow"
    # 26 of the 30 seconds are gone: the budget (30 - 1 s request limit - 5 s margin) is spent.
    assert claimed.lease_expires_at is not None
    claimed.lease_expires_at = utcnow() + timedelta(seconds=4)
    await worker.deliver(claimed)
    assert [r.method_name for r in portal.requests] == ["mail.mailbox.senders"]  # linking
    assert portal.delivered == []
    stored = await setup.outbox.get(row.id)
    assert stored is not None
    assert (stored.status, stored.lease_owner, stored.attempts) == (OutboxStatus.QUEUED, None, 0)

    # With the lease fresh, the same row goes out once.
    (again,) = await setup.outbox.claim_due(owner="fast", lease=config.lease, limit=1)
    fresh = setup.worker(config)
    fresh.owner = "fast"
    await fresh.deliver(again)
    assert len(portal.delivered) == 1
