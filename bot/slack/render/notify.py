"""New-mail notifications as `/b24mail notify` and the Home tab describe them."""

from __future__ import annotations

from datetime import timedelta

from bot.mail.notify import NotifyStatus
from bot.slack.render.connect import escape_mrkdwn
from bot.slack.wording import Texts
from bot.store.models import MailSubscription


def status_lines(t: Texts, status: NotifyStatus) -> list[str]:
    """Where the cards go, for which e-mails, how often; the pause and its reason first."""
    row = status.subscription
    lines = []
    if row.state == "paused":
        lines.append(t("notify.status_paused", reason=paused_text(t, row)))
    lines.append(
        t(
            "notify.status_on",
            where=f"<#{row.channel_id}>" if row.channel_id else t("notify.where_dm"),
            words=words_text(t, status),
            period=period_text(t, status.period),
            count=status.on_portal,
            host=row.portal_host,
        )
    )
    return lines


def words_text(t: Texts, status: NotifyStatus) -> str:
    search = status.subscription.search
    return t("notify.words", words=escape_mrkdwn(search)) if search else t("notify.words_any")


def period_text(t: Texts, period: timedelta) -> str:
    seconds = period.total_seconds()
    if seconds < 120:
        return t("notify.period_seconds", n=round(seconds))
    return t("notify.period_minutes", n=round(seconds / 60, 1 if seconds < 600 else None))


def paused_text(t: Texts, row: MailSubscription) -> str:
    """Why a subscription paused and what brings it back."""
    reason = row.pause_reason or ""
    if reason.startswith("slack_"):
        error = reason.removeprefix("slack_")
        key = f"post_reason.{error}" if t.has(f"post_reason.{error}") else "post_reason.other"
        where = f"<#{row.channel_id}>" if row.channel_id else t("notify.where_dm")
        return t("notify.paused_slack", where=where, reason=t(key))
    explanation = t.error(reason, new_host=row.pause_detail or "")
    return t("notify.paused_bitrix24", reason=explanation)
