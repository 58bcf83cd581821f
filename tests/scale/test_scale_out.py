"""Scale-out on PostgreSQL, as the Procfile runs it: 2 `b24mail web` and 3 `b24mail worker`
processes. 500 e-mails are submitted through both web processes (signed compose view
submissions, alternating); one worker is SIGKILLed while it holds e-mails in flight. Every
e-mail must reach the portal exactly once (by Idempotency-Key) and its status message say Sent.

The portal keeps each send 0.3 s before running it, and runs it even when the caller is gone:
the killed worker's sends still happen, and the next worker's attempt with the same key (after
the 10 s lease) must be answered from the portal's idempotency store, not sent again.

chat.postMessage has no idempotency key, so a status message the killed worker posted but had
not yet recorded could stay at "Sending…" beside the final one another worker posts (0-7 per
500 e-mails before). The intent is recorded before posting and the next worker finds the
message by its metadata, so no status message is left behind: every one is the recorded one.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._chaos_infra import compose_body, connect_body
from bot.settings import normalize_database_url
from bot.store.db import create_engine
from tests.fakes.bitrix24_portal import SEND, FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import sign
from tests.support.databases import create_pg_database, drop_pg_database, postgres_required
from tests.support.processes import HOST, BotProcess, Processes, free_port, plain_pg_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EMAILS = 500
USERS = 5
WORKERS = 3
WEBS = 2
IN_FLIGHT = 16  # concurrent submissions
LEASE_SECONDS = 10
SEND_LATENCY = 0.3
SIGNING_SECRET = "scale-out-signing-secret-0123456789"
SENT = ":white_check_mark: Sent"


@pytest.fixture
def pg_database() -> Iterator[str]:
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, _url = create_pg_database("b24mail_scale")
    yield name
    drop_pg_database(name)


_COLUMNS = (
    "id, submission_key, subject, status, lease_owner, attempts, state_version,"
    " notified_version, status_channel, status_ts"
)


async def _rows(
    engine: AsyncEngine, where: str = "TRUE", **params: object
) -> list[dict[str, object]]:
    """Outbox rows matching `where` (one of this test's constant conditions)."""
    query = text(f"SELECT {_COLUMNS} FROM outbox WHERE {where}")  # noqa: S608
    async with engine.connect() as connection:
        result = await connection.execute(query, params)
        return [dict(row._mapping) for row in result]


class Run:
    """The processes, fakes and counters of one run."""

    def __init__(self, engine: AsyncEngine, webs: list[tuple[BotProcess, str]]) -> None:
        self.engine = engine
        self.webs = webs
        self.http = httpx.AsyncClient(timeout=30)
        self.accepted = 0
        self.answers: Counter[tuple[int, int, str]] = Counter()  # (web, status, body)

    async def post(self, web: int, body: str) -> httpx.Response:
        raw = body.encode()
        headers = sign(raw, signing_secret=SIGNING_SECRET)
        return await self.http.post(
            f"{self.webs[web][1]}/slack/events", content=raw, headers=headers
        )

    async def submit_all(self, users: list[tuple[str, str]]) -> None:
        numbers = iter(range(EMAILS))

        async def submitter() -> None:
            for n in numbers:
                slack_id, sender = users[n % len(users)]
                body = compose_body(
                    user_id=slack_id,
                    sender=sender,
                    subject=f"Scale {n:03d}",
                    channel=f"C{n % 7:08d}",
                    view_id=f"VSCALE{n:05d}",
                    view_hash=f"h{n:05d}",
                )
                web = n % WEBS
                response = await self.post(web, body)
                self.answers[(web, response.status_code, response.text)] += 1
                self.accepted += 1

        await asyncio.gather(*(submitter() for _ in range(IN_FLIGHT)))


async def test_two_webs_three_workers_one_killed_every_email_sent_exactly_once(
    tmp_path: Path, pg_database: str
) -> None:
    started = time.monotonic()
    key = Fernet.generate_key().decode()
    with (
        FakePortal(rate=1_000_000, burst=1_000_000, host=HOST) as portal,
        FakeSlack(host=HOST) as slack,
    ):
        env = {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": plain_pg_url(pg_database),
            "B24MAIL_SECRET_KEYS": key,
            "HOST": HOST,
            "B24MAIL_ALLOW_INSECURE_PORTALS": "true",
            "B24MAIL_UNDO_SECONDS": "0",  # e-mails leave at once: no undo window here
            "B24MAIL_LEASE_SECONDS": str(LEASE_SECONDS),
            "BITRIX24_REQUEST_LIMIT": "1",
            "BITRIX24_READ_TIMEOUT": "3",
            "BITRIX24_RATE": "1000000",
            "BITRIX24_BURST": "1000000",
            "B24MAIL_HOURLY_CAP": "100000",
            "B24MAIL_RETRY_BASE_SECONDS": "0.2",
            "B24MAIL_RETRY_MAX_SECONDS": "1",
            "B24MAIL_SHUTDOWN_GRACE_SECONDS": "5",
            "WEB_CONCURRENCY": "1",
        }
        with Processes(tmp_path, env) as processes:
            migrated = processes.run("migrate")  # the Procfile's release phase
            assert migrated.returncode == 0, migrated.stderr
            webs = []
            for n in range(WEBS):
                port = free_port()
                webs.append(
                    (processes.start(f"web-{n}", "web", PORT=str(port)), f"http://{HOST}:{port}")
                )
            workers = [processes.start(f"worker-{n}", "worker") for n in range(WORKERS)]
            await asyncio.gather(
                *(web.await_http(f"{url}/readyz", timeout=60) for web, url in webs),
                *(worker.await_log("worker running", timeout=60) for worker in workers),
            )
            engine = create_engine(normalize_database_url(plain_pg_url(pg_database)))
            run = Run(engine, webs)
            try:
                users = []
                for n in range(1, USERS + 1):
                    b24 = portal.add_user(n, senders=[(f"User {n}", f"user{n}@corp.example")])
                    slack_id = f"U{n:05d}"
                    linked = await run.post(
                        n % WEBS, connect_body(b24.webhook_url, user_id=slack_id)
                    )
                    assert linked.status_code == 200 and '"update"' in linked.text, linked.text
                    users.append((slack_id, f"user{n}@corp.example"))
                portal.set_latency(SEND_LATENCY, phase="before", methods=[SEND])

                victim = workers[0]
                owner = _owner(victim)
                orphans: list[dict[str, object]] = []
                killed_at: list[float] = []

                async def kill_mid_way() -> None:
                    while run.accepted < EMAILS // 2:
                        await asyncio.sleep(0.02)
                    # Kill while it holds sends it claimed within the last 0.1 s: they are still
                    # waiting on the portal (0.3 s), so they are really orphaned.
                    fresh = (
                        "lease_owner = :owner AND status = 'sending'"
                        " AND lease_expires_at > now() + make_interval(secs => :left)"
                    )
                    for _ in itertools.count():
                        if await _rows(engine, fresh, owner=owner, left=LEASE_SECONDS - 0.1):
                            break
                        await asyncio.sleep(0.005)
                    victim.kill9()
                    killed_at.append(time.time())
                    orphans.extend(
                        await _rows(
                            engine, "lease_owner = :owner AND status = 'sending'", owner=owner
                        )
                    )

                await asyncio.wait_for(
                    asyncio.gather(run.submit_all(users), kill_mid_way()), timeout=60
                )
                submitted_at = time.monotonic()
                assert run.answers == Counter(
                    {(0, 200, ""): EMAILS // 2, (1, 200, ""): EMAILS // 2}
                )

                deadline = time.monotonic() + 60
                while True:
                    rows = await _rows(engine)
                    settled = [
                        r
                        for r in rows
                        if r["status"] == "sent" and r["notified_version"] == r["state_version"]
                    ]
                    if len(settled) == EMAILS:
                        break
                    assert time.monotonic() < deadline, (
                        f"{len(settled)}/{EMAILS} sent and shown after 60 s: "
                        f"{Counter(str(r['status']) for r in rows)}"
                    )
                    await asyncio.sleep(0.25)
                settled_at = time.monotonic()

                # Exactly once, by Idempotency-Key; every row sent; every status message final.
                assert {r["submission_key"] for r in rows} == {
                    f"VSCALE{n:05d}:h{n:05d}" for n in range(EMAILS)
                }
                deliveries = Counter(d.idempotency_key for d in portal.delivered)
                assert deliveries == Counter({r["id"]: 1 for r in rows})
                assert len(portal.delivered) == EMAILS
                messages = slack.messages  # a copy: take it once
                for row in rows:
                    shown = messages[(row["status_channel"], row["status_ts"])]["text"]
                    assert shown.startswith(SENT), (row["id"], shown)
                recorded = {(r["status_channel"], r["status_ts"]) for r in rows}
                stale = {key: m for key, m in messages.items() if key not in recorded}
                posted_at = {
                    (c.args.get("channel"), (c.response or {}).get("ts")): c.at
                    for c in slack.calls_to("chat.postMessage")
                    if c.ok
                }
                assert stale == {}, [
                    (m["text"][:60], posted_at.get(key), killed_at[0]) for key, m in stale.items()
                ]
                # The killed worker's e-mails were taken again after their lease, sent once.
                assert orphans, "the killed worker held no e-mail"
                by_id = {r["id"]: r for r in rows}
                assert all(int(by_id[o["id"]]["attempts"]) >= 2 for o in orphans)  # type: ignore[call-overload]

                assert all(process.alive() for process, _ in webs)
                assert all(worker.alive() for worker in workers[1:])
                for worker in workers[1:]:
                    code, _took = await asyncio.to_thread(worker.terminate, timeout=20)
                    assert code == 0, worker.tail()
                for web, _url in webs:
                    code, _took = await asyncio.to_thread(web.terminate, timeout=20)
                    # uvicorn finishes gracefully, then re-raises SIGTERM for the supervisor.
                    assert code in (0, -signal.SIGTERM), web.tail()
                print(
                    f"\nscale-out: emails={EMAILS} delivered={len(portal.delivered)} "
                    f"duplicates={sum(c - 1 for c in deliveries.values())} orphaned={len(orphans)} "
                    f"stale_status_messages={len(stale)} "
                    f"submit_s={submitted_at - started:.1f} total_s={settled_at - started:.1f}"
                )
            finally:
                await run.http.aclose()
                await engine.dispose()


def _owner(worker: BotProcess) -> str:
    """The lease owner id a worker logs when its delivery loop starts."""
    worker.wait_for_log("delivery worker ", timeout=30)
    for line in worker.text().splitlines():
        if "delivery worker " in line and line.endswith(" started"):
            return line.split("delivery worker ", 1)[1].split()[0]
    raise AssertionError(f"{worker.name} logged no owner id:\n{worker.tail()}")
