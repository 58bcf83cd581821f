"""Tests for bot.mail.backoff: the delay before a stored retry comes due."""

from __future__ import annotations

from bot.mail.backoff import backoff_delay


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff_delay(n, base=5, cap=300, rng=lambda: 1.0) for n in range(1, 10)]
    assert delays[:4] == [5, 10, 20, 40]
    assert max(delays) == 300
    assert backoff_delay(3, base=5, cap=300, rng=lambda: 0.0) == 10


def test_without_jitter_the_delay_is_exact() -> None:
    """The status notifier's rule: 2, 4, 8 … seconds, at most 600."""
    delays = [backoff_delay(n, base=2, cap=600, rng=None) for n in range(0, 12)]
    assert delays[:5] == [2, 2, 4, 8, 16]
    assert delays[-1] == 600


def test_default_jitter_stays_between_half_and_the_whole_delay() -> None:
    for attempt in range(1, 12):
        raw = min(300.0, 5 * 2.0 ** (attempt - 1))
        assert raw / 2 <= backoff_delay(attempt, base=5, cap=300) <= raw
