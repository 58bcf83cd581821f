"""Chaos run: b24mail under faults, end to end, checking every e-mail is sent once or reported.

    python -m bench.chaos              # full run: 13 scenarios, 400 e-mails, 3-5 minutes
    python -m bench.chaos --quick      # 8 e-mails per scenario, 2-3 minutes
    python -m bench.chaos --seed 42 --logs /tmp/chaos-logs --verbose   # another seed, keep logs
    python -m bench.chaos --only postgres_restart,combined             # some scenarios

Needs PostgreSQL's server binaries (initdb, pg_ctl: /usr/lib/postgresql/*/bin, or set
B24MAIL_CHAOS_PG_BIN); as root, the cluster runs as the postgres user.

Real processes on 127.0.0.1: `python -m bot serve` (HTTP, B24MAIL_RUN_WORKER=false) and two
`python -m bot worker`, on a private PostgreSQL cluster created for the run (initdb into a
temporary directory, a free port; stopped and removed at the end, also on failure or Ctrl-C),
so restarting it disturbs nobody. The fake Bitrix24 portal and the fake Slack Web API run in
this process (threads). Users are linked through the real `/b24mail connect` modal (signed
view submissions), and every e-mail is a signed compose `view_submission` to /slack/events;
one the app refuses (database down) is pressed again, as a user would: same view, same key.

Each scenario sets its faults, submits a batch of e-mails (in concurrent waves), applies its
mid-run actions (SIGKILL a worker at a random moment and start a new one; stop PostgreSQL
for a moment and start it again), keeps the faults for a while, clears them, and waits
(bounded) until every e-mail's outbox row is `sent` or `failed` and its Slack status message
shows that. Then every e-mail is checked (rows are found by submission key = view id:hash):

* delivered: exactly one portal delivery with Idempotency-Key = row id, the row `sent`, and
  every Slack message about it saying "Sent";
* failed_reported: the row `failed`, no delivery, and the status message says "Not sent" with a
  readable "*Why:*" line (a sentence, not a code);
* duplicated: more than one delivery for one key;
* lost: anything else (no row for an accepted submission, a delivery for a failed row, a status
  message that never reached its final state, or a second status message left behind).

Failures are expected only in `portal_rename` (all) and `webhook_expired` (the expired user's
e-mails); any other failure, or one with the wrong reason, is counted as unexpected. The run
exits 1 when lost, duplicated or unexpected is not zero. Seeded (`--seed`), so the fault
timeline repeats; process and network timing still vary from run to run.

`portal_slow_start`: a portal that starts running a send only after the client's read time-out.
Retrying the same key while the first request still runs would send it twice (the portal runs
both, as documented); the client and the outbox wait until the portal's request limit
(`BITRIX24_REQUEST_LIMIT`, 60 s in production, 2 s here) has passed since that attempt began.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from bench._chaos_infra import (
    HOST,
    SIGNING_SECRET,
    AppProcess,
    PrivatePostgres,
    compose_body,
    connect_body,
    free_port,
    signed,
    start_app,
    wait_for_log,
    wait_ready,
)
from tests.fakes.bitrix24_portal import (
    INTERNAL_SERVER_ERROR,
    QUERY_LIMIT_EXCEEDED,
    SEND,
    FakePortal,
)
from tests.fakes.slack_api import FakeSlack

DATABASE = "b24mail_chaos"
LEASE_SECONDS = 9  # ≥ attempt budget + request limit + 5 s of margin
MOVED_TO = "moved.example.com"
WAIT_BUDGET = 90.0  # seconds to wait, once the faults are cleared, for every e-mail to settle
USERS = 4

HIGH_RATE = {"BITRIX24_RATE": "1000000", "BITRIX24_BURST": "1000000"}

SENT_PREFIX = ":white_check_mark: Sent *"
FAILED_PREFIX = ":x: Not sent:"
WHY_PREFIX = "*Why:* "
_RAW_CODE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")

VERDICTS = ("delivered", "failed_reported", "lost", "duplicated")


# --------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class User:
    slack_id: str
    b24_id: int
    sender: str


@dataclass
class Email:
    scenario: str
    token: str
    subject: str
    user: User
    channel: str
    view_id: str
    view_hash: str
    expect_failure: bool
    accepted: bool = False
    submit_tries: int = 0
    final_at: float | None = None  # monotonic: first seen with its row sent or failed
    shown_at: float | None = None  # monotonic: first seen shown so in Slack
    pending_note: str | None = None  # the row's notification state while Slack lagged

    @property
    def key(self) -> str:
        return f"{self.view_id}:{self.view_hash}"


@dataclass
class Verdict:
    kind: str  # one of VERDICTS
    unexpected: bool = False
    why: str = ""
    row_id: str = ""


@dataclass
class Result:
    scenario: str
    emails: int
    seconds: float
    counts: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    name: str
    emails: int
    hold: float = 2.0  # seconds the faults stay on after the last submission
    faults: Callable[[Chaos], None] | None = None
    kills: int = 0
    pg_restarts: int = 0
    slack_outage: float = 0.0  # seconds of a whole Slack outage at a random moment
    worker_env: dict[str, str] | None = None  # run this scenario on workers with these settings
    fresh_workers: bool = False
    expect_failure: Callable[[Email], bool] = lambda _email: False
    expected_reason: str | None = None  # what the *Why:* line must say for expected failures
    description: str = ""


# --------------------------------------------------------------------------------- the run


class Chaos:
    def __init__(self, *, seed: int, logdir: Path, verbose: bool) -> None:
        self.rng = random.Random(seed)
        self.logdir = logdir
        self.verbose = verbose
        self.portal = FakePortal(rate=1_000_000, burst=1_000_000, host=HOST)
        self.slack = FakeSlack(host=HOST)
        self.pg = PrivatePostgres()
        self.users: list[User] = []
        self.serve: AppProcess | None = None
        self.workers: list[AppProcess] = []
        self.retired: list[AppProcess] = []  # killed or replaced workers (their logs count)
        self.worker_env: dict[str, str] = dict(HIGH_RATE)
        self.serve_port = free_port()
        self.http = httpx.AsyncClient(base_url=f"http://{HOST}:{self.serve_port}", timeout=15)
        self._worker_seq = 0
        self._events: list[str] = []
        self._pg_lock = asyncio.Lock()
        self.secret_key = Fernet.generate_key().decode()

    # -- setup ------------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DATABASE_URL": self.pg.url(DATABASE),
            "B24MAIL_SECRET_KEYS": self.secret_key,
            "HOST": HOST,
            "PORT": str(self.serve_port),
            "LOG_LEVEL": "INFO",
            "B24MAIL_ALLOW_INSECURE_PORTALS": "true",
            "B24MAIL_UNDO_SECONDS": "0",  # e-mails leave at once: no undo window here
            "B24MAIL_LEASE_SECONDS": str(LEASE_SECONDS),
            "B24MAIL_RETRY_BASE_SECONDS": "0.2",
            "B24MAIL_RETRY_MAX_SECONDS": "1",
            "B24MAIL_RETRY_WINDOW_MINUTES": "10",
            "B24MAIL_HOURLY_CAP": "100000",
            "BITRIX24_READ_TIMEOUT": "1",
            # Every request the fake portal runs ends within 2 s (Bitrix24: 60 s).
            "BITRIX24_REQUEST_LIMIT": "2",
            **HIGH_RATE,
        }

    async def start(self) -> None:
        self.portal.start()
        self.slack.start()
        await asyncio.to_thread(self.pg.init_and_start)
        connection = await asyncpg.connect(self.pg.admin_dsn, timeout=10)
        try:
            await connection.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await connection.close()
        env = {**self.base_env(), "B24MAIL_RUN_WORKER": "false"}
        self.serve = start_app("serve", "serve", env, self.logdir)
        await asyncio.to_thread(
            wait_ready, self.serve, f"http://{HOST}:{self.serve_port}/readyz", timeout=60
        )
        await self.link_users()
        for _ in range(2):
            await self.start_worker()

    async def link_users(self) -> None:
        """Each Slack user links their own portal user through the real connect modal."""
        for n in range(1, USERS + 1):
            b24 = self.portal.add_user(n, senders=[(f"User {n}", f"user{n}@corp.example")])
            slack_id = f"U{n:05d}"
            raw, headers = signed(connect_body(b24.webhook_url, user_id=slack_id))
            response = await self.http.post("/slack/events", content=raw, headers=headers)
            if response.status_code != 200 or '"update"' not in response.text:
                raise RuntimeError(f"connect of {slack_id} failed: {response.status_code}")
            self.users.append(User(slack_id, n, f"user{n}@corp.example"))

    async def start_worker(self) -> AppProcess:
        self._worker_seq += 1
        env = {**self.base_env(), **self.worker_env}
        worker = start_app(f"worker-{self._worker_seq}", "worker", env, self.logdir)
        await asyncio.to_thread(wait_for_log, worker, "worker running", timeout=30)
        self.workers.append(worker)
        return worker

    async def restart_workers(self, env: dict[str, str]) -> None:
        """Graceful restart of both workers (SIGTERM: they finish what is in flight)."""
        self.worker_env = dict(env)
        old, self.workers = self.workers, []
        for worker in old:
            await asyncio.to_thread(worker.end)
            self.retired.append(worker)
        for _ in range(2):
            await self.start_worker()

    async def stop(self) -> None:
        await self.http.aclose()
        for process in [*self.workers, *([self.serve] if self.serve else [])]:
            await asyncio.to_thread(process.end, 10.0)
        self.pg.destroy()
        self.slack.stop()
        self.portal.stop()

    # -- mid-run actions --------------------------------------------------------------------
    def event(self, text: str) -> None:
        self._events.append(text)
        if self.verbose:
            print(f"    {time.strftime('%H:%M:%S')} {text}", flush=True)

    async def kill_a_worker(self, pick: int) -> None:
        """SIGKILL worker number `pick` (modulo the live ones) and start another in its place.

        `pick` is drawn when the kill is scheduled: drawing here, while the submissions draw
        their waves concurrently, would make the seeded timeline depend on timing."""
        live = [w for w in self.workers if w.alive()]
        if not live:
            return
        victim = live[pick % len(live)]
        victim.kill9()
        self.workers.remove(victim)
        self.retired.append(victim)
        replacement = await self.start_worker()
        self.event(f"SIGKILL {victim.name} (pid {victim.pid}); started {replacement.name}")

    async def restart_postgres(self, down_for: float) -> None:
        async with self._pg_lock:  # two restarts drawn close together run one after the other
            await asyncio.to_thread(self.pg.stop, "fast")
            await asyncio.sleep(down_for)
            await asyncio.to_thread(self.pg.start)
        self.event(f"PostgreSQL stopped (-m fast) for {down_for:.1f}s and started again")

    async def slack_outage(self, seconds: float) -> None:
        self.slack.set_down(True)
        await asyncio.sleep(seconds)
        self.slack.set_down(False)
        self.event(f"Slack API down for {seconds:.1f}s")

    async def check_processes(self) -> list[str]:
        """Restart anything that died on its own (and say so: that is a finding)."""
        problems = []
        for worker in list(self.workers):
            if not worker.alive():
                problems.append(f"{worker.name} exited by itself ({worker.popen.returncode})")
                self.workers.remove(worker)
                self.retired.append(worker)
                await self.start_worker()
        if self.serve is not None and not self.serve.alive():
            raise RuntimeError(
                f"serve exited ({self.serve.popen.returncode}):\n{self.serve.tail()}"
            )
        return problems

    # -- submissions --------------------------------------------------------------------------
    async def submit(self, email: Email) -> None:
        """Press Send; on an error the user presses it again (same view: same submission key)."""
        body = compose_body(
            user_id=email.user.slack_id,
            sender=email.user.sender,
            subject=email.subject,
            channel=email.channel,
            view_id=email.view_id,
            view_hash=email.view_hash,
        )
        deadline = time.monotonic() + 30
        for attempt in range(1, 16):
            email.submit_tries = attempt
            raw, headers = signed(body)
            with contextlib.suppress(httpx.HTTPError):
                response = await self.http.post("/slack/events", content=raw, headers=headers)
                if response.status_code == 200 and response.text == "":
                    email.accepted = True
                    return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(min(2.0, 0.3 * attempt))

    async def submit_all(self, emails: list[Email]) -> None:
        """In waves of 1-8 concurrent submissions, with short random pauses between waves."""
        pending = list(emails)
        while pending:
            size = self.rng.randint(1, 8)
            wave, pending = pending[:size], pending[size:]
            await asyncio.gather(*(self.submit(e) for e in wave))
            await asyncio.sleep(self.rng.uniform(0.0, 0.4))

    # -- observation --------------------------------------------------------------------------
    async def rows(self, keys: list[str]) -> dict[str, asyncpg.Record]:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = await asyncpg.connect(self.pg.url(DATABASE), timeout=5)
                try:
                    records = await connection.fetch(
                        "SELECT id, submission_key, status, error_code, error_detail, attempts,"
                        " state_version, notified_version, status_channel, status_ts,"
                        " notify_due_at, notify_lease_until, notify_attempts"
                        " FROM outbox WHERE submission_key = ANY($1::text[])",
                        keys,
                    )
                finally:
                    await connection.close()
                return {r["submission_key"]: r for r in records}
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def deliveries(self) -> Counter[str]:
        return Counter(d.idempotency_key or "" for d in self.portal.delivered)

    def slack_messages(self) -> dict[str, list[tuple[str, str, list[str]]]]:
        """token -> [(channel, ts, texts of the message's blocks)] for every bot message."""
        found: dict[str, list[tuple[str, str, list[str]]]] = {}
        for (channel, ts), message in self.slack.messages.items():
            texts = _block_texts(message.get("blocks") or [])
            for match in re.finditer(r"\((cx\d+e\d+)\)", " ".join(texts)):
                found.setdefault(match.group(1), []).append((channel, ts, texts))
        return found


def _block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    texts: list[str] = []
    for block in blocks:
        if block.get("type") == "section":
            texts.append(str((block.get("text") or {}).get("text", "")))
        elif block.get("type") == "context":
            texts.extend(str(e.get("text", "")) for e in block.get("elements") or [])
    return texts


def _shows(texts: list[str], status: str) -> bool:
    if status == "sent":
        return any(t.startswith(SENT_PREFIX) for t in texts)
    if status == "failed":
        return any(t.startswith(FAILED_PREFIX) for t in texts) and any(
            t.startswith(WHY_PREFIX) for t in texts
        )
    return False


def _reason(texts: list[str]) -> str:
    return next((t[len(WHY_PREFIX) :] for t in texts if t.startswith(WHY_PREFIX)), "")


def readable(reason: str) -> bool:
    """A sentence for people: several words, no snake_case code, no unfilled placeholder."""
    return (
        len(reason.split()) >= 5
        and not _RAW_CODE.search(reason)
        and "{" not in reason
        and "Something went wrong on our side" not in reason
    )


def judge(
    email: Email,
    row: asyncpg.Record | None,
    deliveries: Counter[str],
    messages: dict[str, list[tuple[str, str, list[str]]]],
    expected_reason: str | None,
) -> Verdict:
    verdict = _judge(email, row, deliveries, messages, expected_reason)
    verdict.row_id = row["id"] if row is not None else ""
    return verdict


def _judge(
    email: Email,
    row: asyncpg.Record | None,
    deliveries: Counter[str],
    messages: dict[str, list[tuple[str, str, list[str]]]],
    expected_reason: str | None,
) -> Verdict:
    if row is None:
        if not email.accepted:
            return Verdict("lost", why=f"submission refused {email.submit_tries}x and no row")
        return Verdict("lost", why="accepted submission has no outbox row")
    count = deliveries.get(row["id"], 0)
    if count > 1:
        return Verdict("duplicated", why=f"{count} deliveries for one key")
    status = row["status"]
    posted = messages.get(email.token, [])
    primary = [m for m in posted if (m[0], m[1]) == (row["status_channel"], row["status_ts"])]
    others = [m for m in posted if m not in primary]
    where = f"row {status} v{row['state_version']}/{row['notified_version']}, {count} delivery"
    if status == "sent":
        if count != 1:
            return Verdict("lost", why=f"{where}: sent without a delivery")
        if not primary or not _shows(primary[0][2], "sent"):
            shown = primary[0][2][:1] if primary else "no status message"
            return Verdict("lost", why=f"{where}: status never said Sent ({shown})")
        stuck = [m for m in others if not _shows(m[2], "sent")]
        if stuck:
            return Verdict("lost", why=f"{where}: a 2nd status message stuck at {stuck[0][2][:1]}")
        return Verdict("delivered")
    if status == "failed":
        if count:
            return Verdict("lost", why=f"{where}: failed but delivered")
        if not primary or not _shows(primary[0][2], "failed"):
            shown = primary[0][2][:1] if primary else "no status message"
            return Verdict("lost", why=f"{where}: status never said Not sent ({shown})")
        reason = _reason(primary[0][2])
        if not readable(reason):
            return Verdict("lost", why=f"{where}: unreadable reason {reason!r}")
        stuck = [m for m in others if not _shows(m[2], "failed")]
        if stuck:
            return Verdict("lost", why=f"{where}: a 2nd status message stuck at {stuck[0][2][:1]}")
        if not email.expect_failure:
            return Verdict(
                "failed_reported", unexpected=True, why=f"unexpected failure {row['error_code']}"
            )
        if expected_reason and expected_reason not in reason:
            return Verdict(
                "failed_reported", unexpected=True, why=f"wrong reason {row['error_code']}"
            )
        return Verdict("failed_reported")
    return Verdict("lost", why=f"{where}: not final (error {row['error_code']})")


# --------------------------------------------------------------------------------- scenarios


def scenarios(quick: bool) -> list[Scenario]:
    n = 8 if quick else 30
    kills = 1

    def p500(c: Chaos) -> None:
        c.portal.fail_next(n, status=500, methods=[SEND])
        c.portal.fail_next(n // 2, status=502, methods=[SEND])
        c.portal.fail_next(n // 2, status=500, error=INTERNAL_SERVER_ERROR, methods=[SEND])
        c.portal.fail_next(n // 2, status=503, methods=[SEND])

    def timeouts(c: Chaos) -> None:
        # The portal sends, then answers after the client's 1 s read timeout: every attempt
        # times out until the fault is cleared; a retry must be answered from the key's store.
        c.portal.set_latency(1.6, phase="after", methods=[SEND])

    def drops(c: Chaos) -> None:
        c.portal.drop_next(n, phase="before", methods=[SEND])
        c.portal.drop_next(n, phase="after", methods=[SEND])

    def storm(c: Chaos) -> None:
        c.portal.set_rate(5, 5)  # the workers' limiters are set to the same, each on its own
        c.portal.fail_next(n, status=503, error=QUERY_LIMIT_EXCEEDED)

    def time_limit(c: Chaos) -> None:
        c.portal.operation_time_limit(8, methods=[SEND])

    def slack_429(c: Chaos) -> None:
        c.slack.rate_limit("chat.postMessage", times=n, retry_after=1)
        c.slack.rate_limit("chat.update", times=n, retry_after=2)

    def slack_5xx(c: Chaos) -> None:
        c.slack.server_error("chat.postMessage", times=n // 2, status=500)
        c.slack.server_error("chat.update", times=n // 2, status=503)

    def slow_portal(c: Chaos) -> None:
        # Sends stay in flight a little (well under the read timeout), so kills and database
        # restarts land between the portal sending and the worker recording it.
        c.portal.set_latency(0.3, phase="after", methods=[SEND])

    def rename(c: Chaos) -> None:
        c.portal.rename(MOVED_TO)

    def expire(c: Chaos) -> None:
        c.portal.expire_webhook(2)

    def combined(c: Chaos) -> None:
        p500(c)
        c.portal.drop_next(n // 2, phase="after", methods=[SEND])
        c.portal.set_latency(0.2, phase="after", methods=[SEND])
        slack_429(c)

    def slow_start(c: Chaos) -> None:
        # The portal takes 1.5 s before it runs send (longer than the 1 s read timeout), and
        # still runs it after the client gave up.
        c.portal.set_latency(1.5, phase="before", methods=[SEND])

    return [
        Scenario("baseline", n, hold=1, description="no faults"),
        Scenario(
            "portal_500",
            n,
            faults=p500,
            kills=kills,
            description="send answers HTTP 500 (HTML and INTERNAL_SERVER_ERROR), 502, 503",
        ),
        Scenario(
            "portal_timeouts",
            n,
            hold=5,
            faults=timeouts,
            kills=kills,
            description="send runs, its answer comes after the 1 s read timeout",
        ),
        Scenario(
            "dropped_connections",
            n,
            faults=drops,
            kills=kills,
            description="connections closed before send runs, and after it ran",
        ),
        Scenario(
            "query_limit_storm",
            n + n // 3,
            hold=3,
            faults=storm,
            worker_env={"BITRIX24_RATE": "5", "BITRIX24_BURST": "5"},
            description="portal 5 req/s burst 5 and two workers each limited to that; 503s",
        ),
        Scenario(
            "operation_time_limit",
            n,
            faults=time_limit,
            # Workers that sent before remember the last good answer's operating_reset_at (up
            # to 10 min ahead) and rightly wait for it; fresh workers fall back to the 60 s
            # estimate, which fits the scenario's time budget.
            fresh_workers=True,
            description="send gets 429 OPERATION_TIME_LIMIT for 8 s (fresh workers)",
        ),
        Scenario(
            "slack_429",
            n,
            faults=slack_429,
            kills=kills,
            description="chat.postMessage and chat.update answer 429 + Retry-After",
        ),
        Scenario(
            "slack_5xx",
            n,
            faults=slack_5xx,
            slack_outage=3.0,
            description="chat.postMessage 500, chat.update 503, the whole API down for 3 s",
        ),
        Scenario(
            "postgres_restart",
            n,
            hold=4,
            faults=slow_portal,
            pg_restarts=2,
            description="PostgreSQL stopped (-m fast) for 1-3 s and started, twice",
        ),
        Scenario(
            "worker_sigkill",
            n,
            hold=4,
            faults=slow_portal,
            kills=3,
            description="a worker SIGKILLed three times, a new one started each time",
        ),
        Scenario(
            "portal_rename",
            n,
            faults=rename,
            expect_failure=lambda _email: True,
            expected_reason=f"has moved to *{MOVED_TO}*",
            description=f"the portal answers 302 to {MOVED_TO} (all must fail, reported)",
        ),
        Scenario(
            "webhook_expired",
            n,
            faults=expire,
            expect_failure=lambda email: email.user.b24_id == 2,
            expected_reason="did not accept the webhook",
            description="user 2's webhook answers INVALID_CREDENTIALS (theirs must fail)",
        ),
        Scenario(
            "combined",
            n,
            hold=4,
            faults=combined,
            kills=kills,
            pg_restarts=1,
            slack_outage=2.0,
            description="portal 5xx, drops, latency, Slack 429 and outage, SIGKILL, PG restart",
        ),
        Scenario(
            "portal_slow_start",
            n,
            hold=4,
            faults=slow_start,
            # A lease long enough that an attempt outlives the read timeout, as in production
            # (120 s lease, 30 s read timeout); with a 6 s lease the attempt ends with it.
            worker_env={"B24MAIL_LEASE_SECONDS": "20"},
            description="send runs 1.5 s late, after the client's time-out",
        ),
    ]


# --------------------------------------------------------------------------------- running


async def run_scenario(
    chaos: Chaos, index: int, scenario: Scenario
) -> tuple[Result, list[Email], list[Verdict]]:
    started = time.monotonic()
    if scenario.worker_env is not None:
        await chaos.restart_workers({**HIGH_RATE, **scenario.worker_env})
    elif scenario.fresh_workers or chaos.worker_env != HIGH_RATE:
        await chaos.restart_workers(HIGH_RATE)
    log_marks = {p.name: len(p.text()) for p in chaos_processes(chaos)}
    cpu_before = sum(w.cpu_seconds() for w in chaos.workers)

    emails = []
    for i in range(1, scenario.emails + 1):
        user = chaos.rng.choice(chaos.users)
        token = f"cx{index:02d}e{i:03d}"
        email = Email(
            scenario=scenario.name,
            token=token,
            subject=f"Chaos {scenario.name} no. {i} ({token})",
            user=user,
            channel=chaos.rng.choice(["C0CHAOS1", "C0CHAOS2"]),
            view_id=f"VCHAOS{index:02d}{i:03d}{chaos.rng.randrange(16**6):06X}",
            view_hash=f"{int(time.time())}.{chaos.rng.randrange(16**8):08x}",
            expect_failure=False,
        )
        email.expect_failure = scenario.expect_failure(email)
        emails.append(email)

    if scenario.faults is not None:
        scenario.faults(chaos)
    window = scenario.hold + 0.12 * scenario.emails
    actions: list[Awaitable[None]] = []
    for _ in range(scenario.kills):
        at, pick = chaos.rng.uniform(0.3, window), chaos.rng.randrange(2)
        actions.append(_later(at, chaos.kill_a_worker(pick)))
    for _ in range(scenario.pg_restarts):
        down = chaos.rng.uniform(1.0, 3.0)
        actions.append(_later(chaos.rng.uniform(0.3, window), chaos.restart_postgres(down)))
    if scenario.slack_outage:
        at = chaos.rng.uniform(0.3, window)
        actions.append(_later(at, chaos.slack_outage(scenario.slack_outage)))
    mid_run = asyncio.gather(*actions)

    await chaos.submit_all(emails)
    await asyncio.sleep(scenario.hold)
    if any(e.expect_failure for e in emails):
        # Keep the fault until the e-mails it must fail have failed (bounded).
        await wait_until(chaos, [e for e in emails if e.expect_failure], 45.0, settle=False)
    await mid_run
    chaos.portal.reset_faults()
    chaos.slack.clear_faults()
    problems = await chaos.check_processes()

    settled = await wait_until(chaos, emails, WAIT_BUDGET + (15 if scenario.kills else 0))
    problems += await chaos.check_processes()
    seconds = time.monotonic() - started

    result = Result(scenario.name, len(emails), seconds, problems=problems)
    verdicts = await judge_all(chaos, emails, {scenario.name: scenario})
    for email, verdict in zip(emails, verdicts, strict=True):
        result.counts[verdict.kind] += 1
        result.unexpected += int(verdict.unexpected)
        if verdict.kind in ("lost", "duplicated") or verdict.unexpected:
            result.problems.append(f"{email.token} email={verdict.row_id}: {verdict.why}")
    if not settled:
        result.notes.append("did not settle within the wait budget")
    lag = _status_lag_note(emails)
    if lag:
        result.notes.append(lag)
    result.notes += _log_notes(chaos, log_marks)
    cpu = sum(w.cpu_seconds() for w in chaos.workers) - cpu_before
    if cpu > 0:
        result.notes.append(f"CPU of the surviving workers: {cpu:.1f}s")
    retries = sum(e.submit_tries - 1 for e in emails)
    if retries:
        result.notes.append(f"{retries} submission(s) had to be pressed again")
    return result, emails, verdicts


def chaos_processes(chaos: Chaos) -> list[AppProcess]:
    return [*([chaos.serve] if chaos.serve else []), *chaos.workers, *chaos.retired]


def _log_notes(chaos: Chaos, marks: dict[str, int]) -> list[str]:
    """What the processes logged during the scenario that points at trouble."""
    counts: Counter[str] = Counter()
    for process in chaos_processes(chaos):
        text = process.text()[marks.get(process.name, 0) :]
        for needle in ("loop crashed", "crashed; it will be retried", "Traceback", "ERROR"):
            counts[needle] += text.count(needle)
    return [f"log: {n} x {needle!r}" for needle, n in counts.items() if n]


async def _later(delay: float, action: Awaitable[None]) -> None:
    await asyncio.sleep(delay)
    await action


async def wait_until(
    chaos: Chaos, emails: list[Email], budget: float, *, settle: bool = True
) -> bool:
    """Until every e-mail's row is final (and, with `settle`, shown so in Slack); bounded.

    With `settle`, also notes for each e-mail when its row became final, when Slack showed it,
    and the row's notification state the first time it was final but not shown yet.
    """
    deadline = time.monotonic() + budget
    accepted = [e for e in emails if e.accepted]
    while time.monotonic() < deadline:
        rows = await chaos.rows([e.key for e in accepted])
        messages = chaos.slack_messages() if settle else {}
        now = time.monotonic()
        done = len(rows) == len(accepted)
        for email in accepted:
            row = rows.get(email.key)
            if row is None or row["status"] not in ("sent", "failed"):
                done = False
                continue
            if not settle:
                continue
            if email.final_at is None:
                email.final_at = now
            shown = row["notified_version"] >= row["state_version"] and any(
                (m[0], m[1]) == (row["status_channel"], row["status_ts"])
                and _shows(m[2], row["status"])
                for m in messages.get(email.token, [])
            )
            if shown and email.shown_at is None:
                email.shown_at = now
            elif not shown:
                done = False
                if email.pending_note is None:
                    email.pending_note = _notify_state(row)
        if done:
            return True
        await asyncio.sleep(0.5)
    return False


def _notify_state(row: asyncpg.Record) -> str:
    now = datetime.now(UTC)

    def rel(at: datetime | None) -> str:
        return "-" if at is None else f"{(at - now).total_seconds():+.0f}s"

    return (
        f"notify_due {rel(row['notify_due_at'])}, lease {rel(row['notify_lease_until'])}, "
        f"attempts {row['notify_attempts']}"
    )


def _status_lag_note(emails: list[Email]) -> str | None:
    """The slowest status message, counted from its row's final state, when it is slow."""
    lags = [
        (e.shown_at - e.final_at, e)
        for e in emails
        if e.shown_at is not None and e.final_at is not None
    ]
    if not lags:
        return None
    lag, email = max(lags, key=lambda pair: pair[0])
    if lag < 10:
        return None
    return (
        f"slowest status: shown {lag:.0f}s after the row was final ({email.token}; first seen "
        f"behind with {email.pending_note})"
    )


async def judge_all(
    chaos: Chaos, emails: list[Email], by_name: dict[str, Scenario]
) -> list[Verdict]:
    rows = await chaos.rows([e.key for e in emails])
    deliveries = chaos.deliveries()
    messages = chaos.slack_messages()
    return [
        judge(e, rows.get(e.key), deliveries, messages, by_name[e.scenario].expected_reason)
        for e in emails
    ]


def print_table(results: list[Result]) -> None:
    header = (
        f"{'scenario':<22}{'emails':>7}{'delivered':>10}{'failed_reported':>16}"
        f"{'lost':>6}{'duplicated':>11}{'unexpected':>11}{'seconds':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.scenario:<22}{r.emails:>7}{r.counts['delivered']:>10}"
            f"{r.counts['failed_reported']:>16}{r.counts['lost']:>6}"
            f"{r.counts['duplicated']:>11}{r.unexpected:>11}{r.seconds:>9.1f}"
        )


async def run(args: argparse.Namespace, logdir: Path) -> int:
    chaos = Chaos(seed=args.seed, logdir=logdir, verbose=args.verbose)
    plan = scenarios(args.quick)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in plan}
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        plan = [s for s in plan if s.name in wanted]
    by_name = {s.name: s for s in plan}
    results: list[Result] = []
    all_emails: list[Email] = []
    end_verdicts: dict[str, Verdict] = {}
    late: list[str] = []
    # Every lost or duplicated e-mail with its reason, for the summary (a bare count cannot be
    # investigated after the run's logs are gone).
    reasons: list[str] = []
    try:
        setup_started = time.monotonic()
        await chaos.start()
        print(
            f"chaos: seed={args.seed} serve + 2 workers on PostgreSQL :{chaos.pg.port}, "
            f"{len(chaos.users)} users linked via /b24mail connect "
            f"({time.monotonic() - setup_started:.1f}s); logs in {logdir}",
            flush=True,
        )
        for index, scenario in enumerate(plan, start=1):
            print(
                f"== {scenario.name} ({scenario.emails} e-mails): {scenario.description}",
                flush=True,
            )
            result, emails, verdicts = await run_scenario(chaos, index, scenario)
            results.append(result)
            all_emails += emails
            end_verdicts.update({e.token: v for e, v in zip(emails, verdicts, strict=True)})
            c = result.counts
            print(
                f"   delivered={c['delivered']} failed_reported={c['failed_reported']} "
                f"lost={c['lost']} duplicated={c['duplicated']} unexpected={result.unexpected} "
                f"in {result.seconds:.1f}s",
                flush=True,
            )
            for line in [*result.problems[:12], *result.notes]:
                print(f"   - {line}", flush=True)

        # A last look at everything: a late second delivery or a late change still counts.
        final = await judge_all(chaos, all_emails, by_name)
        for email, verdict in zip(all_emails, final, strict=True):
            before = end_verdicts[email.token]
            worst = verdict if verdict.kind in ("lost", "duplicated") else before
            if worst.kind in ("lost", "duplicated"):
                reasons.append(
                    f"{worst.kind}: {email.scenario} {email.token} email={worst.row_id}: "
                    f"{worst.why}"
                )
            if verdict.kind in ("lost", "duplicated") and verdict.kind != before.kind:
                result = next(r for r in results if r.scenario == email.scenario)
                result.counts[before.kind] -= 1
                result.counts[verdict.kind] += 1
                result.unexpected -= int(before.unexpected)
                late.append(f"{email.scenario} {email.token}: later {verdict.why}")
    finally:
        await chaos.stop()

    for line in late:
        print(f"late: {line}")
    print()
    print_table(results)
    total = Counter[str]()
    for r in results:
        total.update(r.counts)
    unexpected = sum(r.unexpected for r in results)
    lost, duplicated = total["lost"], total["duplicated"]
    print(f"unexpected failures: {unexpected}")
    for line in reasons:
        print(f"  {line}")
    print(
        f"chaos: scenarios={len(results)} emails={sum(r.emails for r in results)} "
        f"delivered={total['delivered']} failed_reported={total['failed_reported']} "
        f"lost={lost} duplicated={duplicated}"
    )
    return 1 if lost or duplicated or unexpected else 0


@contextlib.contextmanager
def _logdir(path: str | None) -> Iterator[Path]:
    if path:
        target = Path(path)
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="b24mail-chaos-logs-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--quick", action="store_true", help="8 e-mails per scenario")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--logs", help="keep the processes' logs in this directory")
    parser.add_argument("--verbose", action="store_true", help="print mid-run actions")
    args = parser.parse_args(argv)

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise SystemExit(143)  # unwinds through the finally blocks that stop everything

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C cancels the run, whose finally blocks stop everything (also when started in the
    # background, where SIGINT would otherwise be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with _logdir(args.logs) as logdir:
        try:
            return asyncio.run(run(args, logdir))
        except KeyboardInterrupt:
            print("chaos: interrupted; processes and the PostgreSQL cluster are gone", flush=True)
            return 130


if __name__ == "__main__":
    sys.exit(main())
