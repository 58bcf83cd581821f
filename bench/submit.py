"""Compose submissions against a running `b24mail serve`: ack time (the outbox write included),
the ack time while the portal is slow, delivery latency (ack → the portal has the e-mail),
and the memory of the serve process over thousands of sends.

Every submission is a real signed view_submission over HTTP; Slack users U00001… were linked
through `/b24mail connect`'s modal beforehand. Users are taken in turn, so no one reaches the
hourly cap (B24MAIL_HOURLY_CAP, 200 by default).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from bench._support import Fakes, Proc, RawHTTP, compose_request, ms, percentile

SUBMIT_WARMUP = 30
SUBMITS = 300
# Submissions arrive every SUBMIT_GAP seconds (50 a second, far more than one workspace sends):
# the ack time as a user sees it. Back to back, the in-process worker's own work for the
# previous e-mails shares the event loop and the figure is the loop's cycle time at
# saturation; it is measured too and shown in the table.
SUBMIT_GAP = 0.02
SLOW_LATENCY = 5.0
SLOW_IN_FLIGHT = 100
SLOW_SUBMITS = 300
DELIVERIES = 100
DELIVERY_GAP = 0.15  # seconds between delivery probes: each e-mail travels alone
DRAIN_TIMEOUT = 180.0

Pending = Callable[[], Awaitable[tuple[int, int]]]


# ------------------------------------------------------------------------------ the outbox state

_PENDING_SQL = (
    "SELECT "
    "COALESCE(SUM(CASE WHEN status NOT IN ('sent', 'failed') "
    "OR notified_version < state_version THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) "
    "FROM outbox"
)


def sqlite_pending(path: str) -> Pending:
    """(e-mails not yet sent or whose status Slack does not show yet, failed e-mails)."""

    async def pending() -> tuple[int, int]:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = connection.execute(_PENDING_SQL).fetchone()
        finally:
            connection.close()
        return int(row[0]), int(row[1])

    return pending


def postgres_pending(dsn: str) -> Pending:
    async def pending() -> tuple[int, int]:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            row = await connection.fetchrow(_PENDING_SQL)
        finally:
            await connection.close()
        assert row is not None
        return int(row[0]), int(row[1])

    return pending


async def drain(pending: Pending, *, timeout: float = DRAIN_TIMEOUT) -> int:
    """Wait until every e-mail is sent and shown in Slack; returns how many failed."""
    deadline = time.monotonic() + timeout
    while True:
        left, failed = await pending()
        if left == 0:
            return failed
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{left} e-mail(s) still pending after {timeout}s")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------ submitting


@dataclass
class Submitter:
    """Sends valid compose submissions for the linked users, in turn."""

    port: int
    senders: dict[str, str]
    label: str = "bench"
    _next: int = 0
    _users: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._users = sorted(self.senders)

    def request(self, subject: str | None = None) -> tuple[bytes, str]:
        user = self._users[self._next % len(self._users)]
        self._next += 1
        subject = subject or f"{self.label} {self._next} {uuid.uuid4().hex[:8]}"
        raw = compose_request(
            self.port,
            user=user,
            sender=self.senders[user],
            subject=subject,
            view_id=f"V{uuid.uuid4().hex[:12].upper()}",
        )
        return raw, subject

    async def submit(self, conn: RawHTTP) -> tuple[float, str, float]:
        """One submission; (ack seconds, subject, wall clock when the ack arrived)."""
        raw, subject = self.request()
        started = time.perf_counter()
        status, body = await conn.request(raw)
        elapsed = time.perf_counter() - started
        acked_at = time.time()
        if status != 200 or body.strip():
            # A valid submission is acked with an empty body; anything else is an error view.
            raise RuntimeError(f"submission refused: {status} {body[:300]!r}")
        return elapsed, subject, acked_at

    async def serial(self, conn: RawHTTP, n: int, *, gap: float = 0.0) -> list[float]:
        """`n` submissions one after another, `gap` seconds apart (0: back to back)."""
        times = []
        for _ in range(n):
            times.append((await self.submit(conn))[0])
            if gap:
                await asyncio.sleep(gap)
        return times

    async def concurrent(self, port: int, n: int, concurrency: int) -> None:
        conns = [await RawHTTP.connect(port) for _ in range(concurrency)]
        remaining = [n]

        async def worker(conn: RawHTTP) -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await self.submit(conn)

        try:
            async with asyncio.timeout(600):
                await asyncio.gather(*(worker(c) for c in conns))
        finally:
            for conn in conns:
                await conn.close()


# ------------------------------------------------------------------------------ measurements


@dataclass
class SubmitResult:
    normal: list[float]
    back_to_back: list[float]
    slow: list[float]
    failed: int

    def rows(self) -> list[tuple[str, str]]:
        every = f"every {SUBMIT_GAP * 1000:.0f} ms"
        return [
            (
                f"submit ack, {every}, portal fast (n={len(self.normal)})",
                f"p50 {ms(percentile(self.normal, 0.5)):.2f} ms  "
                f"p99 {ms(percentile(self.normal, 0.99)):.2f} ms",
            ),
            (
                f"submit ack, back to back (saturated) (n={len(self.back_to_back)})",
                f"p50 {ms(percentile(self.back_to_back, 0.5)):.2f} ms  "
                f"p99 {ms(percentile(self.back_to_back, 0.99)):.2f} ms",
            ),
            (
                f"submit ack, {every}, portal 5 s slow, {SLOW_IN_FLIGHT} queued "
                f"(n={len(self.slow)})",
                f"p50 {ms(percentile(self.slow, 0.5)):.2f} ms  "
                f"p99 {ms(percentile(self.slow, 0.99)):.2f} ms",
            ),
        ]

    def summary(self) -> str:
        return (
            f"submit: p50_ms={ms(percentile(self.normal, 0.5)):.2f} "
            f"p99_ms={ms(percentile(self.normal, 0.99)):.2f} "
            f"slow_portal_p99_ms={ms(percentile(self.slow, 0.99)):.2f}"
        )


async def measure_submit(submitter: Submitter, fakes: Fakes, pending: Pending) -> SubmitResult:
    conn = await RawHTTP.connect(submitter.port)
    try:
        await submitter.serial(conn, SUBMIT_WARMUP)
        await drain(pending)
        normal = await submitter.serial(conn, SUBMITS, gap=SUBMIT_GAP)
        await drain(pending)
        back_to_back = await submitter.serial(conn, SUBMITS)
        await drain(pending)
        fakes.latency(SLOW_LATENCY, "before")
        try:
            await submitter.serial(conn, SLOW_IN_FLIGHT)
            slow = await submitter.serial(conn, SLOW_SUBMITS, gap=SUBMIT_GAP)
        finally:
            fakes.latency(0, "before")
        failed = await drain(pending)
    finally:
        await conn.close()
    return SubmitResult(normal, back_to_back, slow, failed)


async def measure_delivery(submitter: Submitter, fakes: Fakes, pending: Pending) -> list[float]:
    """Ack → delivered, one e-mail at a time (time.time() on both ends)."""
    conn = await RawHTTP.connect(submitter.port)
    acked: dict[str, float] = {}
    try:
        for _ in range(5):  # warm the path (connections to the portal and to Slack)
            await submitter.submit(conn)
            await asyncio.sleep(DELIVERY_GAP)
        await drain(pending)
        for _ in range(DELIVERIES):
            _elapsed, subject, acked_at = await submitter.submit(conn)
            acked[subject] = acked_at
            await asyncio.sleep(DELIVERY_GAP)
        await drain(pending)
    finally:
        await conn.close()
    delivered = {d["subject"]: float(d["at"]) for d in fakes.delivered() if d["subject"] in acked}
    missing = set(acked) - set(delivered)
    if missing:
        raise RuntimeError(f"{len(missing)} e-mail(s) never reached the portal")
    return [delivered[s] - acked[s] for s in acked]


@dataclass
class MemoryResult:
    idle_mb: float
    after_1k_mb: float
    after_5k_mb: float
    failed: int

    def rows(self) -> list[tuple[str, str]]:
        growth = (self.after_5k_mb / self.after_1k_mb - 1) * 100
        return [
            ("serve RSS idle (linked, before any send)", f"{self.idle_mb:.1f} MB"),
            ("serve RSS after 1 000 sends", f"{self.after_1k_mb:.1f} MB"),
            ("serve RSS after 5 000 sends", f"{self.after_5k_mb:.1f} MB  ({growth:+.1f} %)"),
        ]

    def summary(self) -> str:
        return (
            f"memory: idle_mb={self.idle_mb:.1f} after_1k_mb={self.after_1k_mb:.1f} "
            f"after_5k_mb={self.after_5k_mb:.1f}"
        )


MEMORY_CONCURRENCY = 8


async def measure_memory(submitter: Submitter, serve: Proc, pending: Pending) -> MemoryResult:
    await asyncio.sleep(1.0)
    idle = serve.rss_mb()
    await submitter.concurrent(submitter.port, 1000, MEMORY_CONCURRENCY)
    failed = await drain(pending)
    await asyncio.sleep(1.0)
    after_1k = serve.rss_mb()
    await submitter.concurrent(submitter.port, 4000, MEMORY_CONCURRENCY)
    failed += await drain(pending)
    await asyncio.sleep(1.0)
    after_5k = serve.rss_mb()
    return MemoryResult(idle, after_1k, after_5k, failed)
