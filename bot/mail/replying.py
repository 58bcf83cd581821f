"""Answering e-mails that arrived in Bitrix24: the inbox, the original, and what a reply starts as.

The rules are pure (the `Re:` subject, who the reply goes to, which sender answers, a plain-text
excerpt of an HTML body); ReplyService reads the user's mailbox through their own webhook and
remembers the e-mail cards posted in Slack.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from bot.bitrix24 import Bitrix24Client, Message, MessageFilter, MessagePage
from bot.identity import SlackUser
from bot.mail.addresses import Address, parse_address_list
from bot.mail.errors import MailError
from bot.mail.linking import LinkService
from bot.mail.listing import MessageListing
from bot.store.cards import CardRepository, NewCard
from bot.store.models import EmailCard

INBOX_PAGE_SIZE = 10
SEARCH_MAX_CHARS = 200
# Bitrix24 ids are positive integers; anything longer than this is not one of them.
_MESSAGE_ID = re.compile(r"[1-9][0-9]{0,17}")
# "Re:", "RE :", "Re[2]:", "re(3):", repeated: all of them collapse into one "Re: ".
_REPLY_PREFIX = re.compile(r"^(?:\s*re\s*(?:\[\d+\]|\(\d+\))?\s*:)+\s*", re.IGNORECASE)
# Bodies can be large; an excerpt needs only the start, and the parser's work stays bounded.
_HTML_SCAN_MAX = 200_000


class OtherPortal(MailError):
    """The e-mail lives in another Bitrix24 portal than the one the user is linked to."""

    code = "other_portal"

    def __init__(self, *, portal: str, linked_host: str) -> None:
        super().__init__()
        self.portal = portal
        self.linked_host = linked_host


@dataclass(frozen=True, kw_only=True)
class ReplyDraft:
    """The reply's fields before the user edits them."""

    sender_email: str | None
    to: str = ""
    cc: str = ""
    subject: str = ""


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, never `Re: Re:`: any run of reply prefixes becomes one."""
    rest = _REPLY_PREFIX.sub("", subject or "").strip()
    return f"Re: {rest}" if rest else "Re:"


def parse_message_id(value: object) -> int | None:
    """A Bitrix24 e-mail id from a Slack value, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and _MESSAGE_ID.fullmatch(value.strip()):
        return int(value.strip())
    return None


def default_sender_email(
    senders: Sequence[Mapping[str, Any]],
    *,
    preferred: str | None = None,
    last_sender: str | None = None,
) -> str | None:
    """`preferred` when the user may send from it, else the last one used, else the first."""
    own = [str(s.get("email", "")) for s in senders if s.get("email")]
    lowered = {e.lower(): e for e in own}
    last = _first_email(last_sender)
    for candidate in (preferred, last):
        if candidate and candidate.lower() in lowered:
            return lowered[candidate.lower()]
    return own[0] if own else None


def build_reply_draft(
    original: Message,
    *,
    senders: Sequence[Mapping[str, Any]],
    last_sender: str | None = None,
    reply_all: bool = False,
) -> ReplyDraft:
    """To the original's sender (its recipients, if the user sent it); Cc only for reply all."""
    own = {str(s.get("email", "")).lower() for s in senders if s.get("email")}
    if original.mailbox_email:
        own.add(original.mailbox_email.lower())
    from_list = parse_address_list(original.from_)
    if from_list.addresses and all(a.email.lower() in own for a in from_list.addresses):
        # Answering one's own sent e-mail means writing to its recipients again.
        to = _without(parse_address_list(original.to).addresses, own)
    else:
        to = list(from_list.addresses)
    # An unreadable From stays visible in the field for the user to fix, not dropped.
    to_text = ", ".join(a.formatted() for a in to) if to else original.from_.strip()
    cc_text = ""
    if reply_all:
        taken = own | {a.email.lower() for a in to}
        others = (
            parse_address_list(original.to).addresses + parse_address_list(original.cc).addresses
        )
        cc_text = ", ".join(a.formatted() for a in _without(others, taken))
    return ReplyDraft(
        sender_email=default_sender_email(
            senders, preferred=original.mailbox_email, last_sender=last_sender
        ),
        to=to_text,
        cc=cc_text,
        subject=reply_subject(original.subject),
    )


def reply_all_cc(original: Message, *, senders: Sequence[Mapping[str, Any]]) -> str:
    """Whom "reply all" copies beyond the reply's To ("" when nobody: no need to offer it)."""
    return build_reply_draft(original, senders=senders, reply_all=True).cc


def display_sender(from_: str) -> str:
    """The sender's name, or address when there is no name, for one-line listings."""
    parsed = parse_address_list(from_)
    if parsed.addresses:
        first = parsed.addresses[0]
        return first.name or first.email
    return from_.strip()


def html_to_text(body: str | None) -> str:
    """The readable text of an e-mail body (HTML or plain), with paragraph breaks kept."""
    if not body:
        return ""
    extractor = _TextExtractor()
    extractor.feed(body[:_HTML_SCAN_MAX])
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept)


def excerpt(text: str, *, max_lines: int = 6, max_chars: int = 600) -> str:
    """The first lines of a text (blank ones not counted), with an ellipsis when there is more."""
    lines = text.splitlines()
    kept: list[str] = []
    filled = 0
    for line in lines:
        if line:
            if filled == max_lines:
                break
            filled += 1
        kept.append(line)
    cut = len(kept) < len(lines)
    shown = "\n".join(kept).rstrip()
    if len(shown) > max_chars:
        shown, cut = shown[: max_chars - 1].rstrip(), True
    return shown + "…" if cut else shown


class ReplyService:
    """The use cases behind /b24mail inbox, Share to channel and Reply by e-mail."""

    def __init__(
        self,
        *,
        links: LinkService,
        bitrix24: Bitrix24Client,
        cards: CardRepository,
        listing: MessageListing | None = None,
    ) -> None:
        self._links = links
        self._bitrix24 = bitrix24
        self._cards = cards
        self._listing = listing or MessageListing(bitrix24=bitrix24)

    async def inbox(
        self, user: SlackUser, *, search: str | None, page: int, limit: int = INBOX_PAGE_SIZE
    ) -> MessagePage:
        """One page of the user's e-mails, newest first, optionally matching search words."""
        link = await self._links.require(user)
        return await self._listing.page(
            self._links.credentials(link), _filter(search), limit=limit, page=max(1, page)
        )

    async def search(
        self, user: SlackUser, words: str, *, limit: int, time_box: float
    ) -> list[Message]:
        """E-mails matching `words`; raises TimeoutError when the portal takes over `time_box`."""
        link = await self._links.require(user)
        async with asyncio.timeout(time_box):
            page = await self._listing.page(
                self._links.credentials(link), _filter(words), limit=limit, page=1
            )
        return page.items

    async def original(
        self, user: SlackUser, message_id: int, *, portal: str | None = None
    ) -> Message:
        """The e-mail to answer, read with the user's own rights; `portal` is where it was shared."""
        link = await self._links.require(user)
        if portal and portal.lower() != link.portal_host.lower():
            raise OtherPortal(portal=portal, linked_host=link.portal_host)
        return await self._bitrix24.get_message(self._links.credentials(link), message_id)

    async def remember_card(self, card: NewCard) -> None:
        await self._cards.record(card)

    async def card_for(self, channel_id: str, message_ts: Iterable[str | None]) -> EmailCard | None:
        """The card a message is, or sits under (pass its ts and its thread_ts)."""
        return await self._cards.find(channel_id, [ts for ts in message_ts if ts])


def _filter(search: str | None) -> MessageFilter:
    words = " ".join((search or "").split())[:SEARCH_MAX_CHARS]
    return MessageFilter(search_query=words or None)


def _first_email(text: str | None) -> str | None:
    if not text:
        return None
    parsed = parse_address_list(text)
    return parsed.addresses[0].email if parsed.addresses else None


def _without(addresses: Iterable[Address], taken: set[str]) -> list[Address]:
    """Addresses not in `taken` (lower-cased e-mails), each once."""
    seen = set(taken)
    kept = []
    for address in addresses:
        if address.email.lower() not in seen:
            seen.add(address.email.lower())
            kept.append(address)
    return kept


class _TextExtractor(HTMLParser):
    """Collects the text of HTML, turning block elements into line breaks."""

    # Paragraph-like blocks: a line break before and after (so a blank line between two).
    _BREAKS = frozenset(
        {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "table"}
        | {"ul", "ol", "section", "article", "header", "footer"}
    )
    # Line-like elements: a line break before each.
    _LINES = frozenset({"br", "li", "tr"})
    _HIDDEN = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._LINES or tag in self._BREAKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._LINES or tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
