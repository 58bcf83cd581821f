"""Slack rich text → readable plain text (lists as "• "/"1. ", quotes as "> ")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
)


@dataclass
class _PlainRenderer:
    ctx: Ctx

    def flow(self, nodes: list[Mapping[str, Any]], depth: int) -> list[str]:
        """Return one string per block-level chunk; runs of inline leaves make one chunk."""
        chunks: list[str] = []
        for run, run_nodes in runs(nodes):
            if run == "block":
                chunk = self.block(run_nodes[0], depth)
            else:
                chunk = self.inline(run_nodes, depth, strip_last_newline=True)
            if chunk:
                chunks.append(chunk)
        return chunks

    def block(self, node: Mapping[str, Any], depth: int) -> str:
        if depth > MAX_DEPTH or not self.ctx.visit():
            return ""
        kind = node_type(node)
        if kind == "rich_text_section":
            return self.inline(children(node), depth + 1, strip_last_newline=True)
        if kind == "rich_text_preformatted":
            return self.inline(children(node), depth + 1)
        if kind == "rich_text_quote":
            body = "\n".join(self.flow(children(node), depth + 1))
            if not body:
                return ""
            return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))
        if kind == "rich_text_list":
            return self.items(node, depth)
        return "\n".join(self.flow(children(node), depth + 1))

    def items(self, node: Mapping[str, Any], depth: int) -> str:
        indent = "    " * bounded_int(node.get("indent"), 0, MAX_INDENT)
        ordered = node.get("style") == "ordered"
        number = bounded_int(node.get("offset"), 0, MAX_LIST_OFFSET)
        lines: list[str] = []
        for item in children(node):
            number += 1
            marker = f"{number}. " if ordered else "• "
            content = children(item) if node_type(item) in CONTAINERS else [item]
            text = self.inline(content, depth + 2, strip_last_newline=True)
            continuation = "\n" + indent + " " * len(marker)
            lines.append(indent + marker + text.replace("\n", continuation))
        return "\n".join(lines)

    def inline(
        self, nodes: list[Mapping[str, Any]], depth: int, *, strip_last_newline: bool = False
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
                parts.append(self.inline(children(node), depth + 1))
                continue
            if kind == "link":
                label, url = link_parts(node)
                label = newlines(label)
                if url is not None and url not in (label, f"mailto:{label}"):
                    parts.append(f"{label} ({url})")
                else:
                    parts.append(label)
                continue
            atom = leaf_text(node, self.ctx, strip_newline=strip_last_newline and index == last)
            parts.append(newlines(atom))
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
    renderer = _PlainRenderer(Ctx(user_name, channel_name))
    return "\n".join(renderer.flow(children(block), 1))
