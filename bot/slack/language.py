"""Which language and time zone each Slack user is answered in.

A language chosen with `/b24mail lang ru|en` wins; `auto` (None) follows the Slack locale
(`ru-*` → Russian, anything else → English), read with `users.info(include_locale=True)` and
cached in `user_preferences` together with the time zone.

The ack path stays fast: the preference is read through a short in-process cache (no database
read for a user seen in the last CACHE_SECONDS), and Slack is asked only when nothing is known
of the user yet (their first request ever) — time-boxed to FIRST_LOOKUP_TIME_BOX, after which
the answer goes out in English while the lookup finishes in the background. A profile older
than PROFILE_MAX_AGE is refreshed in the background while the cached one is used. Options
requests never wait for Slack at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.exc import IntegrityError

from bot.identity import SlackUser
from bot.slack.wording import DEFAULT_LOCALE, LANGUAGES, Texts
from bot.store.base import utcnow

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.background import Background
    from bot.slack.clients import SlackClients
    from bot.store.models import OutboxEmail
    from bot.store.preferences import PreferenceRepository, UserPreference

log = logging.getLogger(__name__)

FIRST_LOOKUP_TIME_BOX = 0.25  # seconds a first-ever request may wait for users.info
WORKER_LOOKUP_TIME_BOX = 3.0  # the status notifier is not on an ack path
PROFILE_MAX_AGE = timedelta(days=1)
FAILED_LOOKUP_PAUSE = 300.0  # after a transient users.info failure, try again after this
CACHE_SECONDS = 30.0
CACHE_ENTRIES = 4096
# Bolt's context key of the acting user's Texts: Bolt injects context keys into listeners by
# name (so a listener takes `t: Texts`), and the global error handler reads it from there.
TEXTS_IN_CONTEXT = "t"

# What `/b24mail lang …` accepts; None means "follow the Slack locale".
CHOICES: dict[str, str | None] = {
    "en": "en",
    "english": "en",
    "английский": "en",
    "ru": "ru",
    "russian": "ru",
    "русский": "ru",
    "auto": None,
    "авто": None,
}


def language_of_locale(locale: str | None) -> str:
    """Slack's locale (`ru-RU`, `en-US`, …) → one of our languages."""
    if locale:
        base = locale.replace("_", "-").split("-", 1)[0].lower()
        if base in LANGUAGES:
            return base
    return DEFAULT_LOCALE


def parse_choice(argument: str) -> tuple[bool, str | None]:
    """`/b24mail lang <argument>` → (understood, language or None for auto)."""
    word = argument.strip().lower()
    if word in CHOICES:
        return True, CHOICES[word]
    return False, None


@dataclass(frozen=True)
class Profile:
    """What is known of one user's language and time zone."""

    chosen: str | None = None
    slack_locale: str | None = None
    time_zone: str | None = None
    tz_offset: int | None = None
    refreshed_at: datetime | None = None

    @property
    def language(self) -> str:
        if self.chosen in LANGUAGES:
            return self.chosen
        return language_of_locale(self.slack_locale)

    @property
    def slack_language(self) -> str:
        return language_of_locale(self.slack_locale)

    def texts(self) -> Texts:
        return self._texts

    @cached_property
    def _texts(self) -> Texts:
        # Once per Profile: the cached profile of a user serves each of their requests.
        return Texts(self.language, time_zone=self.time_zone, tz_offset=self.tz_offset)

    @classmethod
    def of(cls, row: UserPreference | None) -> Profile:
        if row is None:
            return cls()
        return cls(
            chosen=row.language,
            slack_locale=row.slack_locale,
            time_zone=row.time_zone,
            tz_offset=row.tz_offset,
            refreshed_at=row.profile_refreshed_at,
        )


class LanguageService:
    def __init__(
        self,
        *,
        preferences: PreferenceRepository,
        background: Background,
        clients: SlackClients | None = None,
        time_box: float = FIRST_LOOKUP_TIME_BOX,
        max_age: timedelta = PROFILE_MAX_AGE,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._preferences = preferences
        self._background = background
        self._clients = clients
        self._time_box = time_box
        self._max_age = max_age
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[SlackUser, tuple[float, Profile]] = OrderedDict()
        self._lookups: dict[SlackUser, asyncio.Task[Profile]] = {}
        self._paused_until: dict[SlackUser, float] = {}

    async def texts_for(
        self,
        user: SlackUser,
        *,
        client: AsyncWebClient | None,
        context: MutableMapping[str, Any] | None = None,
        wait: bool = True,
    ) -> Texts:
        """The user's Texts. `wait=False` never waits for Slack (options requests)."""
        profile = await self.profile(user, client=client, wait=wait)
        texts = profile.texts()
        if context is not None:
            context[TEXTS_IN_CONTEXT] = texts
        return texts

    async def profile(
        self, user: SlackUser, *, client: AsyncWebClient | None, wait: bool = True
    ) -> Profile:
        profile = await self._known(user)
        if client is None or not self._stale(profile) or self._paused(user):
            return profile
        lookup = self._lookup(user, client)
        if not wait or profile.refreshed_at is not None or profile.chosen is not None:
            # Something is known (or the language was chosen): use it, refresh meanwhile.
            return profile
        try:
            return await asyncio.wait_for(asyncio.shield(lookup), self._time_box)
        except TimeoutError:
            log.info("users.info slower than %.2f s for user=%s", self._time_box, user.user_id)
        except Exception as exc:  # noqa: BLE001 - Background logs it; answer in English meanwhile
            log.warning("profile lookup failed user=%s (%s)", user.user_id, type(exc).__name__)
        return profile

    async def texts_for_email(self, row: OutboxEmail) -> Texts:
        """The language of an e-mail's owner, for its status message (worker side)."""
        user = SlackUser(
            team_id=row.team_id, user_id=row.slack_user_id, enterprise_id=row.enterprise_id
        )
        try:
            profile = await self._known(user)
            if self._clients is not None and self._stale(profile) and not self._paused(user):
                client = await self._clients.for_team(
                    enterprise_id=row.enterprise_id, team_id=row.team_id
                )
                lookup = self._lookup(user, client)
                if profile.refreshed_at is None and profile.chosen is None:
                    profile = await asyncio.wait_for(asyncio.shield(lookup), WORKER_LOOKUP_TIME_BOX)
        except Exception as exc:  # noqa: BLE001 - a status in English beats no status
            log.warning("language of email=%s unknown (%s)", row.id, type(exc).__name__)
            return Texts()
        return profile.texts()

    async def choose(self, user: SlackUser, language: str | None) -> None:
        """Store `/b24mail lang` (None: follow Slack); this process sees it at once."""
        await _retry_once_on_conflict(lambda: self._preferences.set_language(user, language))
        self._forget(user)

    # --- the cache and the Slack lookup ---------------------------------------------------

    async def _known(self, user: SlackUser) -> Profile:
        hit = self._cache.get(user)
        if hit is not None and self._clock() < hit[0]:
            return hit[1]
        profile = Profile.of(await self._preferences.get(user))
        self._remember(user, profile)
        return profile

    def _remember(self, user: SlackUser, profile: Profile) -> None:
        self._cache[user] = (self._clock() + self._cache_seconds, profile)
        self._cache.move_to_end(user)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    def _forget(self, user: SlackUser) -> None:
        self._cache.pop(user, None)

    def _stale(self, profile: Profile) -> bool:
        return profile.refreshed_at is None or utcnow() - profile.refreshed_at > self._max_age

    def _paused(self, user: SlackUser) -> bool:
        until = self._paused_until.get(user)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._paused_until[user]
        return False

    def _lookup(self, user: SlackUser, client: AsyncWebClient) -> asyncio.Task[Profile]:
        """One users.info per user at a time, tracked by Background so it survives the ack."""
        running = self._lookups.get(user)
        if running is not None and not running.done():
            return running
        task: asyncio.Task[Profile] = self._background.spawn(
            self._fetch(user, client), name="slack-profile"
        )
        self._lookups[user] = task
        task.add_done_callback(lambda _t: self._lookups.pop(user, None))
        return task

    async def _fetch(self, user: SlackUser, client: AsyncWebClient) -> Profile:
        known = await self._known(user)
        try:
            async with asyncio.timeout(10):
                response = await client.users_info(user=user.user_id, include_locale=True)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in ("ratelimited", "internal_error", "fatal_error", "service_unavailable"):
                return self._pause(user, known, error)
            # user_not_found, missing_scope, …: asking again tomorrow is soon enough.
            log.info("users.info refused for user=%s: %s", user.user_id, error or "?")
            locale, zone, offset = known.slack_locale, known.time_zone, known.tz_offset
        except (SlackClientError, OSError, TimeoutError) as exc:
            return self._pause(user, known, type(exc).__name__)
        else:
            data = response.get("user") or {}
            locale = _str(data.get("locale"))
            zone = _str(data.get("tz"))
            offset = data.get("tz_offset") if isinstance(data.get("tz_offset"), int) else None
        await _retry_once_on_conflict(
            lambda: self._preferences.remember_profile(
                user, locale=locale, time_zone=zone, tz_offset=offset
            )
        )
        self._forget(user)
        profile = await self._known(user)
        log.info(
            "slack profile user=%s locale=%s language=%s", user.user_id, locale, profile.language
        )
        return profile

    def _pause(self, user: SlackUser, known: Profile, why: str) -> Profile:
        log.info("users.info failed for user=%s (%s); trying again later", user.user_id, why)
        now = self._clock()
        if len(self._paused_until) >= CACHE_ENTRIES:
            self._paused_until = {u: t for u, t in self._paused_until.items() if t > now}
        self._paused_until[user] = now + FAILED_LOOKUP_PAUSE
        return known


async def _retry_once_on_conflict(write: Callable[[], Any]) -> None:
    """The first write for a user inserts its row; a concurrent first write may win the race."""
    try:
        await write()
    except IntegrityError:
        await write()


def texts_in(context: MutableMapping[str, Any] | None) -> Texts:
    """The Texts a listener left in Bolt's context, or English (for the global error handler)."""
    found = context.get(TEXTS_IN_CONTEXT) if context is not None else None
    return found if isinstance(found, Texts) else Texts()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
