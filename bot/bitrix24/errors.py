"""Errors raised by the Bitrix24 client (``responses`` maps portal answers onto them).

Every error carries a stable snake_case ``code`` (the key of user-facing texts elsewhere),
``transient`` (worth retrying later), ``may_have_reached_portal`` (the portal may have carried
the request out, so a write's outcome is unknown), the portal's raw ``portal_code`` and
``portal_message``, and ``http_status``. ``str(err)`` is a short English sentence that names
at most the portal's host: never a webhook code, a token or a full URL.

Bitrix24Error
 ├── WebhookURLError (also ValueError)  webhook_malformed | webhook_not_https |
 │                                      webhook_forbidden_host | webhook_has_userinfo |
 │                                      webhook_has_query
 ├── LimitExceeded
 │    ├── RateLimited                   rate_limited
 │    ├── OperationTimeLimit            operation_time_limit
 │    └── PortalOverloaded              portal_overloaded
 ├── AuthorizationError
 │    ├── BadCredentials                bad_credentials
 │    ├── TokenExpired                  token_expired
 │    ├── MissingScope                  missing_scope
 │    ├── AccessDenied                  access_denied
 │    ├── UserNotAuthorized             user_not_authorized
 │    ├── PlanRestricted                plan_restricted
 │    └── SubscriptionEnded             subscription_ended
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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from .redaction import redact

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
    "SubscriptionEnded",
    "TokenExpired",
    "TransportError",
    "UnexpectedResponse",
    "UserNotAuthorized",
    "ValidationCause",
    "ValidationFailed",
    "WebhookURLError",
]


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
        "webhook_has_query": "The webhook address must end after the code, without ?… or #…",
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


class UserNotAuthorized(AuthorizationError):
    """ACCESS_DENIED "Current user can't be authorized in this context": the webhook's user
    cannot act (dismissed, deactivated, or a kind of user REST does not admit)."""

    code = "user_not_authorized"
    summary = "Bitrix24 cannot authorize the webhook's user"


class PlanRestricted(AuthorizationError):
    """ACCESS_DENIED "REST API is available only on commercial plans"."""

    code = "plan_restricted"
    summary = "The Bitrix24 plan does not include REST API access"


class SubscriptionEnded(AuthorizationError):
    """PAYMENT_REQUIRED "Subscription has been ended": the portal's paid subscription (or the
    application's) has run out; REST answers nothing until it is renewed."""

    code = "subscription_ended"
    summary = "The Bitrix24 subscription has ended"


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
