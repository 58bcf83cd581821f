"""Small Block Kit constructors with Slack's length limits applied."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

SECTION_TEXT_MAX = 3000
HEADER_MAX = 150
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
TITLE_MAX = 24
CONTEXT_TEXT_MAX = 2000
BUTTON_TEXT_MAX = 75


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": mrkdwn(text), **extra}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_MAX)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t, CONTEXT_TEXT_MAX) for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    *,
    action_id: str,
    value: str | None = None,
    style: str | None = None,
    url: str | None = None,
) -> Block:
    element: Block = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT_MAX),
        "action_id": action_id,
    }
    if value is not None:
        element["value"] = value[:2000]
    if style is not None:
        element["style"] = style
    if url is not None:
        element["url"] = url[:3000]
    return element


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def option(text: str, value: str) -> Block:
    if len(value) > OPTION_VALUE_MAX:
        raise ValueError("option value over Slack's 150 characters")
    return {"text": plain(text, OPTION_TEXT_MAX), "value": value}


def modal(
    *,
    callback_id: str,
    title: str,
    blocks: list[Block],
    submit: str | None = None,
    close: str | None = None,
    private_metadata: str = "",
    external_id: str | None = None,
    notify_on_close: bool = False,
) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, TITLE_MAX),
        "blocks": blocks[:100],
        "private_metadata": private_metadata,
    }
    if submit is not None:
        view["submit"] = plain(submit, TITLE_MAX)
    if close is not None:
        view["close"] = plain(close, TITLE_MAX)
    if external_id is not None:
        view["external_id"] = external_id
    if notify_on_close:
        view["notify_on_close"] = True
    return view
