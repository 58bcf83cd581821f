"""Slack's rich text: rendered into e-mail bodies, and parsed from mrkdwn for pre-filled inputs.

Slack has no official rich_text → HTML converter, and everything in a block is user-controlled,
so every module here treats a block as untrusted data of unknown shape (see ``tree``).
"""

from bot.slack.richtext.body import email_body
from bot.slack.richtext.inspection import collect_mentions, is_blank
from bot.slack.richtext.mrkdwn import mrkdwn_to_rich_text
from bot.slack.richtext.to_html import plain_text_to_html, rich_text_to_html
from bot.slack.richtext.to_plain import rich_text_to_plain

__all__ = [
    "collect_mentions",
    "email_body",
    "is_blank",
    "mrkdwn_to_rich_text",
    "plain_text_to_html",
    "rich_text_to_html",
    "rich_text_to_plain",
]
