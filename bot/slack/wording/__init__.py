"""User-facing wording: one gettext catalogue per language, looked up by message id.

The catalogues are `bot/slack/locales/<language>/LC_MESSAGES/b24mail.po`: msgid is a stable key
(`help.title`), msgstr the text with `{name}` placeholders. They are read once, at import, with
Babel (no compile step). `Texts(language, time_zone=…)("key", name=value)` formats a message,
`Texts.plural` picks the plural form by the catalogue's Plural-Forms, and `Texts.format_*` write
dates and times in the reader's language and time zone, for the places where Slack's own date
tokens cannot be used (plain text, fallbacks). A key missing in a language falls back to English.
Error explanations are keyed `error.<code>` by the stable codes of bot.bitrix24 and bot.mail.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from importlib import resources
from importlib.resources.abc import Traversable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time, get_datetime_format
from babel.messages.pofile import read_po

Message = str | tuple[str, ...]

DOMAIN = "b24mail"
DEFAULT_LOCALE = "en"
LANGUAGES = ("en", "ru")


@dataclass(frozen=True)
class Catalogue:
    """The messages of one language and its gettext plural rule."""

    language: str
    messages: Mapping[str, Message]
    plural_index: Callable[[int], int]
    num_plurals: int


def catalogue_path(language: str) -> Traversable:
    return resources.files("bot.slack").joinpath("locales", language, "LC_MESSAGES", DOMAIN + ".po")


def load_catalogue(language: str) -> Catalogue:
    """Read one .po file. Fuzzy and empty entries count as missing (gettext does the same)."""
    with catalogue_path(language).open("rb") as fp:
        catalog = read_po(fp, locale=language, domain=DOMAIN)
    messages: dict[str, Message] = {}
    for entry in catalog:
        if not entry.id or entry.fuzzy:
            continue
        if isinstance(entry.id, str):
            if isinstance(entry.string, str) and entry.string:
                messages[entry.id] = entry.string
            continue
        forms = tuple(str(form or "") for form in entry.string or ())
        if forms and all(forms):
            messages[str(entry.id[0])] = forms
    return Catalogue(
        language=language,
        messages=messages,
        plural_index=gettext.c2py(catalog.plural_expr),
        num_plurals=catalog.num_plurals,
    )


CATALOGUES: dict[str, Catalogue] = {language: load_catalogue(language) for language in LANGUAGES}


class Texts:
    """The wording of one language, with dates and times in one time zone."""

    def __init__(
        self,
        locale: str = DEFAULT_LOCALE,
        *,
        time_zone: str | None = None,
        tz_offset: int | None = None,
    ) -> None:
        self.locale = locale if locale in CATALOGUES else DEFAULT_LOCALE
        self.time_zone = time_zone
        self._catalogue = CATALOGUES[self.locale]
        self._fallback = CATALOGUES[DEFAULT_LOCALE]
        self._tz = _zone(time_zone, tz_offset)

    def __repr__(self) -> str:
        return f"Texts({self.locale!r}, time_zone={self.time_zone!r})"

    def _lookup(self, key: str) -> tuple[Message, Catalogue]:
        message = self._catalogue.messages.get(key)
        if message is not None:
            return message, self._catalogue
        message = self._fallback.messages.get(key)
        if message is None:
            raise KeyError(f"no wording for {key!r}")
        return message, self._fallback

    def __call__(self, key: str, /, **params: object) -> str:
        message, _ = self._lookup(key)
        if isinstance(message, tuple):
            raise TypeError(f"{key!r} has plural forms: use Texts.plural")
        return message.format(**params) if params else message

    def plural(self, key: str, n: int, /, **params: object) -> str:
        forms, catalogue = self._lookup(key)
        if not isinstance(forms, tuple):
            raise TypeError(f"{key!r} has no plural forms")
        index = catalogue.plural_index(n)
        return forms[min(index, len(forms) - 1)].format(n=n, **params)

    def has(self, key: str) -> bool:
        return key in self._catalogue.messages or key in self._fallback.messages

    def error(self, code: str, /, **params: object) -> str:
        """Explain an error code; unknown codes get the generic text (never a raw code alone)."""
        key = f"error.{code}"
        if not self.has(key):
            key = "error.unknown"
        return self(key, **_with_defaults(params))

    # --- dates and times, for plain text (Slack's <!date^…> tokens localise themselves) -----

    def format_date(self, moment: datetime) -> str:
        """`5 Mar 2026` style, in the reader's language and time zone."""
        return format_date(self._local(moment), "medium", locale=self.locale)

    def format_time(self, moment: datetime) -> str:
        """`14:05 (UTC+3)`: the zone is named because others may read it in a channel."""
        local = self._local(moment)
        return f"{format_time(local, 'short', locale=self.locale)} ({_offset_name(local)})"

    def format_datetime(self, moment: datetime) -> str:
        local = self._local(moment)
        pattern = str(get_datetime_format("medium", locale=self.locale))
        when = pattern.replace("{1}", format_date(local, "medium", locale=self.locale)).replace(
            "{0}", format_time(local, "short", locale=self.locale)
        )
        return f"{when} ({_offset_name(local)})"

    def local(self, moment: datetime) -> datetime:
        """`moment` in the reader's time zone (naive moments are taken as UTC)."""
        return self._local(moment)

    def _local(self, moment: datetime) -> datetime:
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(self._tz)


def _zone(name: str | None, offset: int | None) -> tzinfo:
    """Slack's IANA zone name; its current offset when the name is unknown here (no tzdata)."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if offset is not None and abs(offset) < 86_400:
        return timezone(timedelta(seconds=offset))
    return UTC


def _offset_name(local: datetime) -> str:
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _with_defaults(params: Mapping[str, object]) -> dict[str, object]:
    values: dict[str, object] = {
        "host": "",
        "new_host": "",
        "detail": "",
        "reset": "",
        "error_id": "",
    }
    values.update(params)
    return values
