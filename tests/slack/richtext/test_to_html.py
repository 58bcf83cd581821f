"""Tests for bot.slack.richtext.to_html: Slack rich text and plain text to e-mail HTML."""

from __future__ import annotations

import html
import time
from typing import Any

import pytest

from bot.slack.richtext import (
    collect_mentions,
    is_blank,
    plain_text_to_html,
    rich_text_to_html,
    rich_text_to_plain,
)
from tests.slack.richtext.helpers import (
    assert_safe_html,
    block,
    html_of,
    link_html,
    rlist,
    section,
    text,
)

# --- sections and styles ----------------------------------------------------------------------


def test_empty_and_none() -> None:
    assert rich_text_to_html(None) == ""
    assert rich_text_to_html({}) == ""
    assert rich_text_to_html(block()) == ""
    assert rich_text_to_html(block(section())) == ""
    assert rich_text_to_plain(None) == ""


def test_section_and_newlines() -> None:
    assert html_of(section(text("Hello\nworld\r\nagain\n\nend"))) == (
        "<p>Hello<br>world<br>again<br><br>end</p>"
    )


def test_trailing_newline_of_section_dropped() -> None:
    # Slack ends a section with "\n" when a list or quote follows it.
    assert html_of(section(text("Intro\n")), rlist("bullet", "a")) == (
        "<p>Intro</p><ul><li>a</li></ul>"
    )


def test_two_sections() -> None:
    assert html_of(section(text("a")), section(text("b"))) == "<p>a</p><p>b</p>"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ({"bold": True}, "<b>x</b>"),
        ({"italic": True}, "<i>x</i>"),
        ({"strike": True}, "<s>x</s>"),
        ({"code": True}, "<code>x</code>"),
        (
            {"bold": True, "italic": True, "strike": True, "code": True},
            "<b><i><s><code>x</code></s></i></b>",
        ),
        ({"bold": False, "underline": True}, "<u>x</u>"),
        ({"bold": "yes"}, "x"),
    ],
)
def test_styles(style: dict[str, Any], expected: str) -> None:
    assert html_of(section({"type": "text", "text": "x", "style": style})) == f"<p>{expected}</p>"


def test_mixed_inline() -> None:
    output = html_of(
        section(text("Hi "), text("there", bold=True), text(", "), text("you", italic=True))
    )
    assert output == "<p>Hi <b>there</b>, <i>you</i></p>"


# --- links ------------------------------------------------------------------------------------


def test_link_with_text() -> None:
    assert link_html("https://example.com/a?b=1&c=2", "site") == (
        '<p><a href="https://example.com/a?b=1&amp;c=2">site</a></p>'
    )


def test_link_without_text_shows_url() -> None:
    assert link_html("http://example.com") == (
        '<p><a href="http://example.com">http://example.com</a></p>'
    )


def test_mailto_link() -> None:
    assert link_html("mailto:a@example.com", "a@example.com") == (
        '<p><a href="mailto:a@example.com">a@example.com</a></p>'
    )


def test_styled_link() -> None:
    element = {"type": "link", "url": "https://x.io", "text": "x", "style": {"bold": True}}
    assert html_of(section(element)) == '<p><a href="https://x.io"><b>x</b></a></p>'


def test_link_attribute_escaped() -> None:
    url = 'https://example.com/"><img/src=x/onerror=alert(1)>'
    output = link_html(url, "t")
    assert output == (
        '<p><a href="https://example.com/&quot;&gt;&lt;img/src=x/onerror=alert(1)&gt;">t</a></p>'
    )
    assert_safe_html(output)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        " \x00javascript:alert(1)",
        "&#106;avascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "file:///etc/passwd",
        "//evil.example",
        "https:evil.example",
        "https://exa mple.com",
        "https://example.com/\u202etxt.exe",
        "",
        "ftp://example.com",
    ],
)
def test_unsafe_links_become_text(url: str) -> None:
    output = link_html(url, "click")
    assert output == "<p>click</p>"
    without_text = link_html(url)
    assert "<a" not in without_text
    if url:
        assert without_text == f"<p>{html.escape(url).replace(chr(10), '<br>')}</p>"
    assert_safe_html(without_text)


@pytest.mark.parametrize(
    ("url", "href"),
    [
        ("  HTTPS://Example.com/x  ", "HTTPS://Example.com/x"),
        ("ht\ttps://example.com", "https://example.com"),
        ("MAILTO:a@example.com", "MAILTO:a@example.com"),
    ],
)
def test_safe_links_cleaned(url: str, href: str) -> None:
    assert link_html(url, "x") == f'<p><a href="{href}">x</a></p>'


def test_link_url_not_a_string() -> None:
    assert html_of(section({"type": "link", "url": 5, "text": "t"})) == "<p>t</p>"
    assert html_of(section({"type": "link"})) == ""


# --- lists ------------------------------------------------------------------------------------


def test_bullet_list() -> None:
    assert html_of(rlist("bullet", "a", "b")) == "<ul><li>a</li><li>b</li></ul>"


def test_ordered_list() -> None:
    assert html_of(rlist("ordered", "a", "b")) == "<ol><li>a</li><li>b</li></ol>"


def test_ordered_list_offset() -> None:
    assert html_of(rlist("ordered", "c", offset=2)) == '<ol start="3"><li>c</li></ol>'


def test_nested_lists_by_indent() -> None:
    output = html_of(
        rlist("ordered", "one", "two"),
        rlist("bullet", "two.a", "two.b", indent=1),
        rlist("bullet", "deep", indent=2),
        rlist("ordered", "three", offset=2),
    )
    assert output == (
        "<ol><li>one</li><li>two<ul><li>two.a</li><li>two.b<ul><li>deep</li></ul></li></ul>"
        "</li><li>three</li></ol>"
    )
    assert_safe_html(output)


def test_list_continuation_with_other_offset_restarts_numbering() -> None:
    output = html_of(
        rlist("ordered", "one"),
        rlist("bullet", "sub", indent=1),
        rlist("ordered", "ten", offset=9),
    )
    assert output == '<ol><li>one<ul><li>sub</li></ul></li></ol><ol start="10"><li>ten</li></ol>'


def test_lists_separated_by_section_are_separate() -> None:
    output = html_of(rlist("bullet", "a"), section(text("mid")), rlist("bullet", "b"))
    assert output == "<ul><li>a</li></ul><p>mid</p><ul><li>b</li></ul>"


def test_style_change_at_same_indent_starts_new_list() -> None:
    output = html_of(rlist("bullet", "a"), rlist("ordered", "b"))
    assert output == "<ul><li>a</li></ul><ol><li>b</li></ol>"


def test_list_starting_indented() -> None:
    output = html_of(rlist("bullet", "deep", indent=3), rlist("bullet", "top"))
    assert output == "<ul><li>deep</li></ul><ul><li>top</li></ul>"
    assert_safe_html(output)


def test_list_item_with_styles_and_trailing_newline() -> None:
    item = section(text("bold", bold=True), text(" tail\n"))
    output = html_of({"type": "rich_text_list", "style": "bullet", "elements": [item]})
    assert output == "<ul><li><b>bold</b> tail</li></ul>"


def test_list_odd_values() -> None:
    element = {
        "type": "rich_text_list",
        "style": "weird",
        "indent": "3",
        "offset": -5,
        "elements": [section(text("a")), "junk", 7, text("loose")],
    }
    assert html_of(element) == "<ul><li>a</li><li>loose</li></ul>"
    huge = {"type": "rich_text_list", "style": "ordered", "indent": 10**9, "offset": 10**30}
    huge["elements"] = [section(text("x"))]
    assert html_of(huge) == '<ol start="1000001"><li>x</li></ol>'
    assert html_of({"type": "rich_text_list", "style": "bullet", "elements": []}) == ""


# --- quote and preformatted -------------------------------------------------------------------


def test_quote() -> None:
    quote = {"type": "rich_text_quote", "elements": [text("wise\nwords"), text("!", bold=True)]}
    assert html_of(quote) == "<blockquote>wise<br>words<b>!</b></blockquote>"


def test_quote_with_blocks_inside() -> None:
    quote = {"type": "rich_text_quote", "elements": [section(text("a")), rlist("bullet", "b")]}
    assert html_of(quote) == "<blockquote><p>a</p><ul><li>b</li></ul></blockquote>"


def test_empty_quote_skipped() -> None:
    assert html_of({"type": "rich_text_quote", "elements": []}) == ""


def test_preformatted_keeps_newlines_and_escapes() -> None:
    pre = {
        "type": "rich_text_preformatted",
        "elements": [text("if a < b:\n    return '&'\n"), {"type": "link", "url": "https://x.io"}],
    }
    assert html_of(pre) == (
        "<pre>if a &lt; b:\n    return &#x27;&amp;&#x27;\n"
        '<a href="https://x.io">https://x.io</a></pre>'
    )


# --- mentions, emoji, other leaves ------------------------------------------------------------


def test_user_and_channel_with_resolvers() -> None:
    names = {"U1": "Ann <Admin>", "C1": "general"}
    output = html_of(
        section(
            {"type": "user", "user_id": "U1"},
            text(" "),
            {"type": "user", "user_id": "U2"},
            text(" "),
            {"type": "channel", "channel_id": "C1"},
            text(" "),
            {"type": "channel", "channel_id": "C2"},
        ),
        user_name=names.get,
        channel_name=names.get,
    )
    # An unnamed user keeps its id (as before); an unnamed channel reads "#channel", not C2.
    assert output == "<p>@Ann &lt;Admin&gt; @U2 #general #channel</p>"


def test_mentions_without_resolvers_and_styled() -> None:
    element = {"type": "user", "user_id": "U1", "style": {"bold": True}}
    assert html_of(section(element)) == "<p><b>@U1</b></p>"


def test_resolver_returning_odd_values_falls_back_to_id() -> None:
    output = html_of(
        section({"type": "user", "user_id": "U1"}, {"type": "channel", "channel_id": "C1"}),
        user_name=lambda _: "   ",
        channel_name=lambda _: 42,
    )
    assert output == "<p>@U1#channel</p>"


def test_resolved_name_prefix_not_doubled() -> None:
    output = html_of(
        section({"type": "channel", "channel_id": "C1"}), channel_name=lambda _: "#gen"
    )
    assert output == "<p>#gen</p>"


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ({"type": "emoji", "name": "grinning", "unicode": "1f600"}, "😀"),
        ({"type": "emoji", "name": "+1", "unicode": "1f44d-1f3fb", "skin_tone": 2}, "👍🏻"),
        ({"type": "emoji", "name": "family", "unicode": "1f468-200d-1f469-200d-1f467"}, "👨‍👩‍👧"),
        ({"type": "emoji", "name": "partyparrot"}, ":partyparrot:"),
        ({"type": "emoji", "name": "x", "unicode": "zz"}, ":x:"),
        ({"type": "emoji", "name": "x", "unicode": "d800"}, ":x:"),
        ({"type": "emoji", "name": "x", "unicode": "110000"}, ":x:"),
        ({"type": "emoji", "name": "x", "unicode": "000a"}, ":x:"),
        ({"type": "emoji", "name": "<b>", "unicode": 5}, ":&lt;b&gt;:"),
        ({"type": "emoji"}, ""),
        ({"type": "usergroup", "usergroup_id": "S123"}, "@group"),
        ({"type": "broadcast", "range": "here"}, "@here"),
        ({"type": "broadcast", "range": "channel"}, "@channel"),
        ({"type": "broadcast", "range": "everyone"}, "@everyone"),
        ({"type": "color", "value": "#F405B3"}, "#F405B3"),
        (
            {"type": "date", "timestamp": 1720000000, "format": "{date}", "fallback": "July 3"},
            "July 3",
        ),
        ({"type": "date", "timestamp": 0, "format": "{date}"}, "1970-01-01 00:00 UTC"),
        ({"type": "date", "timestamp": 10**20, "format": "{date}"}, ""),
        ({"type": "date", "timestamp": "x"}, ""),
        ({"type": "date", "timestamp": "\u00b2"}, ""),  # a digit to isdigit(), not to int()
        ({"type": "team", "team_id": "T1"}, ""),
        ({"type": "future_thing", "text": "<hello>"}, "&lt;hello&gt;"),
        ({"type": "future_thing", "text": "hi", "style": {"italic": True}}, "<i>hi</i>"),
        ({"type": "user"}, ""),
        ({"text": "typeless"}, "typeless"),
    ],
)
def test_leaves(element: dict[str, Any], expected: str) -> None:
    output = html_of(section(element))
    assert output == (f"<p>{expected}</p>" if expected else "")


# --- hostile text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('"><img src=x onerror=alert(1)>', "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        ("&amp; &lt; &#60; &", "&amp;amp; &amp;lt; &amp;#60; &amp;"),
        ("<!-- c --><![CDATA[x]]><?pi?>", "&lt;!-- c --&gt;&lt;![CDATA[x]]&gt;&lt;?pi?&gt;"),
        ("it's", "it&#x27;s"),
    ],
)
def test_hostile_text_escaped(raw: str, escaped: str) -> None:
    output = html_of(section(text(raw, bold=True)))
    assert output == f"<p><b>{escaped}</b></p>"
    assert_safe_html(output)


def test_hostile_everywhere() -> None:
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    output = html_of(
        section(
            {"type": "link", "url": f"https://x.io/{evil}", "text": evil},
            {"type": "link", "url": "javascript:alert(1)", "text": evil},
            {"type": "user", "user_id": evil},
            {"type": "channel", "channel_id": evil},
            {"type": "emoji", "name": evil},
            {"type": "broadcast", "range": evil},
            {"type": "date", "fallback": evil},
            {"type": "color", "value": evil},
            {"type": evil, "text": evil},
        ),
        {"type": "rich_text_preformatted", "elements": [text(evil)]},
        {"type": "rich_text_quote", "elements": [text(evil)]},
        user_name=lambda _: evil,
        channel_name=lambda _: evil,
    )
    assert "<script" not in output
    assert "<img" not in output
    assert_safe_html(output)


# --- broken shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        "rich_text",
        42,
        {"elements": None},
        {"elements": "text"},
        {"elements": [None, 1, "x", [], {}]},
        {"elements": [{"type": "rich_text_section", "elements": {"type": "text"}}]},
        {"elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": 5}]}]},
        {"elements": [{"type": 5, "elements": [text("x")]}]},
        {"elements": [{"type": "rich_text_section", "elements": [{"type": "text", "style": 1}]}]},
        {"elements": [{"type": "rich_text_list", "elements": [[section(text("x"))]]}]},
        {"elements": [text("loose top-level text")]},
        {"elements": (section(text("tuple")),)},
        {"elements": b"bytes"},
    ],
)
def test_broken_shapes_never_raise(value: Any) -> None:
    for output in (rich_text_to_html(value), rich_text_to_plain(value)):
        assert isinstance(output, str)
    assert_safe_html(rich_text_to_html(value))
    collect_mentions(value)
    is_blank(value)


def test_loose_top_level_inline_wrapped_in_paragraph() -> None:
    assert html_of(text("a"), text("b", bold=True), section(text("c"))) == (
        "<p>a<b>b</b></p><p>c</p>"
    )


def test_block_inside_section_is_flattened() -> None:
    nested = section(
        text("a "), rlist("bullet", "b"), {"type": "rich_text_quote", "elements": [text(" c")]}
    )
    assert html_of(nested) == "<p>a b c</p>"


def test_nested_rich_text_block() -> None:
    assert html_of(block(section(text("inner")))) == "<p>inner</p>"


def test_deep_nesting_capped() -> None:
    root = block()
    current = root
    for _ in range(10_000):
        child = {"type": "rich_text_quote", "elements": []}
        current["elements"].append(child)
        current = child
    current["elements"].append(text("deep"))
    output = rich_text_to_html(root)
    assert_safe_html(output)
    assert isinstance(rich_text_to_plain(root), str)
    assert collect_mentions(root) == (set(), set())
    assert is_blank(root)


def test_deep_inline_nesting_capped() -> None:
    current = section(text("deep"))
    for _ in range(10_000):
        current = section(current)
    assert rich_text_to_html(block(current)) == ""


def test_shared_subtrees_do_not_explode() -> None:
    node: dict[str, Any] = {"type": "rich_text_section", "elements": [text("x")]}
    for _ in range(40):
        node = {"type": "rich_text_section", "elements": [node, node]}
    # Here and below: CPU time of this process, so a busy machine does not inflate it.
    start = time.process_time()
    rich_text_to_html(block(node))
    rich_text_to_plain(block(node))
    collect_mentions(block(node))
    is_blank(block(node))
    assert time.process_time() - start < 10


def test_self_referencing_dict() -> None:
    node: dict[str, Any] = {"type": "rich_text_quote", "elements": [text("loop")]}
    node["elements"].append(node)
    assert_safe_html(rich_text_to_html(block(node)))
    assert rich_text_to_plain(block(node)).startswith("> loop")


# --- size and scripts -------------------------------------------------------------------------


def test_long_body_is_linear() -> None:
    word = "Lorem ipsum <dolor> & sit amet 😀 שלום עולם\n"
    body = block(
        *(section(text(word * 25, bold=i % 2 == 0)) for i in range(40)),
        *(rlist("bullet", *(word for _ in range(50)), indent=i % 3) for i in range(40)),
    )
    start = time.process_time()
    output = rich_text_to_html(body)
    plain = rich_text_to_plain(body)
    elapsed = time.process_time() - start
    assert len(output) > 100_000
    assert len(plain) > 70_000
    assert elapsed < 2
    assert_safe_html(output)


def test_single_10000_character_text() -> None:
    long_text = ("x" * 99 + "\n") * 100
    output = html_of(section(text(long_text)))
    assert output == "<p>" + "<br>".join(["x" * 99] * 100) + "</p>"


def test_rtl_emoji_and_zwj_preserved() -> None:
    value = "مرحبا بالعالم 👩🏽‍💻 שלום 🏳️‍🌈 \u200fRTL\u200e mark"
    output = html_of(section(text(value)))
    assert output == f"<p>{value}</p>"
    assert rich_text_to_plain(block(section(text(value)))) == value


# --- plain_text_to_html -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("  \n\n  ", ""),
        ("one line", "<p>one line</p>"),
        ("a\nb", "<p>a<br>b</p>"),
        ("a\n\nb", "<p>a</p><p>b</p>"),
        ("a\r\n\r\nb\rc", "<p>a</p><p>b<br>c</p>"),
        ("a\n  \n\n\nb", "<p>a</p><p>b</p>"),
        ("\n\nlead and trail\n\n", "<p>lead and trail</p>"),
        ("<b>&\"'", "<p>&lt;b&gt;&amp;&quot;&#x27;</p>"),
    ],
)
def test_plain_text_to_html(raw: str, expected: str) -> None:
    assert plain_text_to_html(raw) == expected


def test_channel_and_user_group_mentions_read_as_names() -> None:
    """Channels and user groups named through the one resolver (Slack ids never collide)."""
    names = {"U1": "Ann", "C1": "sales", "S1": "devs"}
    output = rich_text_to_html(
        block(
            section(
                {"type": "user", "user_id": "U1"},
                text(" in "),
                {"type": "channel", "channel_id": "C1"},
                text(" for "),
                {"type": "usergroup", "usergroup_id": "S1"},
            )
        ),
        user_name=names.get,
    )
    assert output == "<p>@Ann in #sales for @devs</p>"


def test_adjacent_dates_are_kept_apart() -> None:
    """Two date elements side by side read as two dates, not one run-together string."""
    first = {"type": "date", "timestamp": 1720000000, "format": "{date_short}", "fallback": "Jul 3"}
    second = {
        "type": "date",
        "timestamp": 1720086400,
        "format": "{date_short}",
        "fallback": "Jul 4",
    }
    assert html_of(section(first, second)) == "<p>Jul 3 Jul 4</p>"
    assert html_of(section(first, text(" to "), second)) == "<p>Jul 3 to Jul 4</p>"
