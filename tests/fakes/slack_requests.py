"""Signed Slack requests, built the way Slack sends them (and the way Bolt tests itself).

Shapes follow Slack's payload references and the fixtures in bolt-python's test suite.
Typical use with an ASGI/HTTP client or ``AsyncBoltRequest``::

    body = slash_command_body(text="to@example.com", response_url=fake.response_url())
    headers = sign(body, signing_secret=SECRET)

    payload = view_submission(callback_id="compose", values={"to": {"to": email_input("a@b.c")}})
    body = interactive_body(payload)
    headers = sign(body, signing_secret=SECRET)

Builders never invent URLs that point at the real Slack: pass ``fake.response_url()``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "app_uninstalled",
    "block_actions",
    "block_suggestion",
    "email_input",
    "event_callback",
    "global_shortcut",
    "interactive_body",
    "message_action",
    "modal_view",
    "multi_users_select",
    "new_trigger_id",
    "rich_text_input",
    "sign",
    "slash_command_body",
    "static_select",
    "text_input",
    "tokens_revoked",
    "url_verification",
    "view_closed",
    "view_submission",
]

API_APP_ID = "A0001"
BOT_ID = "B0001"
VERIFICATION_TOKEN = "verification-token"

_seq = itertools.count(1)


def sign(body: bytes | str, *, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds: ``X-Slack-Request-Timestamp`` and
    ``X-Slack-Signature = v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`` plus Content-Type
    (JSON for Events API bodies, form-encoded otherwise)."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + raw
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    content_type = (
        "application/json" if raw.lstrip().startswith(b"{") else "application/x-www-form-urlencoded"
    )
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


def new_trigger_id() -> str:
    """A fresh trigger id shaped like Slack's ("13345224609.738474920.8088930838d88f00…")."""
    n = next(_seq)
    return f"{10_000_000_000 + n}.{secrets.randbelow(10**9):09d}.{secrets.token_hex(16)}"


def _action_ts() -> str:
    return f"{time.time():.6f}"


def _view_id() -> str:
    return f"V{secrets.token_hex(5).upper()}"


def _view_hash() -> str:
    return f"{int(time.time())}.{secrets.token_hex(4)}"


def _team(team_id: str, team_domain: str, enterprise_id: str | None) -> dict[str, Any]:
    team: dict[str, Any] = {"id": team_id, "domain": team_domain}
    if enterprise_id is not None:
        team["enterprise_id"] = enterprise_id
        team["enterprise_name"] = f"Enterprise {enterprise_id}"
    return team


def _user(user_id: str, team_id: str, user_name: str | None) -> dict[str, Any]:
    name = user_name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _enterprise(enterprise_id: str | None) -> dict[str, Any] | None:
    if enterprise_id is None:
        return None
    return {"id": enterprise_id, "name": f"Enterprise {enterprise_id}"}


def _channel_name(channel_id: str) -> str:
    if channel_id.startswith("D"):
        return "directmessage"
    if channel_id.startswith("G"):
        return "privategroup"
    return f"channel-{channel_id.lower()}"


# ---------------------------------------------------------------------- slash commands


def slash_command_body(
    *,
    text: str = "",
    user_id: str = "U0001",
    team_id: str = "T0001",
    channel_id: str = "C0001",
    command: str = "/b24mail",
    response_url: str,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    user_name: str = "alice",
    team_domain: str = "acme",
    channel_name: str | None = None,
    api_app_id: str = API_APP_ID,
    is_enterprise_install: bool = False,
    token: str = VERIFICATION_TOKEN,
) -> str:
    """A slash command request body (form-encoded, fields in the order Slack sends them).
    ``trigger_id`` defaults to a fresh one."""
    fields: list[tuple[str, str]] = [
        ("token", token),
        ("team_id", team_id),
        ("team_domain", team_domain),
    ]
    if enterprise_id is not None:
        fields += [
            ("enterprise_id", enterprise_id),
            ("enterprise_name", f"Enterprise {enterprise_id}"),
        ]
    fields += [
        ("channel_id", channel_id),
        ("channel_name", channel_name or _channel_name(channel_id)),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", command),
        ("text", text),
        ("api_app_id", api_app_id),
        ("is_enterprise_install", "true" if is_enterprise_install else "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id or new_trigger_id()),
    ]
    return urlencode(fields)


# ---------------------------------------------------------------------- interactivity


def interactive_body(payload: dict[str, Any]) -> str:
    """``payload=<url-encoded JSON>``, as Slack posts interactivity requests."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def text_input(value: str | None, *, type: str = "plain_text_input") -> dict[str, Any]:
    """State value of a text input (``value`` None = left empty)."""
    return {"type": type, "value": value}


def email_input(value: str | None) -> dict[str, Any]:
    return {"type": "email_text_input", "value": value}


def static_select(value: str | None, text: str | None = None) -> dict[str, Any]:
    option = None
    if value is not None:
        option = {
            "text": {"type": "plain_text", "text": text or value, "emoji": True},
            "value": value,
        }
    return {"type": "static_select", "selected_option": option}


def multi_users_select(user_ids: list[str]) -> dict[str, Any]:
    return {"type": "multi_users_select", "selected_users": list(user_ids)}


def rich_text_input(text: str) -> dict[str, Any]:
    """State value of a rich_text_input holding plain paragraphs (one section per line)."""
    elements = [
        {"type": "rich_text_section", "elements": [{"type": "text", "text": line + "\n"}]}
        for line in text.split("\n")
    ]
    if elements:
        last = elements[-1]["elements"][0]
        last["text"] = last["text"].rstrip("\n")
    return {
        "type": "rich_text_input",
        "rich_text_value": {"type": "rich_text", "elements": elements},
    }


def modal_view(
    *,
    callback_id: str = "",
    blocks: list[dict[str, Any]] | None = None,
    private_metadata: str = "",
    values: dict[str, Any] | None = None,
    team_id: str = "T0001",
    view_id: str | None = None,
    view_hash: str | None = None,
    title: str = "b24mail",
    submit: str | None = "Send",
    close: str | None = "Cancel",
    external_id: str = "",
    root_view_id: str | None = None,
    previous_view_id: str | None = None,
    api_app_id: str = API_APP_ID,
    bot_id: str = BOT_ID,
) -> dict[str, Any]:
    """A modal view object as Slack puts it into interaction payloads."""
    vid = view_id or _view_id()
    return {
        "id": vid,
        "team_id": team_id,
        "type": "modal",
        "blocks": list(blocks or []),
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": dict(values or {})},
        "hash": view_hash or _view_hash(),
        "title": {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None if close is None else {"type": "plain_text", "text": close, "emoji": True},
        "submit": None if submit is None else {"type": "plain_text", "text": submit, "emoji": True},
        "previous_view_id": previous_view_id,
        "root_view_id": root_view_id or vid,
        "app_id": api_app_id,
        "external_id": external_id,
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }


def _view_from(
    from_view: dict[str, Any] | None,
    *,
    callback_id: str | None,
    values: dict[str, Any],
    private_metadata: str | None,
    team_id: str,
    view_id: str | None,
    view_hash: str | None,
    blocks: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    if from_view is not None:
        view = json.loads(json.dumps(from_view))
        view.setdefault("team_id", team_id)
        view.setdefault("type", "modal")
        if callback_id is not None:
            view["callback_id"] = callback_id
        if private_metadata is not None:
            view["private_metadata"] = private_metadata
        if view_id is not None:
            view["id"] = view_id
        if view_hash is not None:
            view["hash"] = view_hash
        if blocks is not None:
            view["blocks"] = blocks
        view["state"] = {"values": values}
        view.setdefault("root_view_id", view.get("id"))
        view.setdefault("previous_view_id", None)
        return view
    if callback_id is None:
        raise ValueError("callback_id is required unless from_view is given")
    return modal_view(
        callback_id=callback_id,
        blocks=blocks,
        private_metadata=private_metadata or "",
        values=values,
        team_id=team_id,
        view_id=view_id,
        view_hash=view_hash,
    )


def view_submission(
    *,
    callback_id: str | None = None,
    values: dict[str, Any],
    private_metadata: str | None = None,
    user_id: str = "U0001",
    team_id: str = "T0001",
    view_id: str | None = None,
    view_hash: str | None = None,
    enterprise_id: str | None = None,
    blocks: list[dict[str, Any]] | None = None,
    from_view: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    user_name: str | None = None,
    team_domain: str = "acme",
    api_app_id: str = API_APP_ID,
    response_urls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``view_submission`` payload. ``values`` is ``view.state.values``:
    ``{block_id: {action_id: {"type": ..., "value": ...}}}`` (see text_input() & co.).
    ``from_view`` (e.g. ``fake.views[view_id]``) supplies id, hash, blocks, callback_id and
    private_metadata of a view the app really opened. No channel, no response_url: like
    Slack's."""
    view = _view_from(
        from_view,
        callback_id=callback_id,
        values=values,
        private_metadata=private_metadata,
        team_id=team_id,
        view_id=view_id,
        view_hash=view_hash,
        blocks=blocks,
    )
    return {
        "type": "view_submission",
        "team": _team(team_id, team_domain, enterprise_id),
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": view,
        "response_urls": list(response_urls or []),
        "is_enterprise_install": False,
        "enterprise": _enterprise(enterprise_id),
    }


def view_closed(
    *,
    callback_id: str | None = None,
    user_id: str = "U0001",
    team_id: str = "T0001",
    from_view: dict[str, Any] | None = None,
    private_metadata: str | None = None,
    is_cleared: bool = False,
    team_domain: str = "acme",
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``view_closed`` payload (sent only for views with notify_on_close); like Slack's, its
    view carries the state the user left (``values``)."""
    view = _view_from(
        from_view,
        callback_id=callback_id,
        values=dict(values or {}),
        private_metadata=private_metadata,
        team_id=team_id,
        view_id=None,
        view_hash=None,
        blocks=None,
    )
    return {
        "type": "view_closed",
        "team": _team(team_id, team_domain, None),
        "user": _user(user_id, team_id, None),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "view": view,
        "is_cleared": is_cleared,
        "is_enterprise_install": False,
        "enterprise": None,
    }


def block_actions(
    *,
    action_id: str,
    value: str | None = None,
    block_id: str = "b",
    user_id: str = "U0001",
    team_id: str = "T0001",
    channel_id: str = "C0001",
    message: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    selected_option: dict[str, Any] | None = None,
    action_type: str | None = None,
    text: str = "Button",
    enterprise_id: str | None = None,
    user_name: str | None = None,
    team_domain: str = "acme",
    api_app_id: str = API_APP_ID,
) -> dict[str, Any]:
    """A ``block_actions`` payload for one action.

    In a view (``view=``): container ``{"type": "view", "view_id"}``, the view, no channel.
    On a message (``message=``, e.g. ``fake.messages[(channel, ts)]``): container
    ``{"type": "message", "message_ts", "channel_id", "is_ephemeral": false}``, channel,
    message and ``response_url`` (only when given). With neither, an ephemeral message
    container (Slack sends no ``message`` for ephemeral ones)."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type or ("static_select" if selected_option is not None else "button"),
        "action_ts": _action_ts(),
    }
    if action["type"] == "button":
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
    if value is not None:
        action["value"] = value
    if selected_option is not None:
        action["selected_option"] = selected_option
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
    }
    if view is not None:
        payload["container"] = container or {"type": "view", "view_id": view.get("id")}
    elif message is not None:
        payload["container"] = container or {
            "type": "message",
            "message_ts": message.get("ts"),
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
    else:
        payload["container"] = container or {
            "type": "message",
            "message_ts": _action_ts(),
            "channel_id": channel_id,
            "is_ephemeral": True,
        }
    payload["trigger_id"] = trigger_id or new_trigger_id()
    payload["team"] = _team(team_id, team_domain, enterprise_id)
    payload["enterprise"] = _enterprise(enterprise_id)
    payload["is_enterprise_install"] = False
    if view is not None:
        payload["view"] = view
    else:
        payload["channel"] = {"id": channel_id, "name": _channel_name(channel_id)}
        if message is not None:
            payload["message"] = {"type": "message", **message}
        payload["state"] = {"values": {}}
    if response_url is not None:
        payload["response_url"] = response_url
    payload["actions"] = [action]
    return payload


def message_action(
    *,
    callback_id: str,
    message: dict[str, Any],
    channel_id: str = "C0001",
    user_id: str = "U0001",
    team_id: str = "T0001",
    response_url: str,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    user_name: str | None = None,
    team_domain: str = "acme",
    channel_name: str | None = None,
) -> dict[str, Any]:
    """A message shortcut (``message_action``) payload on ``message`` (needs its ``ts``;
    ``thread_ts`` if it is a thread reply)."""
    msg = {"type": "message", **message}
    if "ts" not in msg:
        raise ValueError("message needs a ts")
    return {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": _team(team_id, team_domain, enterprise_id),
        "user": _user(user_id, team_id, user_name),
        "channel": {"id": channel_id, "name": channel_name or _channel_name(channel_id)},
        "is_enterprise_install": False,
        "enterprise": _enterprise(enterprise_id),
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
        "response_url": response_url,
        "message_ts": msg["ts"],
        "message": msg,
    }


def global_shortcut(
    *,
    callback_id: str,
    user_id: str = "U0001",
    team_id: str = "T0001",
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    user_name: str | None = None,
    team_domain: str = "acme",
) -> dict[str, Any]:
    """A global shortcut (``shortcut``) payload: no channel, no response_url."""
    return {
        "type": "shortcut",
        "token": VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": _team(team_id, team_domain, enterprise_id),
        "user": _user(user_id, team_id, user_name),
        "is_enterprise_install": False,
        "enterprise": _enterprise(enterprise_id),
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
    }


def block_suggestion(
    *,
    action_id: str,
    value: str,
    block_id: str = "b",
    user_id: str = "U0001",
    team_id: str = "T0001",
    view: dict[str, Any] | None = None,
    enterprise_id: str | None = None,
    user_name: str | None = None,
    team_domain: str = "acme",
    api_app_id: str = API_APP_ID,
) -> dict[str, Any]:
    """A ``block_suggestion`` (external_select options request) payload from a modal
    (``view`` defaults to an empty one)."""
    the_view = view if view is not None else modal_view(team_id=team_id)
    return {
        "type": "block_suggestion",
        "user": _user(user_id, team_id, user_name),
        "container": {"type": "view", "view_id": the_view.get("id")},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": _team(team_id, team_domain, enterprise_id),
        "enterprise": _enterprise(enterprise_id),
        "is_enterprise_install": False,
        "view": the_view,
    }


# ---------------------------------------------------------------------- Events API


def event_callback(
    event: dict[str, Any],
    *,
    team_id: str = "T0001",
    event_id: str | None = None,
    enterprise_id: str | None = None,
    bot_user_id: str = "UBOT",
    api_app_id: str = API_APP_ID,
) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope (send it JSON-encoded)."""
    now = int(time.time())
    envelope: dict[str, Any] = {"token": VERIFICATION_TOKEN, "team_id": team_id}
    if enterprise_id is not None:
        envelope["enterprise_id"] = enterprise_id
    return {
        **envelope,
        "api_app_id": api_app_id,
        "event": {"event_ts": f"{now}.{secrets.randbelow(10**6):06d}", **event},
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_urlsafe(24)}",
    }


def app_uninstalled(*, team_id: str = "T0001", event_id: str | None = None) -> dict[str, Any]:
    return event_callback({"type": "app_uninstalled"}, team_id=team_id, event_id=event_id)


def tokens_revoked(
    *,
    bot: list[str] | None = None,
    oauth: list[str] | None = None,
    team_id: str = "T0001",
    event_id: str | None = None,
) -> dict[str, Any]:
    tokens: dict[str, list[str]] = {}
    if oauth:
        tokens["oauth"] = list(oauth)
    if bot:
        tokens["bot"] = list(bot)
    return event_callback(
        {"type": "tokens_revoked", "tokens": tokens}, team_id=team_id, event_id=event_id
    )


def url_verification(
    challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
) -> dict[str, Any]:
    return {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
