"""Tests for bot.mail.addresses: recipient parsing as users type it into Slack."""

from __future__ import annotations

import time

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mail.addresses import (
    Address,
    AddressList,
    InvalidAddress,
    count_recipients,
    parse_address_list,
    parse_single_address,
    smtputf8_required,
)


def emails(result: AddressList) -> list[str]:
    return [a.email for a in result.addresses]


# --- separators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a@example.com,b@example.org",
        "a@example.com;b@example.org",
        "a@example.com b@example.org",
        "a@example.com\tb@example.org",
        "a@example.com\nb@example.org",
        "a@example.com\r\nb@example.org",
        "a@example.com , ; \n\t b@example.org",
        ",,a@example.com;;;b@example.org,,",
        "  a@example.com\u00a0b@example.org  ",
    ],
)
def test_separators(text: str) -> None:
    result = parse_address_list(text)
    assert emails(result) == ["a@example.com", "b@example.org"]
    assert result.invalid == ()


@pytest.mark.parametrize("text", [None, "", "   ", ",;, ;\n\t"])
def test_empty_input(text: str | None) -> None:
    assert parse_address_list(text) == AddressList((), ())


# --- named forms ------------------------------------------------------------------------------


def test_name_angle_form() -> None:
    result = parse_address_list("John Doe <john@example.com>")
    assert result.addresses == (Address("john@example.com", "John Doe"),)
    assert result.invalid == ()


def test_angle_only() -> None:
    assert parse_address_list("<john@example.com>").addresses == (Address("john@example.com"),)


def test_name_glued_to_angle() -> None:
    assert parse_address_list("John<john@example.com>").addresses == (
        Address("john@example.com", "John"),
    )


def test_quoted_name_with_separators() -> None:
    result = parse_address_list(
        '"Doe, John" <john@example.com>, "Roe; Jane\tQ." <jane@example.org> x@example.net'
    )
    assert result.addresses == (
        Address("john@example.com", "Doe, John"),
        Address("jane@example.org", "Roe; Jane Q."),
        Address("x@example.net"),
    )
    assert result.invalid == ()


def test_quoted_name_with_escapes() -> None:
    result = parse_address_list(r'"Say \"hi\" \\ bye" <a@example.com>')
    assert result.addresses == (Address("a@example.com", 'Say "hi" \\ bye'),)


def test_name_whitespace_collapsed_and_controls_removed() -> None:
    result = parse_address_list('"  Ann \x00\x07  Lee " <ann@example.com>')
    assert result.addresses == (Address("ann@example.com", "Ann Lee"),)


def test_empty_quoted_name_is_no_name() -> None:
    assert parse_address_list('"" <a@example.com>').addresses == (Address("a@example.com"),)


def test_several_named_in_a_row_without_commas() -> None:
    result = parse_address_list("Ann Lee <ann@example.com> Bob <bob@example.com>")
    assert result.addresses == (
        Address("ann@example.com", "Ann Lee"),
        Address("bob@example.com", "Bob"),
    )


def test_unicode_name_and_idn_domain() -> None:
    result = parse_address_list(
        "Jürgen Groß <jürgen@Bücher.Example> Zoë <zoe@xn--bcher-kva.example>"
    )
    assert result.addresses == (
        Address("jürgen@bücher.example", "Jürgen Groß"),
        Address("zoe@bücher.example", "Zoë"),
    )
    assert result.invalid == ()


def test_rtl_name() -> None:
    result = parse_address_list("שלום עליכם <shalom@example.co.il>")
    assert result.addresses == (Address("shalom@example.co.il", "שלום עליכם"),)


# --- normalisation and duplicates -------------------------------------------------------------


def test_domain_lowercased_local_part_kept() -> None:
    assert parse_address_list("John.Doe@EXAMPLE.COM").addresses == (
        Address("John.Doe@example.com"),
    )


def test_duplicates_removed_case_insensitively_first_wins() -> None:
    result = parse_address_list(
        "Ann <ann@example.com>, ANN@example.com; other@example.com ann@EXAMPLE.com"
    )
    assert result.addresses == (
        Address("ann@example.com", "Ann"),
        Address("other@example.com"),
    )


def test_idn_duplicates_in_both_spellings() -> None:
    result = parse_address_list("a@bücher.example a@xn--bcher-kva.example")
    assert emails(result) == ["a@bücher.example"]


def test_repeated_invalid_reported_once() -> None:
    assert parse_address_list("nope, nope;nope").invalid == ("nope",)


# --- Slack forms ------------------------------------------------------------------------------


def test_slack_autolinked_mailto() -> None:
    result = parse_address_list("<mailto:a@example.com|a@example.com>, <mailto:b@example.com>")
    assert emails(result) == ["a@example.com", "b@example.com"]
    assert result.invalid == ()


def test_bare_mailto_with_query_and_percent_escape() -> None:
    result = parse_address_list("mailto:a@example.com MAILTO:b%2Bx@example.com?subject=Hi")
    assert emails(result) == ["a@example.com", "b+x@example.com"]


def test_autolink_after_name_is_a_bare_address() -> None:
    # Slack links "john@x" the user typed after a name; no brackets were typed, so no name.
    result = parse_address_list("John <mailto:john@example.com|john@example.com>")
    assert result.addresses == (Address("john@example.com"),)
    assert result.invalid == ("John",)


def test_named_mailto_in_brackets_keeps_name() -> None:
    result = parse_address_list("John <mailto:john@example.com>")
    assert result.addresses == (Address("john@example.com", "John"),)


def test_slash_command_escaped_text() -> None:
    text = (
        "John Doe &lt;<mailto:john@example.com|john@example.com>&gt;, "
        "&lt;ann@example.com&gt; a&amp;b@example.com"
    )
    result = parse_address_list(text, slack_escaped=True)
    assert result.addresses == (
        Address("john@example.com", "John Doe"),
        Address("ann@example.com"),
        Address("a&b@example.com"),
    )
    assert result.invalid == ()


def test_entities_left_alone_unless_slack_escaped() -> None:
    assert parse_address_list("&lt;ann@example.com&gt;").addresses == ()


def test_slack_user_mention_is_invalid() -> None:
    assert parse_address_list("<@U123ABC>").invalid == ("<@U123ABC>",)


# --- invalid tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "invalid"),
    [
        ("john", ("john",)),
        ("john@", ("john@",)),
        ("@example.com", ("@example.com",)),
        ("a@b", ("a@b",)),
        ("a@@example.com", ("a@@example.com",)),
        ("a@localhost", ("a@localhost",)),
        ("a@site.invalid", ("a@site.invalid",)),
        ("<>", ("<>",)),
        ("John Doe", ("John Doe",)),
        ("John <not-an-email>", ("John <not-an-email>",)),
        ("John <john@example.com", ("John", "<john@example.com")),
        ('"Doe, John <j@example.com>', ('"Doe',)),
        ('Jo"hn <j@example.com>', ('Jo"hn',)),
        ('a"b"@example.com', ('a"b"@example.com',)),
        ("Doe, John <j@example.com>", ("Doe",)),
        ("  spaced@  ", ("spaced@",)),
        ("<<<<", ("<<<<",)),
        ("a@exa mple.com", ("a@exa", "mple.com")),
    ],
)
def test_invalid_tokens_reported_as_typed(text: str, invalid: tuple[str, ...]) -> None:
    assert parse_address_list(text).invalid == invalid


def test_valid_and_invalid_mixed_in_order() -> None:
    result = parse_address_list("ok@example.com, bad@, Name <also@example.org>; nope")
    assert emails(result) == ["ok@example.com", "also@example.org"]
    assert result.invalid == ("bad@", "nope")


def test_name_before_bare_address_is_invalid() -> None:
    result = parse_address_list("John john@example.com")
    assert result.addresses == (Address("john@example.com"),)
    assert result.invalid == ("John",)


def test_non_string_input_is_empty() -> None:
    assert parse_address_list(42) == AddressList((), ())  # type: ignore[arg-type]


# --- parse_single_address ---------------------------------------------------------------------


def test_single_address_ok() -> None:
    assert parse_single_address(" Ann <ann@EXAMPLE.com> ") == Address("ann@example.com", "Ann")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("nope", "nope"),
        ("", ""),
        ("   ", ""),
        ("a@example.com b@example.com", "a@example.com b@example.com"),
        ("a@example.com nope", "nope"),
        ("Ann <ann@>", "Ann <ann@>"),
    ],
)
def test_single_address_errors(text: str, value: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        parse_single_address(text)
    assert info.value.value == value
    assert isinstance(info.value, ValueError)


# --- formatted() and count_recipients ---------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (Address("a@example.com"), "a@example.com"),
        (Address("a@example.com", "Ann Lee"), "Ann Lee <a@example.com>"),
        (Address("a@example.com", "Doe, John"), '"Doe, John" <a@example.com>'),
        (Address("a@example.com", "J. Doe"), '"J. Doe" <a@example.com>'),
        (Address("a@example.com", 'Say "hi"'), '"Say \\"hi\\"" <a@example.com>'),
        (Address("a@example.com", "a\\b"), '"a\\\\b" <a@example.com>'),
        (Address("a@example.com", "<x>;@"), '"<x>;@" <a@example.com>'),
        (Address("a@example.com", "Zoë"), "Zoë <a@example.com>"),
        (Address("a@example.com", "Evil\r\nBcc: x@y.com"), '"Evil Bcc: x@y.com" <a@example.com>'),
        (Address("a@example.com", "  "), "a@example.com"),
    ],
)
def test_formatted(address: Address, expected: str) -> None:
    assert address.formatted() == expected


def test_count_recipients_unique_across_lists() -> None:
    to = parse_address_list("a@example.com, b@example.com")
    cc = parse_address_list("A@example.com c@example.com")
    bcc = parse_address_list("C@EXAMPLE.com, d@example.com bad@")
    assert count_recipients(to, cc, bcc) == 4
    assert count_recipients() == 0


def test_address_is_frozen() -> None:
    address = Address("a@example.com")
    with pytest.raises(AttributeError):
        address.email = "b@example.com"  # type: ignore[misc]


# --- performance ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '"\\' * 20_000,
        "<" * 50_000,
        "< " * 20_000,
        '<"' * 20_000,
        'a<"b,' * 10_000,
        " ".join(["John"] * 20_000) + " <a@example.com>",
    ],
)
def test_pathological_input_is_fast(text: str) -> None:
    # CPU time of this process, not the wall clock: other work on a busy machine is not counted.
    start = time.process_time()
    parse_address_list(text)
    assert time.process_time() - start < 2


def test_many_addresses() -> None:
    text = ", ".join(f"user{i}@example.com" for i in range(2000))
    assert len(parse_address_list(text).addresses) == 2000


# --- properties -------------------------------------------------------------------------------

FRAGMENTS = [
    "a@example.com",
    "B@Example.ORG",
    "jürgen@bücher.example",
    "x@xn--bcher-kva.example",
    "mailto:",
    "<",
    ">",
    '"',
    "\\",
    ",",
    ";",
    " ",
    "\t",
    "\n",
    "|",
    "@",
    "&lt;",
    "&gt;",
    "&amp;",
    "John",
    "Doe",
    "<mailto:a@example.com|a@example.com>",
    "\x00",
    "\u200b",
    "שלום",
]
address_soup = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=25).map("".join)
any_text = st.text() | address_soup


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(any_text, st.booleans())
def test_never_raises_and_results_are_consistent(text: str, slack_escaped: bool) -> None:
    result = parse_address_list(text, slack_escaped=slack_escaped)
    keys = [a.email.casefold() for a in result.addresses]
    assert len(keys) == len(set(keys))
    assert len(result.invalid) == len(set(result.invalid))
    for token in result.invalid:
        assert token
        assert token == token.strip()
    for address in result.addresses:
        # Every returned address re-parses to itself, bare and formatted.
        assert parse_single_address(address.email) == Address(address.email)
        assert parse_single_address(address.formatted()) == address
        if address.name is not None:
            assert address.name == " ".join(address.name.split())
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in address.name)


def _is_valid(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


valid_emails = st.sampled_from(
    ["a@example.com", "First.Last+tag@Sub.Example.org", "ü@bücher.example", "o'hara@x.io"]
) | st.emails().filter(_is_valid)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_emails, st.text())
def test_quoted_names_round_trip(email: str, name: str) -> None:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    if "\n" in name or "\r" in name:
        return  # a quoted string may not span lines
    address = parse_single_address(f'"{escaped}" <{email}>')
    canonical = " ".join(
        "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c for c in name).split()
    )
    assert address.name == (canonical or None)
    assert parse_single_address(address.formatted()) == address


@settings(max_examples=200)
@given(st.lists(valid_emails, min_size=1, max_size=8), st.sampled_from([",", ";", " ", "\n", ", "]))
def test_joined_lists_parse_back(addresses: list[str], separator: str) -> None:
    result = parse_address_list(separator.join(addresses))
    assert result.invalid == ()
    expected: list[str] = []
    for email in addresses:
        normalized = validate_email(email, check_deliverability=False).normalized
        if normalized.casefold() not in {e.casefold() for e in expected}:
            expected.append(normalized)
    assert emails(result) == expected
    assert count_recipients(result) == len(expected)


def test_bidi_controls_and_zero_width_characters_leave_display_names() -> None:
    """A name that would read backwards or hide a character is sent as it reads."""
    parsed = parse_address_list('"\u202eAnna\u202c Tr\u200bust\u2066" <anna@x.example>')
    assert [a.formatted() for a in parsed.addresses] == ["Anna Trust <anna@x.example>"]


def test_only_a_non_ascii_local_part_needs_smtputf8() -> None:
    """иван@… needs SMTPUTF8; an international domain travels as punycode and does not."""
    assert smtputf8_required("иван@example.com")
    assert not smtputf8_required("ivan@пример.рф")
    assert not smtputf8_required("ivan@example.com")
