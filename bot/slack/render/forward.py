"""The forward modal: the compose form with `Fwd: <subject>` and a note above the original."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.bitrix24 import Message
from bot.mail.forwarding import forward_subject
from bot.mail.replying import default_sender_email, display_sender
from bot.slack import ids
from bot.slack.blocks import Block, context
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import Prefill, compose_modal
from bot.slack.render.connect import escape_mrkdwn
from bot.slack.wording import Texts


def forward_modal(
    t: Texts,
    *,
    senders: Sequence[Mapping[str, Any]],
    last_sender: str | None,
    origin: ViewOrigin,
    original: Message,
    show_post_to: bool,
    note: Mapping[str, Any] | None = None,
) -> Block:
    """From the mailbox the e-mail arrived in (when the user may send from it), To left empty.

    `note`: the note's initial rich text (the sender's signature)."""
    intro = t(
        "forward.intro",
        subject=escape_mrkdwn(original.subject.strip() or t("inbox.no_subject")),
        sender=escape_mrkdwn(display_sender(original.from_) or "—"),
    )
    prefill = Prefill(
        sender_email=forward_sender(senders, original, last_sender),
        subject=forward_subject(original.subject),
        body=note,
        post_to=origin.channel_id if show_post_to else None,
    )
    return compose_modal(
        t,
        senders=senders,
        prefill=prefill,
        private_metadata=origin.model_copy(update={"forward_message_id": original.id}).encode(),
        callback_id=ids.FORWARD_VIEW,
        title_key="forward.title",
        leading_blocks=[context(intro)],
        show_post_to=show_post_to,
        body_label_key="forward.note",
    )


def forward_sender(
    senders: Sequence[Mapping[str, Any]], original: Message, last_sender: str | None
) -> str | None:
    """The mailbox the e-mail arrived in, when the user may send from it; else their usual."""
    return default_sender_email(senders, preferred=original.mailbox_email, last_sender=last_sender)
