"""Keeps webhook codes out of httpx's request log lines."""

from __future__ import annotations

import logging

from .errors import redact

__all__ = ["RedactingFilter", "install_log_redaction"]

# httpx logs "HTTP Request: POST https://host/rest/api/1/CODE/method ..." at INFO, and a
# webhook's code cannot be kept out of its URL path.
_LOGGERS = ("httpx",)


class RedactingFilter(logging.Filter):
    """Rewrites `/rest/[api/]<id>/<code>/` in a record's message to `/rest/[api/]<id>/***/`."""

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
