"""What the More actions show: the calendar event modal and the sentence of each result."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.mail.message_actions import ActionDone, ActionKind
from bot.slack import ids
from bot.slack.blocks import Block, context, modal, plain
from bot.slack.metadata import ViewOrigin
from bot.slack.wording import Texts

# The event the modal proposes: the next full hour, for an hour.
DEFAULT_EVENT_LENGTH = timedelta(hours=1)


def event_modal(t: Texts, *, origin: ViewOrigin, now: datetime) -> Block:
    """Start and end pickers (Slack shows them in the user's own time zone)."""
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    end = start + DEFAULT_EVENT_LENGTH
    return modal(
        callback_id=ids.EVENT_VIEW,
        title=t("event.title"),
        submit=t("event.submit"),
        close=t("compose.close"),
        private_metadata=origin.encode(),
        blocks=[
            context(t("event.intro")),
            _picker(ids.EVENT_START_BLOCK, ids.EVENT_START_ACTION, t("event.start"), start),
            _picker(ids.EVENT_END_BLOCK, ids.EVENT_END_ACTION, t("event.end"), end),
        ],
    )


def _picker(block_id: str, action_id: str, label: str, initial: datetime) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": {
            "type": "datetimepicker",
            "action_id": action_id,
            "initial_date_time": int(initial.timestamp()),
        },
    }


def action_done_text(
    t: Texts, done: ActionDone, *, user_id: str, start: datetime | None, end: datetime | None
) -> str:
    """The sentence posted in the e-mail's thread once Bitrix24 did it."""
    if done.kind == "chat" and done.existing:
        return t("action.done.chat_existing", user=user_id, id=done.object_id)
    if done.kind == "event" and start is not None and end is not None:
        return t(
            "action.done.event",
            user=user_id,
            id=done.object_id,
            start=t.format_datetime(start),
            end=t.format_datetime(end),
        )
    return t(f"action.done.{done.kind}", user=user_id, id=done.object_id or "")


def action_failed_text(t: Texts, kind: ActionKind, *, user_id: str, reason: str) -> str:
    return t("action.failed", action=t(f"action.name.{kind}"), user=user_id, reason=reason)
