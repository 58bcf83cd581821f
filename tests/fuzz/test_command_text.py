"""Fuzzing `/b24mail` text parsing: it never raises and always names a known subcommand."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.command_text import ALIASES, MAX_TEXT, SUBCOMMANDS, parse_command_text

WORDS = sorted(SUBCOMMANDS | set(ALIASES))
whitespace = st.text(alphabet=" \t\n\r\u00a0\u2003\u3000", min_size=1, max_size=4)
anything = (
    st.none()
    | st.text()
    | st.tuples(st.text(min_size=1, max_size=8), st.integers(MAX_TEXT // 8, MAX_TEXT)).map(
        lambda pair: pair[0] * pair[1]
    )
)


@settings(max_examples=300)
@given(anything)
def test_any_text_parses_to_a_known_name(text: str | None) -> None:
    """No input raises; the name is a subcommand or "unknown", and the parts stay bounded."""
    parsed = parse_command_text(text)
    assert parsed.name in SUBCOMMANDS | {"unknown"}
    assert parsed.argument == parsed.argument.strip()
    assert len(parsed.argument) <= MAX_TEXT
    if parsed.name == "unknown":
        assert len(parsed.raw_name) <= 40
        assert parsed.raw_name and "@" not in parsed.raw_name


@settings(max_examples=200)
@given(
    st.sampled_from(WORDS),
    st.sampled_from([str.lower, str.upper, str.title]),
    whitespace,
    whitespace,
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
)
def test_every_subcommand_is_found_whatever_its_case_and_spacing(
    word: str, case: Callable[[str], str], before: str, between: str, argument: str
) -> None:
    """`  SEND\\t a@b` is `send` with `a@b`; aliases map to their subcommand."""
    parsed = parse_command_text(f"{before}{case(word)}{between}{argument}")
    assert parsed.name == ALIASES.get(word, word)
    assert parsed.argument == argument.strip()
