"""The pure rules of replying: the Re: subject, the prefill, the id and the body excerpt."""

from __future__ import annotations

from typing import Any

import pytest

from bot.bitrix24 import Message
from bot.mail.replying import (
    build_reply_draft,
    default_sender_email,
    excerpt,
    html_to_text,
    parse_message_id,
    reply_all_cc,
    reply_subject,
)

SENDERS = [
    {
        "email": "alice@corp.example",
        "name": "Alice Smith",
        "sender": "Alice Smith <alice@corp.example>",
    },
    {"email": "sales@corp.example", "name": "Sales", "sender": "Sales <sales@corp.example>"},
]


def original(**fields: Any) -> Message:
    data: dict[str, Any] = {
        "id": 42,
        "subject": "Quarterly report",
        "from": "Bob Client <bob@client.example>",
        "to": "sales@corp.example",
        "cc": "",
        "mailboxEmail": "sales@corp.example",
    }
    data.update(fields)
    return Message.model_validate(data)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Quarterly report", "Re: Quarterly report"),
        ("Re: Quarterly report", "Re: Quarterly report"),
        ("RE: Quarterly report", "Re: Quarterly report"),
        ("re:Quarterly report", "Re: Quarterly report"),
        ("Re : Quarterly report", "Re: Quarterly report"),
        ("Re[2]: Quarterly report", "Re: Quarterly report"),
        ("Re(3): Quarterly report", "Re: Quarterly report"),
        ("Re: RE: Re[4]: Quarterly report", "Re: Quarterly report"),
        ("  Re:   Quarterly report  ", "Re: Quarterly report"),
        ("Fwd: Quarterly report", "Re: Fwd: Quarterly report"),
        ("Regarding the report", "Re: Regarding the report"),
        ("Report: Re: numbers", "Re: Report: Re: numbers"),
        ("", "Re:"),
        ("Re:", "Re:"),
    ],
)
def test_reply_subject_is_never_doubled(subject: str, expected: str) -> None:
    """Any run of reply prefixes, in any spelling, becomes one `Re: `; other words stay."""
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        (42, 42),
        ("0", None),
        ("-3", None),
        ("4.2", None),
        ("abc", None),
        ("search", None),
        (None, None),
        (True, None),
        ("", None),
        ("1" * 19, None),
        (0, None),
    ],
)
def test_parse_message_id_accepts_only_positive_integers(
    value: object, expected: int | None
) -> None:
    """Only a positive whole number is a Bitrix24 e-mail id."""
    assert parse_message_id(value) == expected


def test_draft_answers_the_sender_with_re_subject_from_the_receiving_mailbox() -> None:
    """To = the sender, Subject = Re:, From = the mailbox that received it, no Cc."""
    draft = build_reply_draft(
        original(cc="Carol <carol@client.example>"), senders=SENDERS, reply_all=False
    )
    assert draft.to == "Bob Client <bob@client.example>"
    assert draft.cc == ""
    assert draft.subject == "Re: Quarterly report"
    assert draft.sender_email == "sales@corp.example"


def test_reply_all_copies_the_others_but_never_the_user() -> None:
    """Cc = the original's Cc and other recipients, without the user's own addresses or To."""
    message = original(
        to="sales@corp.example, Dave <dave@partner.example>",
        cc="Carol <carol@client.example>, alice@corp.example, bob@client.example",
    )
    draft = build_reply_draft(message, senders=SENDERS, reply_all=True)
    assert draft.to == "Bob Client <bob@client.example>"
    assert draft.cc == "Dave <dave@partner.example>, Carol <carol@client.example>"
    assert reply_all_cc(message, senders=SENDERS) == draft.cc


def test_reply_all_is_not_offered_when_nobody_else_received_it() -> None:
    """An e-mail to the user alone has nobody to add with reply all."""
    assert reply_all_cc(original(), senders=SENDERS) == ""


def test_answering_ones_own_sent_email_goes_to_its_recipients() -> None:
    """A reply to an e-mail the user sent goes to whom it was sent, not back to the user."""
    sent = original(
        **{"from": "Alice Smith <alice@corp.example>", "to": "Bob <bob@client.example>"},
        mailboxEmail="alice@corp.example",
    )
    draft = build_reply_draft(sent, senders=SENDERS)
    assert draft.to == "Bob <bob@client.example>"
    assert draft.sender_email == "alice@corp.example"


def test_unreadable_sender_stays_in_to_for_the_user_to_fix() -> None:
    """A From the address parser cannot read is kept as written, not silently dropped."""
    draft = build_reply_draft(original(**{"from": "undisclosed-recipients"}), senders=SENDERS)
    assert draft.to == "undisclosed-recipients"


@pytest.mark.parametrize(
    ("preferred", "last", "expected"),
    [
        ("SALES@corp.example", None, "sales@corp.example"),
        ("shared@corp.example", "Sales <sales@corp.example>", "sales@corp.example"),
        ("shared@corp.example", None, "alice@corp.example"),
        (None, "Gone <gone@corp.example>", "alice@corp.example"),
    ],
)
def test_sender_is_the_receiving_mailbox_else_the_last_used_else_the_first(
    preferred: str | None, last: str | None, expected: str
) -> None:
    """From prefers the mailbox that received the e-mail, when the user may send from it."""
    assert default_sender_email(SENDERS, preferred=preferred, last_sender=last) == expected


def test_no_senders_means_no_default_sender() -> None:
    assert default_sender_email([], preferred="a@b.example") is None


def test_html_body_becomes_readable_lines() -> None:
    """Block tags break lines, entities are decoded, scripts and styles are dropped."""
    html = (
        "<html><head><style>p{color:red}</style><title>x</title></head><body>"
        "<p>Hello&nbsp;Alice,</p><p>the <b>numbers</b> &amp; the plan:</p>"
        "<ul><li>one</li><li>two</li></ul>line<br>break<br/>again"
        "<script>alert(1)</script></body></html>"
    )
    assert html_to_text(html) == (
        "Hello Alice,\n\nthe numbers & the plan:\n\none\ntwo\nline\nbreak\nagain"
    )


def test_plain_text_body_keeps_its_lines() -> None:
    assert html_to_text("Hi\n\n\n\nthere  you") == "Hi\n\nthere you"
    assert html_to_text(None) == ""


def test_excerpt_cuts_lines_and_characters_with_an_ellipsis() -> None:
    """The card shows the start of the e-mail and marks that there is more."""
    text = "\n".join(f"line {i}" for i in range(10))
    assert excerpt(text, max_lines=3) == "line 0\nline 1\nline 2…"
    assert excerpt("x" * 50, max_chars=10) == "x" * 9 + "…"
    assert excerpt("short") == "short"
    assert excerpt("a\n\nb\n\nc\n\nd", max_lines=3) == "a\n\nb\n\nc…"
