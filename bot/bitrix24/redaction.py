"""The one list of secret shapes masked everywhere text may leave the process.

Error messages (``bot.bitrix24.errors``), httpx's request log lines (``RedactingFilter``) and
every formatted log line (``bot.logs``) all go through :func:`redact`, so a shape added here
is masked on every path. It lives in this leaf because the leaf may import nothing of the
project, while ``bot.logs`` may import the leaf.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "install_log_redaction", "redact"]

# A webhook's code sits in the path after the user id. The path may turn up as pasted,
# percent-encoded (a form body) or with JSON-escaped slashes, so a slash is any of the three
# and the code ends at the next one, however spelled.
_SLASH = r"(?:/|%2F|\\/)"
_WEBHOOK_CODE = re.compile(
    rf"({_SLASH}rest{_SLASH}(?:api{_SLASH})?\d+{_SLASH})"
    r"""[^/\s?#"'<>]+?(?=%2F|\\/|[/\s?#"'<>]|$)""",
    re.IGNORECASE,
)
# OAuth tokens may ride in the query string of a Bitrix24 call.
_TOKEN_IN_QUERY = re.compile(
    r"""([?&](?:auth|access_token|refresh_token)=)[^&\s"'<>#]+""", re.IGNORECASE
)
# Slack bot, user, refresh and app-level tokens have well-known prefixes.
_SLACK_TOKEN = re.compile(r"\bxox[abpre]-[A-Za-z0-9-]+")
_SLACK_APP_TOKEN = re.compile(r"\bxapp-[A-Za-z0-9-]+")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_WEBHOOK_CODE, r"\1***"),
    (_TOKEN_IN_QUERY, r"\1***"),
    (_SLACK_TOKEN, "xox*-***"),
    (_SLACK_APP_TOKEN, "xapp-***"),
)

# httpx logs "HTTP Request: POST https://host/rest/api/1/CODE/method ..." at INFO, and a
# webhook's code cannot be kept out of its URL path.
_LOGGERS = ("httpx",)


# Every pattern above needs one of these words. Most text holds none (the request line of every
# Slack request, for one): one scan for them spares it the four substitutions.
_MAY_HOLD_SECRET = re.compile(r"rest|auth|token|xox|xapp", re.IGNORECASE)


def _may_hold_secret(text: str) -> bool:
    """_MAY_HOLD_SECRET.search, about 20 times faster on ASCII text (every log line is).

    For ASCII text a case-insensitive match of these ASCII words is exactly a substring of the
    lower-cased text; other text keeps the regex, whose IGNORECASE also folds ſ to s and the
    Kelvin sign to k."""
    if text.isascii():
        low = text.lower()
        # Spelled out: a generator over the words costs twice as much.
        return "rest" in low or "auth" in low or "token" in low or "xox" in low or "xapp" in low
    return _MAY_HOLD_SECRET.search(text) is not None


def redact(text: str) -> str:
    """Replace webhook codes, OAuth tokens and Slack tokens in `text` with ``***``."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with every secret masked, before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install_log_redaction() -> None:
    """Attach a RedactingFilter to httpx's logger; calling it again changes nothing."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
