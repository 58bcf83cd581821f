"""Send later, on time: 200 e-mails scheduled 5-30 s ahead, two `b24mail worker` processes on
PostgreSQL, the fake portal in its own process.

Error = the portal's arrival time of an e-mail − the time it was due. Goal: p99 ≤ 2 000 ms,
none early, none twice. The e-mails are queued as a submission queues them (SendingService
with send_at) before the workers start, so the workers find them only in the table: what a
restart leaves behind. The workers sleep until the earliest due time (at most their idle
poll), not on a minute-long timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from datetime import datetime, timedelta

from cryptography.fernet import Fernet

from bench._support import Fakes, app_env, fakes, free_port, ms, percentile, pg_database, started
from bench._support import tempdir as temporary
from bot.identity import SlackUser
from bot.mail.compose import ValidEmail
from bot.services import build_services
from bot.settings import Settings
from bot.store.base import utcnow
from bot.store.db import create_engine
from bot.store.migrations import upgrade

EMAILS = 200
WORKERS = 2
USERS = 10
EARLIEST_S, LATEST_S = 5.0, 30.0
STARTUP_MARGIN_S = 4.0  # the workers' start-up, before the first e-mail is due


async def _schedule(f: Fakes, url: str, key: str) -> tuple[dict[str, datetime], float]:
    """Link users and queue EMAILS e-mails due 5-30 s after the workers will be up."""
    engine = create_engine(url)
    await upgrade(engine)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        slack_bot_token="xoxb-test-token",
        slack_signing_secret="bench",
        b24mail_secret_keys=key,
        b24mail_allow_insecure_portals=True,
        b24mail_hourly_cap=10_000,
    )
    services = build_services(settings, engine=engine)
    due: dict[str, datetime] = {}
    try:
        users = []
        for n in range(1, USERS + 1):
            portal_user = f.portal_user(n)
            user = SlackUser(team_id="T0001", user_id=f"U{n:05d}")
            await services.links.connect(user, portal_user["webhook_url"])
            users.append((user, str(portal_user["senders"][0][1])))
        start = utcnow() + timedelta(seconds=STARTUP_MARGIN_S)
        for n in range(EMAILS):
            user, sender = users[n % USERS]
            when = start + timedelta(seconds=random.uniform(EARLIEST_S, LATEST_S))
            row, _ = await services.sending.submit(
                user,
                ValidEmail(
                    sender=sender,
                    to=["bob@client.example"],
                    cc=[],
                    bcc=[],
                    subject=f"Scheduled {n}",
                    body_html="<p>later</p>",
                    body_source=None,
                ),
                submission_key=f"bench-schedule-{n}",
                result_channel="C0001",
                send_at=when,
            )
            assert row.not_before is not None
            due[row.id] = row.not_before
        last = max(due.values())
    finally:
        await services.aclose()
    return due, (last - utcnow()).total_seconds()


def run() -> str:
    key = Fernet.generate_key().decode()
    with (
        temporary() as tmp,
        fakes(tmp) as f,
        pg_database() as url,
        contextlib.ExitStack() as stack,
    ):
        due, last_in = asyncio.run(_schedule(f, url, key))
        env = {"B24MAIL_SECRET_KEYS": key, "B24MAIL_HOURLY_CAP": "10000"}
        procs = [
            stack.enter_context(
                started(
                    f"worker-{i}",
                    ["-m", "bot", "worker"],
                    env=app_env(f, url, free_port(), **env),
                    logdir=tmp,
                )
            )
            for i in range(WORKERS)
        ]
        deadline = time.monotonic() + last_in + 30
        delivered = f.delivered()
        while len({d["idempotency_key"] for d in delivered}) < EMAILS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(delivered)} of {EMAILS} e-mails arrived")
            for proc in procs:
                proc.check_alive()
            time.sleep(0.5)
            delivered = f.delivered()
        time.sleep(2)  # time for a wrong second copy to arrive
        delivered = f.delivered()
    keys = Counter(d["idempotency_key"] for d in delivered)
    errors = [
        d["at"] - due[d["idempotency_key"]].timestamp()
        for d in delivered
        if d["idempotency_key"] in due
    ]
    early = sum(1 for e in errors if e < 0)
    duplicated = sum(count - 1 for count in keys.values() if count > 1)
    return (
        f"schedule: n={len(keys)} due_error_p50_ms={ms(percentile(errors, 0.5)):.0f} "
        f"due_error_p99_ms={ms(percentile(errors, 0.99)):.0f} "
        f"max_ms={ms(max(errors)):.0f} early={early} duplicated={duplicated}"
    )


def main() -> None:
    print(run(), flush=True)


if __name__ == "__main__":
    main()
