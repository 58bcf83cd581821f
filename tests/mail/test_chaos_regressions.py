"""Regressions found by the chaos run (`python -m bench.chaos`), on real outboxes and fake Slack.

Each test names the chaos scenario that showed the problem.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import InterfaceError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.wakeup import Wakeup
from bot.slack.clients import SlackClients
from bot.slack.notifier import StatusNotifier
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.models import OutboxEmail
from bot.store.outbox import NewEmail, OutboxRepository
from tests.fakes.slack_api import FakeSlack

ALICE = SlackUser(team_id="T0001", user_id="U0001")


class FlakyOutbox(OutboxRepository):
    """The real repository; `mark_notified` fails the first `failures` times, as it does while
    PostgreSQL restarts (a refused connection, or one closed under the pool)."""

    def __init__(self, engine: AsyncEngine, *, failures: int = 0, error: Exception) -> None:
        super().__init__(sessions=create_session_factory(engine))
        self.failures = failures
        self.error = error
        self.claims = 0

    async def mark_notified(
        self, email_id: str, *, version: int, channel: str, ts: str, note: str | None
    ) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        await super().mark_notified(email_id, version=version, channel=channel, ts=ts, note=note)

    async def claim_notifications(
        self, *, lease: timedelta, limit: int, now: Any = None
    ) -> list[OutboxEmail]:
        self.claims += 1
        return await super().claim_notifications(lease=lease, limit=limit, now=now)


async def queue_one(outbox: OutboxRepository, key: str = "V1:h1") -> OutboxEmail:
    row, _ = await outbox.enqueue(
        NewEmail(
            submission_key=key,
            user=ALICE,
            sender="Alice <alice@corp.example>",
            to=["bob@client.example"],
            subject=f"Report {key}",
            body_html="<p>Hi</p>",
            result_channel="C0001",
            deadline=utcnow() + timedelta(minutes=5),
        )
    )
    return row


def notifier(outbox: OutboxRepository, slack: FakeSlack) -> StatusNotifier:
    return StatusNotifier(
        outbox=outbox,
        clients=SlackClients(token=slack.token, base_url=slack.api_url),
        wakeup=Wakeup(),
        lease=timedelta(seconds=30),
    )


async def run_for(notifier: StatusNotifier, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    notifier._wakeup.notify()
    await asyncio.wait_for(task, timeout=10)


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError(111, "Connect call failed"), InterfaceError("x", {}, Exception())],
    ids=["refused", "closed"],
)
async def test_status_posted_while_the_database_restarts_is_not_posted_twice(
    engine: AsyncEngine, slack: FakeSlack, error: Exception
) -> None:
    """chaos `postgres_restart`/`combined`: Slack took the status message, then recording its ts
    failed for a moment. The next pass posted a second message and the first one stayed at
    "Sending…" for good. Now the ts is recorded once the database is back: one message, updated.
    """
    outbox = FlakyOutbox(engine, failures=2, error=error)
    row = await queue_one(outbox)
    status = notifier(outbox, slack)

    await run_for(status, 0.5)
    claimed = await outbox.claim_due(owner="w", lease=timedelta(seconds=30), limit=1)
    assert [r.id for r in claimed] == [row.id]
    assert await outbox.mark_sent(row.id, owner="w")
    await run_for(status, 0.5)

    posts = [c for c in slack.calls_to("chat.postMessage") if c.ok]
    assert len(posts) == 1, [c.args.get("text") for c in posts]
    stored = await outbox.get(row.id)
    assert stored is not None
    assert stored.notified_version == stored.state_version
    posted = posts[0].response or {}
    assert (stored.status_channel, stored.status_ts) == (posted["channel"], posted["ts"])
    message = slack.messages[(str(stored.status_channel), str(stored.status_ts))]
    assert ":white_check_mark: Sent" in json.dumps(message["blocks"])


async def test_a_status_leased_elsewhere_does_not_make_other_notifiers_spin(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """chaos `combined`: a notifier that died (SIGKILL, or its loop crashed on a database error)
    holds its rows' notification lease. Every other notifier computed its sleep from the row's
    due time alone, which was past, so it looped without sleeping until the lease ran out
    (37 s of CPU in one minute). Now it sleeps until the lease ends."""
    outbox = FlakyOutbox(engine, error=RuntimeError("unused"))
    await queue_one(outbox)
    held = await outbox.claim_notifications(lease=timedelta(seconds=30), limit=10)
    assert len(held) == 1  # the dead notifier's claim
    wake_at = await outbox.next_notification_at()
    assert wake_at is not None
    assert held[0].notify_lease_until is not None
    assert abs((wake_at - held[0].notify_lease_until).total_seconds()) < 0.01

    started = time.process_time()
    await run_for(notifier(outbox, slack), 1.0)
    assert outbox.claims <= 3, f"{outbox.claims} claims in 1 s"
    assert time.process_time() - started < 0.5
    assert slack.calls_to("chat.postMessage") == []
