"""The compose modal (new e-mail, edit and resend, reply) and its inline errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.mail.compose import FieldProblem
from bot.slack import ids
from bot.slack.blocks import Block, modal, option, plain, section
from bot.slack.wording import Texts

BLOCK_OF_FIELD = {
    "from": ids.FROM_BLOCK,
    "to": ids.TO_BLOCK,
    "cc": ids.CC_BLOCK,
    "bcc": ids.BCC_BLOCK,
    "subject": ids.SUBJECT_BLOCK,
    "body": ids.BODY_BLOCK,
    "reply_target": ids.REPLY_TARGET_BLOCK,
    "send_at": ids.SEND_AT_BLOCK,
}
MAX_SENDER_OPTIONS = 100


@dataclass(frozen=True, kw_only=True)
class Prefill:
    sender_email: str | None = None
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: Mapping[str, Any] | None = None
    post_to: str | None = None
    send_at: datetime | None = None
    extra_blocks: Sequence[Block] = field(default_factory=tuple)


def compose_modal(
    t: Texts,
    *,
    senders: Sequence[Mapping[str, Any]],
    prefill: Prefill,
    private_metadata: str,
    callback_id: str = ids.COMPOSE_VIEW,
    title_key: str = "compose.title",
    leading_blocks: Sequence[Block] = (),
    notice: str | None = None,
    block_ids: Mapping[str, str] | None = None,
    show_post_to: bool = True,
    body_label_key: str = "compose.body",
    templates: Sequence[tuple[int, str]] = (),
) -> Block:
    """The modal; `block_ids` renames fields' blocks (field → block id), so that a views.update
    can replace values Slack would otherwise keep from the user's earlier entry."""
    if not senders:
        return modal(
            callback_id=callback_id,
            title=t(title_key),
            close=t("compose.close"),
            blocks=[section(t("compose.no_senders"))],
            private_metadata=private_metadata,
        )
    sender_options = [
        option(str(s.get("sender") or s.get("email")), str(s["email"])[:150])
        for s in senders[:MAX_SENDER_OPTIONS]
    ]
    chosen = next(
        (
            o
            for o in sender_options
            if prefill.sender_email and o["value"].lower() == prefill.sender_email.lower()
        ),
        sender_options[0],
    )
    bid = {**BLOCK_OF_FIELD, **(block_ids or {})}
    blocks: list[Block] = list(leading_blocks)
    if notice:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": notice}]})
    if templates:
        blocks.append(template_picker(t, templates))
    blocks += [
        _input(
            bid["from"],
            t("compose.from"),
            {
                "type": "static_select",
                "action_id": ids.FROM_ACTION,
                "options": sender_options,
                "initial_option": chosen,
            },
        ),
        _addresses(t, bid["to"], "compose.to", prefill.to, optional=False, hint=True),
        people_select(t, "to"),
        _addresses(t, bid["cc"], "compose.cc", prefill.cc, optional=True),
        people_select(t, "cc"),
        _addresses(t, bid["bcc"], "compose.bcc", prefill.bcc, optional=True),
        people_select(t, "bcc"),
        _input(
            bid["subject"],
            t("compose.subject"),
            _with_initial(
                {"type": "plain_text_input", "action_id": ids.SUBJECT_ACTION, "max_length": 250},
                prefill.subject[:250],
            ),
        ),
        _input(bid["body"], t(body_label_key), _body_element(prefill.body)),
        *prefill.extra_blocks,
        send_at_input(t, prefill.send_at),
    ]
    if show_post_to:
        blocks.append(
            _input(ids.POST_TO_BLOCK, t("compose.post_to"), _post_to_element(prefill.post_to))
        )
    return modal(
        callback_id=callback_id,
        title=t(title_key),
        submit=t("compose.submit"),
        close=t("compose.close"),
        blocks=blocks,
        private_metadata=private_metadata,
        # Closing it with something typed keeps a draft (the view_closed listener).
        notify_on_close=True,
    )


def send_at_input(t: Texts, initial: datetime | None) -> Block:
    """Send later: an optional date and time. Slack's picker shows and reads it in the user's
    own Slack time zone and hands us a Unix time, so no zone arithmetic happens here."""
    element: Block = {"type": "datetimepicker", "action_id": ids.SEND_AT_ACTION}
    if initial is not None:
        element["initial_date_time"] = int(initial.timestamp())
    return _input(
        ids.SEND_AT_BLOCK,
        t("compose.send_at"),
        element,
        optional=True,
        hint=t("compose.send_at_hint"),
    )


def template_picker(t: Texts, templates: Sequence[tuple[int, str]]) -> Block:
    """Start from a template: choosing one fills the subject and body at once (views.update)."""
    return {
        "type": "actions",
        "block_id": ids.TEMPLATE_BLOCK,
        "elements": [
            {
                "type": "static_select",
                "action_id": ids.TEMPLATE_ACTION,
                "placeholder": plain(t("compose.template"), 150),
                "options": [
                    option(name, str(template_id)) for template_id, name in templates[:100]
                ],
            }
        ],
    }


def inline_errors(
    t: Texts, problems: Sequence[FieldProblem], block_ids: Mapping[str, str] = BLOCK_OF_FIELD
) -> dict[str, str]:
    """response_action=errors wants {block_id: message}; every message names the bad value.

    `block_ids` maps a field to the block id it has in this view (replies carry the e-mail id).
    """
    return {
        block_ids.get(p.field, block_ids.get("to", ids.TO_BLOCK)): t(
            f"validation.{p.code}", **p.params
        )[:2000]
        for p in problems
    }


def _input(
    block_id: str, label: str, element: Block, *, optional: bool = False, hint: str | None = None
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _addresses(
    t: Texts, block_id: str, label_key: str, initial: str, *, optional: bool, hint: bool = False
) -> Block:
    element = _with_initial(
        {
            "type": "plain_text_input",
            "action_id": ids.ADDRESSES_ACTION,
            "multiline": False,
            "placeholder": plain(t("compose.addresses_placeholder"), 150),
        },
        initial[:3000],
    )
    return _input(
        block_id,
        t(label_key),
        element,
        optional=optional,
        hint=t("compose.addresses_hint") if hint else None,
    )


def people_select(t: Texts, field: str) -> Block:
    """Beside an address field: Bitrix24 employees and CRM contacts, suggested as the user types.

    Slack's text inputs cannot suggest, so this optional select does; whatever is picked joins
    the field's typed addresses when the form is sent (any typed text is offered too).
    """
    return _input(
        ids.PEOPLE_BLOCKS[field],
        t(f"compose.people_{field}"),
        {
            "type": "multi_external_select",
            "action_id": ids.SUGGEST_ACTION,
            "min_query_length": 1,
            "placeholder": plain(t("compose.people_placeholder"), 150),
        },
        optional=True,
        hint=t("compose.people_hint") if field == "to" else None,
    )


def _body_element(body: Mapping[str, Any] | None) -> Block:
    element: Block = {"type": "rich_text_input", "action_id": ids.BODY_ACTION}
    if body:
        element["initial_value"] = dict(body)
    return element


def _post_to_element(channel: str | None) -> Block:
    element: Block = {
        "type": "conversations_select",
        "action_id": ids.POST_TO_ACTION,
        "filter": {"include": ["public", "private", "im", "mpim"], "exclude_bot_users": True},
    }
    if channel:
        element["initial_conversation"] = channel
    else:
        element["default_to_current_conversation"] = True
    return element


def _with_initial(element: Block, value: str) -> Block:
    if value:
        element["initial_value"] = value
    return element
