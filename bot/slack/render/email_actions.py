"""The buttons under an e-mail (card, notification, inbox entry): Reply, Forward, Open in
Bitrix24, Delete (confirmed) and a More menu. One function, so every place that shows an e-mail
offers the same actions.

Slack's overflow menu holds at most five options: the five non-destructive actions go there and
Delete is its own button with Slack's confirm dialog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.mail.message_actions import ActionKind
from bot.mail.replying import parse_message_id
from bot.slack import ids
from bot.slack.blocks import OPTION_VALUE_MAX, Block, button, option, plain
from bot.slack.wording import Texts

MORE_KINDS: tuple[ActionKind, ...] = ("task", "event", "crm", "chat", "spam")


@dataclass(frozen=True)
class ActionRef:
    """What a More option names: the action, the e-mail and (when it fits) its portal."""

    kind: ActionKind
    message_id: int
    portal: str | None = None

    def encode(self) -> str:
        short = f"{self.kind}:{self.message_id}"
        full = f"{short}:{self.portal}" if self.portal else short
        # An option value holds 150 characters; without the portal the portal's own check remains.
        return full if len(full) <= OPTION_VALUE_MAX else short

    @classmethod
    def decode(cls, value: object) -> ActionRef | None:
        if not isinstance(value, str):
            return None
        kind, _, rest = value.partition(":")
        number, _, portal = rest.partition(":")
        message_id = parse_message_id(number)
        if kind not in MORE_KINDS or message_id is None:
            return None
        return cls(kind, message_id, portal or None)


def email_action_elements(
    t: Texts,
    *,
    message_id: int,
    portal: str | None,
    url: str | None,
    reply_action_id: str = ids.CARD_REPLY_ACTION,
    reply_value: str | None = None,
    extra: list[Block] | None = None,
) -> list[Block]:
    """The elements of an e-mail's actions block, in the order people scan them."""
    ref = json.dumps(
        {"message_id": message_id, **({"portal": portal} if portal else {})},
        separators=(",", ":"),
    )
    elements = [
        button(
            t("card.reply"),
            action_id=reply_action_id,
            value=reply_value if reply_value is not None else ref,
            style="primary",
        ),
        button(t("card.forward"), action_id=ids.CARD_FORWARD_ACTION, value=ref),
        *(extra or []),
    ]
    if url:
        elements.append(button(t("inbox.open"), action_id=ids.OPEN_IN_BITRIX_ACTION, url=url))
    delete = button(t("card.delete"), action_id=ids.CARD_DELETE_ACTION, value=ref, style="danger")
    delete["confirm"] = {
        "title": plain(t("card.delete_confirm_title"), 100),
        "text": plain(t("card.delete_confirm_text"), 300),
        "confirm": plain(t("card.delete_confirm_yes"), 30),
        "deny": plain(t("card.delete_confirm_no"), 30),
        "style": "danger",
    }
    elements.append(delete)
    elements.append(
        {
            "type": "overflow",
            "action_id": ids.CARD_MORE_ACTION,
            "options": [
                option(t(f"more.{kind}"), ActionRef(kind, message_id, portal).encode())
                for kind in MORE_KINDS
            ],
        }
    )
    return elements
