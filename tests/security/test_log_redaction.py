"""The log formatter's last line of defence masks a webhook code however the URL was encoded."""

from __future__ import annotations

import json
import logging
import sys
from urllib.parse import quote, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.logs import RedactingFormatter

# At least one letter, so a code cannot be mistaken for the user id that stays in the line.
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
codes = st.text(alphabet=ALNUM, min_size=7, max_size=63).map(lambda c: "k" + c)
user_ids = st.integers(1, 10**12)


def _spellings(url: str) -> list[str]:
    """How a webhook URL turns up in a log line: as pasted, in a form body, in JSON."""
    return [
        url,
        url.upper().replace("HTTPS", "https"),
        quote(url, safe=""),
        quote(url, safe="").lower(),
        urlencode({"payload": json.dumps({"value": url})}),
        json.dumps(url).replace("/", "\\/"),
        repr(url.encode()),
    ]


@settings(max_examples=100)
@given(codes, user_ids, st.booleans(), st.sampled_from(["", "mail.message.send", "profile.json"]))
def test_no_spelling_of_a_webhook_url_survives_formatting(
    code: str, user_id: int, v3: bool, method: str
) -> None:
    """Plain, percent-encoded, form-encoded, JSON-escaped or bytes: the code never shows."""
    url = f"https://portal.example.com/rest/{'api/' if v3 else ''}{user_id}/{code}/{method}"
    formatter = RedactingFormatter("%(message)s")
    for spelling in _spellings(url):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "body: %s", (spelling,), None)
        try:
            raise ValueError(f"while posting {spelling}")
        except ValueError:
            record.exc_info = sys.exc_info()
        line = formatter.format(record)
        assert code not in line, spelling
        assert str(user_id) in line  # the rest of the line is kept


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from(list("restauhoknxpRESTAUHOKNXP /:?=&-_0123ſKİı\u212a")),
        max_size=40,
    )
)
def test_the_fast_secret_check_agrees_with_the_pattern(text: str) -> None:
    """The ASCII shortcut finds a word exactly when the case-insensitive pattern does."""
    from bot.bitrix24.redaction import _MAY_HOLD_SECRET, _may_hold_secret

    assert _may_hold_secret(text) == (_MAY_HOLD_SECRET.search(text) is not None)
    assert _may_hold_secret(text.upper()) == (_MAY_HOLD_SECRET.search(text.upper()) is not None)


def test_a_webhook_code_behind_a_non_ascii_spelling_is_still_masked() -> None:
    """`ſ` folds to `s` under the patterns' IGNORECASE: such a line takes the regex path."""
    from bot.bitrix24.redaction import redact

    assert "k1secretcode" not in redact("https://p.example/reſt/1/k1secretcode/profile")
