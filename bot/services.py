"""The long-lived objects of a process, built once from Settings and handed to every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.background import Background
from bot.bitrix24 import (
    Bitrix24Client,
    ClientConfig,
    RateLimiter,
    headroom_slots,
    install_log_redaction,
    shared_limiters,
)
from bot.mail.audit import AuditService
from bot.mail.confirming import PendingSends
from bot.mail.delivery import DeliveryConfig
from bot.mail.linking import LinkService
from bot.mail.listing import MessageListing
from bot.mail.message_actions import MessageActionService
from bot.mail.notify import NotifyService, PollConfig
from bot.mail.policy import PolicyService
from bot.mail.replying import ReplyService
from bot.mail.sending import SendingService
from bot.mail.wakeup import Wakeup
from bot.mail.workspace import WorkspaceRemoval
from bot.mail.writing import WritingService
from bot.settings import Settings
from bot.slack.clients import SLACK_API_DEFAULT, SlackClients
from bot.slack.installation_tables import InstallationRows
from bot.slack.installations import EncryptedInstallationStore
from bot.slack.language import LanguageService
from bot.slack.oauth import BotTokens
from bot.slack.user_names import UserNames
from bot.store.audit import AuditRepository
from bot.store.cards import CardRepository
from bot.store.confirmations import PendingSendRepository
from bot.store.crypto import SecretBox
from bot.store.db import SessionFactory, create_engine, create_session_factory
from bot.store.link_cache import CachedLinkRepository
from bot.store.links import LinkRepository
from bot.store.outbox import OutboxRepository
from bot.store.policy import PolicyRepository
from bot.store.preferences import PreferenceRepository
from bot.store.rate_limits import SharedRateLimiter
from bot.store.subscriptions import SubscriptionRepository
from bot.store.workspace import WorkspaceRepository
from bot.store.writing import WritingRepository


@dataclass(kw_only=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    links: LinkService
    link_repository: LinkRepository
    outbox: OutboxRepository
    sending: SendingService
    replying: ReplyService
    message_actions: MessageActionService
    writing: WritingService
    bitrix24: Bitrix24Client
    slack_clients: SlackClients
    background: Background
    delivery_wakeup: Wakeup
    notify_wakeup: Wakeup
    language: LanguageService
    workspaces: WorkspaceRemoval
    policy: PolicyService
    audit: AuditService
    pending_sends: PendingSends
    audit_wakeup: Wakeup
    notify: NotifyService
    cards: CardRepository
    poll_wakeup: Wakeup
    listing: MessageListing
    delivery_config: DeliveryConfig = field(default_factory=DeliveryConfig)
    user_names: UserNames = field(default_factory=UserNames)
    # OAuth mode only (settings.slack_mode == "oauth"): installations and their bot tokens.
    installations: EncryptedInstallationStore | None = None
    bot_tokens: BotTokens | None = None

    async def aclose(self) -> None:
        await self.background.drain(timeout=10)
        await self.bitrix24.aclose()
        await self.engine.dispose()


def delivery_config_from(settings: Settings) -> DeliveryConfig:
    return DeliveryConfig(
        lease=timedelta(seconds=settings.b24mail_lease_seconds),
        backoff_base=settings.b24mail_retry_base_seconds,
        backoff_max=settings.b24mail_retry_max_seconds,
    )


def poll_config_from(settings: Settings) -> PollConfig:
    return PollConfig(
        interval=timedelta(seconds=settings.b24mail_poll_interval_seconds),
        budget=settings.b24mail_poll_budget,
        rate=settings.bitrix24_rate,
        lookback=timedelta(hours=settings.b24mail_poll_lookback_hours),
        # A worker that died mid-check gives its check up after the same lease as its sends.
        lease=timedelta(seconds=settings.b24mail_lease_seconds),
    )


def build_services(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    delivery_config: DeliveryConfig | None = None,
    box: SecretBox | None = None,
    cache_links: bool = True,
) -> Services:
    """Everything a process needs. `box`: the secret keys when the entry point already loaded
    them (they are read once per process). `cache_links=False` for a process that answers no
    Slack requests (`b24mail worker`): it has no use for the link cache and its hooks."""
    install_log_redaction()
    engine = engine or create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    box = box or SecretBox(settings.secret_keys())
    repository = LinkRepository(sessions=sessions, box=box)
    outbox = OutboxRepository(sessions=sessions)
    bitrix24 = Bitrix24Client(
        config=ClientConfig(
            rate=settings.bitrix24_rate,
            burst=settings.bitrix24_burst,
            read_timeout=settings.bitrix24_read_timeout,
            portal_request_limit=settings.bitrix24_request_limit,
        ),
        limiters=_rate_limiter(settings, engine),
    )
    subscriptions = SubscriptionRepository(sessions=sessions)
    cards = CardRepository(sessions=sessions)
    # One LinkService for listeners and workers. Requests read links through the cache; the
    # worker reads what it sends from the database (LinkService.require_stored).
    links = LinkService(
        subscriptions=subscriptions,
        links=CachedLinkRepository(sessions=sessions, box=box) if cache_links else repository,
        bitrix24=bitrix24,
        allow_insecure=settings.b24mail_allow_insecure_portals,
        probe_timeout=settings.b24mail_connect_timeout_seconds,
        sender_ttl=timedelta(minutes=settings.b24mail_sender_cache_minutes),
    )
    # One per process: what it learns about each portal (mailboxId required) serves every reader.
    listing = MessageListing(bitrix24=bitrix24)
    delivery_wakeup = Wakeup()
    audit_wakeup = Wakeup()
    policies = PolicyRepository(sessions=sessions)
    audit = AuditService(
        repository=AuditRepository(sessions=sessions),
        policies=policies,
        wakeup=audit_wakeup,
        retention_days=settings.b24mail_audit_retention_days,
    )
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    installations, bot_tokens = _installations(settings, engine, box)
    slack_clients = SlackClients(
        token=None if bot_tokens else token, base_url=settings.slack_api_url, tokens=bot_tokens
    )
    background = Background()
    workspace_rows = WorkspaceRepository(
        sessions=sessions,
        installations=InstallationRows(installations.client_id) if installations else None,
    )
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        links=links,
        link_repository=repository,
        outbox=outbox,
        sending=SendingService(
            outbox=outbox,
            wakeup=delivery_wakeup,
            retry_window=timedelta(minutes=settings.b24mail_retry_window_minutes),
            hourly_cap=settings.b24mail_hourly_cap,
            undo_seconds=settings.b24mail_undo_seconds,
        ),
        writing=WritingService(
            repository=WritingRepository(sessions=sessions, box=box),
            draft_retention=timedelta(days=settings.b24mail_draft_days),
        ),
        replying=ReplyService(links=links, bitrix24=bitrix24, cards=cards, listing=listing),
        listing=listing,
        notify=NotifyService(
            links=links,
            bitrix24=bitrix24,
            subscriptions=subscriptions,
            config=poll_config_from(settings),
            listing=listing,
        ),
        message_actions=MessageActionService(links=links, bitrix24=bitrix24),
        cards=cards,
        poll_wakeup=Wakeup(),
        bitrix24=bitrix24,
        slack_clients=slack_clients,
        background=background,
        delivery_wakeup=delivery_wakeup,
        notify_wakeup=Wakeup(),
        language=LanguageService(
            preferences=PreferenceRepository(sessions=sessions),
            background=background,
            clients=slack_clients,
        ),
        workspaces=WorkspaceRemoval(workspace_rows),
        policy=PolicyService(
            store=policies,
            audit=audit,
            max_recipients=settings.b24mail_max_recipients,
            hourly_cap=settings.b24mail_hourly_cap,
        ),
        audit=audit,
        pending_sends=PendingSends(repository=PendingSendRepository(sessions=sessions)),
        audit_wakeup=audit_wakeup,
        delivery_config=delivery_config or delivery_config_from(settings),
        installations=installations,
        bot_tokens=bot_tokens,
    )


def _rate_limiter(settings: Settings, engine: AsyncEngine) -> RateLimiter:
    """PostgreSQL: one budget per portal for every process on the database; SQLite (one
    process, or web and worker in one): this process's own buckets."""
    rate, burst = settings.bitrix24_rate, settings.bitrix24_burst
    local = shared_limiters(rate=rate, burst=burst)
    if engine.dialect.name != "postgresql":
        return local
    return SharedRateLimiter(
        engine=engine,
        rate=rate,
        burst=burst,
        headroom=headroom_slots(rate, burst),
        fallback=local,
    )


def _installations(
    settings: Settings, engine: AsyncEngine, box: SecretBox
) -> tuple[EncryptedInstallationStore | None, BotTokens | None]:
    """OAuth mode: the encrypted installation store, and bot tokens read (and refreshed) from it."""
    client_id, client_secret = settings.slack_client_id, settings.slack_client_secret
    if settings.slack_mode != "oauth" or not client_id or client_secret is None:
        return None, None
    store = EncryptedInstallationStore(client_id=client_id, engine=engine, box=box)
    rotator = AsyncTokenRotator(
        client_id=client_id,
        client_secret=client_secret.get_secret_value(),
        client=AsyncWebClient(base_url=settings.slack_api_url or SLACK_API_DEFAULT),
    )
    return store, BotTokens(store=store, rotator=rotator)
