"""Listing e-mails: the portal's order is not documented, so pages are sorted here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bot.bitrix24 import Message
from bot.mail.listing import newest_first


def test_newest_first_sorts_aware_naive_and_undated_dates_together() -> None:
    """Aware dates by instant, naive ones as UTC, undated last; equal dates by id, higher first."""
    noon = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    messages = [
        Message(id=1, date=None),
        Message(id=2, date=noon),
        Message(id=3, date=noon.astimezone(timezone(timedelta(hours=3)))),  # the same instant
        Message(id=4, date=datetime(2026, 5, 1, 13, 0)),  # naive: taken as UTC
        Message(id=5, date=noon - timedelta(days=1)),
    ]
    assert [m.id for m in newest_first(messages)] == [4, 3, 2, 5, 1]
