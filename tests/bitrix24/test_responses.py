"""Tests for bot.bitrix24.responses: mapping portal answers onto the error tree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.bitrix24 import (
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
    error_from_response,
)

CODE = "Zq7SECRETcode9x1"
HOST = "portal.bitrix24.com"
V3 = "BITRIX_REST_V3_EXCEPTION_"
NOW = datetime(2026, 5, 26, 12, 0, tzinfo=UTC)

# (HTTP status, portal code, error class, stable code, transient, may_have_reached_portal)
TABLE: list[tuple[int, str, type[Bitrix24Error], str, bool, bool]] = [
    (503, "QUERY_LIMIT_EXCEEDED", RateLimited, "rate_limited", True, False),
    (429, "OPERATION_TIME_LIMIT", OperationTimeLimit, "operation_time_limit", True, False),
    (503, "OVERLOAD_LIMIT", PortalOverloaded, "portal_overloaded", True, False),
    (401, "OVERLOAD_LIMIT", PortalOverloaded, "portal_overloaded", True, False),
    (401, "NO_AUTH_FOUND", BadCredentials, "bad_credentials", False, False),
    (403, "INVALID_CREDENTIALS", BadCredentials, "bad_credentials", False, False),
    (401, "INVALID_CREDENTIALS", BadCredentials, "bad_credentials", False, False),
    (401, "expired_token", TokenExpired, "token_expired", False, False),
    (403, "insufficient_scope", MissingScope, "missing_scope", False, False),
    (403, f"{V3}INSUFFICIENTSCOPEEXCEPTION", MissingScope, "missing_scope", False, False),
    (403, f"{V3}ACCESSDENIEDEXCEPTION", AccessDenied, "access_denied", False, False),
    (401, "user_access_error", AccessDenied, "access_denied", False, False),
    (403, "ACCESS_DENIED", PlanRestricted, "plan_restricted", False, False),
    (
        400,
        f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION",
        ValidationFailed,
        "validation_failed",
        False,
        False,
    ),
    (400, f"{V3}INVALIDJSONEXCEPTION", ValidationFailed, "validation_failed", False, False),
    (400, f"{V3}INVALIDPAGINATIONEXCEPTION", ValidationFailed, "validation_failed", False, False),
    (400, f"{V3}ENTITYNOTFOUNDEXCEPTION", NotFound, "not_found", False, False),
    (404, "ERROR_METHOD_NOT_FOUND", MethodNotFound, "method_not_found", False, False),
    (404, "ERROR_MANIFEST_IS_NOT_AVAILABLE", MethodNotFound, "method_not_found", False, False),
    # b24jssdk's limiter manager: a portal without the REST 3.0 method, whatever the status.
    (400, f"{V3}METHODNOTFOUNDEXCEPTION", MethodNotFound, "method_not_found", False, False),
    (404, f"{V3}METHODNOTFOUNDEXCEPTION", MethodNotFound, "method_not_found", False, False),
    # b24pysdk's error classes: the subscription ran out.
    (402, "PAYMENT_REQUIRED", SubscriptionEnded, "subscription_ended", False, False),
    (403, "PAYMENT_REQUIRED", SubscriptionEnded, "subscription_ended", False, False),
    (400, "INVALID_REQUEST", HttpsRequired, "https_required", False, False),
    (401, "INVALID_REQUEST", HttpsRequired, "https_required", False, False),
    (500, "INTERNAL_SERVER_ERROR", PortalUnavailable, "portal_unavailable", True, True),
    (500, "ERROR_UNEXPECTED_ANSWER", PortalUnavailable, "portal_unavailable", True, True),
    (500, "PORTAL_DELETED", PortalDeleted, "portal_deleted", False, False),
    (403, "PORTAL_DELETED", PortalDeleted, "portal_deleted", False, False),
    (
        422,
        f"{V3}IDEMPOTENCYKEYREUSEDEXCEPTION",
        IdempotencyConflict,
        "idempotency_conflict",
        False,
        True,
    ),
    (
        400,
        f"{V3}INVALIDIDEMPOTENCYKEYEXCEPTION",
        InvalidIdempotencyKey,
        "invalid_idempotency_key",
        False,
        False,
    ),
]


def v3_body(code: str, message: str = "Текст ошибки", **extra: Any) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


def flat_body(code: str, description: str = "Текст ошибки") -> bytes:
    return json.dumps({"error": code, "error_description": description}).encode()


@pytest.mark.parametrize("shape", [v3_body, flat_body], ids=["rest3", "flat"])
@pytest.mark.parametrize(("status", "portal_code", "cls", "code", "transient", "reached"), TABLE)
def test_every_code_in_both_shapes(
    shape: Any,
    status: int,
    portal_code: str,
    cls: type[Bitrix24Error],
    code: str,
    transient: bool,
    reached: bool,
) -> None:
    """Each documented code maps to its class, whichever envelope carries it."""
    err = error_from_response(
        status, {}, shape(portal_code), host=HOST, method="mail.message.send", now=NOW
    )
    assert type(err) is cls
    assert err.code == code
    assert err.transient is transient
    assert err.may_have_reached_portal is reached
    assert err.portal_code == portal_code
    assert err.portal_message == "Текст ошибки"
    assert err.http_status == status
    assert err.host == HOST
    assert err.method == "mail.message.send"


def test_code_matching_ignores_case_and_prefix() -> None:
    """REST 3.0 codes are recognised by their tail; platform codes regardless of case."""
    assert (
        type(error_from_response(403, {}, v3_body("SOME_FUTURE_PREFIX_ACCESSDENIEDEXCEPTION")))
        is AccessDenied
    )
    assert type(error_from_response(401, {}, flat_body("EXPIRED_TOKEN"))) is TokenExpired
    assert type(error_from_response(503, {}, flat_body("query_limit_exceeded"))) is RateLimited


@pytest.mark.parametrize(
    ("cause", "cls", "code"),
    [
        ({"field": "from", "message": "MESSAGE_SEND_FAILED"}, SendFailed, "send_failed"),
        (
            {"field": "from", "message": "MESSAGE_SEND_FAILED: daily limit"},
            SendFailed,
            "send_failed",
        ),
        ({"field": "id", "message": "MESSAGE_REPLY_FAILED"}, ReplyFailed, "reply_failed"),
        ({"field": "id", "message": "MESSAGE_FORWARD_FAILED"}, ForwardFailed, "forward_failed"),
        ({"field": "to", "message": "NO_RECIPIENTS"}, NoRecipients, "no_recipients"),
        (
            {"field": "to", "message": "RESOLVE_RECIPIENTS_ERROR"},
            RecipientsUnresolved,
            "resolve_recipients_error",
        ),
        (
            {"field": "to", "message": "Адрес неверен", "code": "RESOLVE_RECIPIENTS_ERROR"},
            RecipientsUnresolved,
            "resolve_recipients_error",
        ),
        (
            {"field": "to", "message": "Нет получателей", "errorCode": "NO_RECIPIENTS"},
            NoRecipients,
            "no_recipients",
        ),
        (
            {"field": "from", "message": "Обязательное поле не указано"},
            ValidationFailed,
            "validation_failed",
        ),
    ],
)
def test_validation_causes_choose_the_subclass(
    cause: dict[str, str], cls: type[Bitrix24Error], code: str
) -> None:
    """Send failures hide in validation[]; the client reads them out."""
    body = v3_body(f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION", "Ошибка", validation=[cause])
    err = error_from_response(400, {}, body, method="mail.message.send")
    assert type(err) is cls
    assert err.code == code
    assert isinstance(err, ValidationFailed)
    assert err.causes[0].field == cause["field"]
    assert err.causes[0].message == cause["message"]
    assert err.transient is False
    assert err.may_have_reached_portal is False


def test_validation_causes_are_kept_in_order() -> None:
    """All causes are exposed; a specific recipient cause beats the generic failure."""
    validation = [
        {"field": "from", "message": "Mandatory field is missing"},
        {"field": "to", "message": "MESSAGE_SEND_FAILED"},
        {"field": "cc", "message": "x", "code": "RESOLVE_RECIPIENTS_ERROR"},
    ]
    err = error_from_response(
        400, {}, v3_body(f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION", validation=validation)
    )
    assert isinstance(err, RecipientsUnresolved)
    assert err.causes == [
        ValidationCause(field="from", message="Mandatory field is missing", code=None),
        ValidationCause(field="to", message="MESSAGE_SEND_FAILED", code="MESSAGE_SEND_FAILED"),
        ValidationCause(field="cc", message="x", code="RESOLVE_RECIPIENTS_ERROR"),
    ]


def test_odd_validation_entries_are_tolerated() -> None:
    """Strings or junk inside validation[] do not break the mapping."""
    body = v3_body(
        f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION", validation=["NO_RECIPIENTS", None, 5]
    )
    err = error_from_response(400, {}, body)
    assert isinstance(err, NoRecipients)
    assert [c.message for c in err.causes] == ["NO_RECIPIENTS", "5"]
    body = v3_body(f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION", validation="nonsense")
    err = error_from_response(400, {}, body)
    assert type(err) is ValidationFailed
    assert err.causes == []


def test_send_failure_code_in_top_level_message() -> None:
    """Without causes, a send code in the error's own message still picks the subclass."""
    body = v3_body(f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION", "MESSAGE_SEND_FAILED")
    assert isinstance(error_from_response(400, {}, body), SendFailed)


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (502, b"<html>Bad Gateway</html>", PortalUnavailable),
        (500, b"", PortalUnavailable),
        (504, None, PortalUnavailable),
        (503, flat_body("SOMETHING_NEW"), PortalUnavailable),
        (401, b"", BadCredentials),
        (403, b"<html>Forbidden</html>", AccessDenied),
        (404, b"<html>Not Found</html>", MethodNotFound),
        (400, v3_body(f"{V3}SOMETHINGNEWEXCEPTION"), ValidationFailed),
        (422, b"{}", ValidationFailed),
        (429, b"", RateLimited),
        (418, b"teapot", UnexpectedResponse),
        (200, flat_body("WHATEVER"), UnexpectedResponse),
        (200, b"not json", UnexpectedResponse),
        (200, b"[1, 2]", UnexpectedResponse),
    ],
)
def test_unknown_or_missing_codes_map_by_status(
    status: int, body: bytes | None, cls: type[Bitrix24Error]
) -> None:
    """An answer without a known code is judged by its HTTP status."""
    assert type(error_from_response(status, {}, body)) is cls


def test_coded_and_uncoded_5xx_are_told_apart() -> None:
    """`portal_code` stays None when the portal sent no code."""
    assert error_from_response(502, {}, b"<html/>").portal_code is None
    assert (
        error_from_response(500, {}, flat_body("INTERNAL_SERVER_ERROR")).portal_code
        == "INTERNAL_SERVER_ERROR"
    )


def test_already_decoded_body_is_accepted() -> None:
    """error_from_response takes parsed JSON as well as raw bytes or text."""
    err = error_from_response(503, {}, {"error": "QUERY_LIMIT_EXCEEDED"})
    assert isinstance(err, RateLimited)
    assert isinstance(error_from_response(503, {}, '{"error": "OVERLOAD_LIMIT"}'), PortalOverloaded)


@pytest.mark.parametrize(
    ("status", "location", "new_host"),
    [
        (
            302,
            f"https://new-name.bitrix24.com/rest/api/1/{CODE}/mail.message.send",
            "new-name.bitrix24.com",
        ),
        (301, "https://New.Example.COM:8443/", "new.example.com:8443"),
        (307, "https://new.example.com:443/x", "new.example.com"),
        (308, "http://[2001:db8::1]:8080/", "[2001:db8::1]:8080"),
        (302, "/auth/?backurl=/rest/", None),
        (303, "", None),
    ],
)
def test_redirects_become_portal_moved(status: int, location: str, new_host: str | None) -> None:
    """Any 3xx is PortalMoved with only the new host kept, never the full Location."""
    headers = {"Location": location} if location else {}
    err = error_from_response(status, headers, b"", host=HOST, method="mail.message.send")
    assert isinstance(err, PortalMoved)
    assert err.code == "portal_moved"
    assert err.new_host == new_host
    assert CODE not in str(err)
    assert "rest/api" not in str(err)
    if new_host:
        assert new_host in str(err)


def test_location_header_is_case_insensitive() -> None:
    """A plain dict with a lowercase header name works too."""
    err = error_from_response(302, {"location": "https://moved.example.com/"}, None)
    assert isinstance(err, PortalMoved)
    assert err.new_host == "moved.example.com"


def test_operation_time_limit_uses_reset_seen_before() -> None:
    """reset_at comes from the last successful answer's operating_reset_at."""
    seen = NOW + timedelta(minutes=7)
    err = error_from_response(429, {}, flat_body("OPERATION_TIME_LIMIT"), reset_at=seen, now=NOW)
    assert isinstance(err, OperationTimeLimit)
    assert err.reset_at == seen
    assert err.reset_at_estimated is False


def test_operation_time_limit_prefers_reset_in_the_answer() -> None:
    """A `time.operating_reset_at` in the error answer itself wins."""
    stamp = int((NOW + timedelta(minutes=3)).timestamp())
    body = json.dumps({"error": "OPERATION_TIME_LIMIT", "time": {"operating_reset_at": stamp}})
    err = error_from_response(429, {}, body, reset_at=NOW + timedelta(minutes=9), now=NOW)
    assert isinstance(err, OperationTimeLimit)
    assert err.reset_at == datetime.fromtimestamp(stamp, UTC)


@pytest.mark.parametrize("seen", [None, NOW - timedelta(seconds=1)])
def test_operation_time_limit_estimates_without_a_future_reset(seen: datetime | None) -> None:
    """Without a usable reset time the error estimates a minute from now."""
    err = error_from_response(429, {}, flat_body("OPERATION_TIME_LIMIT"), reset_at=seen, now=NOW)
    assert isinstance(err, OperationTimeLimit)
    assert err.reset_at == NOW + timedelta(seconds=60)
    assert err.reset_at_estimated is True
    assert err.retry_after >= 0


def test_retry_after_hints() -> None:
    """Overload asks for a long pause; most errors suggest nothing."""
    assert error_from_response(503, {}, flat_body("OVERLOAD_LIMIT")).retry_after == 600.0
    assert error_from_response(401, {}, flat_body("NO_AUTH_FOUND")).retry_after is None
    future = datetime.now(UTC) + timedelta(seconds=120)
    err = error_from_response(429, {}, flat_body("OPERATION_TIME_LIMIT"), reset_at=future)
    assert 100 < (err.retry_after or 0) <= 120


def test_error_text_never_carries_secrets() -> None:
    """str() names the host, never a code or token; the portal's text is redacted too."""
    leaky = f"Bad URL https://{HOST}/rest/api/1/{CODE}/mail.message.send?auth=tok3nSECRET"
    err = error_from_response(
        400,
        {},
        v3_body(
            f"{V3}VALIDATION_REQUESTVALIDATIONEXCEPTION",
            leaky,
            validation=[{"field": "x", "message": leaky}],
        ),
        host=HOST,
        method="mail.message.send",
    )
    assert isinstance(err, ValidationFailed)
    for text in (str(err), repr(err), err.portal_message or "", err.causes[0].message):
        assert CODE not in text
        assert "tok3nSECRET" not in text
    assert HOST in str(err)
    assert "mail.message.send" in str(err)
    assert str(err).endswith(".")


@pytest.mark.parametrize("shape", [v3_body, flat_body], ids=["rest3", "flat"])
@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("REST API is available only on commercial plans", PlanRestricted),
        ("REST is available only by subscription", PlanRestricted),
        ("", PlanRestricted),  # the documented meaning when nothing else is said
        ("Access denied!", AccessDenied),
        ("Access denied.", AccessDenied),
        ("Current user can't be authorized in this context", UserNotAuthorized),
    ],
)
def test_access_denied_variants_are_told_apart_by_their_message(
    shape: Any, message: str, cls: type[Bitrix24Error]
) -> None:
    """ACCESS_DENIED means a plan without REST, a user without rights, or an unusable user."""
    err = error_from_response(403, {}, shape("ACCESS_DENIED", message), host=HOST, now=NOW)
    assert type(err) is cls


def test_subscription_ended_without_a_code_is_read_from_402() -> None:
    """402 Payment Required with an unknown body is the ended subscription too."""
    assert type(error_from_response(402, {}, b"<html>", host=HOST, now=NOW)) is SubscriptionEnded
