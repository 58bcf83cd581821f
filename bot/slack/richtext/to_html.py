"""Slack rich text → a fragment of basic, escaped HTML for an e-mail body.

Only a small allow-list of tags is ever produced (``p br b i s code a ul ol li blockquote
pre``), every string is escaped, and unsafe link targets are dropped with their label kept.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.slack.richtext.tree import (
    CONTAINERS,
    MAX_DEPTH,
    MAX_INDENT,
    MAX_LIST_OFFSET,
    Ctx,
    NameResolver,
    bounded_int,
    children,
    gap_between,
    leaf_text,
    link_parts,
    newlines,
    node_type,
    runs,
    style_tags,
)


def _esc(text: str, *, pre: bool = False) -> str:
    escaped = html.escape(newlines(text), quote=True)
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
    ctx: Ctx
    out: list[str] = field(default_factory=list)

    def flow(self, nodes: list[Mapping[str, Any]], depth: int, *, wrap_inline: bool) -> None:
        """Render block-level content; runs of inline leaves go in one <p> when wrap_inline."""
        for run, run_nodes in runs(nodes, lists=True):
            if run == "lists":
                self.lists(run_nodes, depth)
            elif run == "block":
                self.block(run_nodes[0], depth)
            else:
                inner = self.inline(run_nodes, depth, strip_last_newline=True)
                if inner:
                    self.out.append(f"<p>{inner}</p>" if wrap_inline else inner)

    def block(self, node: Mapping[str, Any], depth: int) -> None:
        if depth > MAX_DEPTH or not self.ctx.visit():
            return
        kind = node_type(node)
        if kind == "rich_text_section":
            inner = self.inline(children(node), depth + 1, strip_last_newline=True)
            if inner:
                self.out.append(f"<p>{inner}</p>")
        elif kind == "rich_text_preformatted":
            inner = self.inline(children(node), depth + 1, pre=True)
            if inner:
                self.out.append(f"<pre>{inner}</pre>")
        elif kind == "rich_text_quote":
            mark = len(self.out)
            self.out.append("<blockquote>")
            self.flow(children(node), depth + 1, wrap_inline=False)
            if len(self.out) == mark + 1:
                del self.out[mark:]
            else:
                self.out.append("</blockquote>")
        elif kind == "rich_text_list":
            self.lists([node], depth)
        else:  # a nested rich_text block
            self.flow(children(node), depth + 1, wrap_inline=True)

    def lists(self, nodes: list[Mapping[str, Any]], depth: int) -> None:
        """Render consecutive rich_text_list siblings; deeper ``indent`` nests in the last item."""
        if depth > MAX_DEPTH:
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
            items = children(node)
            if not items:
                continue
            indent = bounded_int(node.get("indent"), 0, MAX_INDENT)
            tag = "ol" if node.get("style") == "ordered" else "ul"
            offset = bounded_int(node.get("offset"), 0, MAX_LIST_OFFSET)
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
                content = children(item) if node_type(item) in CONTAINERS else [item]
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
        if depth > MAX_DEPTH:
            return ""
        parts: list[str] = []
        last = len(nodes) - 1
        previous: str | None = None
        for index, node in enumerate(nodes):
            if not self.ctx.visit():
                break
            kind = node_type(node)
            parts.append(gap_between(previous, kind))
            previous = kind
            if kind in CONTAINERS:
                # Block content where only inline content belongs: keep its text, flattened.
                parts.append(self.inline(children(node), depth + 1, pre=pre))
                continue
            tags = style_tags(node)
            if kind == "link":
                label, url = link_parts(node)
                inner = _wrap(_esc(label, pre=pre), tags)
                if url is not None and inner:
                    parts.append(f'<a href="{html.escape(url, quote=True)}">{inner}</a>')
                else:
                    parts.append(inner)
                continue
            atom = leaf_text(node, self.ctx, strip_newline=strip_last_newline and index == last)
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
    renderer = _HtmlRenderer(Ctx(user_name, channel_name))
    renderer.flow(children(block), 1, wrap_inline=True)
    return "".join(renderer.out)


def plain_text_to_html(text: str) -> str:
    """Escape plain text; blank lines separate ``<p>`` paragraphs, single newlines become ``<br>``."""
    if not isinstance(text, str):
        return ""
    paragraphs = re.split(r"\n[^\S\n]*\n", newlines(text))
    out: list[str] = []
    for paragraph in paragraphs:
        paragraph = paragraph.strip("\n")
        if paragraph.strip():
            out.append(f"<p>{_esc(paragraph)}</p>")
    return "".join(out)
