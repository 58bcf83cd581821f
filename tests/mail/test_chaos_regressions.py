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


class Died(BaseException):
    """The worker's death right after Slack took the message (SIGKILL, as in the scale-out
    test): nothing after it runs, nothing is recorded."""


class DyingOutbox(FlakyOutbox):
    async def mark_notified(
        self, email_id: str, *, version: int, channel: str, ts: str, note: str | None
    ) -> None:
        raise Died


@pytest.mark.parametrize("thread", [False, True], ids=["channel", "thread"])
async def test_a_worker_dying_between_posting_and_recording_leaves_no_stale_status(
    engine: AsyncEngine, slack: FakeSlack, thread: bool
) -> None:
    """scale-out/chaos kill: the first notifier posts "Sending…" and dies before recording its
    ts. The next one finds that message by its metadata (the intent was recorded before the
    post) and updates it to Sent: one message, not a stale one beside a new one."""
    dying = DyingOutbox(engine, error=RuntimeError("unused"))
    if thread:
        parent = str(slack.add_message("C0001", text="the e-mail card")["ts"])
        row, _ = await dying.enqueue(
            NewEmail(
                submission_key="VT:h1",
                user=ALICE,
                sender="Alice <alice@corp.example>",
                to=["bob@client.example"],
                subject="Re: Offer",
                body_html="<p>Hi</p>",
                result_channel="C0001",
                result_thread_ts=parent,
                deadline=utcnow() + timedelta(minutes=5),
            )
        )
    else:
        row = await queue_one(dying)
    first = notifier(dying, slack)
    (claimed,) = await dying.claim_notifications(lease=timedelta(seconds=30), limit=1)
    with pytest.raises(Died):
        await first.notify(claimed)
    await first._clients.aclose()
    assert len([c for c in slack.calls_to("chat.postMessage") if c.ok]) == 1

    # The e-mail goes out meanwhile; the lease of the dead notifier has run out.
    outbox = FlakyOutbox(engine, error=RuntimeError("unused"))
    (sending,) = await outbox.claim_due(owner="w", lease=timedelta(seconds=30), limit=1)
    assert await outbox.mark_sent(sending.id, owner="w")
    later = utcnow() + timedelta(seconds=31)
    (again,) = await outbox.claim_notifications(lease=timedelta(seconds=30), limit=1, now=later)
    second = notifier(outbox, slack)
    await second.notify(again)
    await second._clients.aclose()

    posts = [c for c in slack.calls_to("chat.postMessage") if c.ok]
    assert len(posts) == 1, [c.args.get("text") for c in posts]
    stored = await outbox.get(row.id)
    assert stored is not None and stored.notified_version == stored.state_version
    assert (stored.status_channel, stored.status_ts) == (
        posts[0].response["channel"],  # type: ignore[index]
        posts[0].response["ts"],  # type: ignore[index]
    )
    shown = [
        m for m in slack.messages.values() if "Report" in json.dumps(m) or "Offer" in json.dumps(m)
    ]
    assert len(shown) == 1 and ":white_check_mark: Sent" in json.dumps(shown[0]["blocks"])
