"""Between a compose or reply modal and what is kept of it: drafts, signatures, templates, Send at.

A draft is the modal's fields as typed (addresses as text, the body as Slack rich text), plus
where the modal came from, so that reopening it restores the same modal.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.mail.addresses import parse_address_list
from bot.slack import ids
from bot.slack.blocks import Block
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import Prefill, compose_modal
from bot.slack.richtext import is_blank, rich_text_to_plain
from bot.slack.view_state import rich_text_value, selected_value, text_value, with_people
from bot.slack.wording import Texts
from bot.store.base import utcnow
from bot.store.models import OutboxEmail

SIGNATURE_DELIMITER = "-- "  # the usual signature separator (RFC 3676 § 4.3)


def selected_datetime(view: Mapping[str, Any], block_id: str, action_id: str) -> datetime | None:
    """A datetimepicker's choice: Slack sends a Unix time, chosen in the user's own time zone."""
    values = view.get("state", {}).get("values", {})
    block = values.get(block_id) if isinstance(values, Mapping) else None
    element = block.get(action_id) if isinstance(block, Mapping) else None
    value = element.get("selected_date_time") if isinstance(element, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def draft_content(
    view: Mapping[str, Any],
    blocks: Mapping[str, str],
    origin: ViewOrigin,
    *,
    signature: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a closed modal holds, to keep as a draft. `body_has_text` is False when the body
    is empty or only the signature that was put there, so an untouched modal keeps nothing."""
    body = rich_text_value(view, blocks["body"], ids.BODY_ACTION)
    typed = body is not None and not is_blank(body)
    if typed and body is not None and signature is not None:
        typed = _plain(body) != _plain(with_signature(None, signature))
    send_at = selected_datetime(view, blocks.get("send_at", ids.SEND_AT_BLOCK), ids.SEND_AT_ACTION)
    return {
        "callback_id": str(view.get("callback_id") or ids.COMPOSE_VIEW),
        "sender": selected_value(view, blocks["from"], ids.FROM_ACTION),
        # People picked in the suggestion selects join the typed addresses (as on sending).
        "to": with_people(view, blocks["to"], ids.PEOPLE_BLOCKS["to"]),
        "cc": with_people(view, blocks["cc"], ids.PEOPLE_BLOCKS["cc"]),
        "bcc": with_people(view, blocks["bcc"], ids.PEOPLE_BLOCKS["bcc"]),
        "subject": text_value(view, blocks["subject"], ids.SUBJECT_ACTION),
        "body": body,
        "body_has_text": typed,
        "send_at": int(send_at.timestamp()) if send_at else None,
        "origin": origin.model_dump(exclude_none=True, exclude={"draft_id"}),
    }


def draft_prefill(content: Mapping[str, Any]) -> tuple[Prefill, ViewOrigin, str]:
    """The modal's prefill, origin and callback id of a kept draft."""
    origin = ViewOrigin.model_validate(content.get("origin") or {})
    body = content.get("body")
    send_at = content.get("send_at")
    prefill = Prefill(
        sender_email=_str(content.get("sender")),
        to=str(content.get("to") or ""),
        cc=str(content.get("cc") or ""),
        bcc=str(content.get("bcc") or ""),
        subject=str(content.get("subject") or ""),
        body=body if isinstance(body, Mapping) else None,
        post_to=origin.channel_id,
        send_at=datetime.fromtimestamp(send_at, UTC) if isinstance(send_at, int) else None,
    )
    # A reply or forward reopens as one (to the same e-mail); a reply closed before its e-mail
    # was chosen reopens as a new e-mail, there being nothing to answer.
    callback_id = resend_view(origin.reply_to_message_id, origin.forward_message_id)
    return prefill, origin, callback_id


def resend_modal(
    t: Texts,
    email: OutboxEmail,
    *,
    senders: Sequence[Mapping[str, Any]],
    keep_time: bool = False,
    templates: Sequence[tuple[int, str]] = (),
) -> Block:
    """The modal of an e-mail of the outbox, filled in (Edit and resend, Edit after Undo, Edit
    of a scheduled e-mail, which keeps its time when it is still ahead)."""
    origin = ViewOrigin(
        channel_id=email.result_channel,
        thread_ts=email.result_thread_ts,
        reply_to_message_id=email.reply_to_message_id,
        forward_message_id=email.forward_message_id,
        resend_of=email.id,
    )
    send_at = email.send_at if keep_time and email.send_at and email.send_at > utcnow() else None
    prefill = Prefill(
        sender_email=email_of(email.sender),
        to=", ".join(email.to_addrs),
        cc=", ".join(email.cc_addrs),
        bcc=", ".join(email.bcc_addrs),
        subject=email.subject,
        body=email.body_source,
        post_to=email.result_channel if email.result_channel[:1] in "CGD" else None,
        send_at=send_at,
    )
    callback_id = resend_view(email.reply_to_message_id, email.forward_message_id)
    title_key, body_label_key = modal_wording(callback_id)
    return compose_modal(
        t,
        senders=senders,
        prefill=prefill,
        private_metadata=origin.encode(),
        callback_id=callback_id,
        templates=templates if callback_id == ids.COMPOSE_VIEW else (),
        title_key=title_key,
        body_label_key=body_label_key,
    )


def modal_wording(callback_id: str) -> tuple[str, str]:
    """The title and body label (wording keys) of each kind of modal, reopened from the outbox
    or a draft."""
    if callback_id == ids.FORWARD_VIEW:
        return "forward.title", "forward.note"
    if callback_id == ids.REPLY_VIEW:
        return "reply.title", "compose.body"
    return "compose.title", "compose.body"


def resend_view(reply_to_message_id: int | None, forward_message_id: int | None) -> str:
    """The modal an e-mail is edited in is the one that sends it as the same kind again."""
    if forward_message_id:
        return ids.FORWARD_VIEW
    return ids.REPLY_VIEW if reply_to_message_id else ids.COMPOSE_VIEW


def email_of(sender: str | None) -> str | None:
    """The address of `Name <address>` as Bitrix24 lists senders."""
    if not sender:
        return None
    parsed = parse_address_list(sender)
    return parsed.addresses[0].email if parsed.addresses else None


def with_signature(
    body: Mapping[str, Any] | None, signature: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The body followed by the delimiter and the signature: plain text in the body, so the
    user sees what is sent and may edit or delete it for this one e-mail."""
    if not signature or is_blank(signature):
        return dict(body) if body else None
    elements = list(copy.deepcopy((body or {}).get("elements") or []))
    if not elements:
        # An empty line to write on, above the signature.
        elements.append({"type": "rich_text_section", "elements": [{"type": "text", "text": "\n"}]})
    elements.append(
        {
            "type": "rich_text_section",
            "elements": [{"type": "text", "text": f"\n{SIGNATURE_DELIMITER}\n"}],
        }
    )
    elements += copy.deepcopy(list(signature.get("elements") or []))
    return {"type": "rich_text", "elements": elements}


def _plain(block: Mapping[str, Any] | None) -> str:
    return " ".join(rich_text_to_plain(dict(block)).split()) if block else ""


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
