"""The per-portal request budget shared through PostgreSQL: several OS processes together stay
under the portal's limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.bitrix24_rate_shared import run_shared
from bot.bitrix24 import PortalLimiters, headroom_slots
from bot.store.db import create_engine
from bot.store.rate_limits import SharedRateLimiter
from tests.support.databases import sqlite_url


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def shared(engine: AsyncEngine, sleep: Sleeps, *, rate: float, burst: int) -> SharedRateLimiter:
    return SharedRateLimiter(
        engine=engine,
        rate=rate,
        burst=burst,
        headroom=headroom_slots(rate, burst),
        fallback=PortalLimiters(rate=rate, burst=burst),
        sleep=sleep,
    )


async def test_reservations_past_the_burst_wait_their_turn(postgres_url: str) -> None:
    """Burst 5 at 2/s: four go at once (one slot of headroom), then one every half second;
    another portal has its own budget."""
    engine = create_engine(postgres_url)
    sleep = Sleeps()
    try:
        limiter = shared(engine, sleep, rate=2.0, burst=5)
        host = f"p{id(sleep)}.example"
        for _ in range(6):
            await limiter.acquire(host)
        await limiter.acquire(f"other-{host}")
    finally:
        await engine.dispose()
    # The database's clock moves on between calls: a little less than 0.5 and 1.0.
    assert len(sleep.calls) == 2
    assert sleep.calls[0] == pytest.approx(0.5, abs=0.05)
    assert sleep.calls[1] == pytest.approx(1.0, abs=0.05)


async def test_saturate_makes_every_limiter_pace_from_a_full_bucket(postgres_url: str) -> None:
    """After QUERY_LIMIT_EXCEEDED seen by one process, another's next request waits."""
    engine = create_engine(postgres_url)
    first, second = Sleeps(), Sleeps()
    try:
        host = f"sat{id(first)}.example"
        await shared(engine, first, rate=2.0, burst=50).saturate(host)
        await shared(engine, second, rate=2.0, burst=50).acquire(host)
    finally:
        await engine.dispose()
    # A full bucket (50) plus this request, against a capacity of 49: two slots at 2/s.
    assert second.calls == [pytest.approx(1.0, abs=0.05)]


async def test_a_cancelled_waiter_hands_its_slot_back(postgres_url: str) -> None:
    """A request cancelled while waiting does not slow the next one down."""
    engine = create_engine(postgres_url)

    async def cancelled(_seconds: float) -> None:
        raise asyncio.CancelledError

    sleep = Sleeps()
    try:
        host = f"cancel{id(sleep)}.example"
        limiter = shared(engine, sleep, rate=2.0, burst=2)
        await limiter.acquire(host)  # capacity 1: this one goes at once
        impatient = SharedRateLimiter(
            engine=engine, rate=2.0, burst=2, headroom=1, fallback=PortalLimiters(), sleep=cancelled
        )
        with pytest.raises(asyncio.CancelledError):
            await impatient.acquire(host)
        await limiter.acquire(host)
    finally:
        await engine.dispose()
    assert sleep.calls == [pytest.approx(0.5, abs=0.05)]  # not 1.0: the ghost slot was returned


async def test_without_the_database_each_process_paces_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unreachable database falls back to this process's bucket, with a warning."""
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    fallback = PortalLimiters(rate=2.0, burst=2)
    limiter = SharedRateLimiter(
        engine=engine, rate=2.0, burst=2, headroom=1, fallback=fallback, sleep=Sleeps()
    )
    try:
        await limiter.acquire("down.example")
    finally:
        await engine.dispose()
    assert fallback.get("down.example").level == pytest.approx(1.0, abs=0.01)
    assert "pacing this process only" in caplog.text


async def test_sqlite_is_refused(tmp_path: Path) -> None:
    """The shared budget is a PostgreSQL feature; SQLite keeps the in-process buckets."""
    engine = create_engine(sqlite_url(tmp_path / "x.db"))
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            SharedRateLimiter(engine=engine, rate=2, burst=5, headroom=1, fallback=PortalLimiters())
    finally:
        await engine.dispose()


def test_three_processes_share_one_budget_and_meet_no_rate_limit(
    postgres_url: str, tmp_path: Path
) -> None:
    """Three OS processes, 15 concurrent sends each, one portal at 5/s burst 10: no 503.

    (At 10/s the 0.3 s of headroom was once too little on the loaded shared machine.)"""
    result = run_shared(
        database_url=postgres_url, processes=3, sends_each=15, rate=5.0, burst=10, logdir=tmp_path
    )
    assert (result.sent, result.failed, result.delivered) == (45, 0, 45)
    assert result.rejected == 0
    # Paced, not merely lucky: the whole run cannot beat the portal's own drain.
    assert result.wall >= result.ideal * 0.95


def test_per_process_buckets_alone_overrun_the_portal(postgres_url: str, tmp_path: Path) -> None:
    """The same run with each process pacing only itself meets QUERY_LIMIT_EXCEEDED: what the
    shared budget is for (and proof the test above can fail)."""
    result = run_shared(
        database_url=postgres_url,
        processes=3,
        sends_each=15,
        rate=10.0,
        burst=10,
        local=True,
        logdir=tmp_path,
    )
    assert result.rejected > 0
