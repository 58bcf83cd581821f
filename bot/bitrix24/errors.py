"""Errors raised by the Bitrix24 client, and the mapping of portal answers onto them.

Every error carries a stable snake_case ``code`` (the key of user-facing texts elsewhere),
``transient`` (worth retrying later), ``may_have_reached_portal`` (the portal may have carried
the request out, so a write's outcome is unknown), the portal's raw ``portal_code`` and
``portal_message``, and ``http_status``. ``str(err)`` is a short English sentence that names
at most the portal's host: never a webhook code, a token or a full URL.

Bitrix24Error
 ├── WebhookURLError (also ValueError)  webhook_malformed | webhook_not_https |
 │                                      webhook_forbidden_host | webhook_has_userinfo
 ├── LimitExceeded
 │    ├── RateLimited                   rate_limited
 │    ├── OperationTimeLimit            operation_time_limit
 │    └── PortalOverloaded              portal_overloaded
 ├── AuthorizationError
 │    ├── BadCredentials                bad_credentials
 │    ├── TokenExpired                  token_expired
 │    ├── MissingScope                  missing_scope
 │    ├── AccessDenied                  access_denied
 │    └── PlanRestricted                plan_restricted
 ├── RequestRejected
 │    ├── ValidationFailed              validation_failed
 │    │    ├── SendFailed               send_failed
 │    │    ├── ReplyFailed              reply_failed
 │    │    ├── ForwardFailed            forward_failed
 │    │    ├── NoRecipients             no_recipients
 │    │    └── RecipientsUnresolved     resolve_recipients_error
 │    ├── NotFound                      not_found
 │    ├── IdempotencyConflict           idempotency_conflict
 │    └── InvalidIdempotencyKey         invalid_idempotency_key
 ├── PortalError
 │    ├── PortalMoved                   portal_moved
 │    ├── MethodNotFound                method_not_found
 │    ├── HttpsRequired                 https_required
 │    ├── PortalUnavailable             portal_unavailable
 │    └── PortalDeleted                 portal_deleted
 ├── TransportError
 │    ├── PortalTimeout                 timeout
 │    ├── PortalUnreachable             portal_unreachable
 │    └── ConnectionDropped             connection_dropped
 └── UnexpectedResponse                 unexpected_response
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

__all__ = [
    "AccessDenied",
    "AuthorizationError",
    "BadCredentials",
    "Bitrix24Error",
    "ConnectionDropped",
    "ForwardFailed",
    "HttpsRequired",
    "IdempotencyConflict",
    "InvalidIdempotencyKey",
    "LimitExceeded",
    "MethodNotFound",
    "MissingScope",
    "NoRecipients",
    "NotFound",
    "OperationTimeLimit",
    "PlanRestricted",
    "PortalDeleted",
    "PortalError",
    "PortalMoved",
    "PortalOverloaded",
    "PortalTimeout",
    "PortalUnavailable",
    "PortalUnreachable",
    "RateLimited",
    "RecipientsUnresolved",
    "ReplyFailed",
    "RequestRejected",
    "SendFailed",
    "TokenExpired",
    "TransportError",
    "UnexpectedResponse",
    "ValidationCause",
    "ValidationFailed",
    "WebhookURLError",
    "error_from_response",
    "parse_reset_at",
    "redact",
]

# A webhook code sits in the path after the user id; OAuth tokens may ride in `auth=`.
_SECRET_IN_PATH = re.compile(r"(/rest/(?:api/)?\d+/)[^/\s?#\"'<>]+", re.IGNORECASE)
_SECRET_IN_QUERY = re.compile(
    r"([?&](?:auth|access_token|refresh_token)=)[^&\s\"'<>#]+", re.IGNORECASE
)

# How long a method stays blocked when the portal gave no `operating_reset_at` to go by.
OPERATION_TIME_LIMIT_ESTIMATE = timedelta(seconds=60)


def redact(text: str) -> str:
    """Replace webhook codes and auth tokens inside URLs in `text` with ``***``."""
    return _SECRET_IN_QUERY.sub(r"\1***", _SECRET_IN_PATH.sub(r"\1***", text))


class Bitrix24Error(Exception):
    """Root of every error this package raises."""

    code: str = "bitrix24_error"
    transient: bool = False
    may_have_reached_portal: bool = False
    summary: ClassVar[str] = "The Bitrix24 call failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        host: str | None = None,
        method: str | None = None,
        http_status: int | None = None,
        portal_code: str | None = None,
        portal_message: str | None = None,
        transient: bool | None = None,
        may_have_reached_portal: bool | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if transient is not None:
            self.transient = transient
        if may_have_reached_portal is not None:
            self.may_have_reached_portal = may_have_reached_portal
        self.host = host
        self.method = method
        self.http_status = http_status
        self.portal_code = portal_code
        # The portal's own text is shown to people; it must not carry a secret URL along.
        self.portal_message = redact(portal_message) if portal_message is not None else None
        super().__init__(self._sentence(message or self.summary))

    @property
    def retry_after(self) -> float | None:
        """Seconds worth waiting before trying again, when the error suggests a figure."""
        return None

    def _sentence(self, message: str) -> str:
        context = []
        if self.host:
            context.append(f"portal {self.host}")
        if self.method:
            context.append(self.method)
        if self.http_status is not None:
            context.append(f"HTTP {self.http_status}")
        if self.portal_code:
            context.append(self.portal_code)
        suffix = f" ({', '.join(context)})" if context else ""
        return f"{message.rstrip('.')}{suffix}."


class WebhookURLError(Bitrix24Error, ValueError):
    """The pasted webhook address cannot be used; `code` says why."""

    code = "webhook_malformed"
    summary = "That is not a Bitrix24 inbound webhook address"
    _summaries: ClassVar[dict[str, str]] = {
        "webhook_malformed": "That is not a Bitrix24 inbound webhook address",
        "webhook_not_https": "The webhook address must start with https://",
        "webhook_forbidden_host": "The webhook address points to a local or private network address",
        "webhook_has_userinfo": "The webhook address must not contain a user name or password",
    }

    def __init__(self, code: str, *, host: str | None = None, message: str | None = None) -> None:
        if code not in self._summaries:
            raise ValueError(f"unknown webhook URL error code {code!r}")
        super().__init__(message or self._summaries[code], code=code, host=host)


# --- rate and load limits --------------------------------------------------------------


class LimitExceeded(Bitrix24Error):
    """The portal refused the call for load reasons before running the method."""

    transient = True
    summary = "Bitrix24 refused the call because a limit was exceeded"


class RateLimited(LimitExceeded):
    """503 QUERY_LIMIT_EXCEEDED: too many requests to the portal; always safe to retry."""

    code = "rate_limited"
    summary = "Bitrix24 limited the request rate"


class OperationTimeLimit(LimitExceeded):
    """429 OPERATION_TIME_LIMIT: the method's time budget is used up until `reset_at`."""

    code = "operation_time_limit"
    summary = "Bitrix24 blocked the method until its time budget resets"

    def __init__(
        self,
        message: str | None = None,
        *,
        reset_at: datetime,
        reset_at_estimated: bool = False,
        **kwargs: Any,
    ) -> None:
        self.reset_at = reset_at
        self.reset_at_estimated = reset_at_estimated
        super().__init__(message, **kwargs)

    @property
    def retry_after(self) -> float:
        return max(0.0, (self.reset_at - datetime.now(UTC)).total_seconds())


class PortalOverloaded(LimitExceeded):
    """OVERLOAD_LIMIT: Bitrix24 support blocked the portal's REST API; do not hammer it."""

    code = "portal_overloaded"
    summary = "Bitrix24 blocked the portal's REST API for overload"
    # A manual block lifted by support: poll rarely, not in a tight retry loop.
    long_backoff: ClassVar[float] = 600.0

    @property
    def retry_after(self) -> float:
        return self.long_backoff


# --- who may do what -------------------------------------------------------------------


class AuthorizationError(Bitrix24Error):
    """The credentials cannot be used for this call."""

    summary = "Bitrix24 refused the credentials"


class BadCredentials(AuthorizationError):
    """NO_AUTH_FOUND / INVALID_CREDENTIALS: wrong, blocked, deleted or regenerated webhook."""

    code = "bad_credentials"
    summary = "Bitrix24 did not accept the webhook; it may be wrong, blocked or regenerated"


class TokenExpired(AuthorizationError):
    """expired_token: the OAuth access token must be refreshed."""

    code = "token_expired"
    summary = "The Bitrix24 access token has expired"


class MissingScope(AuthorizationError):
    """INSUFFICIENTSCOPEEXCEPTION / insufficient_scope: the webhook lacks the `mail` scope."""

    code = "missing_scope"
    summary = "The Bitrix24 webhook lacks a required scope"


class AccessDenied(AuthorizationError):
    """ACCESSDENIEDEXCEPTION / user_access_error: the user may not use that mailbox or message."""

    code = "access_denied"
    summary = "Bitrix24 denied the user access"


class PlanRestricted(AuthorizationError):
    """ACCESS_DENIED: REST is available only on commercial plans."""

    code = "plan_restricted"
    summary = "The Bitrix24 plan does not include REST API access"


# --- the request itself ----------------------------------------------------------------


class RequestRejected(Bitrix24Error):
    """The portal refused this particular request."""

    summary = "Bitrix24 rejected the request"


@dataclass(frozen=True, slots=True)
class ValidationCause:
    """One entry of the portal's `validation[]` list."""

    field: str | None
    message: str
    code: str | None = None


class ValidationFailed(RequestRejected):
    """VALIDATION_REQUESTVALIDATIONEXCEPTION and kin: a field is missing or invalid."""

    code = "validation_failed"
    summary = "Bitrix24 rejected the request as invalid"

    def __init__(
        self,
        message: str | None = None,
        *,
        causes: Sequence[ValidationCause] = (),
        **kwargs: Any,
    ) -> None:
        self.causes = list(causes)
        super().__init__(message, **kwargs)


class SendFailed(ValidationFailed):
    """MESSAGE_SEND_FAILED: sender unavailable, sending limits, too many recipients on a demo plan."""

    code = "send_failed"
    summary = "Bitrix24 could not send the e-mail"


class ReplyFailed(ValidationFailed):
    """MESSAGE_REPLY_FAILED."""

    code = "reply_failed"
    summary = "Bitrix24 could not send the reply"


class ForwardFailed(ValidationFailed):
    """MESSAGE_FORWARD_FAILED."""

    code = "forward_failed"
    summary = "Bitrix24 could not forward the e-mail"


class NoRecipients(ValidationFailed):
    """NO_RECIPIENTS."""

    code = "no_recipients"
    summary = "Bitrix24 found no recipients"


class RecipientsUnresolved(ValidationFailed):
    """RESOLVE_RECIPIENTS_ERROR: an address has a bad format."""

    code = "resolve_recipients_error"
    summary = "Bitrix24 could not resolve the recipients"


class NotFound(RequestRejected):
    """ENTITYNOTFOUNDEXCEPTION: e.g. the e-mail to reply to does not exist."""

    code = "not_found"
    summary = "Bitrix24 did not find the requested item"


class IdempotencyConflict(RequestRejected):
    """422 IDEMPOTENCYKEYREUSEDEXCEPTION: the key was used before with a different body.

    `may_have_reached_portal` is True: the earlier call under this key did succeed, so the
    e-mail may well be out already.
    """

    code = "idempotency_conflict"
    may_have_reached_portal = True
    summary = "Bitrix24 already ran a different request with this idempotency key"


class InvalidIdempotencyKey(RequestRejected):
    """INVALIDIDEMPOTENCYKEYEXCEPTION: the key is not 1-255 printable ASCII characters."""

    code = "invalid_idempotency_key"
    summary = "Bitrix24 rejected the idempotency key"


# --- the portal as a whole -------------------------------------------------------------


class PortalError(Bitrix24Error):
    """The portal cannot serve calls at this address right now or at all."""

    summary = "The Bitrix24 portal cannot serve the call"


class PortalMoved(PortalError):
    """A 3xx answer: the portal was renamed or moved; never followed, the user must re-link."""

    code = "portal_moved"
    summary = "The Bitrix24 portal answered with a redirect; re-link the webhook"

    def __init__(self, message: str | None = None, *, new_host: str | None, **kwargs: Any) -> None:
        self.new_host = new_host
        if message is None and new_host:
            message = f"The Bitrix24 portal moved to {new_host}; re-link the webhook"
        super().__init__(message, **kwargs)


class MethodNotFound(PortalError):
    """ERROR_METHOD_NOT_FOUND / ERROR_MANIFEST_IS_NOT_AVAILABLE: no REST 3.0 mail here."""

    code = "method_not_found"
    summary = "The Bitrix24 portal does not offer this REST 3.0 method"


class HttpsRequired(PortalError):
    """INVALID_REQUEST "Https required"."""

    code = "https_required"
    summary = "The Bitrix24 portal requires HTTPS"


class PortalUnavailable(PortalError):
    """5xx, INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER: a server-side failure."""

    code = "portal_unavailable"
    transient = True
    may_have_reached_portal = True
    summary = "The Bitrix24 portal had a server error"


class PortalDeleted(PortalError):
    """PORTAL_DELETED: the portal is gone or its public part is closed."""

    code = "portal_deleted"
    summary = "The Bitrix24 portal has been deleted or closed"


# --- the way there ---------------------------------------------------------------------


class TransportError(Bitrix24Error):
    """The HTTP exchange with the portal failed."""

    transient = True
    summary = "The connection to the Bitrix24 portal failed"


class PortalTimeout(TransportError):
    """No answer in time; a read/write timeout may have left the call running on the portal."""

    code = "timeout"
    may_have_reached_portal = True
    summary = "The Bitrix24 portal did not answer in time"


class PortalUnreachable(TransportError):
    """DNS failure or refused connection: the request never left."""

    code = "portal_unreachable"
    summary = "The Bitrix24 portal could not be reached"


class ConnectionDropped(TransportError):
    """The connection broke off after the request was (perhaps) sent."""

    code = "connection_dropped"
    may_have_reached_portal = True
    summary = "The connection to the Bitrix24 portal broke off"


class UnexpectedResponse(Bitrix24Error):
    """The portal's answer was not JSON or not of the documented shape."""

    code = "unexpected_response"
    may_have_reached_portal = True
    summary = "The Bitrix24 portal gave an unexpected answer"


# --- mapping portal answers onto errors ------------------------------------------------

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
    "ACCESS_DENIED": PlanRestricted,
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


def _class_for_status(status: int) -> type[Bitrix24Error]:
    if status in (400, 422):
        return ValidationFailed
    if status == 401:
        return BadCredentials
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
