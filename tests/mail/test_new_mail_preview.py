"""What a new-mail card shows of an e-mail: plain text, without quoted history or signature."""

from __future__ import annotations

from bot.bitrix24 import Message
from bot.mail.notify import absolute_url, card_fields, preview_text


def test_quoted_history_after_a_gmail_quote_is_cut() -> None:
    body = (
        "<div>Thanks, see the contract attached.</div>"
        '<div class="gmail_quote">On Mon, Anna wrote:<blockquote>old text</blockquote></div>'
    )
    assert preview_text(body) == "Thanks, see the contract attached."


def test_plain_text_reply_lines_and_signature_are_cut() -> None:
    body = (
        "Yes, Tuesday works.\n\nOn 3 Dec 2026, at 10:00, Anna <a@x.org> wrote:\n> earlier\n"
        "-- \nBob, Sales"
    )
    assert preview_text(body) == "Yes, Tuesday works."


def test_russian_reply_header_and_outlook_original_message_are_cut() -> None:
    assert preview_text("Договорились.\n\nАнна пишет:\n> раньше") == "Договорились."
    assert preview_text("Agreed.\n-----Original Message-----\nFrom: a@x.org\nOld") == "Agreed."


def test_html_never_reaches_the_card_and_angle_brackets_stay_text() -> None:
    message = Message.model_validate(
        {
            "id": 5,
            "subject": "Hi",
            "from": "Anna <a@x.org>",
            "body": "<p>Use <b>a &lt; b</b></p><script>alert(1)</script>",
            "url": "/mail/message/5",
        }
    )
    card = card_fields(message, "corp.bitrix24.com")
    assert card["body"] == "Use a &lt; b"
    assert card["url"] == "https://corp.bitrix24.com/mail/message/5"


def test_links_are_made_absolute_only_when_they_can_be() -> None:
    assert absolute_url("https://p.example/mail/1", "h") == "https://p.example/mail/1"
    assert absolute_url("/mail/message/15", "corp.bitrix24.com") == (
        "https://corp.bitrix24.com/mail/message/15"
    )
    assert absolute_url("javascript:alert(1)", "h") is None
    assert absolute_url(None, "h") is None
