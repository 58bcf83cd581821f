"""The e-mail body of a rich text input, converted here so that bot/mail never reads Slack's format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.mail.compose import ComposedBody
from bot.slack.richtext.inspection import is_blank
from bot.slack.richtext.to_html import rich_text_to_html
from bot.slack.richtext.to_plain import rich_text_to_plain
from bot.slack.richtext.tree import NameResolver


def email_body(
    block: Mapping[str, Any] | None,
    *,
    user_name: NameResolver | None = None,
    channel_name: NameResolver | None = None,
) -> ComposedBody | None:
    """The body as HTML, plain text and its source block; None when nothing visible would be sent."""
    if block is None or is_blank(block):
        return None
    source = dict(block)
    return ComposedBody(
        html=rich_text_to_html(source, user_name=user_name, channel_name=channel_name),
        plain=rich_text_to_plain(source),
        source=source,
    )
