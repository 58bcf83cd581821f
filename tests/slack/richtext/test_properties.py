"""Properties over arbitrary rich text and mrkdwn: every renderer stays safe and complete."""

from __future__ import annotations

import html
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack.richtext import (
    collect_mentions,
    is_blank,
    mrkdwn_to_rich_text,
    rich_text_to_html,
    rich_text_to_plain,
)
from tests.slack.richtext.helpers import (
    assert_safe_html,
    blocks,
    junk,
    visible_texts,
)


@settings(
    max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(blocks)
def test_property_html_safe_and_plain_complete(value: dict[str, Any]) -> None:
    output = rich_text_to_html(value, user_name=lambda u: f"<{u}>", channel_name=lambda c: None)
    assert_safe_html(output)
    plain = rich_text_to_plain(value)
    texts = visible_texts(value)
    for raw in texts:
        for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            assert line in plain
            assert html.escape(line, quote=True) in output
    collect_mentions(value)
    if any(t.strip().strip("\u200b\u200c\u200d\u2060\ufeff").strip() for t in texts):
        assert not is_blank(value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        junk,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["type", "elements", "text", "style", "url", "indent"]),
                inner,
                max_size=4,
            )
        ),
    )
)
def test_property_arbitrary_shapes_never_raise(value: Any) -> None:
    wrapped = {"type": "rich_text", "elements": value}
    for candidate in (value, wrapped, {"elements": [value]}):
        assert_safe_html(rich_text_to_html(candidate))
        assert isinstance(rich_text_to_plain(candidate), str)
        collect_mentions(candidate)
        is_blank(candidate)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text()
    | st.lists(
        st.sampled_from(
            [
                "*",
                "_",
                "~",
                "`",
                "```",
                "<",
                ">",
                "|",
                "&gt;",
                "&lt;",
                "&amp;",
                ":",
                "\n",
                " ",
                "@U1",
                "#C1",
                "!here",
                "https://x.io",
                "smile",
                "a",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_property_mrkdwn_never_raises_and_renders_safely(mrkdwn: str) -> None:
    value = mrkdwn_to_rich_text(mrkdwn)
    assert value["type"] == "rich_text"
    for element in value["elements"]:
        assert element["elements"], element
        for leaf in element["elements"]:
            if leaf["type"] == "text":
                assert leaf["text"]
    assert_safe_html(rich_text_to_html(value))
    rich_text_to_plain(value)


@settings(max_examples=300)
@given(
    st.lists(st.text(alphabet="abcXYZ 0123 .,!?", min_size=1, max_size=10), min_size=1, max_size=6)
)
def test_property_plain_words_survive_mrkdwn(lines: list[str]) -> None:
    source = "\n".join(lines)
    plain = rich_text_to_plain(mrkdwn_to_rich_text(source))
    for line in lines:
        assert line.strip() in plain
