"""Slack mrkdwn (a message's ``text``) → a rich_text block, to pre-fill a rich text input."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from typing import Any

from bot.slack.richtext.tree import STYLE_TAGS, newlines

_BROADCASTS = frozenset({"here", "channel", "everyone"})
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
    return {key: True for key, _ in STYLE_TAGS if key in style}


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
                if (
                    len(parts) >= 3
                    and parts[1].isascii()
                    and parts[1].isdigit()
                    and len(parts[1]) < 15
                ):
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
        for preformatted, chunk in _split_fences(newlines(text)):
            if preformatted:
                leaves = _inline_elements(chunk, formatting=False)
                if leaves:
                    elements.append({"type": "rich_text_preformatted", "elements": leaves})
            else:
                elements.extend(_line_blocks(chunk))
    return {"type": "rich_text", "elements": elements}
