"""The status message of an e-mail (Sending → Retrying → Sent or Failed) and the history list.

Bcc addresses are never shown: the message is posted in a conversation others can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.slack import ids
from bot.slack.blocks import Block, actions, button, context, header, section
from bot.slack.render.connect import escape_mrkdwn, slack_date
from bot.slack.wording import Texts
from bot.store.models import OutboxEmail
from bot.store.outbox import OutboxStatus

SHOWN_RECIPIENTS = 3


def recipients_summary(t: Texts, addresses: Sequence[str]) -> str:
    shown = [escape_mrkdwn(a) for a in addresses[:SHOWN_RECIPIENTS]]
    rest = len(addresses) - len(shown)
    if rest > 0:
        return t.plural("recipients.more", rest, first=", ".join(shown))
    return ", ".join(shown) or "—"


def state_key(email: OutboxEmail) -> str:
    if email.status in (OutboxStatus.QUEUED, OutboxStatus.SENDING) and email.error_code:
        return "retrying"
    if email.status == OutboxStatus.QUEUED and email.attempts == 0 and email.not_before:
        # Waiting for its time: the one the user chose, or the end of the undo window.
        return "scheduled" if email.send_at is not None else "undo"
    if email.status in (OutboxStatus.QUEUED, OutboxStatus.SENDING):
        return OutboxStatus.QUEUED
    return email.status


def status_message(
    t: Texts,
    email: OutboxEmail,
    *,
    explanation: str | None = None,
    dm_note: str | None = None,
) -> tuple[str, list[Block]]:
    """The text (for notifications) and blocks of an e-mail's status message."""
    subject = escape_mrkdwn(email.subject)
    sender = escape_mrkdwn(email.sender)
    recipients = recipients_summary(t, email.to_addrs)
    key = state_key(email)
    blocks: list[Block] = []
    if dm_note:
        blocks.append(context(dm_note))
    if key == OutboxStatus.QUEUED:
        text = t("status_msg.queued", subject=subject, sender=sender, recipients=recipients)
        blocks.append(section(text))
    elif key == "undo":
        assert email.not_before is not None
        seconds = max(1, round((email.not_before - email.created_at).total_seconds()))
        text = t(
            "status_msg.undo_window",
            seconds=seconds,
            subject=subject,
            sender=sender,
            recipients=recipients,
        )
        blocks += [
            section(text),
            actions(button(t("status_msg.undo"), action_id=ids.UNDO_ACTION, value=email.id)),
        ]
    elif key == "scheduled":
        assert email.not_before is not None
        text = t(
            "status_msg.scheduled",
            subject=subject,
            recipients=recipients,
            when=_when(t, email.not_before),
        )
        blocks += [section(text), scheduled_actions(t, email)]
    elif key == OutboxStatus.CANCELLED:
        text = t("status_msg.cancelled", subject=subject, recipients=recipients)
        blocks += [
            section(text),
            actions(
                button(
                    t("status_msg.edit_cancelled"), action_id=ids.EDIT_RESEND_ACTION, value=email.id
                )
            ),
        ]
    elif key == "retrying":
        when = slack_date(email.next_attempt_at, t.format_time(email.next_attempt_at))
        text = t(
            "status_msg.retrying",
            attempt=email.attempts + 1,
            subject=subject,
            recipients=recipients,
            reason=t(f"retry_reason.{email.error_code}")
            if t.has(f"retry_reason.{email.error_code}")
            else t("retry_reason.unknown"),
            when=when,
        )
        blocks.append(section(text))
    elif key == OutboxStatus.SENT:
        sent_at = email.sent_at or email.updated_at
        key = "status_msg.forwarded" if email.kind == "forward" else "status_msg.sent"
        text = t(key, subject=subject, sender=sender, when=_when(t, sent_at))
        blocks += [section(text), context(_counts(t, email), t("compose.to") + ": " + recipients)]
    else:
        text = t("status_msg.failed", subject=subject, recipients=recipients)
        blocks += [
            section(text),
            section(
                t(
                    "status_msg.failed_reason",
                    reason=explanation or t("error.unknown", error_id=email.id[:8]),
                )
            ),
        ]
        # For a moved portal the detail is the new host, already named in the explanation.
        if email.error_detail and email.error_code == "policy_refused":
            # Our own words (the address and the rule), not the portal's.
            blocks.append(
                context(t("status_msg.policy_rule", detail=escape_mrkdwn(email.error_detail)))
            )
        elif email.error_detail and email.error_code != "portal_moved":
            blocks.append(
                context(t("status_msg.portal_said", detail=escape_mrkdwn(email.error_detail)))
            )
        blocks.append(
            actions(
                button(
                    t("status_msg.retry"),
                    action_id=ids.RETRY_ACTION,
                    value=email.id,
                    style="primary",
                ),
                button(t("status_msg.edit"), action_id=ids.EDIT_RESEND_ACTION, value=email.id),
            )
        )
    return text, blocks


def scheduled_actions(t: Texts, email: OutboxEmail) -> Block:
    """Send now, Edit and Cancel of an e-mail waiting for its time (status and the list)."""
    return actions(
        button(t("scheduled.send_now"), action_id=ids.SEND_NOW_ACTION, value=email.id),
        button(t("scheduled.edit"), action_id=ids.EDIT_SCHEDULED_ACTION, value=email.id),
        button(
            t("scheduled.cancel"),
            action_id=ids.CANCEL_SCHEDULED_ACTION,
            value=email.id,
            style="danger",
        ),
    )


def history_blocks(t: Texts, emails: Sequence[OutboxEmail]) -> list[Block]:
    """The user's last e-mails: scheduled ones with their time, the others with when they were
    sent, cancelled or submitted."""
    if not emails:
        return [section(t("history.empty"))]
    icons: dict[str, str] = {
        OutboxStatus.QUEUED: ":outbox_tray:",
        OutboxStatus.SENDING: ":outbox_tray:",
        OutboxStatus.SENT: ":white_check_mark:",
        OutboxStatus.FAILED: ":x:",
        OutboxStatus.CANCELLED: ":leftwards_arrow_with_hook:",
        "scheduled": ":calendar:",
    }
    lines = []
    for e in emails:
        key = "scheduled" if state_key(e) == "scheduled" else str(e.status)
        lines.append(
            t(
                "history.line",
                icon=icons.get(key, ":grey_question:"),
                subject=_history_subject(t, e),
                recipients=recipients_summary(t, e.to_addrs),
                when=_when(t, _moment(e, key)),
                status=t(f"history.status.{key}"),
            )
        )
    return [header(t("history.title")), section("\n".join(lines))]


def _history_subject(t: Texts, email: OutboxEmail) -> str:
    subject = escape_mrkdwn(email.subject)
    return t("history.forward_subject", subject=subject) if email.kind == "forward" else subject


def scheduled_blocks(t: Texts, emails: Sequence[OutboxEmail], *, limit: int = 15) -> list[Block]:
    """`/b24mail scheduled` and the Home tab: what waits for its time, soonest first, each with
    its buttons (two blocks each: 15 stay within a message's 50)."""
    if not emails:
        return [section(t("scheduled.empty"))]
    blocks: list[Block] = [header(t("scheduled.title"))]
    for e in emails[:limit]:
        assert e.not_before is not None
        blocks += [
            section(
                t(
                    "scheduled.line",
                    subject=escape_mrkdwn(e.subject),
                    recipients=recipients_summary(t, e.to_addrs),
                    when=_when(t, e.not_before),
                )
            ),
            scheduled_actions(t, e),
        ]
    return blocks


def _moment(email: OutboxEmail, key: str) -> datetime:
    """The time a history line shows: when it goes, went, or was cancelled."""
    if key == "scheduled" and email.not_before is not None:
        return email.not_before
    if key == OutboxStatus.SENT and email.sent_at is not None:
        return email.sent_at
    if key == OutboxStatus.CANCELLED and email.cancelled_at is not None:
        return email.cancelled_at
    return email.created_at


def _counts(t: Texts, email: OutboxEmail) -> str:
    return t(
        "status_msg.counts",
        to=t.plural("count.to", len(email.to_addrs)),
        cc=t.plural("count.cc", len(email.cc_addrs)),
        bcc=t.plural("count.bcc", len(email.bcc_addrs)),
    )


def _when(t: Texts, moment: datetime) -> str:
    return slack_date(moment, t.format_datetime(moment))
