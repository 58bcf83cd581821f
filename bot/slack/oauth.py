"""Multi-workspace installs: Bolt's OAuth flow on b24mail's own database, tokens encrypted.

The installations themselves are kept by `EncryptedInstallationStore` (bot/slack/installations.py).

- `SignedStateStore`: the OAuth `state` is signed with SLACK_STATE_SECRET (HMAC-SHA256, expiry
  inside the signature) and kept single-use in `slack_oauth_states`, which stores only a keyed
  hash of it. Bolt additionally binds the state to the installing browser with a cookie.
- `BotTokens`: a workspace's bot token from the store, refreshed with slack_sdk's
  `AsyncTokenRotator` when it is about to expire and saved (encrypted) again. Used both for
  requests (`StoreAuthorize`, Bolt's authorize) and for the worker's calls outside any request
  (`SlackClients.for_team`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth import OAuthStateUtils
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from sqlalchemy import Table, delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.settings import ConfigurationError, Settings
from bot.slack import install_pages, installation_tables
from bot.slack.installations import EncryptedInstallationStore

log = logging.getLogger(__name__)

# The install URL asks for exactly the manifest's bot scopes (tests/test_manifest.py checks it)
# and no user scopes: b24mail never acts as a user.
BOT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "channels:history",
    "groups:history",
    "im:history",
    "channels:read",
    "groups:read",
    "usergroups:read",
)
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_COOKIE = OAuthStateUtils.default_cookie_name
STATE_SECONDS = 600
# Refresh a rotating token this long before it expires (Bolt's default; Slack's last 12 hours).
ROTATE_BEFORE_MINUTES = 120

# --- the OAuth state -------------------------------------------------------------------------


class SignedStateStore(AsyncOAuthStateStore):
    """OAuth states signed with SLACK_STATE_SECRET, each usable once, within STATE_SECONDS.

    A state is `nonce.expires.signature`, the signature an HMAC-SHA256 over nonce and expiry with
    a key derived from the secret. The callback refuses a state whose signature or expiry is
    wrong before it touches the database, then deletes the state's row: only a state this app
    issued, not used before and not expired, passes. The row holds an HMAC of the state, never
    the state itself, so a database dump (or a row written by someone with database access but
    not the secret) yields no usable state. Expired rows are removed whenever a state is issued.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        secret: SecretStr,
        expiration_seconds: int = STATE_SECONDS,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger = log,
    ) -> None:
        key = secret.get_secret_value().encode("utf-8")
        self._sign_key = hmac.new(key, b"b24mail oauth state: signature", hashlib.sha256).digest()
        self._row_key = hmac.new(key, b"b24mail oauth state: stored row", hashlib.sha256).digest()
        self._engine = engine
        self._table: Table = installation_tables.oauth_states
        self.expiration_seconds = expiration_seconds
        self._clock = clock
        self._logger = logger

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        now = self._clock()
        expires = int(now) + self.expiration_seconds
        body = f"{secrets.token_urlsafe(24)}.{expires}"
        state = f"{body}.{self._signature(body)}"
        async with self._engine.begin() as connection:
            await connection.execute(
                delete(self._table).where(self._table.c.expire_at <= _naive_utc(now))
            )
            await connection.execute(
                insert(self._table).values(state=self._row_of(state), expire_at=_naive_utc(expires))
            )
        return state

    async def async_consume(self, state: str) -> bool:
        now = self._clock()
        if not self.signed(state):
            self._logger.info("refused an OAuth state that this app did not sign")
            return False
        if int(state.split(".")[1]) <= now:
            self._logger.info("refused an expired OAuth state")
            return False
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(self._table).where(
                    self._table.c.state == self._row_of(state),
                    self._table.c.expire_at > _naive_utc(now),
                )
            )
        if getattr(result, "rowcount", 0) != 1:
            self._logger.info("refused an OAuth state that was used already or is unknown")
            return False
        return True

    def signed(self, state: str) -> bool:
        """True when the state is well formed and carries our signature (expired or not)."""
        if not isinstance(state, str) or not state.isascii() or len(state) > 200:
            return False
        parts = state.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        expected = self._signature(f"{parts[0]}.{parts[1]}")
        return hmac.compare_digest(expected.encode("ascii"), parts[2].encode("ascii", "replace"))

    def _signature(self, body: str) -> str:
        digest = hmac.new(self._sign_key, body.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def _row_of(self, state: str) -> str:
        return hmac.new(self._row_key, state.encode("ascii"), hashlib.sha256).hexdigest()


def _naive_utc(epoch: float) -> datetime:
    """slack_sdk's tables use naive UTC DateTime columns."""
    return datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None)


# --- bot tokens, refreshed when they are about to expire ---------------------------------------


class BotTokens:
    """A workspace's bot from the installation store, with a token that is not about to expire.

    A rotating token is refreshed ROTATE_BEFORE_MINUTES before it expires, once per workspace at
    a time in this process. Slack revokes a refresh token once it is used, so when another process
    refreshed first, the refresh fails: the store is read again and that process's new token used.
    """

    def __init__(
        self,
        *,
        store: EncryptedInstallationStore,
        rotator: AsyncTokenRotator,
        minutes_before_expiration: int = ROTATE_BEFORE_MINUTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._rotator = rotator
        self.minutes_before_expiration = minutes_before_expiration
        self._clock = clock
        self._locks: dict[tuple[str | None, str | None], asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def bot_token(self, *, enterprise_id: str, team_id: str) -> str | None:
        """For work outside a request (ids as b24mail keeps them: "" outside Enterprise Grid):
        the workspace's installation, else its org's org-wide installation."""
        bot = await self.find(enterprise_id=enterprise_id or None, team_id=team_id)
        if bot is None and enterprise_id:
            bot = await self.find(
                enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
            )
        return bot.bot_token if bot is not None and bot.bot_token else None

    async def find(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The bot, its token refreshed first when needed. Raises SlackTokenRotationError when
        the token has expired and cannot be refreshed."""

        async def read() -> Bot | None:
            return await self._store.async_find_bot(
                enterprise_id=enterprise_id,
                team_id=team_id,
                is_enterprise_install=is_enterprise_install,
            )

        bot = await read()
        if bot is None or not self._expiring(bot):
            return bot
        team = None if is_enterprise_install else team_id
        async with self._lock((enterprise_id, team)):
            bot = await read()  # another task may have refreshed it meanwhile
            if bot is None or not self._expiring(bot):
                return bot
            try:
                refreshed = await self._rotator.perform_bot_token_rotation(
                    bot=bot, minutes_before_expiration=self.minutes_before_expiration
                )
            except SlackTokenRotationError as exc:
                again = await read()
                if again is not None and again.bot_token != bot.bot_token:
                    return again  # another process refreshed it first
                error = rotation_error(exc)
                log.warning("refreshing the bot token of team=%s failed: %s", team_id, error)
                if (bot.bot_token_expires_at or 0) > self._clock():
                    return bot  # still valid for a while; the next call tries again
                raise
            if refreshed is None:
                return bot
            await self._store.async_save_bot(refreshed)
            log.info("refreshed the bot token of team=%s", team_id)
            return refreshed

    def _expiring(self, bot: Bot) -> bool:
        return (
            bot.bot_refresh_token is not None
            and bot.bot_token_expires_at is not None
            and bot.bot_token_expires_at <= self._clock() + self.minutes_before_expiration * 60
        )

    def _lock(self, key: tuple[str | None, str | None]) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._locks, self._loop = {}, loop
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def rotation_error(exc: SlackTokenRotationError) -> str:
    """Slack's error code behind a failed refresh ("invalid_refresh_token", …)."""
    response = getattr(exc.api_error, "response", None)
    error = response.get("error") if response is not None else None
    return str(error or type(exc.api_error).__name__)


class StoreAuthorize(AsyncAuthorize):
    """Bolt's authorize for OAuth mode: the workspace's bot from the store (refreshed when
    needed). Unlike Bolt's default it makes no auth.test call per request: the ack path stays
    free of a Slack round trip. A revoked token shows in the listener's first Slack call."""

    def __init__(self, tokens: BotTokens) -> None:
        self._tokens = tokens
        # Bolt sets this attribute on the authorize it is given; BotTokens holds the real value.
        self.token_rotation_expiration_minutes = tokens.minutes_before_expiration

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        try:
            bot = await self._tokens.find(
                enterprise_id=enterprise_id,
                team_id=team_id,
                is_enterprise_install=context.is_enterprise_install,
            )
        except SlackTokenRotationError as exc:
            log.warning("team=%s: bot token expired and not refreshed (%s)", team_id, exc)
            return None
        if bot is None or not bot.bot_token:
            log.info("no installation for enterprise=%s team=%s", enterprise_id, team_id)
            return None
        return AuthorizeResult(
            enterprise_id=bot.enterprise_id,
            team_id=bot.team_id if not bot.is_enterprise_install else team_id,
            team=bot.team_name,
            bot_user_id=bot.bot_user_id,
            bot_id=bot.bot_id,
            bot_token=bot.bot_token,
            bot_scopes=bot.bot_scopes,
            user_id=user_id,
        )


# --- putting it together ---------------------------------------------------------------------


def oauth_settings(
    settings: Settings,
    *,
    store: EncryptedInstallationStore,
    tokens: BotTokens,
    engine: AsyncEngine,
    logger: logging.Logger = log,
) -> AsyncOAuthSettings:
    """Bolt's OAuth settings from ours, every value explicit (Bolt reads nothing from os.environ)."""
    problem = settings.slack_credentials_problem()
    client_id, client_secret = settings.slack_client_id, settings.slack_client_secret
    state_secret = settings.slack_state_secret
    if settings.slack_mode != "oauth" or problem or not client_id:
        raise ConfigurationError(problem or "OAuth mode is not configured (SLACK_CLIENT_ID …)")
    if client_secret is None or state_secret is None:
        raise ConfigurationError("SLACK_CLIENT_SECRET and SLACK_STATE_SECRET are required")
    result = AsyncOAuthSettings(
        client_id=client_id,
        client_secret=client_secret.get_secret_value(),
        scopes=list(BOT_SCOPES),
        user_scopes=[],
        redirect_uri=settings.slack_redirect_uri,
        install_path=INSTALL_PATH,
        # /slack/install shows b24mail's own landing page (bot/slack/install_pages.py) with
        # the "Add to Slack" link; the success and failure pages are ours too.
        install_page_rendering_enabled=True,
        callback_options=install_pages.callback_options(),
        redirect_uri_path=REDIRECT_PATH,
        installation_store=store,
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=tokens.minutes_before_expiration,
        state_validation_enabled=True,
        state_store=SignedStateStore(engine=engine, secret=state_secret, logger=logger),
        state_cookie_name=STATE_COOKIE,
        state_expiration_seconds=STATE_SECONDS,
        logger=logger,
    )
    result.authorize = StoreAuthorize(tokens)
    return result
