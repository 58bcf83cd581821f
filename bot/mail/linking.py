"""Linking a Slack user to their Bitrix24 webhook: check it, store it, hand out credentials."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from bot.bitrix24 import (
    Bitrix24Client,
    Sender,
    WebhookCredentials,
    parse_webhook_url,
)
from bot.identity import SlackUser
from bot.mail.errors import ConnectTimedOut, LinkUnreadable, NoSenders, NotLinked
from bot.store.base import utcnow
from bot.store.crypto import SecretDecryptionError
from bot.store.links import LinkRepository
from bot.store.models import Link
from bot.store.subscriptions import SubscriptionRepository

log = logging.getLogger(__name__)


def sender_record(sender: Sender) -> dict[str, str]:
    return {"email": sender.email, "name": sender.name or "", "sender": sender.sender}


class LinkService:
    """The use cases behind /b24mail connect, disconnect and status."""

    def __init__(
        self,
        *,
        links: LinkRepository,
        bitrix24: Bitrix24Client,
        allow_insecure: bool,
        probe_timeout: float,
        sender_ttl: timedelta,
        subscriptions: SubscriptionRepository | None = None,
    ) -> None:
        self._links = links
        # New-mail subscriptions paused by a broken link resume when the user reconnects.
        self._subscriptions = subscriptions
        self._bitrix24 = bitrix24
        self._allow_insecure = allow_insecure
        self._probe_timeout = probe_timeout
        self._sender_ttl = sender_ttl

    async def connect(self, user: SlackUser, webhook_url: str) -> Link:
        """Check the pasted webhook against the portal and store it; raises a coded error."""
        credentials = parse_webhook_url(webhook_url, allow_insecure=self._allow_insecure)
        try:
            async with asyncio.timeout(self._probe_timeout):
                senders = await self._bitrix24.senders(credentials, limit=100)
        except TimeoutError as exc:
            raise ConnectTimedOut() from exc
        if not senders:
            raise NoSenders()
        link = await self._links.save(
            user,
            scheme=credentials.scheme,
            host=credentials.host,
            b24_user_id=credentials.user_id,
            secret=credentials.code,
            senders=[sender_record(s) for s in senders],
        )
        log.info(
            "linked user=%s team=%s portal=%s b24_user=%s senders=%d",
            user.user_id,
            user.team_id,
            credentials.host,
            credentials.user_id,
            len(senders),
        )
        if self._subscriptions is not None:
            resumed = await self._subscriptions.resume_for_link(
                link.id, portal_host=link.portal_host
            )
            if resumed:
                log.info("resumed %d new-mail subscription(s) of user=%s", resumed, user.user_id)
        return link

    async def disconnect(self, user: SlackUser) -> bool:
        removed = await self._links.delete(user)
        log.info("unlinked user=%s team=%s removed=%s", user.user_id, user.team_id, removed)
        return removed

    async def get(self, user: SlackUser) -> Link | None:
        return await self._links.get(user)

    async def require(self, user: SlackUser) -> Link:
        link = await self._links.get(user)
        if link is None:
            raise NotLinked()
        return link

    async def require_stored(self, user: SlackUser) -> Link:
        """require() read from the database, never a cache: what is sent depends on it."""
        link = await self._links.get_stored(user)
        if link is None:
            raise NotLinked()
        return link

    def credentials(self, link: Link) -> WebhookCredentials:
        try:
            code = self._links.secret_of(link)
        except SecretDecryptionError as exc:
            raise LinkUnreadable() from exc
        return WebhookCredentials(
            scheme=link.portal_scheme,
            host=link.portal_host,
            user_id=link.b24_user_id,
            code=code,
            allow_insecure=self._allow_insecure,
        )

    def senders_stale(self, link: Link) -> bool:
        refreshed = link.senders_refreshed_at
        return refreshed is None or utcnow() - refreshed > self._sender_ttl

    async def refresh_senders(self, user: SlackUser) -> list[dict[str, str]] | None:
        """Fetch the sender list again; keeps the cached one (and logs why) when the portal fails."""
        link = await self._links.get(user)
        if link is None:
            return None
        senders = await self._bitrix24.senders(self.credentials(link), limit=100)
        records = [sender_record(s) for s in senders]
        await self._links.update_senders(user, records, verified_at=utcnow())
        return records

    async def remember_sender(self, user: SlackUser, sender: str) -> None:
        await self._links.remember_sender(user, sender)
