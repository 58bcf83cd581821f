"""Outbox throughput: 2 000 queued e-mails drained by 4 workers on PostgreSQL, against the same
HTTP calls made directly, without the database.

Ours: 4 `bot.worker.Worker`s in this process (the delivery loop and the status-message loop,
what `b24mail worker` runs), each with its own Services (engine, Bitrix24 client, Slack
client), LISTEN/NOTIFY included. Timed from start until every e-mail is sent *and* its
status message shows "Sent" in Slack.

Raw: 4 lanes x 8 concurrent tasks (the workers' delivery concurrency), each with its own
Bitrix24Client and AsyncWebClient; per e-mail chat.postMessage ("Sending…"), one
mail.message.send and chat.update ("Sent"): the calls the worker makes, with the same
payloads, minus every database read and write.

Rounds alternate raw, ours, ours, raw so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet

from bench._support import BOT_TOKEN, SIGNING_SECRET, Fakes
from bench.submit import drain, postgres_pending
from bot.bitrix24 import Bitrix24Client, ClientConfig, OutgoingEmail, parse_webhook_url
from bot.identity import SlackUser
from bot.services import Services, build_services
from bot.settings import Settings
from bot.slack.clients import SlackClients
from bot.slack.render.status import status_message
from bot.slack.wording import Texts
from bot.store.base import utcnow
from bot.store.db import create_engine
from bot.store.listen import asyncpg_dsn
from bot.store.migrations import upgrade
from bot.store.models import OutboxEmail
from bot.store.outbox import NewEmail
from bot.worker import Worker

EMAILS = 2000
WORKERS = 4
USERS = 20
ROUNDS = 2  # of each kind
ENQUEUE_CONCURRENCY = 16
HUGE = 1e9


@dataclass
class OutboxResult:
    ours_s: list[float]
    raw_s: list[float]
    failed: int

    @property
    def emails_per_s(self) -> float:
        return EMAILS * len(self.ours_s) / sum(self.ours_s)

    @property
    def raw_per_s(self) -> float:
        return EMAILS * len(self.raw_s) / sum(self.raw_s)

    def rows(self) -> list[tuple[str, str]]:
        return [
            (
                f"outbox: {EMAILS} e-mails, {WORKERS} workers, PostgreSQL (x{len(self.ours_s)})",
                f"{self.emails_per_s:.0f} e-mails/s  (runs: "
                + ", ".join(f"{t:.1f} s" for t in self.ours_s)
                + ")",
            ),
            (
                f"raw calls, same payloads, {WORKERS}x8 concurrent (x{len(self.raw_s)})",
                f"{self.raw_per_s:.0f} e-mails/s  (runs: "
                + ", ".join(f"{t:.1f} s" for t in self.raw_s)
                + ")",
            ),
        ]

    def summary(self) -> str:
        return (
            f"outbox: emails_per_s={self.emails_per_s:.0f} raw_calls_per_s={self.raw_per_s:.0f} "
            f"ratio={self.emails_per_s / self.raw_per_s:.2f}"
        )


def _settings(fakes: Fakes, database_url: str) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fakes.slack_api_url,
        "database_url": database_url,
        "b24mail_secret_keys": KEY,
        "b24mail_allow_insecure_portals": True,
        "b24mail_undo_seconds": 0,
        "b24mail_hourly_cap": 10**9,
        "bitrix24_rate": HUGE,
        "bitrix24_burst": 10**9,
        # The fake portal never runs a request for long; with Bitrix24's 60 s an ambiguous
        # failure would be retried only a minute later, on both sides alike.
        "bitrix24_request_limit": 1.0,
        "log_level": "WARNING",
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


KEY = Fernet.generate_key().decode()


def _user(n: int) -> SlackUser:
    return SlackUser(team_id="T0001", user_id=f"UOB{n:04d}")


async def _setup(services: Services, fakes: Fakes) -> dict[SlackUser, tuple[str, str]]:
    """Link USERS users to portal users 1001…; {user: (webhook url, sender)}."""
    linked = {}
    for n in range(USERS):
        portal_user = fakes.portal_user(1001 + n)
        await services.links.connect(_user(n), portal_user["webhook_url"])
        linked[_user(n)] = (str(portal_user["webhook_url"]), str(portal_user["senders"][0][1]))
    return linked


async def _enqueue(services: Services, linked: dict[SlackUser, tuple[str, str]], tag: str) -> None:
    users = list(linked)
    slots = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

    async def one(i: int) -> None:
        user = users[i % len(users)]
        async with slots:
            await services.outbox.enqueue(
                NewEmail(
                    submission_key=f"{tag}-{i}",
                    user=user,
                    sender=linked[user][1],
                    to=["Bob <bob@client.example>"],
                    subject=f"outbox {tag} {i}",
                    body_html="<p>Hello Bob,<br>the report is attached.</p>",
                    result_channel="C0001",
                    deadline=utcnow() + timedelta(minutes=30),
                )
            )

    await asyncio.gather(*(one(i) for i in range(EMAILS)))


async def _run_ours(settings: Settings, pending: Any) -> float:
    stacks = [
        build_services(settings, engine=create_engine(settings.database_url))
        for _ in range(WORKERS)
    ]
    workers = [Worker(s) for s in stacks]
    started = time.perf_counter()
    try:
        for worker in workers:
            await worker.start()
        await drain(pending, timeout=600)
        return time.perf_counter() - started
    finally:
        for worker in workers:
            await worker.stop()
        for services in stacks:
            await services.aclose()


def _sample_row(sender: str, status: str) -> OutboxEmail:
    now = utcnow()
    return OutboxEmail(
        id=str(uuid.uuid4()),
        kind="send",
        sender=sender,
        to_addrs=["Bob <bob@client.example>"],
        cc_addrs=[],
        bcc_addrs=[],
        subject="outbox raw",
        body_html="<p>Hello Bob,<br>the report is attached.</p>",
        result_channel="C0001",
        status=status,
        attempts=1,
        next_attempt_at=now,
        deadline_at=now,
        created_at=now,
        updated_at=now,
        sent_at=now if status == "sent" else None,
        error_code=None,
    )


async def _run_raw(fakes: Fakes, linked: dict[SlackUser, tuple[str, str]]) -> float:
    t = Texts()
    users = list(linked)
    queue = list(range(EMAILS))
    # Each lane as the worker has it: its own Bitrix24Client, and a Slack client with one
    # session (SlackClients), so both sides reuse their connections.
    clients = [
        (
            Bitrix24Client(config=ClientConfig(rate=HUGE, burst=10**9, portal_request_limit=1.0)),
            SlackClients(token=BOT_TOKEN, base_url=fakes.slack_api_url),
        )
        for _ in range(WORKERS)
    ]

    async def lane_task(bitrix24: Bitrix24Client, clients: SlackClients) -> None:
        slack = await clients.for_team(enterprise_id="", team_id="T0001")
        while queue:
            i = queue.pop()
            url, sender = linked[users[i % len(users)]]
            creds = parse_webhook_url(url, allow_insecure=True)
            text, blocks = status_message(t, _sample_row(sender, "queued"))
            posted = await slack.chat_postMessage(channel="C0001", text=text, blocks=blocks)
            email = OutgoingEmail(
                from_=sender,
                to=["Bob <bob@client.example>"],
                subject=f"outbox raw {i}",
                body="<p>Hello Bob,<br>the report is attached.</p>",
            )
            result = await bitrix24.send(creds, email, idempotency_key=str(uuid.uuid4()))
            if not result.success:
                raise RuntimeError("raw send failed")
            text, blocks = status_message(t, _sample_row(sender, "sent"))
            await slack.chat_update(
                channel=str(posted["channel"]), ts=str(posted["ts"]), text=text, blocks=blocks
            )

    started = time.perf_counter()
    try:
        async with asyncio.timeout(600):
            await asyncio.gather(*(lane_task(b, s) for b, s in clients for _ in range(8)))
        return time.perf_counter() - started
    finally:
        for bitrix24, slack in clients:
            await bitrix24.aclose()
            await slack.aclose()


async def measure(fakes: Fakes, database_url: str) -> OutboxResult:
    settings = _settings(fakes, database_url)
    engine = create_engine(database_url)
    await upgrade(engine)
    await engine.dispose()
    services = build_services(settings)
    pending = postgres_pending(asyncpg_dsn(database_url))
    ours: list[float] = []
    raw: list[float] = []
    failed = 0
    try:
        linked = await _setup(services, fakes)
        for round_, kind in enumerate(["raw", "ours", "ours", "raw"][: 2 * ROUNDS]):
            if kind == "raw":
                raw.append(await _run_raw(fakes, linked))
            else:
                await _enqueue(services, linked, f"r{round_}")
                ours.append(await _run_ours(settings, pending))
                failed += (await pending())[1]
    finally:
        await services.aclose()
    return OutboxResult(ours, raw, failed)
