"""Questions about a rich_text block without rendering it: who it mentions, whether it is blank."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.slack.richtext.tree import (
    CONTAINERS,
    INVISIBLE,
    Ctx,
    leaf_text,
    link_parts,
    node_type,
    string,
    walk,
)


def collect_mentions(block: Mapping[str, Any] | None) -> tuple[set[str], set[str]]:
    """Return the (user ids, channel ids) mentioned in the block, to resolve names up front."""
    users: set[str] = set()
    channels: set[str] = set()
    for node in walk(block):
        kind = node_type(node)
        if kind == "user" and string(node.get("user_id")):
            users.add(node["user_id"])
        elif kind == "channel" and string(node.get("channel_id")):
            channels.add(node["channel_id"])
    return users, channels


def is_blank(block: Mapping[str, Any] | None) -> bool:
    """True when nothing visible would be sent: no leaves, or only whitespace."""
    ctx = Ctx()
    for node in walk(block):
        kind = node_type(node)
        if kind in CONTAINERS:
            continue
        text = link_parts(node)[0] if kind == "link" else leaf_text(node, ctx)
        if text.strip().strip(INVISIBLE).strip():
            return False
    return True
