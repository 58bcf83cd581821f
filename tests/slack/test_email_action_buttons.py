"""The buttons under an e-mail: one layout, Slack's limits, values that survive the round trip."""

from __future__ import annotations

import pytest

from bot.slack import ids
from bot.slack.blocks import OPTION_VALUE_MAX
from bot.slack.render.email_actions import MORE_KINDS, ActionRef, email_action_elements
from bot.slack.wording import Texts


@pytest.mark.parametrize("portal", [None, "corp.bitrix24.com", "p" * 200])
def test_more_option_values_fit_and_decode(portal: str | None) -> None:
    for kind in MORE_KINDS:
        ref = ActionRef(kind, 123456789, portal)
        value = ref.encode()
        assert len(value) <= OPTION_VALUE_MAX
        decoded = ActionRef.decode(value)
        # A portal too long for the value is left out; the portal's own check then applies.
        assert decoded == (ref if portal != "p" * 200 else ActionRef(kind, 123456789))


@pytest.mark.parametrize("value", ["", "task", "task:0", "delete:5", "task:x", None, "chat:5:"])
def test_unreadable_more_values_are_refused(value: str | None) -> None:
    decoded = ActionRef.decode(value)
    assert decoded is None or (value == "chat:5:" and decoded == ActionRef("chat", 5))


def test_overflow_has_at_most_five_options_and_delete_is_confirmed() -> None:
    elements = email_action_elements(
        Texts("en"), message_id=5, portal="corp.bitrix24.com", url="https://x/mail/5"
    )
    by_id = {e["action_id"]: e for e in elements}
    assert 2 <= len(by_id[ids.CARD_MORE_ACTION]["options"]) <= 5
    assert {"title", "text", "confirm", "deny"} <= set(by_id[ids.CARD_DELETE_ACTION]["confirm"])
    assert by_id[ids.CARD_FORWARD_ACTION]["value"] == (
        '{"message_id":5,"portal":"corp.bitrix24.com"}'
    )
