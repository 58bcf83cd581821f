"""The reply modal: the compose form prefilled from the e-mail being answered.

Slack keeps what a user typed into an input across views.update when the block id stays the same,
and then ignores a new initial value. So the fields prefilled from the original carry the
e-mail's id in their block id (and Cc also the reply-all state): choosing another e-mail or
toggling "Reply all" refills them, while the body, Bcc and the user's edits of the same e-mail stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from bot.bitrix24 import Message
from bot.mail.replying import ReplyDraft, display_sender
from bot.slack import ids
from bot.slack.blocks import Block, context, modal, option, plain, section
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import BLOCK_OF_FIELD, Prefill, compose_modal
from bot.slack.render.connect import escape_mrkdwn, slack_date
from bot.slack.wording import Texts

REPLY_ALL_VALUE = "all"
# The value of the hint options ("type more", "no match"): never an e-mail id.
HINT_VALUE = "search"
# The fields whose block id follows the e-mail (and, for Cc, the reply-all state).
_PREFILLED = ("from", "to", "cc", "subject")


@dataclass(frozen=True, kw_only=True)
class ReplyForm:
    """What the reply modal shows besides the e-mail itself; kept across its updates."""

    origin: ViewOrigin
    body: Mapping[str, Any] | None = None
    bcc: str = ""
    choose_target: bool = False  # the e-mail was not known: show the search select
    show_post_to: bool = False  # no Slack message to answer in: ask where the result goes
    post_to: str | None = None
    reply_all: bool = False
    notice: str | None = None

    def with_changes(self, **changes: Any) -> ReplyForm:
        return replace(self, **changes)


def reply_block_ids(target_id: int | None, *, reply_all: bool) -> dict[str, str]:
    """field → block id for the fields prefilled from e-mail `target_id`."""
    rev = str(target_id or 0)
    names = {field: f"{BLOCK_OF_FIELD[field]}-{rev}" for field in _PREFILLED}
    names["cc"] += "-all" if reply_all else "-one"
    return names


def field_block_ids(view: Mapping[str, Any]) -> dict[str, str]:
    """field → the block id it has in this view (the reply modal's, or compose's plain ones)."""
    present = [
        str(b.get("block_id"))
        for b in view.get("blocks") or []
        if isinstance(b, Mapping) and b.get("block_id")
    ]
    found = dict(BLOCK_OF_FIELD)
    for field, base in BLOCK_OF_FIELD.items():
        for block_id in present:
            if block_id == base or block_id.startswith(base + "-"):
                found[field] = block_id
                break
    return found


def has_block(view: Mapping[str, Any], block_id: str) -> bool:
    return any(
        isinstance(b, Mapping) and b.get("block_id") == block_id for b in view.get("blocks") or []
    )


def reply_modal(
    t: Texts,
    *,
    senders: Sequence[Mapping[str, Any]],
    form: ReplyForm,
    draft: ReplyDraft,
    original: Message | None = None,
    reply_all_cc: str = "",
) -> Block:
    """The form; `original` is the e-mail being answered (None while the user still chooses).

    `reply_all_cc` is whom "Reply all" would copy; without anyone, the checkbox is left out.
    """
    target_id = original.id if original is not None else form.origin.reply_to_message_id
    origin = form.origin.model_copy(update={"reply_to_message_id": target_id})
    leading: list[Block] = []
    if original is not None:
        leading.append(context(_replying_to(t, original)))
    elif form.choose_target:
        leading.append(context(t("reply.choose")))
    if form.choose_target:
        leading.append(_target_select(t, original))
    if original is not None and reply_all_cc:
        leading.append(_reply_all(t, checked=form.reply_all, adds=reply_all_cc))
    prefill = Prefill(
        sender_email=draft.sender_email,
        to=draft.to,
        cc=draft.cc,
        bcc=form.bcc,
        subject=draft.subject,
        body=form.body,
        post_to=form.post_to,
    )
    return compose_modal(
        t,
        senders=senders,
        prefill=prefill,
        private_metadata=origin.encode(),
        callback_id=ids.REPLY_VIEW,
        title_key="reply.title",
        leading_blocks=leading,
        notice=form.notice,
        block_ids=reply_block_ids(target_id, reply_all=form.reply_all),
        show_post_to=form.show_post_to,
    )


def loading_modal(t: Texts, *, private_metadata: str = "") -> Block:
    """Opened at once (the trigger expires in 3 s), before Bitrix24 is asked for the e-mail."""
    return modal(
        callback_id=ids.REPLY_VIEW,
        title=t("reply.title"),
        close=t("reply.close"),
        blocks=[section(t("reply.loading"))],
        private_metadata=private_metadata,
    )


def problem_modal(t: Texts, text: str) -> Block:
    """Why there is nothing to reply to (no submit button: nothing can be sent from here)."""
    return modal(
        callback_id=ids.REPLY_VIEW,
        title=t("reply.title"),
        close=t("reply.close"),
        blocks=[section(text)],
    )


def target_option(t: Texts, message: Message) -> Block:
    """A search result: subject · sender · date (the reader's), within Slack's 75 characters."""
    subject = " ".join(message.subject.split())
    parts = [subject or "—", display_sender(message.from_) or "—"]
    if message.date is not None:
        parts.append(t.format_date(message.date))
    return option(" · ".join(parts), str(message.id))


def hint_option(t: Texts, key: str) -> Block:
    return option(t(key), HINT_VALUE)


def _replying_to(t: Texts, original: Message) -> str:
    subject = escape_mrkdwn(original.subject.strip() or t("inbox.no_subject"))
    sender = escape_mrkdwn(original.from_.strip() or "—")
    if original.date is not None:
        moment = original.date if original.date.tzinfo else original.date.replace(tzinfo=UTC)
        when = slack_date(moment, t.format_datetime(moment))
    else:
        when = t("inbox.unknown_date")
    return t("reply.replying_to", subject=subject, sender=sender, when=when)


def _target_select(t: Texts, original: Message | None) -> Block:
    element: Block = {
        "type": "external_select",
        "action_id": ids.REPLY_TARGET_ACTION,
        "placeholder": plain(t("reply.target_placeholder"), 150),
        # 0: the list opens with the newest e-mails before anything is typed.
        "min_query_length": 0,
    }
    if original is not None:
        element["initial_option"] = target_option(t, original)
    return {
        "type": "input",
        "block_id": ids.REPLY_TARGET_BLOCK,
        "dispatch_action": True,
        "label": plain(t("reply.target"), 2000),
        "element": element,
    }


def _reply_all(t: Texts, *, checked: bool, adds: str) -> Block:
    choice = option(t("reply.reply_all"), REPLY_ALL_VALUE)
    choice["description"] = plain(t("reply.reply_all_hint", recipients=adds), 75)
    element: Block = {
        "type": "checkboxes",
        "action_id": ids.REPLY_ALL_ACTION,
        "options": [choice],
    }
    if checked:
        element["initial_options"] = [choice]
    return {"type": "actions", "block_id": ids.REPLY_ALL_BLOCK, "elements": [element]}
