"""Tests for bot.slack.richtext.body: the converted body that bot/mail validates and sends."""

from __future__ import annotations

from typing import Any

import pytest

from bot.mail.compose import ComposedBody, ComposeInput, ValidEmail, validate_compose
from bot.slack.richtext import email_body
from tests.slack.richtext.helpers import block, section, text

SENDERS = [{"email": "anna@corp.example", "sender": "Anna <anna@corp.example>"}]


@pytest.mark.parametrize(
    "value",
    [None, block(), block(section(text(" \n\u200b "))), block(section())],
)
def test_blank_body_is_none(value: Any) -> None:
    assert email_body(value) is None


def test_body_carries_html_plain_and_source() -> None:
    value = block(section(text("Hi "), {"type": "user", "user_id": "U1"}, text("!", bold=True)))
    body = email_body(value, user_name={"U1": "Anna"}.get)
    # The plain text only measures the length, as typed: mentions stay ids there.
    assert body == ComposedBody(html="<p>Hi @Anna<b>!</b></p>", plain="Hi @U1!", source=value)
    assert body.source is not value  # a copy: the stored draft never aliases the view state


def test_validate_compose_sends_the_converted_body() -> None:
    value = block(section(text("a < b")))
    form = ComposeInput(
        sender="anna@corp.example", to="b@x.example", subject="s", body=email_body(value)
    )
    result = validate_compose(form, senders=SENDERS, max_recipients=5)
    assert isinstance(result, ValidEmail)
    assert (result.body_html, result.body_source) == ("<p>a &lt; b</p>", value)


def test_validate_compose_refuses_a_missing_body() -> None:
    form = ComposeInput(sender="anna@corp.example", to="b@x.example", subject="s", body=None)
    result = validate_compose(form, senders=SENDERS, max_recipients=5)
    assert isinstance(result, list)
    assert [(p.field, p.code) for p in result] == [("body", "body_empty")]
