"""Post a Slack message once, even when the process dies between posting it and recording it.

chat.postMessage has no idempotency key. A worker killed after Slack accepted the message and
before its ts reached the database would post the message again on recovery. The caller closes
that window in three steps:

1. record the intent (a row in state "pending" with a `token` unique to that message) *before*
   posting, and remember the destination's channel id (a DM's D… id, not the user's U… id: the
   history is read by channel);
2. post with `post_once(…, maybe_posted=False)`: the token travels in the message metadata;
3. recover a pending row with `post_once(…, maybe_posted=True)`: the destination's history is
   searched for a message whose metadata carries the token (conversations.history with
   include_all_metadata; needs channels:history, groups:history, im:history), and only if
   there is none is the message posted.

Only top-level messages are searched (conversations.history does not list thread replies), so
`thread_ts` is not offered. `since` bounds the search: no message with this token can be older
than the intent, so pass the time the row was recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

TOKEN_KEY = "post_token"  # noqa: S105 - a metadata key, not a secret
HISTORY_PAGE = 200
# Slack's clock and ours may disagree a little; search from a bit before the intent.
CLOCK_SKEW = timedelta(minutes=2)
# A search never reads more than this many pages (a very busy channel): the token's message is
# near the start of the window, and a bounded search keeps recovery bounded.
MAX_PAGES = 20
# Errors after which the history cannot be read now or later without a change by a person.
HISTORY_ERRORS = frozenset(
    {"not_in_channel", "channel_not_found", "missing_scope", "not_allowed_token_type"}
)


@dataclass(frozen=True)
class Posted:
    """Where the message is; `reused` when it was found in the history, not posted now."""

    channel: str
    ts: str
    reused: bool = False


class HistoryUnreadable(Exception):
    """The destination's history cannot be searched, so whether the message exists is unknown."""

    def __init__(self, error: str) -> None:
        super().__init__(f"history unreadable: {error}")
        self.error = error


def with_token(
    metadata: Mapping[str, Any] | None, *, token: str, event_type: str
) -> dict[str, Any]:
    """The message metadata with the token added to its payload (the event type is kept)."""
    payload = dict((metadata or {}).get("event_payload") or {})
    payload[TOKEN_KEY] = token
    return {
        "event_type": (metadata or {}).get("event_type") or event_type,
        "event_payload": payload,
    }


def token_of(message: Mapping[str, Any]) -> str | None:
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    payload = metadata.get("event_payload")
    if not isinstance(payload, Mapping):
        return None
    token = payload.get(TOKEN_KEY)
    return token if isinstance(token, str) else None


async def find_posted(
    client: AsyncWebClient, *, channel: str, token: str, since: datetime | None
) -> str | None:
    """The ts of the message in `channel` carrying `token`, searched back to `since`.

    Raises HistoryUnreadable when Slack will not show the history (the bot left the channel, a
    missing scope); other Slack errors propagate (429, outages: try again later).
    """
    oldest = f"{(since - CLOCK_SKEW).timestamp():.6f}" if since is not None else None
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        args: dict[str, Any] = {
            "channel": channel,
            "include_all_metadata": True,
            "limit": HISTORY_PAGE,
        }
        if oldest is not None:
            args["oldest"] = oldest
        if cursor:
            args["cursor"] = cursor
        try:
            response = await client.conversations_history(**args)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in HISTORY_ERRORS:
                raise HistoryUnreadable(error) from exc
            raise
        messages: Sequence[Mapping[str, Any]] = response.get("messages") or []
        for message in messages:
            if token_of(message) == token:
                return str(message["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not response.get("has_more") or not cursor:
            return None
    log.warning("history search in channel=%s stopped after %d pages", channel, MAX_PAGES)
    return None


async def post_once(
    client: AsyncWebClient,
    *,
    channel: str,
    token: str,
    event_type: str,
    text: str,
    blocks: Sequence[dict[str, Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    maybe_posted: bool,
    since: datetime | None = None,
    unfurl: bool = False,
) -> Posted:
    """Post the message unless `maybe_posted` and the history already shows it.

    A history that cannot be read (HistoryUnreadable) propagates: posting blindly could post
    twice, so the caller decides (usually: tell the owner, keep the row pending).
    """
    if maybe_posted:
        found = await find_posted(client, channel=channel, token=token, since=since)
        if found is not None:
            log.info("message token=%s was already in channel=%s; not posted again", token, channel)
            return Posted(channel=channel, ts=found, reused=True)
    response = await client.chat_postMessage(
        channel=channel,
        text=text,
        blocks=list(blocks) if blocks is not None else None,
        metadata=with_token(metadata, token=token, event_type=event_type),
        unfurl_links=unfurl,
        unfurl_media=unfurl,
    )
    return Posted(channel=str(response["channel"]), ts=str(response["ts"]))
