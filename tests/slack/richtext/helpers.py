"""Builders, an HTML safety checker and Hypothesis strategies shared by the rich text tests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from hypothesis import strategies as st

from bot.slack.richtext import (
    rich_text_to_html,
)

ALLOWED_TAGS = {"p", "br", "b", "i", "s", "u", "code", "a", "ul", "ol", "li", "blockquote", "pre"}
CONTAINERS = {
    "rich_text",
    "rich_text_section",
    "rich_text_list",
    "rich_text_quote",
    "rich_text_preformatted",
}


# --- helpers ----------------------------------------------------------------------------------


def block(*elements: Any) -> dict[str, Any]:
    return {"type": "rich_text", "elements": list(elements)}


def section(*elements: Any) -> dict[str, Any]:
    return {"type": "rich_text_section", "elements": list(elements)}


def text(value: str, **style: bool) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "text", "text": value}
    if style:
        element["style"] = style
    return element


def rlist(style: str, *items: str, indent: int = 0, offset: int | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "rich_text_list",
        "style": style,
        "indent": indent,
        "elements": [section(text(item)) for item in items],
    }
    if offset is not None:
        element["offset"] = offset
    return element


def html_of(*elements: Any, **kwargs: Any) -> str:
    return rich_text_to_html(block(*elements), **kwargs)


def link_html(url: str, label: str | None = None) -> str:
    element: dict[str, Any] = {"type": "link", "url": url}
    if label is not None:
        element["text"] = label
    return html_of(section(element))


class TagChecker(HTMLParser):
    """Tag-stack checker: allow-listed tags only, properly nested, all closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tag_count = 0
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tag_count += 1
        if tag not in ALLOWED_TAGS:
            self.errors.append(f"tag {tag}")
        for name, value in attrs:
            if (tag, name) == ("a", "href"):
                if value is None or not re.match(r"(?i)(https?://|mailto:)", value):
                    self.errors.append(f"href {value!r}")
            elif (tag, name) == ("ol", "start"):
                if value is None or not value.isdigit():
                    self.errors.append(f"start {value!r}")
            else:
                self.errors.append(f"attribute {tag} {name}")
        if tag != "br":
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tag_count += 1
        self.errors.append(f"self-closing {tag}")

    def handle_endtag(self, tag: str) -> None:
        self.tag_count += 1
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def handle_comment(self, data: str) -> None:
        self.errors.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.errors.append("declaration")

    def handle_pi(self, data: str) -> None:
        self.errors.append("processing instruction")

    def unknown_decl(self, data: str) -> None:
        self.errors.append("unknown declaration")


def assert_safe_html(output: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(output)
    checker.close()
    assert checker.errors == [], output
    assert checker.stack == [], output
    # Every '<' in the output starts one of our tags: user text never contributes one.
    assert output.count("<") == checker.tag_count, output
    return checker


# --- strategies -------------------------------------------------------------------------------

any_text = st.text(max_size=40) | st.sampled_from(
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "&lt;",
        "\r\n",
        "<",
        "&#60;",
        "👩🏽‍💻",
        "שלום",
    ]
)
junk = st.none() | st.integers() | st.booleans() | any_text | st.lists(st.integers(), max_size=2)
style = (
    st.fixed_dictionaries(
        {},
        optional={
            k: st.booleans() | junk for k in ("bold", "italic", "strike", "code", "underline")
        },
    )
    | junk
)
urls = any_text | st.sampled_from(
    [
        "https://example.com/a?b=1&c=2",
        "mailto:a@example.com",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<b>",
        'https://x.io/"><img src=x onerror=alert(1)>',
    ]
)


def _leaf(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


leaves = st.one_of(
    st.builds(lambda t, s: _leaf("text", text=t, style=s), any_text, style),
    st.builds(lambda t: _leaf("text", text=t), any_text),
    st.builds(lambda u, t: _leaf("link", url=u, text=t), urls, st.none() | any_text),
    st.builds(lambda u: _leaf("user", user_id=u), any_text | junk),
    st.builds(lambda c: _leaf("channel", channel_id=c), any_text | junk),
    st.builds(lambda g: _leaf("usergroup", usergroup_id=g), any_text),
    st.builds(
        lambda n, u: _leaf("emoji", name=n, unicode=u),
        any_text,
        st.none()
        | any_text
        | st.sampled_from(["1f600", "1f44d-1f3fb", "1f468-200d-1f469", "d83d"]),
    ),
    st.builds(lambda r: _leaf("broadcast", range=r), any_text | junk),
    st.builds(lambda v: _leaf("color", value=v), any_text | junk),
    st.builds(lambda ts, f: _leaf("date", timestamp=ts, fallback=f), junk, st.none() | any_text),
    st.builds(lambda k, t: _leaf(k, text=t), any_text, any_text),
    st.dictionaries(
        st.sampled_from(["type", "text", "elements", "style", "url"]), junk, max_size=4
    ),
    junk,
)


def _container(kind: str, children: list[Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "elements": children, **extra}


list_extra = st.fixed_dictionaries(
    {},
    optional={
        "style": st.sampled_from(["bullet", "ordered"]) | junk,
        "indent": st.integers(-2, 12) | junk,
        "offset": st.integers(-2, 50) | junk,
    },
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(
            _container,
            st.sampled_from(sorted(CONTAINERS)) | any_text,
            st.lists(children, max_size=5),
            list_extra,
        ),
        st.builds(
            lambda items, extra: _container("rich_text_list", items, extra),
            st.lists(
                st.builds(
                    lambda els: _container("rich_text_section", els, {}),
                    st.lists(children, max_size=3),
                ),
                max_size=4,
            ),
            list_extra,
        ),
    ),
    max_leaves=30,
)
blocks = st.builds(lambda els: {"type": "rich_text", "elements": els}, st.lists(trees, max_size=8))


def visible_texts(node: Any) -> list[str]:
    """The text of every ``text`` leaf that the renderers are expected to show."""
    found: list[str] = []
    if not isinstance(node, Mapping):
        return found
    kind = node.get("type")
    if isinstance(kind, str) and kind in CONTAINERS:
        elements = node.get("elements")
        if isinstance(elements, list | tuple):
            for child in elements:
                if isinstance(child, Mapping):
                    found.extend(visible_texts(child))
    elif kind == "text" and isinstance(node.get("text"), str):
        found.append(node["text"])
    return found
