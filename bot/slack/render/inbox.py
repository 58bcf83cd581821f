"""The /b24mail inbox list: one page of the user's e-mails, each with Reply, Share and Open."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC

from bot.bitrix24 import Message, MessagePage
from bot.slack import ids
from bot.slack.blocks import Block, actions, button, context, header, section
from bot.slack.render.connect import escape_mrkdwn, slack_date
from bot.slack.render.email_actions import email_action_elements
from bot.slack.wording import Texts

# More carries the search words in its value (at most 2000 characters with the page number).
SEARCH_IN_BUTTON_MAX = 500


@dataclass(frozen=True)
class InboxPosition:
    """What the More button remembers: the search words and the page to show."""

    search: str | None
    page: int

    def encode(self) -> str:
        return json.dumps({"q": self.search or "", "p": self.page}, separators=(",", ":"))

    @classmethod
    def decode(cls, value: object) -> InboxPosition | None:
        if not isinstance(value, str):
            return None
        try:
            data = json.loads(value)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        page, search = data.get("p"), data.get("q")
        if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 10_000:
            return None
        if not isinstance(search, str):
            return None
        return cls(search=search[:SEARCH_IN_BUTTON_MAX] or None, page=page)


def inbox_blocks(t: Texts, page: MessagePage, *, search: str | None) -> tuple[str, list[Block]]:
    """The notification text and blocks of one inbox page."""
    shown_search = escape_mrkdwn(search) if search else None
    title = t("inbox.title_search", search=search) if search else t("inbox.title")
    blocks: list[Block] = [header(title)]
    if not page.items:
        if page.page > 1:
            empty = t("inbox.no_more")
        elif shown_search:
            empty = t("inbox.empty_search", search=shown_search)
        else:
            empty = t("inbox.empty")
        blocks.append(section(empty))
        return title, blocks
    blocks.append(context(t("inbox.page", page=page.page)))
    for message in page.items:
        blocks += _entry(t, message)
    if page.has_more:
        more = InboxPosition(
            search=(search or "")[:SEARCH_IN_BUTTON_MAX] or None, page=page.page + 1
        )
        blocks.append(
            actions(button(t("inbox.more"), action_id=ids.INBOX_MORE_ACTION, value=more.encode()))
        )
    return title, blocks


def _entry(t: Texts, message: Message) -> list[Block]:
    subject = message.subject.strip() or t("inbox.no_subject")
    if message.date is not None:
        moment = message.date if message.date.tzinfo else message.date.replace(tzinfo=UTC)
        when = slack_date(moment, t.format_datetime(moment))
    else:
        when = t("inbox.unknown_date")
    line = t(
        "inbox.line",
        subject=escape_mrkdwn(subject),
        sender=escape_mrkdwn(message.from_.strip() or "—"),
        when=when,
        attachments=t("inbox.attachments") if message.has_attachments else "",
    )
    value = str(message.id)
    elements = email_action_elements(
        t,
        message_id=message.id,
        portal=None,
        url=message.url,
        reply_action_id=ids.INBOX_REPLY_ACTION,
        reply_value=value,
        extra=[button(t("inbox.share"), action_id=ids.INBOX_SHARE_ACTION, value=value)],
    )
    return [section(line), actions(*elements)]
