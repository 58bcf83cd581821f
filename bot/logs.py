"""Logging setup: one line per event, and a last line of defence against leaked secrets."""

from __future__ import annotations

import logging
import re
import sys

# A Bitrix24 webhook path carries its secret code; tokens and keys have well-known shapes.
# The path may be logged as pasted, percent-encoded (a form body), or with JSON-escaped slashes.
_SLASH = r"(?:/|%2F|\\/)"
_SECRET_PATTERNS = [
    (
        re.compile(rf"({_SLASH}rest{_SLASH}(?:api{_SLASH})?\d+{_SLASH})[A-Za-z0-9]{{4,}}", re.I),
        r"\1***",
    ),
    (re.compile(r"\bxox[abpre]-[A-Za-z0-9-]+"), "xox*-***"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), "xapp-***"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks anything shaped like a webhook code or a Slack token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Bitrix24 webhook URLs contain the secret.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
