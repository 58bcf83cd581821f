"""A Slack request's body, read defensively: a size cap enforced while reading, UTF-8 only,
and the payload keys that Bolt reads without checking them held to the types Slack sends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

__all__ = ["MAX_BODY_BYTES", "BodyRefused", "PayloadTypeError", "check_payload_types", "read_body"]

# Slack's largest payloads (a view submission with every block filled) are tens of kilobytes.
MAX_BODY_BYTES = 1024 * 1024


class BodyRefused(Exception):
    """The body is refused before anyone reads it as a payload: `status` and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PayloadTypeError(TypeError):
    """A signed payload whose key has a type Slack never sends; the message names only the key."""


async def read_body(request: Request, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (a declared
    Content-Length, or the bytes streamed so far), and with 400 when it is not UTF-8."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BodyRefused(400, "unreadable Content-Length")
        if int(declared) > limit:
            raise BodyRefused(413, "request body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            # A chunked body has no declared length: stop reading at the first byte too many.
            raise BodyRefused(413, "request body too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        # Slack sends UTF-8 only; the signature check would fail on decoding and say "401".
        raise BodyRefused(400, "request body is not UTF-8") from None
    return body


# Keys whose value Bolt reads as "a string, or an object with an `id`" when it works out who
# is asking (slack_bolt.request.internals.extract_*): anything else becomes a user named
# ['U1'] or an AttributeError deep inside Bolt.
_WHO = ("user", "team", "enterprise", "channel")
_ID_TEXT = ("id", "team_id", "name")
# Top-level ids of interactivity and event payloads (form-encoded commands are text anyway).
_TOP_TEXT = ("user_id", "team_id", "enterprise_id", "channel_id", "api_app_id", "trigger_id")
_VIEW_TEXT = (
    "id",
    "callback_id",
    "team_id",
    "app_installed_team_id",
    "private_metadata",
    "hash",
    "type",
)
_ACTION_TEXT = ("action_id", "block_id", "type")


def check_payload_types(body: Mapping[str, Any]) -> None:
    """Raise PayloadTypeError if `actions`, `view`, `user`, `team` (and kin) have a type
    Slack never sends; absent and null values are fine."""
    for key in _WHO:
        value = body.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, Mapping):
            raise PayloadTypeError(f"`{key}` is neither text nor an object")
        _texts(value, _ID_TEXT, key)
    _texts(body, _TOP_TEXT, "payload")
    if "command" in body and not (body.get("user_id") and body.get("team_id")):
        # Slack names the user and workspace on every slash command.
        raise PayloadTypeError("a command without `user_id` or `team_id`")
    # Bolt's middleware reads `body.get("event", {}).get(...)`: a present `event` is an object.
    if "event" in body and not isinstance(body["event"], Mapping):
        raise PayloadTypeError("`event` is not an object")
    view = body.get("view")
    if view is not None:
        if not isinstance(view, Mapping):
            raise PayloadTypeError("`view` is not an object")
        _texts(view, _VIEW_TEXT, "view")
        state = view.get("state")
        if state is not None and not isinstance(state, Mapping):
            raise PayloadTypeError("`view.state` is not an object")
    actions = body.get("actions")
    if actions is not None:
        if not isinstance(actions, list):
            raise PayloadTypeError("`actions` is not a list")
        for action in actions:
            if not isinstance(action, Mapping):
                raise PayloadTypeError("an entry of `actions` is not an object")
            _texts(action, _ACTION_TEXT, "actions[]")


def _texts(value: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise PayloadTypeError(f"`{where}.{key}` is not text")
