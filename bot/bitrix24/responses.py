"""Mapping one unsuccessful Bitrix24 answer (status, headers, body) onto the error tree."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .errors import (
    AccessDenied,
    BadCredentials,
    Bitrix24Error,
    ForwardFailed,
    HttpsRequired,
    IdempotencyConflict,
    InvalidIdempotencyKey,
    MethodNotFound,
    MissingScope,
    NoRecipients,
    NotFound,
    OperationTimeLimit,
    PlanRestricted,
    PortalDeleted,
    PortalMoved,
    PortalOverloaded,
    PortalUnavailable,
    RateLimited,
    RecipientsUnresolved,
    ReplyFailed,
    SendFailed,
    SubscriptionEnded,
    TokenExpired,
    UnexpectedResponse,
    UserNotAuthorized,
    ValidationCause,
    ValidationFailed,
)
from .redaction import redact

__all__ = ["OPERATION_TIME_LIMIT_ESTIMATE", "error_from_response", "parse_reset_at"]

# How long a method stays blocked when the portal gave no `operating_reset_at` to go by.
OPERATION_TIME_LIMIT_ESTIMATE = timedelta(seconds=60)

_BY_CODE: dict[str, type[Bitrix24Error]] = {
    "QUERY_LIMIT_EXCEEDED": RateLimited,
    "OPERATION_TIME_LIMIT": OperationTimeLimit,
    "OVERLOAD_LIMIT": PortalOverloaded,
    "NO_AUTH_FOUND": BadCredentials,
    "INVALID_CREDENTIALS": BadCredentials,
    "INVALID_TOKEN": BadCredentials,
    "EXPIRED_TOKEN": TokenExpired,
    "INSUFFICIENT_SCOPE": MissingScope,
    "USER_ACCESS_ERROR": AccessDenied,
    # Refined by its message (_access_denied): a plan, a user's rights or an unusable user.
    "ACCESS_DENIED": PlanRestricted,
    "PAYMENT_REQUIRED": SubscriptionEnded,
    "INVALID_REQUEST": HttpsRequired,
    "ERROR_METHOD_NOT_FOUND": MethodNotFound,
    "ERROR_MANIFEST_IS_NOT_AVAILABLE": MethodNotFound,
    "INTERNAL_SERVER_ERROR": PortalUnavailable,
    "ERROR_UNEXPECTED_ANSWER": PortalUnavailable,
    "PORTAL_DELETED": PortalDeleted,
}

# REST 3.0 codes carry a BITRIX_REST_V3_EXCEPTION_ prefix that may grow; match the tail.
_BY_SUFFIX: tuple[tuple[str, type[Bitrix24Error]], ...] = (
    ("REQUESTVALIDATIONEXCEPTION", ValidationFailed),
    ("INVALIDJSONEXCEPTION", ValidationFailed),
    ("INVALIDPAGINATIONEXCEPTION", ValidationFailed),
    ("INVALIDSELECTEXCEPTION", ValidationFailed),
    ("UNKNOWNDTOPROPERTYEXCEPTION", ValidationFailed),
    ("UNKNOWNFILTEROPERATOREXCEPTION", ValidationFailed),
    ("ENTITYNOTFOUNDEXCEPTION", NotFound),
    # A portal without the method (an on-premise one before REST 3.0 mail), as b24jssdk reads it.
    ("METHODNOTFOUNDEXCEPTION", MethodNotFound),
    ("ACCESSDENIEDEXCEPTION", AccessDenied),
    ("INSUFFICIENTSCOPEEXCEPTION", MissingScope),
    ("IDEMPOTENCYKEYREUSEDEXCEPTION", IdempotencyConflict),
    ("INVALIDIDEMPOTENCYKEYEXCEPTION", InvalidIdempotencyKey),
)

# Checked in this order: the specific recipient causes say more than the generic failures.
_CAUSE_CODES: tuple[tuple[str, type[ValidationFailed]], ...] = (
    ("RESOLVE_RECIPIENTS_ERROR", RecipientsUnresolved),
    ("NO_RECIPIENTS", NoRecipients),
    ("MESSAGE_SEND_FAILED", SendFailed),
    ("MESSAGE_REPLY_FAILED", ReplyFailed),
    ("MESSAGE_FORWARD_FAILED", ForwardFailed),
)
_CAUSE_PATTERN = re.compile(
    r"\b(" + "|".join(code for code, _ in _CAUSE_CODES) + r")\b", re.IGNORECASE
)
_CODE_LIKE_KEYS = ("code", "errorCode", "error_code", "error", "type")


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any] | None,
    *,
    host: str | None = None,
    method: str | None = None,
    reset_at: datetime | None = None,
    now: datetime | None = None,
) -> Bitrix24Error:
    """Map one non-successful portal answer onto an error; pure.

    `body` is the raw content or the already decoded JSON. Both the REST 3.0 shape
    ``{"error": {"code", "message", "validation"}}`` and the flat platform shape
    ``{"error": "CODE", "error_description": "..."}`` are read; an unknown or missing code
    is mapped by HTTP status. `reset_at` is the `operating_reset_at` last seen for this
    portal and method, used for OPERATION_TIME_LIMIT when the answer carries none.
    """
    data = _decode(body)
    portal_code, portal_message, validation = _error_fields(data)
    common: dict[str, Any] = {
        "host": host,
        "method": method,
        "http_status": status,
        "portal_code": portal_code,
        "portal_message": portal_message,
    }
    if 300 <= status < 400:
        return PortalMoved(new_host=_location_host(headers), **common)

    cls = _class_for_code(portal_code) if portal_code else None
    if cls is None:
        cls = _class_for_status(status)
    elif cls is PlanRestricted:
        cls = _access_denied(portal_message)

    if cls is OperationTimeLimit:
        now = now or datetime.now(UTC)
        seen = _reset_at_from(data) or reset_at
        if seen is not None and seen > now:
            return OperationTimeLimit(reset_at=seen, **common)
        return OperationTimeLimit(
            reset_at=now + OPERATION_TIME_LIMIT_ESTIMATE, reset_at_estimated=True, **common
        )
    if issubclass(cls, ValidationFailed):
        causes = _causes(validation)
        return _refine_validation(causes, portal_message)(causes=causes, **common)
    return cls(**common)


def _decode(body: bytes | str | Mapping[str, Any] | None) -> Any:
    if isinstance(body, bytes | str):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return body


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _error_fields(data: Any) -> tuple[str | None, str | None, Any]:
    if not isinstance(data, Mapping) or "error" not in data:
        return None, None, None
    error = data["error"]
    if isinstance(error, Mapping):
        message = error.get("message", error.get("description"))
        return _text(error.get("code")), _text(message), error.get("validation")
    return _text(error), _text(data.get("error_description")), data.get("validation")


def _class_for_code(code: str) -> type[Bitrix24Error] | None:
    upper = code.strip().upper()
    if upper in _BY_CODE:
        return _BY_CODE[upper]
    for suffix, cls in _BY_SUFFIX:
        if upper.endswith(suffix):
            return cls
    return None


# ACCESS_DENIED's messages, as b24pysdk's error classes list them. The plan one is the documented
# meaning (system-errors.md), kept when the message is missing or unknown.
_NOT_AUTHORIZED = re.compile(r"can.?t be authorized", re.IGNORECASE)
_PLAN = re.compile(r"commercial|subscription|tariff|plan\b", re.IGNORECASE)
_DENIED = re.compile(r"access denied", re.IGNORECASE)


def _access_denied(message: str | None) -> type[Bitrix24Error]:
    if not message or _PLAN.search(message):
        return PlanRestricted
    if _NOT_AUTHORIZED.search(message):
        return UserNotAuthorized
    if _DENIED.search(message):
        return AccessDenied
    return PlanRestricted


def _class_for_status(status: int) -> type[Bitrix24Error]:
    if status in (400, 422):
        return ValidationFailed
    if status == 401:
        return BadCredentials
    if status == 402:
        return SubscriptionEnded
    if status == 403:
        return AccessDenied
    if status == 404:
        return MethodNotFound
    if status == 429:
        return RateLimited
    if status >= 500:
        return PortalUnavailable
    return UnexpectedResponse


def _causes(validation: Any) -> list[ValidationCause]:
    if not isinstance(validation, Sequence) or isinstance(validation, str | bytes):
        return []
    causes = []
    for entry in validation:
        if isinstance(entry, Mapping):
            message = _text(entry.get("message")) or ""
            causes.append(
                ValidationCause(
                    field=_text(entry.get("field")),
                    message=redact(message),
                    code=_cause_code(entry, message),
                )
            )
        elif entry is not None:
            message = redact(str(entry))
            match = _CAUSE_PATTERN.search(message)
            causes.append(ValidationCause(None, message, match[1].upper() if match else None))
    return causes


def _cause_code(entry: Mapping[str, Any], message: str) -> str | None:
    for key in _CODE_LIKE_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value:
            match = _CAUSE_PATTERN.search(value)
            return match[1].upper() if match else value
    match = _CAUSE_PATTERN.search(message)
    return match[1].upper() if match else None


def _refine_validation(
    causes: Sequence[ValidationCause], portal_message: str | None
) -> type[ValidationFailed]:
    found = {cause.code.upper() for cause in causes if cause.code}
    if not found and portal_message:
        found = {m.upper() for m in _CAUSE_PATTERN.findall(portal_message)}
    for code, cls in _CAUSE_CODES:
        if code in found:
            return cls
    return ValidationFailed


def _reset_at_from(data: Any) -> datetime | None:
    if isinstance(data, Mapping) and isinstance(data.get("time"), Mapping):
        return parse_reset_at(data["time"].get("operating_reset_at"))
    return None


def parse_reset_at(value: Any) -> datetime | None:
    """Read `operating_reset_at` (a Unix timestamp, or ISO 8601 text) as an aware datetime."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (OverflowError, OSError, ValueError):
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _location_host(headers: Mapping[str, str]) -> str | None:
    location = None
    for key, value in headers.items():
        if key.lower() == "location":
            location = value
            break
    if not location:
        return None
    try:
        parts = urlsplit(location.strip())
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not hostname:
        return None
    host = f"[{hostname}]" if ":" in hostname else hostname
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return f"{host}:{port}" if port is not None and port != default else host
