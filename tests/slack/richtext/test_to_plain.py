"""Tests for bot.slack.richtext.to_plain: Slack rich text to readable plain text."""

from __future__ import annotations

from bot.slack.richtext import (
    rich_text_to_plain,
)
from tests.slack.richtext.helpers import (
    block,
    rlist,
    section,
    text,
)

# --- rich_text_to_plain -----------------------------------------------------------------------


def test_plain_rendering() -> None:
    value = block(
        section(text("Hi "), text("there", bold=True), text("\n")),
        rlist("ordered", "one", "two"),
        rlist("bullet", "sub\nline", indent=1),
        rlist("ordered", "three", offset=2),
        {"type": "rich_text_quote", "elements": [text("quoted\n\nmore")]},
        {"type": "rich_text_preformatted", "elements": [text("code  block")]},
        section(
            {"type": "link", "url": "https://x.io", "text": "site"},
            text(" "),
            {"type": "link", "url": "https://y.io"},
            text(" "),
            {"type": "link", "url": "mailto:a@example.com", "text": "a@example.com"},
            text(" "),
            {"type": "link", "url": "javascript:alert(1)", "text": "bad"},
            text(" "),
            {"type": "user", "user_id": "U1"},
            text(" "),
            {"type": "emoji", "name": "smile", "unicode": "1f604"},
        ),
    )
    assert rich_text_to_plain(value, user_name=lambda _: "Ann") == (
        "Hi there\n"
        "1. one\n"
        "2. two\n"
        "    • sub\n"
        "      line\n"
        "3. three\n"
        "> quoted\n"
        ">\n"
        "> more\n"
        "code  block\n"
        "site (https://x.io) https://y.io a@example.com bad @Ann 😄"
    )


def test_adjacent_dates_are_kept_apart_in_plain_text() -> None:
    """The plain rendering (what the length cap counts) separates two dates as well."""
    first = {"type": "date", "timestamp": 1720000000, "format": "{date_short}", "fallback": "Jul 3"}
    second = {
        "type": "date",
        "timestamp": 1720086400,
        "format": "{date_short}",
        "fallback": "Jul 4",
    }
    assert rich_text_to_plain(block(section(first, second))) == "Jul 3 Jul 4"
