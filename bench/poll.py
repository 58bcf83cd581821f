"""New-mail polling against one portal with the cloud limits (2 requests/s, burst 50).

Two phases, each a fresh world (SQLite database, fake portal, fake Slack, the real poller,
Bitrix24 client and limiter, in this process):

1. **Sends while polling** (real time): 200 subscriptions are being checked at the full poll
   budget while e-mails are sent through the same client at the rest of the portal's rate;
   `send_p95_ms_during_poll` is how long a send took to reach the portal (p95).
2. **Period, exactly once, freshness** (a clock running `SPEED` times faster for the poller, the
   portal's bucket and the client's limiter, so 3 rounds of 400 s take about a minute): e-mails
   arrive for random users, a fifth of them dated 15 minutes in the past (fetched late by
   Bitrix24); every one must be posted once. `period_s` is the median time between two checks
   of one subscription; `freshness_p95_s` the time from an e-mail's arrival to its card.

`rejected` counts the portal's 503 QUERY_LIMIT_EXCEEDED over both phases.

Run: ``python -m bench.poll`` (also part of ``python -m bench``). Prints one line:
``poll: users=200 portals=1 interval_s=… budget=0.25 period_s=… ideal_period_s=… rejected=0
notified=N duplicates=0 missed=0 freshness_p95_s=… send_p95_ms_during_poll=…``
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.bitrix24 import (
    Bitrix24Client,
    ClientConfig,
    OutgoingEmail,
    PortalLimiters,
    parse_webhook_url,
)
from bot.identity import SlackUser
from bot.mail.linking import LinkService
from bot.mail.notify import NotifyService, PollConfig
from bot.mail.wakeup import Wakeup
from bot.slack import ids
from bot.slack.clients import SlackClients
from bot.slack.new_mail import NewMailPoller
from bot.slack.wording import Texts
from bot.store.cards import CardRepository
from bot.store.crypto import SecretBox
from bot.store.db import create_engine, create_session_factory
from bot.store.links import LinkRepository
from bot.store.migrations import upgrade
from bot.store.models import MailSubscription
from bot.store.subscriptions import SubscriptionRepository
from tests.fakes.bitrix24_portal import QUERY_LIMIT_EXCEEDED, FakePortal, FakeUser
from tests.fakes.slack_api import FakeSlack

USERS = 200
RATE = 2.0
BURST = 50
BUDGET = 0.25
INTERVAL = timedelta(seconds=60)
SPEED = 25.0
ROUNDS = 3
EMAILS = 120
SEND_PHASE_SECONDS = 15.0
SEND_EVERY = 1.0 / (RATE * (1 - BUDGET))  # the rest of the portal's rate


class WarpClock:
    """A monotonic clock and a UTC clock that run `speed` times faster than real time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._real0 = time.monotonic()
        self._wall0 = time.time()
        self._utc0 = datetime.now(UTC)

    def monotonic(self) -> float:
        return self._real0 + (time.monotonic() - self._real0) * self.speed

    def now(self) -> datetime:
        return self._utc0 + timedelta(seconds=(time.monotonic() - self._real0) * self.speed)

    def from_wall(self, wall: float) -> datetime:
        """The warped time of a real wall-clock time (a Slack ts)."""
        return self._utc0 + timedelta(seconds=(wall - self._wall0) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


@dataclass
class World:
    clock: WarpClock
    portal: FakePortal
    slack: FakeSlack
    client: Bitrix24Client
    poller: NewMailPoller
    notify: NotifyService
    b24: list[FakeUser]
    checks: dict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))


@asynccontextmanager
async def world(speed: float, directory: Path) -> AsyncIterator[World]:
    clock = WarpClock(speed)
    portal = FakePortal(rate=RATE, burst=BURST, clock=clock.monotonic).start()
    slack = FakeSlack().start()
    engine = create_engine(f"sqlite+aiosqlite:///{directory / f'poll-{speed:g}.db'}")
    await upgrade(engine)
    sessions = create_session_factory(engine)
    limiters = PortalLimiters(rate=RATE, burst=BURST, clock=clock.monotonic, sleep=clock.sleep)
    client = Bitrix24Client(config=ClientConfig(rate=RATE, burst=BURST), limiters=limiters)
    box = SecretBox([SecretStr(Fernet.generate_key().decode())])
    repository = LinkRepository(sessions=sessions, box=box)
    subscriptions = SubscriptionRepository(sessions=sessions)
    links = LinkService(
        links=repository,
        bitrix24=client,
        allow_insecure=True,
        probe_timeout=2.0,
        sender_ttl=timedelta(hours=1),
        subscriptions=subscriptions,
    )
    notify = NotifyService(
        links=links,
        bitrix24=client,
        subscriptions=subscriptions,
        config=PollConfig(interval=INTERVAL, budget=BUDGET, rate=RATE),
        clock=clock.now,
    )
    b24: list[FakeUser] = []
    for n in range(USERS):
        user = portal.add_user(n + 1)
        b24.append(user)
        slack_user = SlackUser(team_id="T0001", user_id=f"U{n:05d}")
        slack.add_user(slack_user.user_id)
        link = await repository.save(
            slack_user,
            scheme="http",
            host=f"127.0.0.1:{portal.port}",
            b24_user_id=user.user_id,
            secret=SecretStr(user.code),
            senders=[{"email": user.senders[0][1], "name": "", "sender": user.senders[0][1]}],
        )
        await subscriptions.subscribe(
            slack_user,
            link_id=link.id,
            portal_host=link.portal_host,
            search=None,
            channel_id=None,
            now=clock.now(),
        )

    async def english(_user: SlackUser, _client: Any) -> Texts:
        return Texts()

    clients = SlackClients(token=slack.token, base_url=slack.api_url)
    poller = NewMailPoller(
        notify=notify,
        clients=clients,
        cards=CardRepository(sessions=sessions),
        texts_for=english,
        wakeup=Wakeup(),
        limiters=limiters,
        clock=clock.now,
        time_scale=1.0 / speed,
    )
    made = World(clock, portal, slack, client, poller, notify, b24)
    original = notify.check

    async def timed(row: MailSubscription, *, owner: str) -> Any:
        made.checks[row.id].append(clock.now())
        return await original(row, owner=owner)

    notify.check = timed  # type: ignore[method-assign]
    try:
        yield made
    finally:
        await client.aclose()
        await clients.aclose()
        await engine.dispose()
        portal.stop()
        slack.stop()


def rejected(portal: FakePortal) -> int:
    return sum(
        1
        for r in portal.requests
        if r.status == 503
        and isinstance(r.response, dict)
        and r.response.get("error") == QUERY_LIMIT_EXCEEDED
    )


def p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def sends_during_poll(directory: Path) -> tuple[list[float], int]:
    """Phase 1: send latencies (ms) while the poller works at its full budget."""
    async with world(1.0, directory) as w:
        stop = asyncio.Event()
        task = asyncio.create_task(w.poller.run(stop))
        sender = w.b24[0]
        creds = parse_webhook_url(sender.webhook_url, allow_insecure=True)
        email = OutgoingEmail(
            from_=sender.senders[0][1], to=["bench@example.com"], subject="s", body="<p>x</p>"
        )
        latencies: list[float] = []

        async def one() -> None:
            started = time.perf_counter()
            await w.client.send(creds, email, idempotency_key=f"bench-{uuid.uuid4()}")
            latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.sleep(2.0)  # the poller is under way
        sends = []
        end = time.monotonic() + SEND_PHASE_SECONDS
        while time.monotonic() < end:
            sends.append(asyncio.create_task(one()))
            await asyncio.sleep(SEND_EVERY)
        await asyncio.gather(*sends)
        stop.set()
        await task
        return latencies, rejected(w.portal)


async def period_and_exactly_once(directory: Path) -> dict[str, Any]:
    """Phase 2: the warped run."""
    rng = random.Random(13)
    async with world(SPEED, directory) as w:
        stop = asyncio.Event()
        task = asyncio.create_task(w.poller.run(stop))
        ideal = max(INTERVAL.total_seconds(), USERS / (BUDGET * RATE))
        # Round 1 is the baseline; e-mails arrive during rounds 2 and 3.
        await w.clock.sleep(ideal)
        added: dict[tuple[int, int], datetime] = {}
        span = ideal * (ROUNDS - 1) * 0.8
        gaps = sorted(rng.uniform(0, span) for _ in range(EMAILS))
        started = w.clock.monotonic()
        for gap in gaps:
            await w.clock.sleep(max(0.0, gap - (w.clock.monotonic() - started)))
            owner = rng.randrange(USERS)
            late = rng.random() < 0.2
            when = w.clock.now() - timedelta(minutes=15) if late else w.clock.now()
            message_id = w.portal.add_message(
                w.b24[owner].user_id,
                subject=f"bench {len(added)}",
                from_="Client <client@example.com>",
                body="<p>Hello</p>",
                date=when,
            )
            added[(owner, message_id)] = w.clock.now()
        deadline = w.clock.monotonic() + 2 * ideal
        while w.clock.monotonic() < deadline and len(_cards(w)) < len(added):
            await asyncio.sleep(0.2)
        # One more round: anything posted twice would show now.
        await w.clock.sleep(min(ideal, max(0.0, deadline - w.clock.monotonic())))
        stop.set()
        await task
        cards = _cards(w)
        counts = Counter(message_id for message_id, _ts in cards)
        posted_at: dict[int, datetime] = {}
        for message_id, ts in cards:
            posted_at.setdefault(message_id, w.clock.from_wall(float(ts)))
        freshness = [
            (posted_at[m] - at).total_seconds() for (_o, m), at in added.items() if m in posted_at
        ]
        periods = [
            (b - a).total_seconds()
            for times in w.checks.values()
            for a, b in itertools.pairwise(times)
        ]
        return {
            "period": statistics.median(periods) if periods else 0.0,
            "ideal": ideal,
            "notified": len(counts),
            "duplicates": sum(c - 1 for c in counts.values()),
            "missed": sum(1 for (_o, m) in added if m not in counts),
            "freshness_p95": p95(freshness),
            "rejected": rejected(w.portal),
        }


def _cards(w: World) -> list[tuple[int, str]]:
    return [
        (int(m["metadata"]["event_payload"]["message_id"]), ts)
        for (_ch, ts), m in w.slack.messages.items()
        if (m.get("metadata") or {}).get("event_type") == ids.EMAIL_CARD_EVENT
    ]


async def run() -> str:
    with tempfile.TemporaryDirectory(prefix="b24mail-bench-poll-") as tmp:
        directory = Path(tmp)
        latencies, rejected_sends = await sends_during_poll(directory)
        result = await period_and_exactly_once(directory)
    return (
        f"poll: users={USERS} portals=1 interval_s={INTERVAL.total_seconds():.0f} "
        f"budget={BUDGET} period_s={result['period']:.1f} ideal_period_s={result['ideal']:.1f} "
        f"rejected={rejected_sends + result['rejected']} notified={result['notified']} "
        f"duplicates={result['duplicates']} missed={result['missed']} "
        f"freshness_p95_s={result['freshness_p95']:.1f} "
        f"send_p95_ms_during_poll={p95(latencies):.0f}"
    )


def main() -> None:
    print(asyncio.run(run()), flush=True)


if __name__ == "__main__":
    main()
