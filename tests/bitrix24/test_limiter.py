"""The client-side leaky bucket, with an injected clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.bitrix24 import LeakyBucket, PortalLimiters, shared_limiters


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    """Records each requested pause; optionally lets the fake clock run forward by it."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)
        if self.clock is not None:
            self.clock.now += delay


def bucket(
    clock: FakeClock, sleep: RecordingSleep, *, rate: float = 2.0, burst: int = 3
) -> LeakyBucket:
    return LeakyBucket(rate=rate, burst=burst, clock=clock, sleep=sleep)


async def test_burst_less_one_slot_passes_without_waiting() -> None:
    """Up to `burst - 1` requests go at once; one slot stays free as headroom."""
    clock, sleep = FakeClock(), RecordingSleep()
    b = bucket(clock, sleep)
    for _ in range(2):
        await b.acquire()
    assert sleep.calls == []
    assert b.level == pytest.approx(2)


async def test_over_burst_waits_one_drain_interval() -> None:
    """The request after the immediate ones waits 1/rate seconds."""
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    b = bucket(clock, sleep)
    for _ in range(3):
        await b.acquire()
    assert sleep.calls == [pytest.approx(0.5)]


async def test_level_drains_at_rate() -> None:
    """The counter falls by `rate` per second and never below zero."""
    clock, sleep = FakeClock(), RecordingSleep()
    b = bucket(clock, sleep, rate=2.0, burst=10)
    for _ in range(10):
        await b.acquire()
    clock.now += 1.5
    assert b.level == pytest.approx(7)
    clock.now += 100
    assert b.level == 0
    assert b.idle()


async def test_partial_drain_shortens_the_wait() -> None:
    """Time already passed counts towards the wait."""
    clock, sleep = FakeClock(), RecordingSleep()
    b = bucket(clock, sleep, rate=2.0, burst=3)
    await b.acquire()
    await b.acquire()
    clock.now += 0.2
    await b.acquire()
    assert sleep.calls == [pytest.approx(0.3)]


async def test_concurrent_waiters_are_served_in_order() -> None:
    """Waiters queue by arrival, each sleeping exactly until its own slot."""
    clock, sleep = FakeClock(), RecordingSleep()
    b = bucket(clock, sleep, rate=4.0, burst=3)
    await asyncio.gather(*(b.acquire() for _ in range(6)))
    assert sleep.calls == [pytest.approx(d) for d in (0.25, 0.5, 0.75, 1.0)]


async def test_sends_never_exceed_the_portal_bucket() -> None:
    """Simulated in virtual time, the portal's own bucket never overflows."""
    clock = FakeClock()
    b = LeakyBucket(rate=2.0, burst=5, clock=clock, sleep=RecordingSleep(clock))
    sent: list[float] = []
    for _ in range(20):
        await b.acquire()
        sent.append(clock.now)
    level, last = 0.0, sent[0]
    for moment in sent:
        level = max(0.0, level - (moment - last) * 2.0) + 1
        last = moment
        assert level <= 4 + 1e-9  # one slot of headroom for arrival jitter
    assert sent[-1] - sent[0] == pytest.approx((20 - 4) / 2.0)


async def test_cancelled_waiter_returns_its_slot() -> None:
    """A waiter cancelled while sleeping does not hold a slot forever."""
    clock = FakeClock()
    started = asyncio.Event()

    async def slow_sleep(delay: float) -> None:
        started.set()
        await asyncio.sleep(3600)

    b = LeakyBucket(rate=1.0, burst=2, clock=clock, sleep=slow_sleep)
    await b.acquire()
    task = asyncio.create_task(b.acquire())
    await started.wait()
    assert b.level == pytest.approx(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.level == pytest.approx(1)


async def test_saturate_fills_the_bucket() -> None:
    """After the portal says it is full, the next request waits a drain interval."""
    clock, sleep = FakeClock(), RecordingSleep()
    b = bucket(clock, sleep, rate=2.0, burst=50)
    b.saturate()
    assert b.level == pytest.approx(50)
    await b.acquire()
    assert sleep.calls == [pytest.approx(1.0)]  # past the full bucket and the headroom slot


async def test_real_sleep_spaces_requests() -> None:
    """With the real clock the bucket really waits (and does not spin)."""
    b = LeakyBucket(rate=100.0, burst=1)
    began = time.monotonic()
    for _ in range(4):
        await b.acquire()
    assert time.monotonic() - began >= 0.025


def test_bucket_rejects_nonsense_limits() -> None:
    """Rate must be positive and burst at least one."""
    with pytest.raises(ValueError, match="rate"):
        LeakyBucket(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        LeakyBucket(rate=1, burst=0)
    with pytest.raises(ValueError, match="rate"):
        PortalLimiters(rate=-1, burst=1)
    with pytest.raises(ValueError, match="burst"):
        PortalLimiters(rate=1, burst=0)


async def test_one_bucket_per_portal() -> None:
    """Calls to one host share a bucket; other hosts are independent."""
    clock, sleep = FakeClock(), RecordingSleep()
    limiters = PortalLimiters(rate=2.0, burst=1, clock=clock, sleep=sleep)
    assert limiters.get("a.bitrix24.com") is limiters.get("A.Bitrix24.com")
    assert limiters.get("a.bitrix24.com") is not limiters.get("b.bitrix24.com")
    await limiters.acquire("a.bitrix24.com")
    await limiters.acquire("b.bitrix24.com")
    assert sleep.calls == []
    await limiters.acquire("a.bitrix24.com")
    assert sleep.calls == [pytest.approx(0.5)]


def test_defaults_match_the_cloud_limits() -> None:
    """Defaults are 2 requests/s with a burst of 50."""
    limiters = PortalLimiters()
    bucket = limiters.get("x.bitrix24.com")
    assert (bucket.rate, bucket.burst) == (2.0, 50)


def test_drained_buckets_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-host map forgets idle portals once it grows large."""
    clock = FakeClock()
    limiters = PortalLimiters(rate=1.0, burst=5, clock=clock)
    monkeypatch.setattr(PortalLimiters, "_PRUNE_AT", 3)
    for host in ("a", "b", "c"):
        limiters.get(host)
    busy = limiters.get("a")
    busy.reserve()
    limiters.get("d")
    assert limiters.get("a") is busy
    assert set(limiters._buckets) == {"a", "d"}


def test_shared_limiters_are_process_wide() -> None:
    """Clients with the same limits share one set of buckets."""
    assert shared_limiters(rate=2.0, burst=50) is shared_limiters(rate=2, burst=50)
    assert shared_limiters(rate=5.0, burst=250) is not shared_limiters(rate=2.0, burst=50)
