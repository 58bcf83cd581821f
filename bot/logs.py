"""Logging setup: one line per event, a correlation id, and a last line of defence against leaks.

Every line carries the correlation id of the work it belongs to (`correlation`): a Slack
request's own id, or the e-mail id for a delivery attempt and its status message. Fields
passed as `extra={"fields": {...}}` become `key=value` pairs in text and keys in JSON.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from bot.bitrix24.redaction import redact

LogFormat = Literal["text", "json"]

_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "b24mail_correlation_id", default=None
)


def new_correlation_id() -> str:
    """12 hex digits. Unique enough to tell requests apart, not a secret: `random` (reseeded in
    every forked process) costs a fraction of uuid4's system call, on every request."""
    return f"{random.getrandbits(48):012x}"


def current_correlation_id() -> str | None:
    return _correlation.get()


class correlation:
    """Lines logged inside the block (and in tasks started there) carry this id.

    A class rather than @contextmanager: it is entered on every request, and a generator
    costs several times as much."""

    __slots__ = ("_id", "_token")

    def __init__(self, correlation_id: str) -> None:
        self._id = correlation_id

    def __enter__(self) -> str:
        self._token = _correlation.set(self._id)
        return self._id

    def __exit__(self, *_exc: object) -> None:
        _correlation.reset(self._token)


class CorrelationFilter(logging.Filter):
    """Stamps each record with the current correlation id, at the moment it is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = _correlation.get()
        return True


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks anything shaped like a webhook code or a Slack token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(RedactingFormatter):
    """`time LEVEL logger [correlation id] message key=value …`, redacted."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(correlation_tag)s%(message)s",
            "%Y-%m-%dT%H:%M:%S%z",
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The format has whole seconds: strftime once a second, not once a line.
        second = int(record.created)
        cached = self._time
        if cached is None or cached[0] != second or cached[1] != datefmt:
            cached = self._time = (second, datefmt, super().formatTime(record, datefmt))
        return cached[2]

    _time: tuple[int, str | None, str] | None = None

    def formatMessage(self, record: logging.LogRecord) -> str:
        correlation_id = getattr(record, "correlation_id", None)
        record.correlation_tag = f"[{correlation_id}] " if correlation_id else ""
        line = super().formatMessage(record)
        # The fields the message does not show already (`event` is what the message says).
        message = record.message  # set by format() just before
        extra = [
            f"{key}={value}"
            for key, value in _fields(record).items()
            if key != "event" and f"{key}=" not in message
        ]
        return " ".join([line, *extra])


class JsonFormatter(RedactingFormatter):
    """One JSON object per line, for log shippers. Every value is redacted before it is
    escaped (JSON doubles the backslash of an already-escaped `\\/`, which the patterns would
    then miss), and the finished line once more by RedactingFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        correlation_id = getattr(record, "correlation_id", None)
        if correlation_id:
            entry["correlation_id"] = correlation_id
        for key, value in _fields(record).items():
            if key not in entry:
                entry[key] = redact(value) if isinstance(value, str) else _plain(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return redact(json.dumps(entry, ensure_ascii=False, default=lambda v: redact(str(v))))


def _plain(value: Any) -> Any:
    """Numbers, booleans and None as they are; anything else as redacted text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def setup_logging(level: str, log_format: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Bitrix24 webhook URLs contain the secret.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
    # Alembic's INFO (its plugins, "Context impl", each step) is noise at every start: the
    # commands say in their own words which migrations they applied.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
