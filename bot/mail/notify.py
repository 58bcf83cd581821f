"""New e-mail to Slack: subscriptions, the poll budget, and one check of a user's mailbox.

Bitrix24 has no event for new mail, so mailboxes are polled with `mail.message.list`. Three
facts shape a check:

- An e-mail's `date` is the sender's, and Bitrix24 fetches external mailboxes only every few
  minutes (once a day for an owner who is offline): an e-mail can appear long after its date,
  older than the last check. So every check looks back `lookback` (24 h by default) and
  de-duplicates by id against what the subscription has seen, never by date.
- The list's order is not documented: a check reads every page of the window (while pages
  come back full) and sorts by itself.
- What existed when the subscription started is the baseline: recorded, never posted.

The portal's request rate is shared by all its users and by sends; polls may use `budget` of it
(`PollConfig.spacing` between poll requests per portal), so with many subscriptions each is
checked less often than `interval`: `PollConfig.period`.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.bitrix24 import (
    AuthorizationError,
    Bitrix24Client,
    Bitrix24Error,
    HttpsRequired,
    Message,
    MessageFilter,
    MethodNotFound,
    NotFound,
    PortalDeleted,
    PortalMoved,
)
from bot.identity import SlackUser
from bot.mail.errors import LinkUnreadable, NotLinked
from bot.mail.linking import LinkService
from bot.mail.listing import MessageListing
from bot.mail.replying import SEARCH_MAX_CHARS, excerpt, html_to_text
from bot.store.base import utcnow
from bot.store.models import MailSubscription
from bot.store.subscriptions import NewMail, SubscriptionRepository

log = logging.getLogger(__name__)

MAX_CARDS_PER_CHECK = 20
PAGE_SIZE = 200
# A check reads at most this many pages (PAGE_SIZE e-mails each) of its look-back window.
MAX_PAGES = 10
PREVIEW_LINES = 8
PREVIEW_CHARS = 700
RETRY_MAX = timedelta(hours=1)

# Failures only the user can mend (a new webhook, the mail scope, the portal's new address):
# the subscription pauses and its owner is told once.
_NEEDS_USER = (
    AuthorizationError,
    PortalMoved,
    PortalDeleted,
    MethodNotFound,
    HttpsRequired,
    NotFound,
)

# Where quoted history or a signature starts in a plain-text body: nothing after it is shown.
_CUT_LINE = re.compile(
    r"^(?:>|-- ?$|_{5,}|-{5,}\s*(?:original message|forwarded message|исходное сообщение)"
    r"|on .{3,200} wrote:\s*$|.{3,200} (?:пишет|написал(?:а)?):\s*$"
    r"|(?:from|от):\s.+@.+$|sent from my )",
    re.IGNORECASE,
)
_HTML_QUOTE = re.compile(
    r"<blockquote\b|<div[^>]*class=[\"'][^\"']*(?:gmail_quote|moz-cite-prefix|yahoo_quoted)"
    r"|<div[^>]*id=[\"']?(?:appendonsend|divRplyFwdMsg)",
    re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class PollConfig:
    """How often and how hard mailboxes are polled (the B24MAIL_POLL_* settings)."""

    interval: timedelta = timedelta(seconds=60)
    budget: float = 0.25
    rate: float = 2.0
    lookback: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=5)
    max_cards: int = MAX_CARDS_PER_CHECK
    page_size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 1:
            raise ValueError("budget must be in (0, 1]")
        if self.rate <= 0 or self.interval <= timedelta(0) or self.lookback <= timedelta(0):
            raise ValueError("rate, interval and lookback must be positive")

    @property
    def spacing(self) -> timedelta:
        """Time between two poll requests to one portal: one request per 1/(budget × rate) s."""
        return timedelta(seconds=1.0 / (self.budget * self.rate))

    def period(self, subscriptions: int) -> timedelta:
        """How often each of `subscriptions` on one portal is really checked."""
        return max(self.interval, self.spacing * max(subscriptions, 1))


@dataclass(frozen=True, kw_only=True)
class NotifyStatus:
    subscription: MailSubscription
    period: timedelta
    on_portal: int


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    """What a check did: `found` new cards were recorded; or it paused (`paused` is the reason
    code, `newly` when this check paused it); or `retry_at` when it should be tried again."""

    found: int = 0
    baseline: int = 0
    more: int = 0
    paused: str | None = None
    newly: bool = False
    retry_at: datetime | None = None
    gone: bool = False


class NotifyService:
    """The use cases behind /b24mail notify and the poller's checks."""

    def __init__(
        self,
        *,
        links: LinkService,
        bitrix24: Bitrix24Client,
        subscriptions: SubscriptionRepository,
        config: PollConfig,
        listing: MessageListing | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._links = links
        self._bitrix24 = bitrix24
        # The process's one listing: a portal that wants mailboxId is learnt once, for all readers.
        self._listing = listing or MessageListing(bitrix24=bitrix24)
        self._subscriptions = subscriptions
        self.config = config
        self._clock = clock

    @property
    def subscriptions(self) -> SubscriptionRepository:
        return self._subscriptions

    async def turn_on(
        self, user: SlackUser, *, words: str | None, channel_id: str | None
    ) -> tuple[NotifyStatus, bool]:
        """Subscribe the user (to their DM when `channel_id` is None); True when it is new."""
        link = await self._links.require(user)
        search = " ".join((words or "").split())[:SEARCH_MAX_CHARS] or None
        row, created = await self._subscriptions.subscribe(
            user,
            link_id=link.id,
            portal_host=link.portal_host,
            search=search,
            channel_id=channel_id,
            now=self._clock(),
        )
        log.info(
            "notify on user=%s team=%s portal=%s words=%s channel=%s",
            user.user_id,
            user.team_id,
            link.portal_host,
            bool(search),
            channel_id or "dm",
        )
        return await self._status_of(row), created

    async def turn_off(self, user: SlackUser) -> bool:
        removed = await self._subscriptions.unsubscribe(user)
        log.info("notify off user=%s team=%s removed=%s", user.user_id, user.team_id, removed)
        return removed

    async def status(self, user: SlackUser) -> NotifyStatus | None:
        row = await self._subscriptions.get(user)
        return await self._status_of(row) if row is not None else None

    async def _status_of(self, row: MailSubscription) -> NotifyStatus:
        count = await self._subscriptions.count_on_portal(row.portal_host)
        return NotifyStatus(subscription=row, period=self.config.period(count), on_portal=count)

    async def check(self, row: MailSubscription, *, owner: str) -> CheckOutcome:
        """List the look-back window of the user's mailboxes and record what is new."""
        now = self._clock()
        user = SlackUser(
            enterprise_id=row.enterprise_id, team_id=row.team_id, user_id=row.slack_user_id
        )
        try:
            # From the database, never the listeners' cache: a webhook replaced in another
            # process must not make the check fail (and pause) with the old one.
            link = await self._links.require_stored(user)
            credentials = self._links.credentials(link)
            found = await self._list_window(credentials, row, now)
        except NotLinked:
            return CheckOutcome(gone=True)
        except (LinkUnreadable, *_NEEDS_USER) as exc:
            code = exc.code
            detail = getattr(exc, "new_host", None)
            newly = await self._subscriptions.pause(
                row.id, owner=owner, reason=code, detail=str(detail) if detail else None
            )
            log.warning(
                "notify paused subscription=%s user=%s: %s", row.id, row.slack_user_id, code
            )
            return CheckOutcome(paused=code, newly=newly)
        except Bitrix24Error as exc:
            delay = min(self.config.interval * (2 ** min(row.failures, 10)), RETRY_MAX)
            log.info(
                "notify check subscription=%s failed (%s); again in %s", row.id, exc.code, delay
            )
            return CheckOutcome(retry_at=now + delay)
        return await self._record(row, owner=owner, found=found, now=now)

    async def _list_window(
        self, credentials: Any, row: MailSubscription, now: datetime
    ) -> dict[int, Message]:
        """Every e-mail of the look-back window, by id (pages may repeat or reorder items)."""
        query = MessageFilter(search_query=row.search, date_from=now - self.config.lookback)
        found: dict[int, Message] = {}
        for page in range(1, MAX_PAGES + 1):
            if page > 1:
                # The claim paid for the first request; each further page takes a slot too.
                await self._subscriptions.spend(
                    row.portal_host, now=self._clock(), spacing=self.config.spacing
                )
            result = await self._listing.page(
                credentials, query, limit=self.config.page_size, page=page
            )
            for message in result.items:
                found.setdefault(message.id, message)
            if len(result.items) < self.config.page_size:
                break
        else:
            log.warning(
                "notify subscription=%s: more than %d e-mails in the look-back window; "
                "the oldest may be missed",
                row.id,
                MAX_PAGES * self.config.page_size,
            )
        return found

    async def _record(
        self, row: MailSubscription, *, owner: str, found: dict[int, Message], now: datetime
    ) -> CheckOutcome:
        host = row.portal_host
        if not row.baseline_done:
            baseline = [_new_mail(m, host, with_card=False) for m in found.values()]
            await self._subscriptions.record_check(row.id, owner=owner, now=now, baseline=baseline)
            log.info("notify baseline subscription=%s: %d e-mail(s)", row.id, len(baseline))
            return CheckOutcome(baseline=len(baseline))
        known = await self._subscriptions.known_ids(row.id, found)
        fresh = sorted((m for m in found.values() if m.id not in known), key=_oldest_first)
        cards = fresh[: self.config.max_cards]
        rest = fresh[self.config.max_cards :]
        if fresh:
            await self._subscriptions.record_check(
                row.id,
                owner=owner,
                now=now,
                new=[_new_mail(m, host, with_card=True) for m in cards],
                more=[_new_mail(m, host, with_card=False) for m in rest],
            )
        return CheckOutcome(found=len(cards), more=len(rest))


def _oldest_first(message: Message) -> tuple[bool, float, int]:
    date = message.date
    return (date is None, date.timestamp() if date is not None else 0.0, message.id)


def _new_mail(message: Message, portal_host: str, *, with_card: bool) -> NewMail:
    date = message.date
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return NewMail(
        message_id=message.id,
        date=date,
        card=card_fields(message, portal_host) if with_card else {},
    )


def card_fields(message: Message, portal_host: str) -> dict[str, Any]:
    """What a card shows of an e-mail (a trimmed plain-text preview, never its HTML)."""
    return {
        "id": message.id,
        "subject": message.subject,
        "from": message.from_,
        "date": message.date.isoformat() if message.date is not None else None,
        "hasAttachments": bool(message.has_attachments),
        "url": absolute_url(message.url, portal_host),
        "mailboxEmail": message.mailbox_email,
        # Plain text kept as the HTML the card reads, so a `<` in it stays text.
        "body": html.escape(preview_text(message.body)).replace("\n", "<br>"),
    }


def absolute_url(url: str | None, portal_host: str) -> str | None:
    """The e-mail's link in Bitrix24; the portal may give it relative (`/mail/message/15`)."""
    if not url:
        return None
    if url.startswith(("https://", "http://")):
        return url
    if url.startswith("/"):
        return f"https://{portal_host}{url}"
    return None


def preview_text(body: str | None) -> str:
    """The start of an e-mail as plain text, without quoted history and signature."""
    if not body:
        return ""
    quote = _HTML_QUOTE.search(body)
    if quote is not None:
        body = body[: quote.start()]
    kept: list[str] = []
    for line in html_to_text(body).splitlines():
        if _CUT_LINE.match(line.strip()) and kept:
            break
        if _CUT_LINE.match(line.strip()):
            continue
        kept.append(line)
    return excerpt("\n".join(kept).strip(), max_lines=PREVIEW_LINES, max_chars=PREVIEW_CHARS)
