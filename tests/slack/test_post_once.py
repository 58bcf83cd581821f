"""post_once: a message posted before a crash is found by its token instead of posted again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.post_once import HistoryUnreadable, find_posted, post_once, token_of
from bot.store.base import utcnow
from tests.fakes.slack_api import FakeSlack

EVENT = "b24mail_test"


def _client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.api_url)


async def test_first_post_carries_the_token_in_metadata(slack: FakeSlack) -> None:
    """The token rides in the metadata payload, next to the caller's own payload."""
    posted = await post_once(
        _client(slack),
        channel="C0100",
        token="tok-1",
        event_type=EVENT,
        text="hello",
        metadata={"event_type": "custom", "event_payload": {"message_id": 7}},
        maybe_posted=False,
    )
    message = slack.messages[("C0100", posted.ts)]
    assert message["metadata"] == {
        "event_type": "custom",
        "event_payload": {"message_id": 7, "post_token": "tok-1"},
    }
    assert token_of(message) == "tok-1" and not posted.reused


async def test_recovery_reuses_the_message_already_posted(slack: FakeSlack) -> None:
    """A crash after chat.postMessage: recovery finds the message and posts nothing."""
    client = _client(slack)
    started = utcnow()
    first = await post_once(
        client, channel="C0100", token="tok-2", event_type=EVENT, text="a", maybe_posted=False
    )
    for n in range(250):  # more than one history page of other messages after it
        slack.add_message("C0100", text=f"chatter {n}")
    again = await post_once(
        client,
        channel="C0100",
        token="tok-2",
        event_type=EVENT,
        text="a",
        maybe_posted=True,
        since=started,
    )
    assert again.reused and again.ts == first.ts
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.calls_to("conversations.history")) == 2


async def test_recovery_posts_when_the_message_never_arrived(slack: FakeSlack) -> None:
    """A crash before chat.postMessage: nothing carries the token, so it is posted now."""
    client = _client(slack)
    await post_once(
        client, channel="C0100", token="other", event_type=EVENT, text="x", maybe_posted=False
    )
    posted = await post_once(
        client,
        channel="C0100",
        token="tok-3",
        event_type=EVENT,
        text="b",
        maybe_posted=True,
        since=utcnow() - timedelta(minutes=1),
    )
    assert not posted.reused
    assert len(slack.calls_to("chat.postMessage")) == 2


async def test_history_the_bot_cannot_read_is_reported_not_guessed(slack: FakeSlack) -> None:
    """Posting blindly could post twice: an unreadable history raises instead."""
    slack.add_channel("C0200", member=False)
    slack.add_channel("G0200", member=False, is_private=True)
    client = _client(slack)
    with pytest.raises(HistoryUnreadable) as public:
        await find_posted(client, channel="C0200", token="t", since=None)
    with pytest.raises(HistoryUnreadable) as private:
        await find_posted(client, channel="G0200", token="t", since=None)
    assert public.value.error == "not_in_channel"
    assert private.value.error == "channel_not_found"


async def test_fake_history_hides_metadata_unless_asked_and_bounds_by_oldest(
    slack: FakeSlack,
) -> None:
    """conversations.history as Slack documents it: newest first, oldest exclusive."""
    client = _client(slack)
    a = await client.chat_postMessage(
        channel="C0300", text="a", metadata={"event_type": "e", "event_payload": {"k": 1}}
    )
    b = await client.chat_postMessage(channel="C0300", text="b")
    plain = await client.conversations_history(channel="C0300")
    assert [m["ts"] for m in plain["messages"]] == [b["ts"], a["ts"]]
    assert all("metadata" not in m for m in plain["messages"])
    newer = await client.conversations_history(
        channel="C0300", oldest=a["ts"], include_all_metadata=True
    )
    assert [m["ts"] for m in newer["messages"]] == [b["ts"]]
    both = await client.conversations_history(
        channel="C0300", oldest=a["ts"], inclusive=True, include_all_metadata=True
    )
    assert both["messages"][1]["metadata"]["event_payload"] == {"k": 1}
