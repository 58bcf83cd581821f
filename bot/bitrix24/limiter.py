"""Client-side leaky buckets that keep this process under each portal's request-rate limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = [
    "HEADROOM_SECONDS",
    "LeakyBucket",
    "PortalLimiters",
    "RateLimiter",
    "headroom_slots",
    "shared_limiters",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Slack for float rounding, so a request due "now" is not sent to sleep for a nanosecond.
_EPSILON = 1e-9
# How late the portal may see a request compared with the moment its slot was reserved. Our
# drain clock starts at reservation, the portal's at arrival; a burst goes out over fresh
# connections (TCP, TLS, a server thread each) and arrives 50-150 ms late on a busy machine,
# and the first paced request after it then lands in the same instant. One slot of headroom
# covers only 1/rate of that (50 ms at 20 requests/s): the headroom is kept in time instead.
HEADROOM_SECONDS = 0.25


def headroom_slots(rate: float, burst: int) -> float:
    """Slots kept free for arrival jitter: HEADROOM_SECONDS of drain, at least one, and never
    the whole bucket (one request may always go at once)."""
    return float(min(max(burst - 1, 0), max(1, math.ceil(rate * HEADROOM_SECONDS))))


class RateLimiter(Protocol):
    """What the client paces its calls with: per-portal budgets, in this process (PortalLimiters)
    or shared by every process of a deployment (an implementation outside this package)."""

    async def acquire(self, host: str) -> None:
        """Wait until one more request to `host` fits under the portal's limit."""
        ...

    async def saturate(self, host: str) -> None:
        """The portal answered QUERY_LIMIT_EXCEEDED: pace `host` from a full bucket."""
        ...


class LeakyBucket:
    """The portal's own algorithm mirrored: +1 per request, draining at `rate` per second.

    Each `acquire()` reserves its place at once (no await between reading and updating the
    level), so waiters are served in arrival order and each sleeps exactly until its slot:
    no lock, no polling, and no tie to one event loop.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._capacity = self.burst - headroom_slots(self.rate, self.burst)
        # Counts sent requests and those holding a reserved slot.
        self._level = 0.0
        self._updated = clock()

    @property
    def level(self) -> float:
        """The current fill, reserved slots included."""
        self._drain()
        return self._level

    def reserve(self) -> float:
        """Take a slot and return how many seconds to wait before using it."""
        self._drain()
        self._level += 1.0
        # Keep headroom_slots() free: see HEADROOM_SECONDS.
        excess = self._level - self._capacity
        return excess / self.rate if excess > _EPSILON else 0.0

    async def acquire(self) -> None:
        """Wait until one more request fits under the limit."""
        delay = self.reserve()
        if delay <= 0:
            return
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            # Hand the unused slot back so later callers are not slowed by a ghost.
            self._level = max(0.0, self._level - 1.0)
            raise

    def saturate(self) -> None:
        """Mark the bucket full: the portal said it is (others may share it), so pace from here."""
        self._drain()
        self._level = max(self._level, float(self.burst))

    def idle(self) -> bool:
        """True when the bucket has drained completely."""
        return self.level <= _EPSILON

    def _drain(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._level = max(0.0, self._level - elapsed * self.rate)


class PortalLimiters:
    """One LeakyBucket per portal host, shared by every call made through this object."""

    # Forget drained buckets once this many portals were seen, so the map cannot grow forever.
    _PRUNE_AT = 1024

    def __init__(
        self,
        *,
        rate: float = 2.0,
        burst: int = 50,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._buckets: dict[str, LeakyBucket] = {}

    def get(self, host: str) -> LeakyBucket:
        """The bucket of `host` (case-insensitive), created on first use."""
        key = host.lower()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._PRUNE_AT:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.idle()}
            bucket = LeakyBucket(
                rate=self.rate, burst=self.burst, clock=self._clock, sleep=self._sleep
            )
            self._buckets[key] = bucket
        return bucket

    async def acquire(self, host: str) -> None:
        """Wait until one more request to `host` fits under the limit."""
        await self.get(host).acquire()

    async def saturate(self, host: str) -> None:
        """Mark the bucket of `host` full."""
        self.get(host).saturate()


_SHARED: dict[tuple[float, int], PortalLimiters] = {}


def shared_limiters(*, rate: float, burst: int) -> PortalLimiters:
    """The process-wide limiters for these limits, so separate clients share one budget."""
    key = (float(rate), int(burst))
    limiters = _SHARED.get(key)
    if limiters is None:
        limiters = _SHARED[key] = PortalLimiters(rate=rate, burst=burst)
    return limiters
