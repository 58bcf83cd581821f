"""Tests for bot.slack.richtext.inspection: mentions and blank bodies."""

from __future__ import annotations

from typing import Any

import pytest

from bot.slack.richtext import (
    collect_mentions,
    is_blank,
)
from tests.slack.richtext.helpers import (
    block,
    rlist,
    section,
    text,
)

# --- collect_mentions and is_blank ------------------------------------------------------------


def test_collect_mentions() -> None:
    value = block(
        section({"type": "user", "user_id": "U1"}, {"type": "channel", "channel_id": "C1"}),
        rlist("bullet", "x"),
        {
            "type": "rich_text_list",
            "elements": [
                section({"type": "user", "user_id": "U2"}, {"type": "user", "user_id": 3})
            ],
        },
        {"type": "rich_text_quote", "elements": [{"type": "channel", "channel_id": "C2"}]},
        {"type": "rich_text_quote", "elements": [{"type": "user", "user_id": "U1"}]},
    )
    # Every id to name (user groups too), and the channels alone.
    assert collect_mentions(value) == ({"U1", "U2", "C1", "C2"}, {"C1", "C2"})
    grouped = block(section({"type": "usergroup", "usergroup_id": "S1"}))
    assert collect_mentions(grouped) == ({"S1"}, set())
    assert collect_mentions(None) == (set(), set())


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        (None, True),
        (block(), True),
        (block(section()), True),
        (block(section(text(" \n\t\u200b\u00a0"))), True),
        (block(rlist("bullet", " ", "\n")), True),
        (block({"type": "rich_text_quote", "elements": [text("  ")]}), True),
        (block(section(text(" x "))), False),
        (block(section({"type": "user", "user_id": "U1"})), False),
        (block(section({"type": "emoji", "name": "smile"})), False),
        (block(section({"type": "link", "url": "https://x.io"})), False),
        (block(rlist("bullet", "", "y")), False),
        (block({"type": "rich_text_preformatted", "elements": [text(".")]}), False),
    ],
)
def test_is_blank(value: Any, blank: bool) -> None:
    assert is_blank(value) is blank
