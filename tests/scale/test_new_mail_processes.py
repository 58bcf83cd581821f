"""New-mail cards exactly once with two `b24mail worker` processes on PostgreSQL, one of them
SIGKILLed after Slack took a card and before the worker heard back (so before it recorded it).

Many subscriptions are checked by both workers (claims are leased, the poll slot shared). The
fake Slack holds back its answer to one chat.postMessage; the worker that made that call is
killed while it waits. After its lease, the other worker takes the check over, finds the card
in the DM's history by the token in its metadata, and does not post it again. Every e-mail must
end up as exactly one card.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from bot.identity import SlackUser
from bot.settings import normalize_database_url
from bot.slack import ids
from bot.store.crypto import SecretBox
from bot.store.db import create_engine, create_session_factory
from bot.store.links import LinkRepository
from bot.store.subscriptions import SubscriptionRepository
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.support.databases import create_pg_database, drop_pg_database, postgres_required
from tests.support.processes import HOST, BotProcess, Processes, plain_pg_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

USERS = 30
FIRST_WAVE = 3  # e-mails per user before the kill
SECOND_WAVE = 2  # and after it
LEASE_SECONDS = 3
HOLD_SECONDS = 4.0
WAIT = 90.0


@pytest.fixture
def pg_database() -> Iterator[str]:
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, _url = create_pg_database("b24mail_newmail")
    yield name
    drop_pg_database(name)


def _cards(slack: FakeSlack) -> Counter[int]:
    return Counter(
        int(m["metadata"]["event_payload"]["message_id"])
        for m in slack.messages.values()
        if (m.get("metadata") or {}).get("event_type") == ids.EMAIL_CARD_EVENT
    )


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        result = condition() if callable(condition) else condition
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_two_workers_one_killed_after_posting_every_email_posted_exactly_once(
    tmp_path: Path, pg_database: str
) -> None:
    key = Fernet.generate_key().decode()
    url = plain_pg_url(pg_database)
    with (
        FakePortal(rate=1_000_000, burst=1_000_000, host=HOST) as portal,
        FakeSlack(host=HOST) as slack,
    ):
        env = {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": "new-mail-signing-secret-0123456789",
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": url,
            "B24MAIL_SECRET_KEYS": key,
            "HOST": HOST,
            "B24MAIL_ALLOW_INSECURE_PORTALS": "true",
            "B24MAIL_LEASE_SECONDS": str(LEASE_SECONDS),
            "B24MAIL_POLL_INTERVAL_SECONDS": "1",
            "BITRIX24_RATE": "1000",
            "BITRIX24_BURST": "1000",
            "BITRIX24_REQUEST_LIMIT": "1",
            "B24MAIL_SHUTDOWN_GRACE_SECONDS": "5",
        }
        with Processes(tmp_path, env) as processes:
            migrated = processes.run("migrate")
            assert migrated.returncode == 0, migrated.stderr
            engine = create_engine(normalize_database_url(url))
            try:
                sessions = create_session_factory(engine)
                links = LinkRepository(sessions=sessions, box=SecretBox([SecretStr(key)]))
                subscriptions = SubscriptionRepository(sessions=sessions)
                b24_users = []
                for n in range(USERS):
                    b24 = portal.add_user(n + 1)
                    b24_users.append(b24)
                    user = SlackUser(team_id="T0001", user_id=f"U{n:05d}")
                    slack.add_user(user.user_id)
                    link = await links.save(
                        user,
                        scheme="http",
                        host=f"{HOST}:{portal.port}",
                        b24_user_id=b24.user_id,
                        secret=SecretStr(b24.code),
                        senders=[{"email": b24.senders[0][1], "name": "", "sender": ""}],
                    )
                    portal.add_message(b24.user_id, subject="Before", from_="a@example.com")
                    await subscriptions.subscribe(
                        user,
                        link_id=link.id,
                        portal_host=link.portal_host,
                        search=None,
                        channel_id=None,
                    )
                workers: list[BotProcess] = [
                    processes.start(f"worker-{n}", "worker") for n in range(2)
                ]
                await asyncio.gather(*(w.await_log("worker running", timeout=60) for w in workers))

                async def baselines_taken() -> bool:
                    async with engine.connect() as connection:
                        left = await connection.scalar(
                            text("SELECT count(*) FROM mail_subscriptions WHERE NOT baseline_done")
                        )
                    return left == 0

                await _until(baselines_taken, "the baselines")
                held = slack.hold_response("chat.postMessage", HOLD_SECONDS)
                expected: list[int] = []
                numbers = itertools.count()
                for b24 in b24_users:
                    for _ in range(FIRST_WAVE):
                        expected.append(
                            portal.add_message(
                                b24.user_id, subject=f"Wave 1 #{next(numbers)}", from_="c@x.org"
                            )
                        )
                assert await asyncio.to_thread(held.taken.wait, WAIT), "no card was posted"
                token = held.args["metadata"]["event_payload"]["post_token"]
                # The worker that posted the held card, still waiting for Slack's answer.
                async with engine.connect() as connection:
                    owner = await connection.scalar(
                        text(
                            "SELECT s.lease_owner FROM mail_seen m JOIN mail_subscriptions s"
                            " ON s.id = m.subscription_id"
                            " WHERE m.token = :token AND m.state = 'pending'"
                        ),
                        {"token": token},
                    )
                assert owner, "no worker holds the held card"
                pid = int(str(owner).split(":")[1])
                victim = next(w for w in workers if w.pid == pid)
                survivor = next(w for w in workers if w.pid != pid)
                victim.kill9()

                for b24 in b24_users:
                    for _ in range(SECOND_WAVE):
                        expected.append(
                            portal.add_message(
                                b24.user_id, subject=f"Wave 2 #{next(numbers)}", from_="c@x.org"
                            )
                        )
                await _until(lambda: set(_cards(slack)) >= set(expected), "every card")
                await asyncio.sleep(LEASE_SECONDS + 2)  # later checks: nothing more appears
                cards = _cards(slack)
                assert cards == Counter(dict.fromkeys(expected, 1)), {
                    m: c for m, c in cards.items() if c != 1
                }
                # The held card was found in the DM's history, not posted again.
                assert "not posted again" in survivor.text(), survivor.tail()
                assert survivor.alive()
                code, _took = await asyncio.to_thread(survivor.terminate, timeout=20)
                assert code == 0, survivor.tail()
            finally:
                await engine.dispose()
