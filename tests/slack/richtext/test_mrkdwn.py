"""Tests for bot.slack.richtext.mrkdwn: a message's mrkdwn to a rich_text block."""

from __future__ import annotations

import time

import pytest

from bot.slack.richtext import (
    collect_mentions,
    mrkdwn_to_rich_text,
    rich_text_to_html,
)
from tests.slack.richtext.helpers import (
    assert_safe_html,
)

# --- mrkdwn_to_rich_text ----------------------------------------------------------------------


def test_mrkdwn_structure() -> None:
    assert mrkdwn_to_rich_text("Hi *you* <@U1>") == {
        "type": "rich_text",
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [
                    {"type": "text", "text": "Hi "},
                    {"type": "text", "text": "you", "style": {"bold": True}},
                    {"type": "text", "text": " "},
                    {"type": "user", "user_id": "U1"},
                ],
            }
        ],
    }


def test_mrkdwn_empty() -> None:
    assert mrkdwn_to_rich_text("") == {"type": "rich_text", "elements": []}
    assert mrkdwn_to_rich_text(None) == {"type": "rich_text", "elements": []}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mrkdwn", "expected"),
    [
        ("plain", "<p>plain</p>"),
        (
            "*bold* _it_ ~gone~ `co*de*`",
            "<p><b>bold</b> <i>it</i> <s>gone</s> <code>co*de*</code></p>",
        ),
        ("*bold _and italic_*", "<p><b>bold </b><b><i>and italic</i></b></p>"),
        ("snake_case_name and 2*3*4", "<p>snake_case_name and 2*3*4</p>"),
        ("* not bold * and *a\nb*", "<p>* not bold * and *a<br>b*</p>"),
        ("(*paren*)!", "<p>(<b>paren</b>)!</p>"),
        ("<@U123> <@U9|ann> hi", "<p>@U123 @U9 hi</p>"),
        ("<#C123|general>", "<p>#channel</p>"),  # named through Slack when sent
        ("<!here> <!channel> <!everyone>", "<p>@here @channel @everyone</p>"),
        ("<!subteam^S123|@devs>", "<p>@group</p>"),
        ("<!date^1720000000^{date_short}|Jul 3, 2024>", "<p>Jul 3, 2024</p>"),
        (
            "<https://example.com/?a=1&amp;b=2|the site>",
            '<p><a href="https://example.com/?a=1&amp;b=2">the site</a></p>',
        ),
        ("<https://example.com>", '<p><a href="https://example.com">https://example.com</a></p>'),
        (
            "<mailto:a@example.com|a@example.com>",
            '<p><a href="mailto:a@example.com">a@example.com</a></p>',
        ),
        ("<javascript:alert(1)|x>", "<p>x</p>"),
        ("*<https://x.io|bold link>*", '<p><a href="https://x.io"><b>bold link</b></a></p>'),
        ("a &amp; b &lt;c&gt; &amp;lt;", "<p>a &amp; b &lt;c&gt; &amp;lt;</p>"),
        (":smile: at 10:30:45 and :+1::skin-tone-3:", "<p>:smile: at 10:30:45 and :+1:</p>"),
        ("&gt; quoted\n&gt; more\nafter", "<blockquote>quoted<br>more</blockquote><p>after</p>"),
        ("> raw quote", "<blockquote>raw quote</blockquote>"),
        (
            "before\n&gt;&gt;&gt; all\nthe rest",
            "<p>before</p><blockquote>all<br>the rest</blockquote>",
        ),
        ("```\nif a < b:\n  *x*\n```", "<pre>if a &lt; b:\n  *x*</pre>"),
        ("see ```inline``` here", "<p>see</p><pre>inline</pre><p>here</p>"),
        ("```unclosed", "<p>```unclosed</p>"),
        ("line1\nline2\n\nline4", "<p>line1<br>line2<br><br>line4</p>"),
        ("<not a link>", "<p>&lt;not a link&gt;</p>"),
        ("<!unknown>", ""),
    ],
)
def test_mrkdwn_round_trip_to_html(mrkdwn: str, expected: str) -> None:
    output = rich_text_to_html(mrkdwn_to_rich_text(mrkdwn))
    assert output == expected
    assert_safe_html(output)


def test_mrkdwn_emoji_element() -> None:
    leaves = mrkdwn_to_rich_text(":+1::skin-tone-3:")["elements"][0]["elements"]
    assert leaves == [{"type": "emoji", "name": "+1", "skin_tone": 3}]


def test_mrkdwn_date_element() -> None:
    leaves = mrkdwn_to_rich_text("<!date^1720000000^{date}|fallback>")["elements"][0]["elements"]
    assert leaves == [
        {"type": "date", "timestamp": 1720000000, "format": "{date}", "fallback": "fallback"}
    ]


def test_mrkdwn_date_with_non_ascii_digits_is_its_label() -> None:
    leaves = mrkdwn_to_rich_text("<!date^\u00b2^{date}|soon>")["elements"][0]["elements"]
    assert leaves == [{"type": "text", "text": "soon"}]


def test_mrkdwn_mentions_collected() -> None:
    value = mrkdwn_to_rich_text("<@U1> in <#C1|x>\n&gt; <@U2>")
    assert collect_mentions(value) == ({"U1", "U2", "C1"}, {"C1"})


@pytest.mark.parametrize(
    "mrkdwn",
    [
        "*a " * 20_000,
        "<" * 50_000,
        "<a\n" * 20_000,
        "`x " * 20_000,
        "_a_" * 20_000,
        "```" * 20_001,
        ":a" * 30_000,
    ],
)
def test_mrkdwn_pathological_input_is_fast(mrkdwn: str) -> None:
    # CPU time of this process, not the wall clock: other work on a busy machine is not counted.
    start = time.process_time()
    value = mrkdwn_to_rich_text(mrkdwn)
    assert_safe_html(rich_text_to_html(value))
    assert time.process_time() - start < 3
