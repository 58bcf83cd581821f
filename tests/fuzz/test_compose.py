"""Fuzzing a whole composed e-mail: whatever is typed, nothing but a clean e-mail reaches Bitrix24."""

from __future__ import annotations

import html
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mail.addresses import parse_single_address
from bot.mail.compose import BODY_MAX_CHARS, SUBJECT_MAX, ComposeInput, ValidEmail, validate_compose
from bot.slack.richtext import email_body, plain_text_to_html
from tests.slack.richtext.helpers import assert_safe_html
from tests.slack.richtext.helpers import blocks as rich_text_blocks

SENDERS = [
    {"email": "anna@corp.example", "name": "Anna", "sender": "Anna <anna@corp.example>"},
    {"email": "sales@corp.example", "name": "", "sender": "sales@corp.example"},
]
FIELDS = {"from", "to", "cc", "bcc", "subject", "body"}
CAP = 5
HEADER_BREAKERS = ("\r", "\n", "\x00", "\u2028", "\u2029", "\x85")
# Bidi controls and zero-width characters: invisible, and able to make text read otherwise.
SPOOFERS = ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068")
SPOOFERS += ("\u2069", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")

hostile = st.sampled_from(
    [
        "a@x.example",
        "B@X.example",
        "Eve <eve@x.example>",
        '"Bob\r\nBcc: spy@evil.example" <bob@x.example>',
        "bob@x.example\r\nBcc: spy@evil.example",
        "x@y.example%0d%0aBcc:z@evil.example",
        "<mailto:a@x.example|a@x.example>",
        "\x00",
        "\u2028",
        ",",
        ";",
        " ",
        "\n",
        '"',
        "<",
        ">",
        "\u202eEve\u202c <eve@x.example>",
        "Tr\u200bust <t@x.example>",
        "иван@x.example",
        "ivan@пример.рф",
        *SPOOFERS,
    ]
)
address_text = st.lists(hostile | st.text(max_size=6), max_size=12).map("".join)
subjects = st.lists(
    st.sampled_from(["Hi", " ", "\r\n", "Bcc: spy@evil.example", "\x00", "\u2028", "\t", *SPOOFERS])
    | st.text(max_size=8),
    max_size=10,
).map("".join) | st.integers(SUBJECT_MAX - 2, SUBJECT_MAX + 2).map(lambda n: "s" * n)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    sender=st.none()
    | st.sampled_from(["anna@corp.example", "ANNA@corp.example", "x@evil.example"]),
    to=address_text,
    cc=address_text,
    bcc=address_text,
    subject=subjects,
    body=st.none() | rich_text_blocks,
)
def test_any_form_yields_field_problems_or_a_clean_email(
    sender: str | None, to: str, cc: str, bcc: str, subject: str, body: dict[str, Any] | None
) -> None:
    """Never raises; a valid result has one-line headers, real addresses, the cap kept, safe HTML."""
    form = ComposeInput(
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        body=email_body(body, user_name=lambda u: f"<{u}>"),
    )
    result = validate_compose(form, senders=SENDERS, max_recipients=CAP)
    if isinstance(result, list):
        assert result
        assert {p.field for p in result} <= FIELDS
        assert len({p.field for p in result}) == len(result)
        return
    assert isinstance(result, ValidEmail)
    assert result.sender in {s["sender"] for s in SENDERS}
    recipients = [*result.to, *result.cc, *result.bcc]
    assert 1 <= len(recipients) <= CAP
    emails = [parse_single_address(r).email.casefold() for r in recipients]
    assert len(emails) == len(set(emails))
    for header in [result.sender, result.subject, *recipients]:
        assert not any(ch in header for ch in HEADER_BREAKERS), header
        assert not any(ch in header for ch in SPOOFERS), header
    assert all(parse_single_address(r).email.rpartition("@")[0].isascii() for r in recipients)
    assert 0 < len(result.subject) <= SUBJECT_MAX
    assert_safe_html(result.body_html)


@settings(max_examples=20, deadline=None)
@given(st.integers(BODY_MAX_CHARS - 1, BODY_MAX_CHARS + 1))
def test_body_length_cap_is_exact(length: int) -> None:
    """A body of at most BODY_MAX_CHARS characters passes; one more is refused with its length."""
    body = {
        "type": "rich_text",
        "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "x" * length}]}
        ],
    }
    form = ComposeInput(
        sender="anna@corp.example", to="a@x.example", subject="s", body=email_body(body)
    )
    result = validate_compose(form, senders=SENDERS, max_recipients=CAP)
    if length <= BODY_MAX_CHARS:
        assert isinstance(result, ValidEmail)
    else:
        assert isinstance(result, list)
        assert [(p.field, p.code, p.params["length"]) for p in result] == [
            ("body", "body_too_long", length)
        ]


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(["<script>", "&amp;", "\r\n", "\n\n", "\r", "<", ">", '"', "'", " "])
        | st.text(max_size=8),
        max_size=20,
    ).map("".join)
)
def test_plain_text_becomes_safe_html_that_keeps_every_line(text: str) -> None:
    """plain_text_to_html: only <p> and <br>, well formed, and every typed line shows, escaped."""
    output = plain_text_to_html(text)
    assert_safe_html(output)
    assert set(output.replace("<p>", "").replace("</p>", "").replace("<br>", "")).isdisjoint("<>")
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        assert html.escape(line.strip("\n"), quote=True).strip() in output
