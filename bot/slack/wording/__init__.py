"""User-facing wording: one catalogue per language, looked up by message id.

`Texts(locale)("key", name=value)` formats a message; `Texts.plural` picks the plural form.
Error explanations are keyed `error.<code>` by the stable codes of bot.bitrix24 and bot.mail.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.slack.wording import en

Message = str | tuple[str, ...]

CATALOGUES: dict[str, Mapping[str, Message]] = {"en": en.MESSAGES}
DEFAULT_LOCALE = "en"


def _plural_index_en(n: int) -> int:
    return 0 if n == 1 else 1


PLURAL_RULES = {"en": _plural_index_en}


class Texts:
    """The wording of one language."""

    def __init__(self, locale: str = DEFAULT_LOCALE) -> None:
        self.locale = locale if locale in CATALOGUES else DEFAULT_LOCALE
        self._messages = CATALOGUES[self.locale]
        self._fallback = CATALOGUES[DEFAULT_LOCALE]

    def __call__(self, key: str, /, **params: object) -> str:
        message = self._messages.get(key, self._fallback.get(key))
        if message is None:
            raise KeyError(f"no wording for {key!r}")
        if isinstance(message, tuple):
            raise TypeError(f"{key!r} has plural forms: use Texts.plural")
        return message.format(**params) if params else message

    def plural(self, key: str, n: int, /, **params: object) -> str:
        forms = self._messages.get(key, self._fallback.get(key))
        if not isinstance(forms, tuple):
            raise TypeError(f"{key!r} has no plural forms")
        index = PLURAL_RULES[self.locale](n)
        return forms[min(index, len(forms) - 1)].format(n=n, **params)

    def has(self, key: str) -> bool:
        return key in self._messages or key in self._fallback

    def error(self, code: str, /, **params: object) -> str:
        """Explain an error code; unknown codes get the generic text (never a raw code alone)."""
        key = f"error.{code}"
        if not self.has(key):
            key = "error.unknown"
        return self(key, **_with_defaults(params))


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
