"""Listing a user's e-mails: the one place every reader of `mail.message.list` goes through."""

from __future__ import annotations

from datetime import UTC

from bot.bitrix24 import Bitrix24Client, Credentials, Message, MessageFilter, MessagePage

__all__ = ["MessageListing", "newest_first"]


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


class MessageListing:
    """Pages of e-mails, each sorted newest first."""

    def __init__(self, *, bitrix24: Bitrix24Client) -> None:
        self._bitrix24 = bitrix24

    async def page(
        self, creds: Credentials, filter: MessageFilter, *, limit: int, page: int
    ) -> MessagePage:
        """One page of e-mails matching `filter`, newest first."""
        found = await self._bitrix24.list_messages(creds, filter, limit=limit, page=page)
        return found.model_copy(update={"items": newest_first(found.items)})
