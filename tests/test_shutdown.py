"""Graceful shutdown: a stopping worker sends nothing new, gives back what it has not handed to
Bitrix24, lets sends in flight finish within the grace period, and leaves no e-mail locked."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import Bitrix24Client, ClientConfig
from bot.identity import SlackUser
from bot.mail.compose import ValidEmail
from bot.settings import normalize_database_url
from bot.store.crypto import SecretBox
from bot.store.db import create_engine
from bot.store.outbox import OutboxStatus
from tests.fakes.bitrix24_portal import SEND, FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.mail.test_delivery import Setup, linked, run_until
from tests.support.app import running_app
from tests.support.databases import create_pg_database, drop_pg_database, postgres_required
from tests.support.processes import HOST, Processes, free_port, plain_pg_url

ALICE = SlackUser(team_id="T0001", user_id="U0001")
SENT = ":white_check_mark: Sent"


def an_email(subject: str) -> ValidEmail:
    return ValidEmail(
        sender="Alice <alice@corp.example>",
        to=["bob@client.example"],
        cc=[],
        bcc=[],
        subject=subject,
        body_html="<p>Hi</p>",
        body_source=None,
    )


@pytest.fixture
async def client() -> AsyncIterator[Bitrix24Client]:
    config = ClientConfig(limiter_enabled=False, read_timeout=5, portal_request_limit=1.0)
    async with Bitrix24Client(config=config) as c:
        yield c


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


async def test_a_claimed_email_not_yet_handed_to_bitrix24_goes_back_to_the_queue(
    engine: AsyncEngine,
    portal: FakePortal,
    client: Bitrix24Client,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stop arrives between the claim and the call: the row is released (queued, no lease, its
    attempt not counted), nothing reaches the portal, and the next worker sends it once."""
    setup = Setup(engine, SecretBox([SecretStr(key)]), client)
    await linked(setup, portal)
    row, _ = await setup.sending.submit(
        ALICE, an_email("Released"), submission_key="k-release", result_channel="C1"
    )
    claimed, go_on = asyncio.Event(), asyncio.Event()
    require = setup.links.require_stored

    async def held(user: SlackUser) -> object:
        claimed.set()
        await go_on.wait()
        return await require(user)

    monkeypatch.setattr(setup.links, "require_stored", held)
    worker = setup.worker()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(claimed.wait(), 5)
    stop.set()
    go_on.set()
    await asyncio.wait_for(task, 5)

    stored = await setup.outbox.get(row.id)
    assert stored is not None
    assert (stored.status, stored.lease_owner, stored.attempts) == (OutboxStatus.QUEUED, None, 0)
    assert [r for r in portal.requests if r.method_name == SEND] == []
    monkeypatch.setattr(setup.links, "require_stored", require)
    await run_until(setup.worker(), lambda: len(portal.delivered) == 1)
    assert [d.idempotency_key for d in portal.delivered] == [row.id]


async def test_a_send_still_in_flight_after_the_grace_period_is_left_to_its_lease(
    engine: AsyncEngine, portal: FakePortal, slack: FakeSlack
) -> None:
    """Stopping never waits past the grace period: the send is cancelled and its row keeps the
    lease (the portal may still be running it), so it is retried only after the lease."""
    async with running_app(
        engine=engine, slack=slack, worker=True, b24mail_shutdown_grace_seconds=0.5
    ) as app:
        b24 = portal.add_user(7, senders=[("Alice", "alice@corp.example")])
        await app.services.links.connect(ALICE, b24.webhook_url)
        # The portal runs the send at once and answers only after 4 s.
        portal.set_latency(4.0, phase="after", methods=[SEND])
        row, _ = await app.services.sending.submit(
            ALICE, an_email("Slow"), submission_key="k-slow", result_channel="C1"
        )
        await portal.await_delivered(1, timeout=5)
    # Stopped without waiting for the portal's answer: had it waited, the row would be sent.
    # (That, not a wall-clock bound, is what shows the grace period was kept.)
    stored = await app.services.outbox.get(row.id)
    assert stored is not None
    assert stored.status == OutboxStatus.SENDING and stored.lease_owner is not None
    assert app.worker is not None and stored.lease_owner == app.worker.delivery.owner


# --------------------------------------------------------------------------- real processes

EMAILS = 12  # more than one worker's 8 concurrent sends: 4 stay queued
GRACE = 10.0
LATENCY = 2.0  # each send waits this long on the portal before it runs


@pytest.fixture
def pg_database() -> Iterator[str]:
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, _url = create_pg_database("b24mail_shutdown")
    yield name
    drop_pg_database(name)


async def _outbox(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT id, status, lease_owner, attempts, error_code, state_version,"
                " notified_version, status_channel, status_ts FROM outbox ORDER BY subject"
            )
        )
        return [dict(row._mapping) for row in result]


async def _until(engine: AsyncEngine, done: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = await _outbox(engine)
        if done(rows):  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout}s: {rows}")
        await asyncio.sleep(0.1)


def _metric(exposition: str, sample: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in /metrics")


@pytest.mark.slow
@pytest.mark.postgres
async def test_sigterm_to_a_worker_finishes_sends_in_flight_and_leaves_nothing_locked(
    tmp_path: Path, pg_database: str, client: Bitrix24Client, key: str
) -> None:
    """`b24mail worker` is SIGTERMed while its sends wait on a slow portal: it exits 0 within
    the grace period, every row it held is sent (and its status posted) or back in the queue,
    none keeps a lease; another worker then sends the rest, each e-mail exactly once."""
    with (
        FakePortal(rate=1_000_000, burst=1_000_000, host=HOST) as portal,
        FakeSlack(host=HOST) as slack,
    ):
        metrics_port = free_port()
        env = {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": "shutdown-signing-secret",
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": plain_pg_url(pg_database),
            "B24MAIL_SECRET_KEYS": key,
            "HOST": HOST,
            "B24MAIL_ALLOW_INSECURE_PORTALS": "true",
            "B24MAIL_UNDO_SECONDS": "0",  # e-mails leave at once: no undo window here
            "B24MAIL_SHUTDOWN_GRACE_SECONDS": str(GRACE),
            "B24MAIL_LEASE_SECONDS": "30",
            "BITRIX24_REQUEST_LIMIT": "5",
            "BITRIX24_READ_TIMEOUT": "10",
            "BITRIX24_RATE": "1000000",
            "BITRIX24_BURST": "1000000",
        }
        with Processes(tmp_path, env) as processes:
            migrated = processes.run("migrate")
            assert migrated.returncode == 0, migrated.stderr
            engine = create_engine(normalize_database_url(plain_pg_url(pg_database)))
            try:
                setup = Setup(engine, SecretBox([SecretStr(key)]), client)
                await linked(setup, portal)
                for n in range(EMAILS):
                    await setup.sending.submit(
                        ALICE,
                        an_email(f"Mail {n:02d}"),
                        submission_key=f"k{n}",
                        result_channel="C1",
                    )
                portal.set_latency(LATENCY, phase="before", methods=[SEND])

                first = processes.start(
                    "worker-a", "worker", B24MAIL_METRICS_PORT=str(metrics_port)
                )
                await first.await_log("worker running")
                await _until(
                    engine,
                    lambda rows: sum(r["status"] == OutboxStatus.SENDING for r in rows) == 8,
                    timeout=10,
                    what="8 e-mails claimed",
                )
                scrape = httpx.get(f"http://{HOST}:{metrics_port}/metrics", timeout=5).text
                assert _metric(scrape, 'b24mail_queue_depth{status="sending"}') == 8
                assert _metric(scrape, 'b24mail_queue_depth{status="queued"}') == EMAILS - 8
                assert httpx.get(f"http://{HOST}:{metrics_port}/healthz").status_code == 200
                # A claimed send is waiting at the portal: the SIGTERM finds it in flight.
                await portal.await_arrived(SEND, timeout=30)

                code, took = await asyncio.to_thread(first.terminate, timeout=GRACE + 15)
                assert code == 0, first.tail()
                assert took < GRACE, f"exit took {took:.1f}s"
                assert "worker stopped" in first.text() and "Traceback" not in first.text()

                rows = await _outbox(engine)
                assert [r for r in rows if r["lease_owner"] is not None] == []
                sent = {r["id"] for r in rows if r["status"] == OutboxStatus.SENT}
                assert sent, "no send was in flight when the worker was stopped"
                assert sent == {d.idempotency_key for d in portal.delivered}
                left = [r for r in rows if r["status"] != OutboxStatus.SENT]
                # Not started: back in the queue as if never claimed.
                assert {(r["status"], r["attempts"], r["error_code"]) for r in left} == {
                    (OutboxStatus.QUEUED, 0, None)
                }
                # The statuses of what it sent were posted before it exited.
                assert all(
                    r["notified_version"] == r["state_version"]
                    for r in rows
                    if r["status"] == OutboxStatus.SENT
                )

                portal.set_latency(0, phase="before")
                second = processes.start("worker-b", "worker")
                await _until(
                    engine,
                    lambda rows: all(
                        r["status"] == OutboxStatus.SENT
                        and r["notified_version"] == r["state_version"]
                        for r in rows
                    ),
                    timeout=30,
                    what="all sent and shown",
                )
                rows = await _outbox(engine)
                keys = Counter(d.idempotency_key for d in portal.delivered)
                assert keys == Counter({r["id"]: 1 for r in rows})
                assert len(rows) == EMAILS
                messages = slack.messages
                for row in rows:
                    message = messages[(row["status_channel"], row["status_ts"])]
                    assert message["text"].startswith(SENT), message["text"]
                code, _took = await asyncio.to_thread(second.terminate, timeout=GRACE + 15)
                assert code == 0, second.tail()
            finally:
                await engine.dispose()
