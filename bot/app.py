"""create_app: the only place that wires Slack, the use cases, storage and Bitrix24 together."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, object_session

from bot.identity import SlackUser
from bot.mail.linking import LinkService
from bot.services import Services
from bot.settings import ConfigurationError
from bot.slack import oauth as slack_oauth
from bot.slack.clients import SLACK_API_DEFAULT
from bot.slack.error_handler import handle_listener_error
from bot.slack.listeners import register_all
from bot.store.crypto import SecretBox
from bot.store.db import SessionFactory
from bot.store.links import LinkRepository
from bot.store.models import Link

log = logging.getLogger(__name__)


def create_app(services: Services) -> AsyncApp:
    """The Bolt app. Listeners ack first and run before the response is returned
    (process_before_response): Bolt's other mode polls for the ack every 10 ms.

    The Slack mode is settings.slack_mode, never Bolt's guess from os.environ: OAuth mode gets
    explicit OAuth settings (installation store, state store, authorize), single-workspace mode
    the bot token, and refuses to start if Bolt would switch to OAuth behind its back."""
    settings = services.settings
    oauth = settings.slack_mode == "oauth"
    if oauth and (problem := settings.slack_credentials_problem()):
        raise ConfigurationError(problem)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    bolt_logger = logging.getLogger("bot.slack.bolt")
    client = AsyncWebClient(
        token=None if oauth else token, base_url=settings.slack_api_url or SLACK_API_DEFAULT
    )
    oauth_settings: AsyncOAuthSettings | None = None
    if oauth:
        if services.installations is None or services.bot_tokens is None:
            raise ConfigurationError("OAuth mode needs services built for it (build_services)")
        oauth_settings = slack_oauth.oauth_settings(
            settings,
            store=services.installations,
            tokens=services.bot_tokens,
            engine=services.engine,
            logger=bolt_logger,
        )
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        oauth_settings=oauth_settings,
        process_before_response=True,
        # Socket Mode has no signed requests to verify; HTTP mode always verifies.
        request_verification_enabled=not settings.socket_mode,
        logger=bolt_logger,
    )
    if not oauth and app.oauth_flow is not None:
        raise ConfigurationError(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are in the process environment (perhaps "
            "empty), so Bolt would switch to OAuth mode and ignore SLACK_BOT_TOKEN. Unset both "
            "for a single workspace, or configure OAuth (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, "
            "SLACK_STATE_SECRET; see README)."
        )
    register_all(app, _with_cached_links(services))
    app.error(handle_listener_error)
    return app


# --- the listeners' link cache ----------------------------------------------------------------
#
# Nearly every request starts with "is this user linked, and to what" (help, compose, submit).
# Through the ORM that read costs more than all of Bolt's own work for the request, so the
# listeners read links through a small cache. Any change to a link made in this process (by the
# listeners, the worker, a test) empties it at once; changes made by other processes (another
# web process, `b24mail rotate-keys`) are seen after LINK_CACHE_SECONDS at most. Only links are
# cached, never "not linked", so linking elsewhere shows at once. The worker always reads the
# database: what is sent never depends on this cache.

LINK_CACHE_SECONDS = 30.0
LINK_CACHE_ENTRIES = 4096
_WRITTEN = "b24mail_links_written"


class _LinkWrites:
    """Counts changes to the links table in this process; a cached link of an older count is void."""

    generation = 0

    @classmethod
    def bump(cls) -> None:
        cls.generation += 1


def _mark(session: Session | None) -> None:
    _LinkWrites.bump()
    if session is not None:
        session.info[_WRITTEN] = True


@event.listens_for(Link, "after_insert")
@event.listens_for(Link, "after_update")
@event.listens_for(Link, "after_delete")
def _link_flushed(_mapper: Any, _connection: Any, target: Link) -> None:
    _mark(object_session(target))


@event.listens_for(Session, "do_orm_execute")
def _links_statement(state: ORMExecuteState) -> None:
    if state.is_select:
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is Link:
        _mark(state.session)


@event.listens_for(Session, "after_commit")
def _links_committed(session: Session) -> None:
    # Bumped again on commit: a read between the flush and the commit saw the old row.
    if session.info.pop(_WRITTEN, False):
        _LinkWrites.bump()


@event.listens_for(Session, "after_soft_rollback")
def _links_rolled_back(session: Session, _previous: Any) -> None:
    if session.info.pop(_WRITTEN, False):
        _LinkWrites.bump()


class CachedLinkRepository(LinkRepository):
    """LinkRepository whose get() answers from memory while nothing has changed."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        box: SecretBox,
        ttl: float = LINK_CACHE_SECONDS,
        max_entries: int = LINK_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(sessions=sessions, box=box)
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[SlackUser, tuple[int, float, Link]] = OrderedDict()

    async def get(self, user: SlackUser) -> Link | None:
        hit = self._entries.get(user)
        if hit is not None:
            generation, expires, cached = hit
            if generation == _LinkWrites.generation and self._clock() < expires:
                return cached
        generation = _LinkWrites.generation  # taken before the read: a write during it voids it
        link = await super().get(user)
        if link is None:
            self._entries.pop(user, None)
            return None
        self._entries[user] = (generation, self._clock() + self._ttl, link)
        self._entries.move_to_end(user)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return link


def _with_cached_links(services: Services) -> Services:
    """The services the listeners see: the same, except that links are read through the cache."""
    settings = services.settings
    links = LinkService(
        links=CachedLinkRepository(
            sessions=services.sessions, box=SecretBox(settings.secret_keys())
        ),
        bitrix24=services.bitrix24,
        allow_insecure=settings.b24mail_allow_insecure_portals,
        probe_timeout=settings.b24mail_connect_timeout_seconds,
        sender_ttl=timedelta(minutes=settings.b24mail_sender_cache_minutes),
    )
    return dataclasses.replace(services, links=links)
