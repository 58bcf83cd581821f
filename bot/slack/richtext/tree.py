"""Reading a Slack rich_text tree that is untrusted data of unknown shape.

Everything in a block is user-controlled, so every access goes through these helpers: nesting
and total work are capped, odd values fall back to harmless defaults, and link targets are
kept only for http(s) and mailto URLs. Nothing here raises on any input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NameResolver = Callable[[str], str | None]

# Slack's own editor nests a handful of levels; anything deeper is hostile or broken, and the
# cap keeps recursion far below Python's limit.
MAX_DEPTH = 32
# Upper bound on visited nodes, so shared sub-trees (possible in a Python dict, not in JSON)
# cannot blow up the work exponentially.
_MAX_NODES = 200_000
MAX_INDENT = 8
MAX_LIST_OFFSET = 1_000_000

CONTAINERS = frozenset(
    {
        "rich_text",
        "rich_text_section",
        "rich_text_list",
        "rich_text_quote",
        "rich_text_preformatted",
    }
)
STYLE_TAGS = (
    ("bold", "b"),
    ("italic", "i"),
    ("strike", "s"),
    ("underline", "u"),
    ("code", "code"),
)
# Characters that render as nothing: Slack's editor and copy-paste leave them behind.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
# Leaves naming someone or something: the field holding the id, and the sign shown before it.
_MENTIONS = {
    "user": ("user_id", "@"),
    "channel": ("channel_id", "#"),
    "usergroup": ("usergroup_id", "@"),
    "broadcast": ("range", "@"),
}
_SAFE_URL = re.compile(r"(?:https?://[^/?#\\]|mailto:.)", re.IGNORECASE)
_URL_STRIP = "".join(chr(c) for c in range(0x21))  # C0 controls and space, as WHATWG URL does
_URL_REMOVE = re.compile(r"[\t\n\r]")  # browsers drop these anywhere in a URL: "java\tscript:"


# What a reader sees for a channel or user group Slack would not name for us: an id such as
# C0123ABCD means nothing outside Slack.
UNNAMED = {"channel": "channel", "usergroup": "group"}


@dataclass
class Ctx:
    """`user_name` names any mentioned id (users, channels, user groups: Slack's ids never
    collide across kinds); `channel_name`, when given, names channels instead."""

    user_name: NameResolver | None = None
    channel_name: NameResolver | None = None
    budget: int = _MAX_NODES

    def visit(self) -> bool:
        self.budget -= 1
        return self.budget >= 0


def children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    elements = node.get("elements")
    if not isinstance(elements, Sequence) or isinstance(elements, str | bytes):
        return []
    return [e for e in elements if isinstance(e, Mapping)]


def string(value: object) -> str:
    return value if isinstance(value, str) else ""


def node_type(node: Mapping[str, Any]) -> str:
    return string(node.get("type"))


def bounded_int(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return low
    return max(low, min(high, value))


def style_tags(node: Mapping[str, Any]) -> list[str]:
    style = node.get("style")
    if not isinstance(style, Mapping):
        return []
    return [tag for key, tag in STYLE_TAGS if style.get(key) is True]


def newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _resolve(resolver: NameResolver | None, ident: str, fallback: str | None = None) -> str:
    if resolver is not None:
        name = resolver(ident)
        if isinstance(name, str) and name.strip():
            return name.strip().lstrip("@#") or ident
    return fallback or ident


def _emoji(node: Mapping[str, Any]) -> str:
    chars = _emoji_chars(node.get("unicode"))
    if chars:
        return chars
    name = string(node.get("name"))
    return f":{name}:" if name else ""


def _emoji_chars(code: object) -> str | None:
    if not isinstance(code, str) or not code or len(code) > 80:
        return None
    chars: list[str] = []
    for part in code.split("-"):
        if not 1 <= len(part) <= 6 or any(c not in "0123456789abcdefABCDEF" for c in part):
            return None
        point = int(part, 16)
        if point < 0x20 or 0x7F <= point <= 0x9F or 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
            return None
        chars.append(chr(point))
    return "".join(chars)


def _date(node: Mapping[str, Any]) -> str:
    fallback = string(node.get("fallback"))
    if fallback:
        return fallback
    # isdigit() alone accepts "²", which int() refuses.
    stamp = node.get("timestamp")
    if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit() and len(stamp) < 15:
        stamp = int(stamp)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return ""
    try:
        return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def atom_text(node: Mapping[str, Any], ctx: Ctx) -> str | None:
    """Visible text of a leaf that is neither ``text`` nor ``link``; None if not such a leaf."""
    kind = node_type(node)
    mention = _MENTIONS.get(kind)
    if mention is not None:
        key, sigil = mention
        ident = string(node.get(key))
        if kind == "broadcast":
            return f"{sigil}{ident}" if ident else ""
        resolver = ctx.channel_name if kind == "channel" and ctx.channel_name else ctx.user_name
        return f"{sigil}{_resolve(resolver, ident, UNNAMED.get(kind))}" if ident else ""
    if kind == "emoji":
        return _emoji(node)
    if kind == "date":
        return _date(node)
    if kind == "color":
        return string(node.get("value"))
    return None


def gap_between(previous: str | None, kind: str) -> str:
    """What goes between two sibling leaves: a space between two dates, which Slack shows
    apart but which would otherwise run together ("1 May2 May")."""
    return " " if previous == "date" and kind == "date" else ""


def leaf_text(node: Mapping[str, Any], ctx: Ctx, *, strip_newline: bool = False) -> str:
    """Visible text of any leaf but a link; `strip_newline` drops a final newline."""
    atom = atom_text(node, ctx)
    if atom is not None:
        return atom
    text = newlines(string(node.get("text")))
    return text[:-1] if strip_newline and text.endswith("\n") else text


def safe_url(value: object) -> str | None:
    """Return the URL if it is http(s) or mailto once browser leniencies are undone, else None."""
    if not isinstance(value, str):
        return None
    url = _URL_REMOVE.sub("", value.strip(_URL_STRIP))
    if not _SAFE_URL.match(url):
        return None
    for ch in url:
        # Whitespace, controls and bidi/format characters have no business in a real link.
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf"):
            return None
    return url


def link_parts(node: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return (label, safe URL or None) of a link element."""
    url = string(node.get("url"))
    label = string(node.get("text")) or url
    return label, safe_url(url)


def runs(
    nodes: list[Mapping[str, Any]], *, lists: bool = False
) -> Iterator[tuple[str, list[Mapping[str, Any]]]]:
    """Split siblings into "block" (one container), "inline" and, if asked, "lists" runs."""
    i = 0
    while i < len(nodes):
        run = _run_of(nodes[i], lists=lists)
        j = i + 1
        if run != "block":
            while j < len(nodes) and _run_of(nodes[j], lists=lists) == run:
                j += 1
        yield run, nodes[i:j]
        i = j


def _run_of(node: Mapping[str, Any], *, lists: bool) -> str:
    kind = node_type(node)
    if lists and kind == "rich_text_list":
        return "lists"
    return "block" if kind in CONTAINERS else "inline"


def walk(block: object) -> Iterator[Mapping[str, Any]]:
    """Yield every node of the tree (depth- and budget-capped), without recursion."""
    if not isinstance(block, Mapping):
        return
    ctx = Ctx()
    stack: list[tuple[Mapping[str, Any], int]] = [(block, 0)]
    while stack and ctx.visit():
        node, depth = stack.pop()
        yield node
        if depth < MAX_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(children(node)))
