"""Convert Slack rich text (``rich_text`` blocks) into e-mail bodies and back from mrkdwn.

Slack has no official rich_text → HTML converter, and everything in a block is user-controlled,
so the renderers here treat the block as untrusted data of unknown shape: every string is
escaped, only a small allow-list of tags is ever produced (``p br b i s code a ul ol li
blockquote pre``), links are kept only for http(s) and mailto URLs, nesting and total work are
capped, and no input makes them raise.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "collect_mentions",
    "is_blank",
    "mrkdwn_to_rich_text",
    "plain_text_to_html",
    "rich_text_to_html",
    "rich_text_to_plain",
]

NameResolver = Callable[[str], str | None]

# Slack's own editor nests a handful of levels; anything deeper is hostile or broken, and the
# cap keeps recursion far below Python's limit.
_MAX_DEPTH = 32
# Upper bound on visited nodes, so shared sub-trees (possible in a Python dict, not in JSON)
# cannot blow up the work exponentially.
_MAX_NODES = 200_000
_MAX_INDENT = 8
_MAX_LIST_OFFSET = 1_000_000

_CONTAINERS = frozenset(
    {
        "rich_text",
        "rich_text_section",
        "rich_text_list",
        "rich_text_quote",
        "rich_text_preformatted",
    }
)
_STYLE_TAGS = (("bold", "b"), ("italic", "i"), ("strike", "s"), ("code", "code"))
_BROADCASTS = frozenset({"here", "channel", "everyone"})
# Characters that render as nothing: Slack's editor and copy-paste leave them behind.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_SAFE_URL = re.compile(r"(?:https?://[^/?#\\]|mailto:.)", re.IGNORECASE)
_URL_STRIP = "".join(chr(c) for c in range(0x21))  # C0 controls and space, as WHATWG URL does
_URL_REMOVE = re.compile(r"[\t\n\r]")  # browsers drop these anywhere in a URL: "java\tscript:"


@dataclass
class _Ctx:
    user_name: NameResolver | None = None
    channel_name: NameResolver | None = None
    budget: int = _MAX_NODES

    def visit(self) -> bool:
        self.budget -= 1
        return self.budget >= 0


# ---------------------------------------------------------------------------------------------
# Shape helpers: every access to the untrusted tree goes through these.


def _children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    elements = node.get("elements")
    if not isinstance(elements, Sequence) or isinstance(elements, str | bytes):
        return []
    return [e for e in elements if isinstance(e, Mapping)]


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _type(node: Mapping[str, Any]) -> str:
    return _str(node.get("type"))


def _int(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return low
    return max(low, min(high, value))


def _styles(node: Mapping[str, Any]) -> list[str]:
    style = node.get("style")
    if not isinstance(style, Mapping):
        return []
    return [tag for key, tag in _STYLE_TAGS if style.get(key) is True]


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _resolve(resolver: NameResolver | None, ident: str) -> str:
    if resolver is not None:
        name = resolver(ident)
        if isinstance(name, str) and name.strip():
            return name.strip().lstrip("@#") or ident
    return ident


def _emoji(node: Mapping[str, Any]) -> str:
    chars = _emoji_chars(node.get("unicode"))
    if chars:
        return chars
    name = _str(node.get("name"))
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
    fallback = _str(node.get("fallback"))
    if fallback:
        return fallback
    stamp = node.get("timestamp")
    if isinstance(stamp, str) and stamp.isdigit() and len(stamp) < 15:
        stamp = int(stamp)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return ""
    try:
        return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def _atom(node: Mapping[str, Any], ctx: _Ctx) -> str | None:
    """Visible text of a leaf that is neither ``text`` nor ``link``; None if not such a leaf."""
    kind = _type(node)
    if kind == "user":
        ident = _str(node.get("user_id"))
        return f"@{_resolve(ctx.user_name, ident)}" if ident else ""
    if kind == "channel":
        ident = _str(node.get("channel_id"))
        return f"#{_resolve(ctx.channel_name, ident)}" if ident else ""
    if kind == "usergroup":
        ident = _str(node.get("usergroup_id"))
        return f"@{ident}" if ident else ""
    if kind == "broadcast":
        scope = _str(node.get("range"))
        return f"@{scope}" if scope else ""
    if kind == "emoji":
        return _emoji(node)
    if kind == "date":
        return _date(node)
    if kind == "color":
        return _str(node.get("value"))
    return None


def _safe_url(value: object) -> str | None:
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


def _link_parts(node: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return (label, safe URL or None) of a link element."""
    url = _str(node.get("url"))
    label = _str(node.get("text")) or url
    return label, _safe_url(url)


# ---------------------------------------------------------------------------------------------
# HTML


def _esc(text: str, *, pre: bool = False) -> str:
    escaped = html.escape(_newlines(text), quote=True)
    return escaped if pre else escaped.replace("\n", "<br>")


def _wrap(inner: str, tags: list[str]) -> str:
    if not inner or not tags:
        return inner
    opening = "".join(f"<{t}>" for t in tags)
    closing = "".join(f"</{t}>" for t in reversed(tags))
    return f"{opening}{inner}{closing}"


@dataclass
class _ListLevel:
    indent: int
    tag: str
    count: int
    li_open: bool = False


@dataclass
class _HtmlRenderer:
    ctx: _Ctx
    out: list[str] = field(default_factory=list)

    def flow(self, nodes: list[Mapping[str, Any]], depth: int, *, wrap_inline: bool) -> None:
        """Render block-level content; runs of inline leaves go in one <p> when wrap_inline."""
        i = 0
        while i < len(nodes):
            node = nodes[i]
            kind = _type(node)
            if kind == "rich_text_list":
                j = i
                while j < len(nodes) and _type(nodes[j]) == "rich_text_list":
                    j += 1
                self.lists(nodes[i:j], depth)
                i = j
                continue
            if kind in _CONTAINERS:
                self.block(node, depth)
                i += 1
                continue
            j = i
            while j < len(nodes) and _type(nodes[j]) not in _CONTAINERS:
                j += 1
            inner = self.inline(nodes[i:j], depth, strip_last_newline=True)
            if inner:
                self.out.append(f"<p>{inner}</p>" if wrap_inline else inner)
            i = j

    def block(self, node: Mapping[str, Any], depth: int) -> None:
        if depth > _MAX_DEPTH or not self.ctx.visit():
            return
        kind = _type(node)
        if kind == "rich_text_section":
            inner = self.inline(_children(node), depth + 1, strip_last_newline=True)
            if inner:
                self.out.append(f"<p>{inner}</p>")
        elif kind == "rich_text_preformatted":
            inner = self.inline(_children(node), depth + 1, pre=True)
            if inner:
                self.out.append(f"<pre>{inner}</pre>")
        elif kind == "rich_text_quote":
            mark = len(self.out)
            self.out.append("<blockquote>")
            self.flow(_children(node), depth + 1, wrap_inline=False)
            if len(self.out) == mark + 1:
                del self.out[mark:]
            else:
                self.out.append("</blockquote>")
        elif kind == "rich_text_list":
            self.lists([node], depth)
        else:  # a nested rich_text block
            self.flow(_children(node), depth + 1, wrap_inline=True)

    def lists(self, nodes: list[Mapping[str, Any]], depth: int) -> None:
        """Render consecutive rich_text_list siblings; deeper ``indent`` nests in the last item."""
        if depth > _MAX_DEPTH:
            return
        stack: list[_ListLevel] = []

        def close_top() -> None:
            level = stack.pop()
            if level.li_open:
                self.out.append("</li>")
            self.out.append(f"</{level.tag}>")

        for node in nodes:
            if not self.ctx.visit():
                break
            items = _children(node)
            if not items:
                continue
            indent = _int(node.get("indent"), 0, _MAX_INDENT)
            tag = "ol" if node.get("style") == "ordered" else "ul"
            offset = _int(node.get("offset"), 0, _MAX_LIST_OFFSET)
            while stack and stack[-1].indent > indent:
                close_top()
            if stack and stack[-1].indent == indent:
                top = stack[-1]
                # Slack restarts numbering after a nested list by repeating the list with an
                # offset; continue the open <ol> when the offset agrees with what we counted.
                if top.tag != tag or (tag == "ol" and offset and offset != top.count):
                    close_top()
            if not stack or stack[-1].indent < indent:
                if stack and not stack[-1].li_open:
                    self.out.append("<li>")
                    stack[-1].li_open = True
                if tag == "ol" and offset:
                    self.out.append(f'<ol start="{offset + 1}">')
                else:
                    self.out.append(f"<{tag}>")
                stack.append(_ListLevel(indent, tag, offset))
            top = stack[-1]
            for item in items:
                if top.li_open:
                    self.out.append("</li>")
                content = _children(item) if _type(item) in _CONTAINERS else [item]
                self.out.append("<li>")
                self.out.append(self.inline(content, depth + 2, strip_last_newline=True))
                top.li_open = True
                top.count += 1
        while stack:
            close_top()

    def inline(
        self,
        nodes: list[Mapping[str, Any]],
        depth: int,
        *,
        pre: bool = False,
        strip_last_newline: bool = False,
    ) -> str:
        if depth > _MAX_DEPTH:
            return ""
        parts: list[str] = []
        last = len(nodes) - 1
        for index, node in enumerate(nodes):
            if not self.ctx.visit():
                break
            kind = _type(node)
            if kind in _CONTAINERS:
                # Block content where only inline content belongs: keep its text, flattened.
                parts.append(self.inline(_children(node), depth + 1, pre=pre))
                continue
            tags = _styles(node)
            if kind == "link":
                label, url = _link_parts(node)
                inner = _wrap(_esc(label, pre=pre), tags)
                if url is not None and inner:
                    parts.append(f'<a href="{html.escape(url, quote=True)}">{inner}</a>')
                else:
                    parts.append(inner)
                continue
            atom = _atom(node, self.ctx)
            if atom is None:  # "text", and unknown types that carry text
                atom = _newlines(_str(node.get("text")))
                if strip_last_newline and index == last and atom.endswith("\n"):
                    atom = atom[:-1]
            parts.append(_wrap(_esc(atom, pre=pre), tags))
        return "".join(parts)


def rich_text_to_html(
    block: Mapping[str, Any] | None,
    *,
    user_name: NameResolver | None = None,
    channel_name: NameResolver | None = None,
) -> str:
    """Render a rich_text block as a fragment of basic, escaped HTML for an e-mail body.

    Sections become ``<p>`` (newlines ``<br>``), lists ``<ul>``/``<ol>`` nested by ``indent``,
    quotes ``<blockquote>``, preformatted ``<pre>``; mentions use the resolvers when given and
    fall back to the raw ids. Unsafe link targets are dropped and their label kept as text.
    """
    if not isinstance(block, Mapping):
        return ""
    renderer = _HtmlRenderer(_Ctx(user_name, channel_name))
    renderer.flow(_children(block), 1, wrap_inline=True)
    return "".join(renderer.out)


def plain_text_to_html(text: str) -> str:
    """Escape plain text; blank lines separate ``<p>`` paragraphs, single newlines become ``<br>``."""
    if not isinstance(text, str):
        return ""
    paragraphs = re.split(r"\n[^\S\n]*\n", _newlines(text))
    out: list[str] = []
    for paragraph in paragraphs:
        paragraph = paragraph.strip("\n")
        if paragraph.strip():
            out.append(f"<p>{_esc(paragraph)}</p>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Plain text


@dataclass
class _PlainRenderer:
    ctx: _Ctx

    def flow(self, nodes: list[Mapping[str, Any]], depth: int) -> list[str]:
        """Return one string per block-level chunk; runs of inline leaves make one chunk."""
        chunks: list[str] = []
        i = 0
        while i < len(nodes):
            kind = _type(nodes[i])
            if kind in _CONTAINERS:
                chunk = self.block(nodes[i], depth)
                if chunk:
                    chunks.append(chunk)
                i += 1
                continue
            j = i
            while j < len(nodes) and _type(nodes[j]) not in _CONTAINERS:
                j += 1
            chunk = self.inline(nodes[i:j], depth, strip_last_newline=True)
            if chunk:
                chunks.append(chunk)
            i = j
        return chunks

    def block(self, node: Mapping[str, Any], depth: int) -> str:
        if depth > _MAX_DEPTH or not self.ctx.visit():
            return ""
        kind = _type(node)
        if kind == "rich_text_section":
            return self.inline(_children(node), depth + 1, strip_last_newline=True)
        if kind == "rich_text_preformatted":
            return self.inline(_children(node), depth + 1)
        if kind == "rich_text_quote":
            body = "\n".join(self.flow(_children(node), depth + 1))
            if not body:
                return ""
            return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))
        if kind == "rich_text_list":
            return self.items(node, depth)
        return "\n".join(self.flow(_children(node), depth + 1))

    def items(self, node: Mapping[str, Any], depth: int) -> str:
        indent = "    " * _int(node.get("indent"), 0, _MAX_INDENT)
        ordered = node.get("style") == "ordered"
        number = _int(node.get("offset"), 0, _MAX_LIST_OFFSET)
        lines: list[str] = []
        for item in _children(node):
            number += 1
            marker = f"{number}. " if ordered else "• "
            content = _children(item) if _type(item) in _CONTAINERS else [item]
            text = self.inline(content, depth + 2, strip_last_newline=True)
            continuation = "\n" + indent + " " * len(marker)
            lines.append(indent + marker + text.replace("\n", continuation))
        return "\n".join(lines)

    def inline(
        self, nodes: list[Mapping[str, Any]], depth: int, *, strip_last_newline: bool = False
    ) -> str:
        if depth > _MAX_DEPTH:
            return ""
        parts: list[str] = []
        last = len(nodes) - 1
        for index, node in enumerate(nodes):
            if not self.ctx.visit():
                break
            kind = _type(node)
            if kind in _CONTAINERS:
                parts.append(self.inline(_children(node), depth + 1))
                continue
            if kind == "link":
                label, url = _link_parts(node)
                label = _newlines(label)
                if url is not None and url not in (label, f"mailto:{label}"):
                    parts.append(f"{label} ({url})")
                else:
                    parts.append(label)
                continue
            atom = _atom(node, self.ctx)
            if atom is None:
                atom = _newlines(_str(node.get("text")))
                if strip_last_newline and index == last and atom.endswith("\n"):
                    atom = atom[:-1]
            parts.append(_newlines(atom))
        return "".join(parts)


def rich_text_to_plain(
    block: Mapping[str, Any] | None,
    *,
    user_name: NameResolver | None = None,
    channel_name: NameResolver | None = None,
) -> str:
    """Render a rich_text block as readable plain text (lists as "• "/"1. ", quotes as "> ")."""
    if not isinstance(block, Mapping):
        return ""
    renderer = _PlainRenderer(_Ctx(user_name, channel_name))
    return "\n".join(renderer.flow(_children(block), 1))


# ---------------------------------------------------------------------------------------------
# Inspection


def _walk(block: object) -> Iterator[Mapping[str, Any]]:
    """Yield every node of the tree (depth- and budget-capped), without recursion."""
    if not isinstance(block, Mapping):
        return
    ctx = _Ctx()
    stack: list[tuple[Mapping[str, Any], int]] = [(block, 0)]
    while stack and ctx.visit():
        node, depth = stack.pop()
        yield node
        if depth < _MAX_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(_children(node)))


def collect_mentions(block: Mapping[str, Any] | None) -> tuple[set[str], set[str]]:
    """Return the (user ids, channel ids) mentioned in the block, to resolve names up front."""
    users: set[str] = set()
    channels: set[str] = set()
    for node in _walk(block):
        kind = _type(node)
        if kind == "user" and _str(node.get("user_id")):
            users.add(node["user_id"])
        elif kind == "channel" and _str(node.get("channel_id")):
            channels.add(node["channel_id"])
    return users, channels


def is_blank(block: Mapping[str, Any] | None) -> bool:
    """True when nothing visible would be sent: no leaves, or only whitespace."""
    ctx = _Ctx()
    for node in _walk(block):
        kind = _type(node)
        if kind in _CONTAINERS:
            continue
        if kind == "link":
            text = _link_parts(node)[0]
        else:
            atom = _atom(node, ctx)
            text = atom if atom is not None else _str(node.get("text"))
        if text.strip().strip(_INVISIBLE).strip():
            return False
    return True


# ---------------------------------------------------------------------------------------------
# mrkdwn → rich_text

_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITY_CHARS = {"amp": "&", "lt": "<", "gt": ">"}
_EMOJI = re.compile(r":([a-z0-9_+'\-]{1,100}):(?::skin-tone-([2-6]):)?")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:")
_MARKERS = {"*": "bold", "_": "italic", "~": "strike"}
_QUOTE_MARKS = ("&gt;", ">")
_BLOCK_QUOTE_MARKS = ("&gt;&gt;&gt;", ">>>")


def _unescape(text: str) -> str:
    return _ENTITY.sub(lambda m: _ENTITY_CHARS[m.group(1)], text)


def _style_dict(style: frozenset[str]) -> dict[str, bool]:
    return {key: True for key, _ in _STYLE_TAGS if key in style}


class _MrkdwnInline:
    """Parse one chunk of mrkdwn into rich-text leaves in a single left-to-right pass.

    Closing markers are looked up in precomputed position lists and ``find`` results are cached
    while the scan moves forward, so pathological input (thousands of unmatched ``*`` or ``<``)
    stays linear instead of rescanning the rest of the line for every candidate.
    """

    def __init__(self, text: str, *, formatting: bool) -> None:
        self.s = text
        self.formatting = formatting
        self.out: list[dict[str, Any]] = []
        self._found: dict[str, int] = {}
        n = len(text)
        self.closers: dict[str, list[int]] = {c: [] for c in (*_MARKERS, "`")}
        if formatting:
            for j, ch in enumerate(text):
                # A closer follows a non-space and (markers only) precedes no letter or digit.
                if (
                    ch in self.closers
                    and j > 0
                    and not text[j - 1].isspace()
                    and (ch == "`" or j + 1 == n or not text[j + 1].isalnum())
                ):
                    self.closers[ch].append(j)

    def _next(self, ch: str, start: int) -> int:
        """``s.find(ch, start)`` with -1 as len(s); cached because ``start`` only grows."""
        pos = self._found.get(ch)
        if pos is None or pos < start:
            pos = self.s.find(ch, start)
            if pos < 0:
                pos = len(self.s)
            self._found[ch] = pos
        return pos

    def _closer(self, ch: str, opener: int, end: int) -> int | None:
        candidates = self.closers[ch]
        k = bisect_right(candidates, opener + 1)
        if k == len(candidates):
            return None
        j = candidates[k]
        # Formatting never spans lines in Slack.
        if j >= end or j > self._next("\n", opener):
            return None
        return j

    def text(self, start: int, end: int, style: frozenset[str]) -> None:
        if start < end:
            self.add({"type": "text", "text": _unescape(self.s[start:end])}, style)

    def add(self, element: dict[str, Any], style: frozenset[str]) -> None:
        if style:
            element["style"] = _style_dict(style)
        previous = self.out[-1] if self.out else None
        if (
            element["type"] == "text"
            and previous is not None
            and previous["type"] == "text"
            and previous.get("style") == element.get("style")
        ):
            previous["text"] += element["text"]
        elif element["type"] != "text" or element["text"]:
            self.out.append(element)

    def run(self, start: int, end: int, style: frozenset[str]) -> None:
        s = self.s
        i = start
        text_start = start
        while i < end:
            ch = s[i]
            if ch == "<":
                close = self._next(">", i + 1)
                if close < end and close < self._next("\n", i):
                    element = self._special(s[i + 1 : close])
                    self.text(text_start, i, style)
                    if element is not None:
                        self.add(element, style)
                    i = text_start = close + 1
                    continue
            elif self.formatting and ch == ":" and (i == 0 or not s[i - 1].isalnum()):
                match = _EMOJI.match(s, i, end)
                if match and (match.end() == end or not s[match.end()].isalnum()):
                    self.text(text_start, i, style)
                    emoji: dict[str, Any] = {"type": "emoji", "name": match.group(1)}
                    if match.group(2):
                        emoji["skin_tone"] = int(match.group(2))
                    self.add(emoji, style)
                    i = text_start = match.end()
                    continue
            elif self.formatting and ch == "`" and "code" not in style and s[i + 1 : i + 2] != "`":
                close_code = self._closer("`", i, end)
                if close_code is not None:
                    self.text(text_start, i, style)
                    self.text(i + 1, close_code, style | {"code"})
                    i = text_start = close_code + 1
                    continue
            elif (
                self.formatting
                and ch in _MARKERS
                and _MARKERS[ch] not in style
                and "code" not in style
                and i + 1 < end
                and not s[i + 1].isspace()
                and (i == 0 or not s[i - 1].isalnum())
            ):
                close_mark = self._closer(ch, i, end)
                if close_mark is not None:
                    self.text(text_start, i, style)
                    self.run(i + 1, close_mark, style | {_MARKERS[ch]})
                    i = text_start = close_mark + 1
                    continue
            i += 1
        self.text(text_start, end, style)

    def _special(self, content: str) -> dict[str, Any] | None:
        """Translate the inside of ``<…>``: mentions, broadcasts, dates and links."""
        target, _, label = content.partition("|")
        label = _unescape(label)
        if target.startswith("@") and len(target) > 1:
            return {"type": "user", "user_id": target[1:]}
        if target.startswith("#") and len(target) > 1:
            return {"type": "channel", "channel_id": target[1:]}
        if target.startswith("!"):
            command = target[1:]
            if command in _BROADCASTS:
                return {"type": "broadcast", "range": command}
            if command.startswith("subteam^") and len(command) > 8:
                return {"type": "usergroup", "usergroup_id": command[8:]}
            if command.startswith("date^"):
                parts = command.split("^")
                if len(parts) >= 3 and parts[1].isdigit() and len(parts[1]) < 15:
                    date: dict[str, Any] = {
                        "type": "date",
                        "timestamp": int(parts[1]),
                        "format": _unescape(parts[2]),
                    }
                    if label:
                        date["fallback"] = label
                    return date
            return {"type": "text", "text": label} if label else None
        if _SCHEME.match(target):
            link: dict[str, Any] = {"type": "link", "url": _unescape(target)}
            if label:
                link["text"] = label
            return link
        return {"type": "text", "text": _unescape(f"<{content}>")}


def _inline_elements(text: str, *, formatting: bool = True) -> list[dict[str, Any]]:
    parser = _MrkdwnInline(text, formatting=formatting)
    parser.run(0, len(text), frozenset())
    return parser.out


def _split_fences(text: str) -> Iterator[tuple[bool, str]]:
    """Yield (is_preformatted, chunk) around ```…``` fences.

    Spaces between a fence and the text beside it on the same line are dropped: they only
    separated the two in the message, and would end up as stray spaces in the paragraphs.
    """
    i = 0
    while True:
        start = text.find("```", i)
        if start < 0:
            break
        stop = text.find("```", start + 3)
        if stop < 0:
            break
        before = text[i:start].rstrip(" \t")
        yield False, before.lstrip(" \t") if i else before
        body = text[start + 3 : stop]
        body = body.removeprefix("\n").removesuffix("\n")
        yield True, body
        i = stop + 3
    rest = text[i:]
    yield False, rest.lstrip(" \t") if i else rest


def _line_blocks(chunk: str) -> Iterator[dict[str, Any]]:
    """Yield sections and quotes for the lines of a chunk outside code fences."""
    lines = chunk.split("\n")
    group: list[str] = []
    quoting = False

    def flush() -> dict[str, Any] | None:
        body = "\n".join(group).strip("\n")
        group.clear()
        if not body.strip():
            return None
        kind = "rich_text_quote" if quoting else "rich_text_section"
        elements = _inline_elements(body)
        return {"type": kind, "elements": elements} if elements else None

    for index, line in enumerate(lines):
        rest_quote = next((m for m in _BLOCK_QUOTE_MARKS if line.startswith(m)), None)
        if rest_quote is not None:
            if block := flush():
                yield block
            quoting = True
            group.append(line[len(rest_quote) :].removeprefix(" "))
            group.extend(lines[index + 1 :])
            break
        mark = next((m for m in _QUOTE_MARKS if line.startswith(m)), None)
        if (mark is not None) != quoting:
            if block := flush():
                yield block
            quoting = mark is not None
        group.append(line[len(mark) :].removeprefix(" ") if mark is not None else line)
    if block := flush():
        yield block


def mrkdwn_to_rich_text(text: str) -> dict[str, Any]:
    """Turn Slack mrkdwn (a message's ``text``) into a rich_text block for an input's initial_value.

    Handles ``*bold*``, ``_italic_``, ``~strike~``, ```code```, fenced blocks, ``>`` quote lines,
    ``<@U…>``, ``<#C…|name>``, ``<!here>``, ``<!subteam^…>``, ``<!date^…>``, ``<url|label>``,
    the ``&amp; &lt; &gt;`` entities and ``:emoji:`` names. Anything else stays literal text.
    """
    elements: list[dict[str, Any]] = []
    if isinstance(text, str):
        for preformatted, chunk in _split_fences(_newlines(text)):
            if preformatted:
                leaves = _inline_elements(chunk, formatting=False)
                if leaves:
                    elements.append({"type": "rich_text_preformatted", "elements": leaves})
            else:
                elements.extend(_line_blocks(chunk))
    return {"type": "rich_text", "elements": elements}
