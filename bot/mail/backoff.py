"""The one back-off rule for retries that are stored as a due time (e-mails, status messages)."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: Callable[[], float] | None = random.random,
) -> float:
    """Seconds before retry `attempt`: base·2^(n-1), never above cap; with `rng`, jittered
    down to as little as half, so rows that failed together do not come due together."""
    raw = min(cap, base * 2.0 ** max(attempt - 1, 0))
    if rng is None:
        return raw
    return raw / 2 + rng() * raw / 2
