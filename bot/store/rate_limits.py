"""One request budget per Bitrix24 portal shared by every process on the same PostgreSQL.

The portal's limit (a leaky bucket: 2 requests/s, burst 50 on cloud plans) is the portal's, not
a process's: web processes and workers that each pace themselves would together overrun it.
Each reservation is one atomic upsert of the portal's row (the row lock orders concurrent
callers), with the database's clock, so no process needs to trust another's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy import Float, String, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base

__all__ = ["PortalRateBucket", "SharedRateLimiter"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class PortalRateBucket(Base):
    """The fill level of one portal's bucket as last reserved, and when (database epoch s)."""

    __tablename__ = "portal_rate_buckets"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    level: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)


class _Limiter(Protocol):
    async def acquire(self, host: str) -> None: ...

    async def saturate(self, host: str) -> None: ...


# The row's level drained to now, plus one: the fill once this request is counted. The time is
# taken before the row lock is granted, so a caller that waited may see a time older than the
# row's: it is never drained backwards (GREATEST 0) and the row's time never goes back.
_RESERVE = text(
    """
    INSERT INTO portal_rate_buckets AS b (host, level, updated)
    VALUES (:host, 1, EXTRACT(EPOCH FROM clock_timestamp()))
    ON CONFLICT (host) DO UPDATE SET
        level = GREATEST(0, b.level - GREATEST(0, EXCLUDED.updated - b.updated) * :rate) + 1,
        updated = GREATEST(b.updated, EXCLUDED.updated)
    RETURNING level
    """
)
_RETURN = text("UPDATE portal_rate_buckets SET level = GREATEST(0, level - 1) WHERE host = :host")
_SATURATE = text(
    """
    INSERT INTO portal_rate_buckets AS b (host, level, updated)
    VALUES (:host, :burst, EXTRACT(EPOCH FROM clock_timestamp()))
    ON CONFLICT (host) DO UPDATE SET
        level = GREATEST(
            :burst,
            GREATEST(0, b.level - GREATEST(0, EXCLUDED.updated - b.updated) * :rate)
        ),
        updated = GREATEST(b.updated, EXCLUDED.updated)
    """
)


class SharedRateLimiter:
    """Per-portal leaky buckets in PostgreSQL, mirroring the portal's own, with `headroom`
    slots kept free for arrival jitter (the Bitrix24 client's rule, passed in)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        rate: float,
        burst: int,
        headroom: float,
        fallback: _Limiter,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("the shared rate limiter needs PostgreSQL")
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        # One statement per request: no transaction block, no extra BEGIN/COMMIT round trips.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.rate = float(rate)
        self.burst = int(burst)
        self._capacity = max(1.0, burst - headroom)
        self._fallback = fallback
        self._sleep = sleep
        # One reservation at a time per process: each is one short statement, and concurrent
        # sends would otherwise take a pooled connection each, away from the real work.
        self._one_at_a_time = asyncio.Lock()

    async def acquire(self, host: str) -> None:
        """Wait until one more request to `host` fits under the portal's limit."""
        key = host.lower()
        try:
            async with self._one_at_a_time, self._engine.connect() as connection:
                level = (
                    await connection.execute(_RESERVE, {"host": key, "rate": self.rate})
                ).scalar_one()
        except (SQLAlchemyError, OSError) as exc:
            # The database is needed for everything else too; pacing this process alone is
            # better than refusing to call Bitrix24 while it recovers.
            log.warning(
                "shared rate limit unavailable (%s): pacing this process only",
                type(exc).__name__,
            )
            await self._fallback.acquire(host)
            return
        excess = float(level) - self._capacity
        if excess <= 1e-9:
            return
        try:
            await self._sleep(excess / self.rate)
        except asyncio.CancelledError:
            # Hand the unused slot back, so later callers are not slowed by a ghost.
            await self._give_back(key)
            raise

    async def saturate(self, host: str) -> None:
        """The portal said its bucket is full: every process paces from a full bucket."""
        await self._fallback.saturate(host)
        try:
            async with self._engine.connect() as connection:
                await connection.execute(
                    _SATURATE, {"host": host.lower(), "rate": self.rate, "burst": self.burst}
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("shared rate limit unavailable (%s)", type(exc).__name__)

    async def _give_back(self, key: str) -> None:
        try:
            async with self._engine.connect() as connection:
                await connection.execute(_RETURN, {"host": key})
        except (SQLAlchemyError, OSError):
            log.debug("could not hand back a rate-limit slot of %s", key)
