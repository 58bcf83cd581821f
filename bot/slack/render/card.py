"""The e-mail card (an e-mail shared into a conversation), and recognising one again later.

A card names its Bitrix24 e-mail twice: in the message metadata and in its Reply button's value.
Slack does not always hand metadata back (a shortcut's message may lack it), the blocks it does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from bot.bitrix24 import Message
from bot.mail.replying import excerpt, html_to_text, parse_message_id
from bot.slack import ids
from bot.slack.blocks import Block, actions, context, plain, section
from bot.slack.render.connect import escape_mrkdwn, slack_date
from bot.slack.render.email_actions import email_action_elements
from bot.slack.wording import Texts

CARD_EXCERPT_LINES = 8
CARD_EXCERPT_CHARS = 700
_PORTAL_MAX = 255


@dataclass(frozen=True)
class CardRef:
    """Which e-mail a card is about, and in which portal it was shared."""

    message_id: int
    portal: str | None = None


def email_card(
    t: Texts,
    message: Message,
    *,
    portal: str,
    shared_by: str | None,
    note: str | None = None,
    share: bool = False,
) -> tuple[str, list[Block], dict[str, Any]]:
    """The card's notification text, blocks and message metadata.

    A shared card names who shared it; a new-mail card carries `note` instead, and in a DM
    `share` adds a channel picker that posts the card into the chosen conversation.
    """
    subject = message.subject.strip() or t("inbox.no_subject")
    sender = message.from_.strip() or "—"
    lines = [
        t("card.heading", subject=escape_mrkdwn(subject)),
        t("card.from", sender=escape_mrkdwn(sender)),
    ]
    if message.date is not None:
        when = message.date if message.date.tzinfo else message.date.replace(tzinfo=UTC)
        lines.append(t("card.date", when=slack_date(when, t.format_datetime(when))))
    text = excerpt(
        html_to_text(message.body), max_lines=CARD_EXCERPT_LINES, max_chars=CARD_EXCERPT_CHARS
    )
    # The e-mail's words are shown as plain text: nothing in them can mention or format.
    blocks: list[Block] = [
        section("\n".join(lines)),
        {"type": "section", "text": plain(text or t("card.no_text"))},
    ]
    notes = [t("card.shared_by", user=shared_by)] if shared_by else []
    if note:
        notes.append(note)
    if message.has_attachments:
        notes.insert(0, t("card.attachments"))
    if notes:
        blocks.append(context(*notes))
    ref = {"message_id": message.id, "portal": portal}
    share_picker: list[Block] = []
    if share:
        share_picker.append(
            {
                "type": "conversations_select",
                "action_id": ids.CARD_SHARE_ACTION,
                "placeholder": plain(t("card.share")),
                "filter": {"include": ["public", "private"], "exclude_bot_users": True},
            }
        )
    elements = email_action_elements(
        t, message_id=message.id, portal=portal, url=message.url, extra=share_picker
    )
    blocks.append(actions(*elements, block_id=ids.CARD_BLOCK))
    metadata = {"event_type": ids.EMAIL_CARD_EVENT, "event_payload": ref}
    return t("card.text", subject=subject, sender=sender), blocks, metadata


def card_reference(message: Mapping[str, Any]) -> CardRef | None:
    """The e-mail a Slack message is a card of (from its metadata or its blocks), if it is one."""
    metadata = message.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("event_type") == ids.EMAIL_CARD_EVENT:
        ref = _ref(metadata.get("event_payload"))
        if ref is not None:
            return ref
    blocks = message.get("blocks")
    if not isinstance(blocks, list):
        return None
    for block in blocks:
        if not isinstance(block, Mapping) or block.get("block_id") != ids.CARD_BLOCK:
            continue
        for element in block.get("elements") or []:
            if isinstance(element, Mapping) and element.get("action_id") == ids.CARD_REPLY_ACTION:
                return card_reference_from_value(element.get("value"))
    return None


def card_reference_from_value(value: object) -> CardRef | None:
    """Read the value of a card's Reply button."""
    if not isinstance(value, str):
        return None
    try:
        return _ref(json.loads(value))
    except ValueError:
        return None


def _ref(payload: object) -> CardRef | None:
    if not isinstance(payload, Mapping):
        return None
    message_id = parse_message_id(payload.get("message_id"))
    if message_id is None:
        return None
    portal = payload.get("portal")
    if isinstance(portal, str) and 0 < len(portal) <= _PORTAL_MAX:
        return CardRef(message_id, portal)
    return CardRef(message_id)
