"""The Send at time: this minute counts as now; the past and more than a year ahead do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.mail.compose import check_send_at

NOW = datetime(2026, 12, 5, 18, 30, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "problem"),
    [
        (timedelta(seconds=-30), None),  # the picker's minute, already begun
        (timedelta(seconds=-61), "send_at_past"),
        (timedelta(days=-1), "send_at_past"),
        (timedelta(minutes=1), None),
        (timedelta(days=365), None),
        (timedelta(days=365, seconds=1), "send_at_too_far"),
    ],
)
def test_send_at_bounds(offset: timedelta, problem: str | None) -> None:
    found = check_send_at(NOW + offset, now=NOW)
    assert (found.code if found else None) == problem
    if found:
        assert found.field == "send_at"


def test_no_time_is_sending_now() -> None:
    assert check_send_at(None, now=NOW) is None
