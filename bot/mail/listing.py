"""Listing a user's e-mails: the one place every reader of `mail.message.list` goes through.

Two things the portal does not promise are handled here. The order of the list is not
documented, so every page is sorted by date. And `mailboxId` is optional in the docs but
required by b24pysdk (and passed by every doc example): a portal that refuses a list without it
is asked once per mailbox instead, and remembered, so later lists go that way at once.
"""

from __future__ import annotations

import logging
from datetime import UTC

from bot.bitrix24 import (
    Bitrix24Client,
    Credentials,
    Mailbox,
    Message,
    MessageFilter,
    MessagePage,
    ValidationFailed,
)

__all__ = ["MessageListing", "newest_first"]

log = logging.getLogger(__name__)

# mail.message.list's documented page maximum; mail.mailbox.list's.
LIST_PAGE_MAX = 200
MAILBOX_PAGE_MAX = 100


def newest_first(messages: list[Message]) -> list[Message]:
    """By date, newest first (ties and undated e-mails by id, higher first).

    The order of `mail.message.list` is not documented, so it is never relied upon."""
    return sorted(messages, key=_date_key, reverse=True)


def _date_key(message: Message) -> tuple[float, int]:
    date = message.date
    if date is None:
        return float("-inf"), message.id
    if date.tzinfo is None:
        # The portal sends naive dates only in thread answers (portal time); UTC is the best guess.
        date = date.replace(tzinfo=UTC)
    return date.timestamp(), message.id


def wants_mailbox_id(error: ValidationFailed) -> bool:
    """True when the portal refused a list for want of `mailboxId`."""
    if any(cause.field == "mailboxId" for cause in error.causes):
        return True
    return "mailboxid" in (error.portal_message or "").lower()


class MessageListing:
    """Pages of e-mails, each sorted newest first; one per process, shared by its readers."""

    def __init__(self, *, bitrix24: Bitrix24Client) -> None:
        self._bitrix24 = bitrix24
        # Portals (host) that refused a list without mailboxId.
        self._per_mailbox: set[str] = set()

    def needs_mailbox_id(self, creds: Credentials) -> bool:
        return creds.host.lower() in self._per_mailbox

    async def page(
        self, creds: Credentials, filter: MessageFilter, *, limit: int, page: int
    ) -> MessagePage:
        """One page of e-mails matching `filter`, newest first."""
        if filter.mailbox_id is None and self.needs_mailbox_id(creds):
            return await self._per_mailbox_page(creds, filter, limit=limit, page=page)
        try:
            found = await self._bitrix24.list_messages(creds, filter, limit=limit, page=page)
        except ValidationFailed as exc:
            if filter.mailbox_id is not None or not wants_mailbox_id(exc):
                raise
            log.info(
                "portal %s lists e-mails only per mailbox; asking each mailbox from now on",
                creds.host,
            )
            self._per_mailbox.add(creds.host.lower())
            return await self._per_mailbox_page(creds, filter, limit=limit, page=page)
        return found.model_copy(update={"items": newest_first(found.items)})

    async def _per_mailbox_page(
        self, creds: Credentials, filter: MessageFilter, *, limit: int, page: int
    ) -> MessagePage:
        """Page `page` of the e-mails of all mailboxes merged: each mailbox is asked for its
        first page*limit e-mails (no order to rely on across mailboxes either)."""
        wanted = page * limit
        merged: list[Message] = []
        more = False
        for mailbox in await self._mailboxes(creds):
            scoped = filter.model_copy(update={"mailbox_id": mailbox.id})
            items, full = await self._first(creds, scoped, wanted)
            merged.extend(items)
            more = more or full
        ordered = newest_first(merged)
        shown = ordered[(page - 1) * limit : wanted]
        return MessagePage(
            items=shown, page=page, limit=limit, has_more=more or len(ordered) > wanted
        )

    async def _mailboxes(self, creds: Credentials) -> list[Mailbox]:
        found: list[Mailbox] = []
        page = 1
        while True:
            batch = await self._bitrix24.mailboxes(creds, limit=MAILBOX_PAGE_MAX, page=page)
            found.extend(batch)
            if len(batch) < MAILBOX_PAGE_MAX:
                return found
            page += 1

    async def _first(
        self, creds: Credentials, filter: MessageFilter, count: int
    ) -> tuple[list[Message], bool]:
        """Up to `count` e-mails of one mailbox, and whether it may hold more."""
        size = min(count, LIST_PAGE_MAX)
        items: list[Message] = []
        page = 1
        while len(items) < count:
            found = await self._bitrix24.list_messages(creds, filter, limit=size, page=page)
            items.extend(found.items)
            if not found.has_more:
                return items[:count], False
            page += 1
        return items[:count], True
