"""Tests for bot.bitrix24.redaction: every secret shape is masked in log lines and in errors."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from bot.bitrix24 import RedactingFilter, ValidationFailed, error_from_response, redact
from bot.logs import JsonFormatter, TextFormatter

CODE = "Zq7SECRETcode9x1"
TOKEN = "tok3nSECRETvalue"
WEBHOOK = f"https://h.example/rest/api/1/{CODE}/mail.message.send"

# One case per pattern and spelling: (what may turn up in text, the secret it must not show).
SECRETS = [
    pytest.param(WEBHOOK, CODE, id="webhook-path"),
    pytest.param(f"https://h.example/rest/12/{CODE}", CODE, id="webhook-path-v1-at-end"),
    pytest.param(quote(WEBHOOK, safe=""), CODE, id="webhook-path-percent-encoded"),
    pytest.param(json.dumps(WEBHOOK).replace("/", "\\/"), CODE, id="webhook-path-json-escaped"),
    pytest.param(f"https://h.example/rest/api/x?auth={TOKEN}", TOKEN, id="auth-in-query"),
    pytest.param(f"https://h.example/oauth/?a=1&access_token={TOKEN}", TOKEN, id="access-token"),
    pytest.param(f"https://h.example/oauth/?refresh_token={TOKEN}", TOKEN, id="refresh-token"),
    pytest.param(f"token xoxb-1-{TOKEN}", TOKEN, id="slack-bot-token"),
    pytest.param(f"token xoxp-2-{TOKEN}", TOKEN, id="slack-user-token"),
    pytest.param(f"token xoxe-1-{TOKEN}", TOKEN, id="slack-refresh-token"),
    pytest.param(f"token xapp-1-A1-{TOKEN}", TOKEN, id="slack-app-token"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"POST https://h/rest/api/1/{CODE}/mail.message.send",
            "POST https://h/rest/api/1/***/mail.message.send",
        ),
        (f"https://h/rest/12/{CODE}/profile.json", "https://h/rest/12/***/profile.json"),
        (f"https://h/rest/12/{CODE}", "https://h/rest/12/***"),
        (
            "https://h/rest/api/mail.message.send?auth=abc123",
            "https://h/rest/api/mail.message.send?auth=***",
        ),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    """Codes in webhook paths and auth tokens in query strings are masked."""
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_every_pattern_is_masked_in_log_lines(text: str, secret: str) -> None:
    """The text and JSON formatters of bot.logs and httpx's filter mask every secret shape."""
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "sent %s", (text,), None)
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert secret not in line, (type(formatter).__name__, line)
        assert "sent " in line  # the rest of the line is kept
    assert RedactingFilter().filter(record)
    assert secret not in record.getMessage()


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_every_pattern_is_masked_in_error_messages(text: str, secret: str) -> None:
    """A portal's message and validation causes never carry a secret into an error."""
    body = {
        "error": {
            "code": "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION",
            "message": f"bad call {text}",
            "validation": [{"field": "to", "message": f"see {text}"}, f"raw {text}"],
        }
    }
    err = error_from_response(400, {}, body, host="h.example")
    assert isinstance(err, ValidationFailed)
    texts = [str(err), repr(err), err.portal_message or "", *(c.message for c in err.causes)]
    assert len(texts) == 5
    for shown in texts:
        assert secret not in shown, shown
    assert (err.portal_message or "").startswith("bad call ")
