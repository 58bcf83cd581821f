"""The Slack Web API methods the fake answers, each as Slack documents it.

``SlackMethods`` is the part of ``FakeSlack`` (``tests/fakes/slack_api.py``) that turns one
authenticated call into its answer; the state it reads and writes (tokens, channels, messages,
views) and the HTTP plumbing live in ``FakeSlack``.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tests.fakes.block_kit import (
    MESSAGE_BLOCKS_LIMIT,
    MESSAGE_TEXT_LIMIT,
    block_errors,
    view_errors,
)

_TS_EPOCH = 1_700_000_000


@dataclass
class _Identity:
    team_id: str
    team_name: str
    team_domain: str
    bot_user_id: str | None
    bot_id: str | None
    user_id: str | None
    enterprise_id: str | None
    is_enterprise_install: bool
    revoked: bool = False
    expires_at: float | None = None  # rotating tokens expire


@dataclass
class _Grant:
    """What an approved install (a code) or a refresh token stands for."""

    team_id: str
    team_name: str
    enterprise_id: str | None
    user_id: str
    scopes: tuple[str, ...]
    bot_user_id: str
    bot_id: str
    redirect_uri: str | None = None
    expires_at: float = 0.0


@dataclass
class _Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    user: str | None = None
    created: int = _TS_EPOCH - 86_400


@dataclass
class _Reply:
    status: int = 200
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    disconnect: bool = False


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _alnum(length: int) -> str:
    """Random letters and digits, the alphabet of Slack's token secrets."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _page(args: dict[str, Any], *, default: int, maximum: int) -> tuple[int, int]:
    """(offset, limit) from Slack's cursor and limit arguments."""
    raw_limit = args.get("limit")
    try:
        limit = int(raw_limit) if raw_limit not in (None, "") else default
    except (TypeError, ValueError):
        raise _ApiError("invalid_limit") from None
    limit = max(1, min(limit or default, maximum))
    cursor = args.get("cursor")
    if not cursor:
        return 0, limit
    try:
        offset = int(base64.b64decode(str(cursor).encode(), validate=True).decode().split(":")[1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise _ApiError("invalid_cursor") from None
    return offset, limit


def _next_cursor(offset: int, limit: int, total: int) -> str:
    if offset + limit >= total:
        return ""
    return base64.b64encode(f"offset:{offset + limit}".encode()).decode()


def _ts_arg(args: dict[str, Any], name: str) -> float | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _ApiError(f"invalid_ts_{name}") from None


class SlackMethods:
    """Dispatches a Web API call to its method and answers it like Slack."""

    def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> _Reply:
        handler = self._METHODS.get(method)
        if handler is None:
            return _Reply(body={"ok": False, "error": "unknown_method", "req_method": method})
        try:
            if method == "api.test":
                return _Reply(body=handler(self, args, None))
            if method == "oauth.v2.access":  # the app's credentials, not a token
                return _Reply(body={"ok": True, **handler(self, args, None)})
            if token is None:
                raise _ApiError("not_authed")
            identity = self._tokens.get(token)
            if identity is None:
                raise _ApiError("invalid_auth")
            if identity.revoked:
                raise _ApiError("token_revoked")
            if identity.expires_at is not None and identity.expires_at <= time.time():
                raise _ApiError("token_expired")
            result = handler(self, args, identity)
        except _ApiError as exc:
            return _Reply(body={"ok": False, "error": exc.error, **exc.extra})
        return _Reply(body={"ok": True, **result})

    def _next_ts(self) -> str:
        # Slack's ts is the time the message was posted (conversations.history's oldest and
        # latest compare with it); unique and increasing, as Slack's are within a channel.
        micros = max(int(time.time() * 1_000_000), self._last_ts_micros + 100)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _arg(args: dict[str, Any], name: str) -> str | None:
        value = args.get(name)
        if value is None or value == "":
            return None
        return str(value)

    def _user_dm(self, user_id: str) -> _Channel:
        channel_id = self._dms.get(user_id)
        if channel_id is None or channel_id not in self._channels:
            channel_id = f"D{next(self._dm_seq):08d}"
            self._dms[user_id] = channel_id
            self._channels[channel_id] = _Channel(
                id=channel_id, name=user_id, is_im=True, is_private=True, user=user_id
            )
        return self._channels[channel_id]

    def _channel(self, channel_id: str | None) -> _Channel:
        if not channel_id:
            raise _ApiError("channel_not_found")
        channel = self._channels.get(channel_id)
        if channel is not None:
            return channel
        if channel_id[0] in "UW" and channel_id in self._users:
            return self._user_dm(channel_id)
        name = channel_id.lstrip("#")
        for candidate in self._channels.values():
            if candidate.name == name and not candidate.is_im:
                return candidate
        if (
            not self.strict_channels
            and channel_id[0] in "CGD"
            and len(channel_id) > 1
            and channel_id.isalnum()
            and channel_id.upper() == channel_id
        ):
            channel = _Channel(
                id=channel_id,
                name=f"channel-{channel_id.lower()}",
                is_private=channel_id[0] in "GD",
                is_im=channel_id[0] == "D",
            )
            self._channels[channel_id] = channel
            return channel
        raise _ApiError("channel_not_found")

    def _writable_channel(self, channel_id: str | None) -> _Channel:
        channel = self._channel(channel_id)
        if channel.archived:
            raise _ApiError("is_archived")
        if not channel.member and not channel.is_im:
            raise _ApiError("not_in_channel")
        return channel

    @staticmethod
    def _blocks_of(args: dict[str, Any]) -> list[Any] | None:
        blocks = args.get("blocks")
        if blocks is None or blocks == "":
            return None
        if not isinstance(blocks, list):
            raise _ApiError("invalid_blocks_format")
        return blocks

    @staticmethod
    def _check_message_content(
        text: str | None, blocks: list[Any] | None, args: dict[str, Any]
    ) -> None:
        if not text and not blocks and not args.get("attachments"):
            raise _ApiError("no_text")
        if text is not None and len(text) > MESSAGE_TEXT_LIMIT:
            raise _ApiError("msg_too_long")
        if blocks is not None:
            errors = block_errors(blocks, "/blocks", limit=MESSAGE_BLOCKS_LIMIT)
            if errors:
                raise _ApiError("invalid_blocks", response_metadata={"messages": errors})

    @staticmethod
    def _metadata_of(args: dict[str, Any]) -> dict[str, Any] | None:
        metadata = args.get("metadata")
        if metadata is None or metadata == "":
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise _ApiError("invalid_metadata_format")
        return metadata

    def _bot_message(self, identity: _Identity, text: str, ts: str) -> dict[str, Any]:
        return {
            "user": identity.bot_user_id or identity.user_id,
            "type": "message",
            "ts": ts,
            "bot_id": identity.bot_id,
            "app_id": self.app_id,
            "text": text,
            "team": identity.team_id,
            "bot_profile": {
                "id": identity.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": identity.team_id,
            },
        }

    # --- api / auth / team

    def _api_test(self, args: dict[str, Any], identity: _Identity | None) -> dict[str, Any]:
        if args.get("error"):
            raise _ApiError(str(args["error"]), args=args)
        return {"args": args}

    def _oauth_v2_access(self, args: dict[str, Any], identity: _Identity | None) -> dict[str, Any]:
        client_id = self._arg(args, "client_id")
        if self.client_id is None or client_id != self.client_id:
            raise _ApiError("invalid_client_id")
        secret = self._arg(args, "client_secret") or ""
        if not hmac.compare_digest(secret.encode(), (self.client_secret or "").encode()):
            raise _ApiError("bad_client_secret")
        grant_type = self._arg(args, "grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            refresh = self._arg(args, "refresh_token")
            grant = self._refresh_tokens.pop(refresh or "", None)
            if grant is None:
                raise _ApiError("invalid_refresh_token")
            return self._grant_tokens(grant, refreshed=True)
        if grant_type != "authorization_code":
            raise _ApiError("invalid_grant_type")
        code = self._arg(args, "code")
        grant = self._codes.pop(code or "", None)
        if grant is None or grant.expires_at < time.time():
            raise _ApiError("invalid_code")
        if grant.redirect_uri is not None and self._arg(args, "redirect_uri") != grant.redirect_uri:
            raise _ApiError("bad_redirect_uri")
        return self._grant_tokens(grant, refreshed=False)

    def _grant_tokens(self, grant: _Grant, *, refreshed: bool) -> dict[str, Any]:
        if self.token_rotation:
            token = f"xoxe.xoxb-1-{_alnum(128)}"  # rotating tokens are long
        else:
            token = f"xoxb-{grant.team_id}-{secrets.token_hex(6)}-{_alnum(24)}"
        self.add_token(
            token,
            team_id=grant.team_id,
            team_name=grant.team_name,
            bot_user_id=grant.bot_user_id,
            bot_id=grant.bot_id,
            enterprise_id=grant.enterprise_id,
        )
        result: dict[str, Any] = {
            "app_id": self.app_id,
            "scope": ",".join(grant.scopes),
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": grant.bot_user_id,
            "team": {"id": grant.team_id, "name": grant.team_name},
            "enterprise": (
                {"id": grant.enterprise_id, "name": f"Enterprise {grant.enterprise_id}"}
                if grant.enterprise_id
                else None
            ),
            "is_enterprise_install": False,
        }
        if not refreshed:
            result["authed_user"] = {"id": grant.user_id}
        if self.token_rotation:
            refresh = f"xoxe-1-{_alnum(128)}"
            self._refresh_tokens[refresh] = grant
            self._tokens[token].expires_at = time.time() + self.token_expires_in
            result["refresh_token"] = refresh
            result["expires_in"] = self.token_expires_in
        return result

    def _auth_test(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        result: dict[str, Any] = {
            "url": f"https://{identity.team_domain}.slack.com/",
            "team": identity.team_name,
            "user": self.bot_name if identity.bot_id else str(identity.user_id).lower(),
            "team_id": identity.team_id,
            "user_id": identity.bot_user_id or identity.user_id,
        }
        if identity.bot_id:
            result["bot_id"] = identity.bot_id
        if identity.enterprise_id:
            result["enterprise_id"] = identity.enterprise_id
        result["is_enterprise_install"] = identity.is_enterprise_install
        return result

    def _team_info(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        team_id = self._arg(args, "team") or identity.team_id
        if team_id != identity.team_id:
            other = next((i for i in self._tokens.values() if i.team_id == team_id), None)
            if other is None:
                raise _ApiError("team_not_found")
            identity = other
        team: dict[str, Any] = {
            "id": identity.team_id,
            "name": identity.team_name,
            "url": f"https://{identity.team_domain}.slack.com/",
            "domain": identity.team_domain,
            "email_domain": "",
            "icon": {
                "image_default": True,
                "image_34": "https://a.slack-edge.com/dfc0/img/avatars-teams/ava_0001-34.png",
                "image_44": "https://a.slack-edge.com/dfc0/img/avatars-teams/ava_0001-44.png",
            },
            "avatar_base_url": "https://ca.slack-edge.com/",
            "is_verified": False,
        }
        if identity.enterprise_id:
            team["enterprise_id"] = identity.enterprise_id
            team["enterprise_name"] = f"Enterprise {identity.enterprise_id}"
        return {"team": team}

    # --- chat

    def _chat_post_message(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        channel = self._writable_channel(self._arg(args, "channel"))
        text = args.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_of(args)
        self._check_message_content(text, blocks, args)
        metadata = self._metadata_of(args)
        ts = self._next_ts()
        message = self._bot_message(identity, text or "", ts)
        if blocks is not None:
            message["blocks"] = copy.deepcopy(blocks)
        if args.get("attachments"):
            message["attachments"] = copy.deepcopy(args["attachments"])
        thread_ts = self._arg(args, "thread_ts")
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = self._messages.get((channel.id, thread_ts), {}).get(
                "user", identity.bot_user_id
            )
            if _truthy(args.get("reply_broadcast", False)):
                message["subtype"] = "thread_broadcast"
        if metadata is not None:
            message["metadata"] = copy.deepcopy(metadata)
        key = (channel.id, ts)
        self._messages[key] = message
        self._history[key] = [copy.deepcopy(message)]
        return {"channel": channel.id, "ts": ts, "message": copy.deepcopy(message)}

    def _existing_message(
        self, args: dict[str, Any], ts_arg: str
    ) -> tuple[_Channel, dict[str, Any]]:
        channel = self._channel(self._arg(args, "channel"))
        ts = self._arg(args, ts_arg)
        message = self._messages.get((channel.id, ts or ""))
        if message is None:
            raise _ApiError("message_not_found")
        return channel, message

    def _chat_update(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        channel, message = self._existing_message(args, "ts")
        if message.get("bot_id") is None or message.get("bot_id") != identity.bot_id:
            raise _ApiError("cant_update_message")
        if channel.archived:
            raise _ApiError("is_archived")
        text = args.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_of(args)
        self._check_message_content(text, blocks, args)
        metadata = self._metadata_of(args)
        message["text"] = text or ""
        if blocks is not None:
            message["blocks"] = copy.deepcopy(blocks)
        elif "blocks" in args:
            message.pop("blocks", None)
        if args.get("attachments"):
            message["attachments"] = copy.deepcopy(args["attachments"])
        if metadata is not None:
            message["metadata"] = copy.deepcopy(metadata)
        message["edited"] = {"user": identity.bot_user_id, "ts": self._next_ts()}
        self._history[(channel.id, message["ts"])].append(copy.deepcopy(message))
        result_message = {k: copy.deepcopy(v) for k, v in message.items() if k != "ts"}
        return {
            "channel": channel.id,
            "ts": message["ts"],
            "text": message["text"],
            "message": result_message,
        }

    def _chat_delete(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        channel, message = self._existing_message(args, "ts")
        if message.get("bot_id") is None or message.get("bot_id") != identity.bot_id:
            raise _ApiError("cant_delete_message")
        del self._messages[(channel.id, message["ts"])]
        return {"channel": channel.id, "ts": message["ts"]}

    def _chat_post_ephemeral(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        channel = self._writable_channel(self._arg(args, "channel"))
        user = self._arg(args, "user")
        if user is None:
            raise _ApiError("user_not_found")
        text = args.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_of(args)
        self._check_message_content(text, blocks, args)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel.id,
                "user": user,
                "text": text or "",
                "blocks": copy.deepcopy(blocks),
                "thread_ts": self._arg(args, "thread_ts"),
                "message_ts": ts,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        channel = self._channel(self._arg(args, "channel"))
        ts = self._arg(args, "message_ts")
        if ts is None:
            raise _ApiError("message_not_found")
        link = (
            f"https://{identity.team_domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        )
        message = self._messages.get((channel.id, ts))
        if message is not None and message.get("thread_ts") not in (None, ts):
            link += f"?thread_ts={message['thread_ts']}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    # --- conversations / users

    def _channel_object(self, channel: _Channel, *, include_locale: bool) -> dict[str, Any]:
        if channel.is_im:
            obj: dict[str, Any] = {
                "id": channel.id,
                "created": channel.created,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "updated": channel.created * 1000,
                "user": channel.user or "",
                "is_user_deleted": bool(
                    channel.user and self._users.get(channel.user, {}).get("deleted")
                ),
                "priority": 0,
            }
        else:
            obj = {
                "id": channel.id,
                "name": channel.name,
                "is_channel": not channel.is_private and not channel.is_mpim,
                "is_group": channel.is_private and not channel.is_mpim,
                "is_im": False,
                "is_mpim": channel.is_mpim,
                "is_private": channel.is_private,
                "created": channel.created,
                "is_archived": channel.archived,
                "is_general": False,
                "unlinked": 0,
                "name_normalized": channel.name,
                "is_shared": False,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "pending_shared": [],
                "context_team_id": self.team_id,
                "updated": channel.created * 1000,
                "parent_conversation": None,
                "creator": "U0000",
                "is_ext_shared": False,
                "shared_team_ids": [self.team_id],
                "pending_connected_team_ids": [],
                "is_member": channel.member,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
                "previous_names": [],
            }
        if include_locale:
            obj["locale"] = "en-US"
        return obj

    def _conversations_info(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        channel = self._channel(self._arg(args, "channel"))
        include_locale = _truthy(args.get("include_locale", False))
        return {"channel": self._channel_object(channel, include_locale=include_locale)}

    def _conversations_open(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        users_arg = args.get("users")
        channel_arg = self._arg(args, "channel")
        if isinstance(users_arg, list):
            users = [str(u) for u in users_arg]
        else:
            users = [u.strip() for u in str(users_arg or "").split(",") if u.strip()]
        if not users and channel_arg is None:
            raise _ApiError("users_list_not_supplied")
        if channel_arg is not None:
            channel = self._channel(channel_arg)
            already = True
        else:
            if len(users) > 8:
                raise _ApiError("too_many_users")
            for user_id in users:
                record = self._users.get(user_id)
                if record is None:
                    raise _ApiError("user_not_found")
                if record["deleted"]:
                    raise _ApiError("user_disabled")
                if record["is_bot"] and len(users) == 1:
                    raise _ApiError("cannot_dm_bot")
            if len(users) == 1:
                already = users[0] in self._dms and self._dms[users[0]] in self._channels
                channel = self._user_dm(users[0])
            else:
                key = ",".join(sorted(users))
                already = key in self._dms and self._dms[key] in self._channels
                if not already:
                    channel_id = f"G{next(self._dm_seq):08d}"
                    self._dms[key] = channel_id
                    self._channels[channel_id] = _Channel(
                        id=channel_id,
                        name=f"mpdm-{'--'.join(u.lower() for u in users)}-1",
                        is_private=True,
                        is_mpim=True,
                    )
                channel = self._channels[self._dms[key]]
        result: dict[str, Any] = {}
        if already:
            result.update({"no_op": True, "already_open": True})
        if _truthy(args.get("return_im", False)):
            result["channel"] = self._channel_object(channel, include_locale=False)
        else:
            result["channel"] = {"id": channel.id}
        return result

    def _usergroups_list(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        """The workspace's user groups (FakeSlack.add_usergroup): id, handle, name."""
        return {"usergroups": [copy.deepcopy(g) for g in self._usergroups.values()]}

    def _users_info(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        user_id = self._arg(args, "user")
        record = self._users.get(user_id or "")
        if record is None:
            raise _ApiError("user_not_found")
        user = {k: copy.deepcopy(v) for k, v in record.items() if k != "_locale"}
        if _truthy(args.get("include_locale", False)):
            user["locale"] = record["_locale"]
        return {"user": user}

    # --- views

    def _consume_trigger(self, args: dict[str, Any]) -> str:
        trigger = self._arg(args, "trigger_id") or self._arg(args, "interactivity_pointer")
        if trigger is None:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: trigger_id"]},
            )
        if trigger.startswith("expired"):
            raise _ApiError("expired_trigger_id")
        if trigger.startswith("invalid"):
            raise _ApiError("invalid_trigger_id")
        if self.single_use_triggers and trigger in self._used_triggers:
            raise _ApiError("exchanged_trigger_id")
        return trigger

    def _view_arg(self, args: dict[str, Any], expected_type: str | None) -> dict[str, Any]:
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                view = None
        if not isinstance(view, dict):
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: view"]},
            )
        if len(json.dumps(view)) > 250_000:
            raise _ApiError("view_too_large")
        errors = view_errors(view, expected_type=expected_type)
        if errors:
            raise _ApiError("invalid_arguments", response_metadata={"messages": errors})
        return view

    def _build_view(
        self,
        submitted: dict[str, Any],
        identity: _Identity,
        *,
        view_id: str,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": view_id,
            "team_id": identity.team_id,
            "type": submitted.get("type", "modal"),
            "blocks": copy.deepcopy(submitted.get("blocks", [])),
            "private_metadata": submitted.get("private_metadata", ""),
            "callback_id": submitted.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(submitted.get("clear_on_close", False)),
            "notify_on_close": bool(submitted.get("notify_on_close", False)),
            "root_view_id": root_view_id or view_id,
            "previous_view_id": previous_view_id,
            "app_id": self.app_id,
            "external_id": submitted.get("external_id", ""),
            "app_installed_team_id": identity.team_id,
            "bot_id": identity.bot_id,
        }
        if view["type"] == "modal":
            view["title"] = copy.deepcopy(submitted.get("title"))
            view["close"] = copy.deepcopy(submitted.get("close"))
            view["submit"] = copy.deepcopy(submitted.get("submit"))
        return view

    def _store_new_view(self, view: dict[str, Any]) -> None:
        external_id = view.get("external_id")
        if external_id:
            if external_id in self._external_ids:
                raise _ApiError("duplicate_external_id")
            self._external_ids[external_id] = view["id"]
        self._views[view["id"]] = view

    def _new_view_id(self) -> str:
        return f"V{next(self._view_seq):08d}"

    def _views_open(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        trigger = self._consume_trigger(args)
        submitted = self._view_arg(args, "modal")
        view = self._build_view(submitted, identity, view_id=self._new_view_id())
        self._store_new_view(view)
        self._used_triggers.add(trigger)
        return {"view": copy.deepcopy(view), "response_metadata": {"messages": []}}

    def _views_push(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        return self._views_open(args, identity)

    def _views_update(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        view_id = self._arg(args, "view_id")
        external_id = self._arg(args, "external_id")
        if view_id is None and external_id is None:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] either view_id or external_id required"]},
            )
        if view_id is None:
            view_id = self._external_ids.get(external_id or "")
        current = self._views.get(view_id or "")
        if current is None:
            raise _ApiError("not_found")
        expected = self._arg(args, "hash")
        if expected is not None and expected != current["hash"]:
            raise _ApiError("hash_conflict")
        submitted = self._view_arg(args, current["type"])
        new_external = submitted.get("external_id") or current.get("external_id", "")
        if new_external and new_external != current.get("external_id"):
            if new_external in self._external_ids:
                raise _ApiError("duplicate_external_id")
            self._external_ids[new_external] = current["id"]
        view = self._build_view(
            {**submitted, "external_id": new_external},
            identity,
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous_view_id=current["previous_view_id"],
        )
        self._views[view["id"]] = view
        return {"view": copy.deepcopy(view), "response_metadata": {"messages": []}}

    def _views_publish(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        user_id = self._arg(args, "user_id")
        if user_id is None:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: user_id"]},
            )
        submitted = self._view_arg(args, "home")
        existing_id = self._home_views.get(user_id)
        current = self._views.get(existing_id or "")
        expected = self._arg(args, "hash")
        if current is not None and expected is not None and expected != current["hash"]:
            raise _ApiError("hash_conflict")
        view_id = existing_id or self._new_view_id()
        view = self._build_view(submitted, identity, view_id=view_id)
        self._views[view_id] = view
        self._home_views[user_id] = view_id
        return {"view": copy.deepcopy(view)}

    # --- conversations.history / conversations.members

    def _readable_channel(self, channel_id: str | None) -> _Channel:
        """A channel whose contents the bot may read: it must be in it (Slack answers
        not_in_channel for a public channel it is not in; a private one it cannot even see)."""
        channel = self._channel(channel_id)
        if not channel.member and not channel.is_im:
            raise _ApiError("channel_not_found" if channel.is_private else "not_in_channel")
        return channel

    def _conversations_history(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        """The channel's top-level messages (and thread broadcasts), newest first; `oldest` and
        `latest` are exclusive unless `inclusive`; metadata only with include_all_metadata."""
        channel = self._readable_channel(self._arg(args, "channel"))
        oldest = _ts_arg(args, "oldest")
        latest = _ts_arg(args, "latest")
        inclusive = _truthy(args.get("inclusive", False))
        with_metadata = _truthy(args.get("include_all_metadata", False))

        def within(ts: float) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return not (latest is not None and (ts > latest or (ts == latest and not inclusive)))

        found = [
            message
            for (channel_id, ts), message in self._messages.items()
            if channel_id == channel.id
            and within(float(ts))
            and (
                message.get("thread_ts") in (None, ts)
                or message.get("subtype") == "thread_broadcast"
            )
        ]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        offset, limit = _page(args, default=100, maximum=999)
        shown = []
        for message in found[offset : offset + limit]:
            copied = copy.deepcopy(message)
            if not with_metadata:
                copied.pop("metadata", None)
            shown.append(copied)
        cursor = _next_cursor(offset, limit, len(found))
        return {
            "messages": shown,
            "has_more": bool(cursor),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_replies(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        """A thread: its parent and replies, oldest first; `oldest`/`latest` exclusive unless
        `inclusive`; metadata only with include_all_metadata (like conversations.history)."""
        channel = self._readable_channel(self._arg(args, "channel"))
        parent = self._arg(args, "ts")
        if parent is None:
            raise _ApiError("invalid_arguments")
        if (channel.id, parent) not in self._messages:
            raise _ApiError("thread_not_found")
        oldest = _ts_arg(args, "oldest")
        latest = _ts_arg(args, "latest")
        inclusive = _truthy(args.get("inclusive", False))
        with_metadata = _truthy(args.get("include_all_metadata", False))

        def within(ts: float) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return not (latest is not None and (ts > latest or (ts == latest and not inclusive)))

        found = [
            message
            for (channel_id, ts), message in self._messages.items()
            if channel_id == channel.id
            and (ts == parent or message.get("thread_ts") == parent)
            and within(float(ts))
        ]
        found.sort(key=lambda m: float(m["ts"]))
        offset, limit = _page(args, default=100, maximum=999)
        shown = []
        for message in found[offset : offset + limit]:
            copied = copy.deepcopy(message)
            if not with_metadata:
                copied.pop("metadata", None)
            shown.append(copied)
        cursor = _next_cursor(offset, limit, len(found))
        return {
            "messages": shown,
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_members(self, args: dict[str, Any], identity: _Identity) -> dict[str, Any]:
        """User ids in the channel (set with FakeSlack.set_channel_members), with a cursor."""
        channel = self._readable_channel(self._arg(args, "channel"))
        members = list(self._channel_members.get(channel.id, []))
        if channel.is_im and channel.user:
            members = [channel.user, identity.bot_user_id or ""]
        if channel.member and identity.bot_user_id and identity.bot_user_id not in members:
            members.append(identity.bot_user_id)
        offset, limit = _page(args, default=100, maximum=1000)
        return {
            "members": members[offset : offset + limit],
            "response_metadata": {"next_cursor": _next_cursor(offset, limit, len(members))},
        }

    _METHODS: ClassVar[dict[str, Callable[[SlackMethods, dict[str, Any], Any], dict[str, Any]]]] = {
        "api.test": _api_test,
        "auth.test": _auth_test,
        "oauth.v2.access": _oauth_v2_access,
        "team.info": _team_info,
        "chat.postMessage": _chat_post_message,
        "chat.update": _chat_update,
        "chat.delete": _chat_delete,
        "chat.postEphemeral": _chat_post_ephemeral,
        "chat.getPermalink": _chat_get_permalink,
        "conversations.info": _conversations_info,
        "conversations.open": _conversations_open,
        "conversations.history": _conversations_history,
        "conversations.replies": _conversations_replies,
        "conversations.members": _conversations_members,
        "users.info": _users_info,
        "usergroups.list": _usergroups_list,
        "views.open": _views_open,
        "views.push": _views_push,
        "views.update": _views_update,
        "views.publish": _views_publish,
    }
