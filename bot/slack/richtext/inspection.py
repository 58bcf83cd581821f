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
    """Return (every mentioned id to name: users, channels and user groups; the channel ids
    alone), so names are resolved up front (UserNames.resolve tells the kinds apart)."""
    named: set[str] = set()
    channels: set[str] = set()
    for node in walk(block):
        kind = node_type(node)
        if kind == "user" and string(node.get("user_id")):
            named.add(node["user_id"])
        elif kind == "channel" and string(node.get("channel_id")):
            named.add(node["channel_id"])
            channels.add(node["channel_id"])
        elif kind == "usergroup" and string(node.get("usergroup_id")):
            named.add(node["usergroup_id"])
    return named, channels


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
