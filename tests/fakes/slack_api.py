"""A fake Slack Web API: a real HTTP server on loopback, running in a daemon thread.

Point ``slack_sdk`` clients at it with ``base_url=fake.api_url`` (the app reads
``SLACK_API_URL``) and assert the calls it received::

    with FakeSlack() as fake:
        client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
        await client.chat_postMessage(channel="C0001", text="hi")
        call = fake.wait_for("chat.postMessage")

It understands what ``slack_sdk`` sends: JSON bodies, form bodies (JSON-valued fields such
as ``blocks``/``view`` are decoded), multipart bodies and query strings; the token from
``Authorization: Bearer …`` or a ``token`` argument. Faults (429 + ``Retry-After``, 5xx,
``ok: false`` errors, outages, dropped connections, slow answers) are queued per method and
consumed in the order they were added.

OAuth: ``configure_oauth(client_id=, client_secret=)`` makes ``oauth.v2.access`` answer like Slack
for that app; ``authorize(team_id=…)`` is a user approving the install on slack.com and returns
the code the redirect carries. The code exchange (and, with ``token_rotation=True``, the
``grant_type=refresh_token`` refresh, each refresh token usable once) checks the client id and
secret (HTTP Basic or form fields) as Slack does, and registers the tokens it hands out.

Run it by hand with ``python -m tests.fakes.slack_api --port 8098``; ``GET /_fake/calls``
lists the calls received and ``POST /_fake/reset`` forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.http_server import LoopbackServer, drop_connection, read_body
from tests.fakes.slack_methods import (
    _TS_EPOCH,
    SlackMethods,
    _Channel,
    _Grant,
    _Identity,
    _Reply,
)

__all__ = [
    "Call",
    "FakeSlack",
    "ResponsePost",
]

# Form fields whose values Slack expects as JSON-encoded strings.
JSON_FIELDS = frozenset(
    {"attachments", "blocks", "metadata", "view", "unfurls", "user_auth_blocks", "chunks"}
)

RESPONSE_URL_USES = 5


@dataclass(frozen=True)
class Call:
    """One Web API request the fake received (faulted ones included)."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    status: int = 200
    ok: bool = True
    error: str | None = None
    response: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response URL (Bolt's ``respond()``)."""

    url: str
    json: dict[str, Any]
    name: str = "default"
    at: float = 0.0
    status: int = 200


@dataclass
class _Fault:
    method: str
    kind: str  # ratelimit | server_error | fail | disconnect | slow
    remaining: int | None
    status: int = 200
    error: str = ""
    retry_after: int = 1
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str) -> bool:
        return self.method in ("*", method) and (self.remaining is None or self.remaining > 0)


@dataclass
class Held:
    """A call whose answer is held back: ``taken`` is set once it took effect."""

    seconds: float
    taken: threading.Event = field(default_factory=threading.Event)
    args: dict[str, Any] = field(default_factory=dict)


class FakeSlack(SlackMethods):
    """A fake Slack Web API server. See the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "xoxb-test-token",  # noqa: S107
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "B0001",
        app_id: str = "A0001",
        team_name: str = "Acme",
        team_domain: str = "acme",
        bot_name: str = "b24mail",
        enterprise_id: str | None = None,
        strict_channels: bool = False,
        single_use_triggers: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_name = bot_name
        self.enterprise_id = enterprise_id
        self.strict_channels = strict_channels
        self.single_use_triggers = single_use_triggers
        self._lock = threading.RLock()
        self._server: LoopbackServer | None = None
        self._tokens: dict[str, _Identity] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, _Channel] = {}
        self._faults: list[_Fault] = []
        self._down = False
        self.client_id: str | None = None
        self.client_secret: str | None = None
        self.token_rotation = False
        self.token_expires_in = 43_200
        self._init_state()
        self.add_token(token)

    # ------------------------------------------------------------------ lifecycle

    def _init_state(self) -> None:
        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._external_ids: dict[str, str] = {}
        self._home_views: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._responses: list[ResponsePost] = []
        self._response_uses: dict[str, int] = {}
        self._expired_urls: set[str] = set()
        self._dms: dict[str, str] = {}
        self._codes: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, _Grant] = {}
        self._ts_seq = itertools.count(1)
        self._last_ts_micros = 0
        self._channel_members: dict[str, list[str]] = {}
        self._usergroups: dict[str, dict[str, Any]] = {}
        self._held: dict[str, Held] = {}
        self._view_seq = itertools.count(1)
        self._dm_seq = itertools.count(1)
        self._users = {
            self.bot_user_id: self._user_record(
                self.bot_user_id,
                name=self.bot_name,
                real_name=self.bot_name,
                email=None,
                locale="en-US",
                tz="Europe/Berlin",
                tz_offset=3600,
                team_id=self.team_id,
                is_bot=True,
                deleted=False,
            )
        }

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        self._server = LoopbackServer(
            (self.host, self.port),
            lambda h, _verb: self._serve(h),
            name="FakeSlack",
            poll_interval=0.05,
        ).start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None and self.port == 0:
            raise RuntimeError("FakeSlack is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ configuration

    def add_token(
        self,
        token: str,
        *,
        team_id: str | None = None,
        team_name: str | None = None,
        team_domain: str | None = None,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
        user_id: str | None = None,
        enterprise_id: str | None = None,
        is_enterprise_install: bool = False,
    ) -> None:
        """Accept another token. With ``user_id`` it is a user token (``auth.test`` gives no
        bot_id); other values default to the fake's own workspace and bot."""
        other_team = team_id is not None and team_id != self.team_id
        with self._lock:
            self._tokens[token] = _Identity(
                team_id=team_id or self.team_id,
                team_name=team_name or (f"Team {team_id}" if other_team else self.team_name),
                team_domain=team_domain
                or (str(team_id).lower() if other_team else self.team_domain),
                bot_user_id=None if user_id else (bot_user_id or self.bot_user_id),
                bot_id=None if user_id else (bot_id or self.bot_id),
                user_id=user_id,
                enterprise_id=enterprise_id if enterprise_id is not None else self.enterprise_id,
                is_enterprise_install=is_enterprise_install,
            )

    def configure_oauth(
        self,
        *,
        client_id: str,
        client_secret: str,
        token_rotation: bool = False,
        expires_in: int = 43_200,
    ) -> None:
        """Be the Slack app with these credentials for ``oauth.v2.access``. With
        ``token_rotation`` the tokens handed out expire after ``expires_in`` seconds and come
        with a refresh token (Slack: 12 hours)."""
        with self._lock:
            self.client_id = client_id
            self.client_secret = client_secret
            self.token_rotation = token_rotation
            self.token_expires_in = expires_in

    def authorize(
        self,
        *,
        team_id: str,
        team_name: str | None = None,
        user_id: str = "U0001",
        enterprise_id: str | None = None,
        scopes: Iterable[str] = ("commands",),
        redirect_uri: str | None = None,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
    ) -> str:
        """A user approved the install on slack.com: the ``code`` Slack puts on the redirect
        (single use, valid for 10 minutes)."""
        code = f"{int(time.time())}.{secrets.token_hex(6)}.{secrets.token_hex(32)}"
        with self._lock:
            self._codes[code] = _Grant(
                team_id=team_id,
                team_name=team_name or f"Team {team_id}",
                enterprise_id=enterprise_id,
                user_id=user_id,
                scopes=tuple(scopes),
                bot_user_id=bot_user_id or f"UBOT{team_id}",
                bot_id=bot_id or f"B{team_id}",
                redirect_uri=redirect_uri,
                expires_at=time.time() + 600,
            )
        return code

    def expire_token(self, token: str) -> None:
        """Calls with this token now fail with ``token_expired``."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token].expires_at = time.time() - 1

    def tokens_of_team(self, team_id: str) -> list[str]:
        """Tokens the fake accepts for ``team_id`` (newest last)."""
        with self._lock:
            return [t for t, i in self._tokens.items() if i.team_id == team_id]

    def revoke_token(self, token: str) -> None:
        """Calls with this token now fail with ``token_revoked``."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token].revoked = True
            else:
                self.add_token(token)
                self._tokens[token].revoked = True

    @staticmethod
    def _user_record(
        user_id: str,
        *,
        name: str,
        real_name: str,
        email: str | None,
        locale: str,
        tz: str,
        tz_offset: int,
        team_id: str,
        is_bot: bool,
        deleted: bool,
        is_admin: bool = False,
        is_owner: bool = False,
    ) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": name,
            "display_name_normalized": name,
            "fields": None,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g0000000000" + user_id[-1:].lower(),
            "first_name": real_name.split(" ")[0],
            "last_name": " ".join(real_name.split(" ")[1:]),
            "image_24": "https://secure.gravatar.com/avatar/0.jpg?s=24",
            "image_48": "https://secure.gravatar.com/avatar/0.jpg?s=48",
            "image_72": "https://secure.gravatar.com/avatar/0.jpg?s=72",
            "team": team_id,
        }
        if email is not None:
            profile["email"] = email
        return {
            "id": user_id,
            "team_id": team_id,
            "name": name,
            "deleted": deleted,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": tz,
            "tz_label": "Central European Time",
            "tz_offset": tz_offset,
            "profile": profile,
            "is_admin": is_admin or is_owner,  # Slack marks owners as admins too
            "is_owner": is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": _TS_EPOCH - 3600,
            "has_2fa": False,
            "_locale": locale,
        }

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        email: str | None = None,
        locale: str = "en-US",
        tz: str = "Europe/Berlin",
        tz_offset: int = 3600,
        team_id: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        is_admin: bool = False,
        is_owner: bool = False,
    ) -> None:
        """Make ``user_id`` known to users.info and conversations.open (again: replaces it).
        ``name`` defaults to the id in lower case, ``real_name`` to ``"User <id>"``;
        ``is_admin`` / ``is_owner`` make a workspace admin or owner."""
        with self._lock:
            self._users[user_id] = self._user_record(
                user_id,
                name=name or user_id.lower(),
                real_name=real_name or f"User {user_id}",
                email=email,
                locale=locale,
                tz=tz,
                tz_offset=tz_offset,
                team_id=team_id or self.team_id,
                is_bot=is_bot,
                deleted=deleted,
                is_admin=is_admin,
                is_owner=is_owner,
            )

    def add_usergroup(self, group_id: str, *, handle: str, name: str | None = None) -> None:
        """Make a user group known to usergroups.list."""
        with self._lock:
            self._usergroups[group_id] = {
                "id": group_id,
                "team_id": self.team_id,
                "handle": handle,
                "name": name or handle,
                "is_usergroup": True,
            }

    def add_channel(
        self,
        channel_id: str,
        *,
        member: bool = True,
        archived: bool = False,
        is_private: bool = False,
        name: str | None = None,
    ) -> None:
        """Register a channel (replacing an auto-created one of that id)."""
        with self._lock:
            self._channels[channel_id] = _Channel(
                id=channel_id,
                name=name or f"channel-{channel_id.lower()}",
                member=member,
                archived=archived,
                is_private=is_private or channel_id.startswith("G"),
                is_im=channel_id.startswith("D"),
            )

    def add_message(
        self,
        channel: str,
        *,
        text: str = "",
        user: str = "U0001",
        ts: str | None = None,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Seed a message written by someone else (e.g. the one a message shortcut names).
        Returns it (with its ``ts``)."""
        with self._lock:
            message: dict[str, Any] = {
                "type": "message",
                "user": user,
                "text": text,
                "ts": ts or self._next_ts(),
                "team": self.team_id,
            }
            if blocks is not None:
                message["blocks"] = copy.deepcopy(blocks)
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
            key = (channel, message["ts"])
            self._messages[key] = message
            self._history.setdefault(key, []).append(copy.deepcopy(message))
            return copy.deepcopy(message)

    # ------------------------------------------------------------------ faults

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` ("*" = any) get HTTP 429 + Retry-After."""
        self._add_fault(_Fault(method, "ratelimit", times, status=429, retry_after=retry_after))

    def server_error(self, method: str, *, times: int = 1, status: int = 500) -> None:
        """The next ``times`` calls get an HTTP ``status`` with an HTML error page."""
        self._add_fault(_Fault(method, "server_error", times, status=status))

    def fail(
        self,
        method: str,
        error: str,
        *,
        times: int | None = 1,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` calls (None = until clear_faults) get 200 ``{"ok": false,
        "error": error, **extra}``; the call has no other effect."""
        self._add_fault(_Fault(method, "fail", times, error=error, extra=dict(extra or {})))

    def disconnect(self, method: str, *, times: int = 1) -> None:
        """The next ``times`` calls: the connection is closed without any response."""
        self._add_fault(_Fault(method, "disconnect", times))

    def slow(self, method: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` calls are answered normally after ``seconds``."""
        self._add_fault(_Fault(method, "slow", times, seconds=seconds))

    def hold_response(self, method: str, seconds: float) -> Held:
        """The next call of ``method`` takes effect at once (a message is posted), but its
        answer is held back for ``seconds``: a test can kill the caller after Slack has the
        message and before the caller heard of it."""
        held = Held(seconds)
        with self._lock:
            self._held[method] = held
        return held

    def set_channel_members(self, channel_id: str, users: Iterable[str]) -> None:
        """Who is in a channel, as conversations.members answers (the bot's own membership is
        ``add_channel(member=…)``)."""
        with self._lock:
            self._channel(channel_id)
            self._channel_members[channel_id] = list(dict.fromkeys(users))

    def set_down(self, down: bool) -> None:
        """While down, every API call gets HTTP 503 (a Slack outage)."""
        with self._lock:
            self._down = down

    def expire_response_url(self, url: str) -> None:
        """POSTs to ``url`` now get 404 ``expired_url``."""
        with self._lock:
            self._expired_urls.add(url)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._down = False

    def reset(self) -> None:
        """Back to the state right after construction (the server keeps running): forget
        calls, messages, views, responses and faults, and also users, channels and tokens
        added since."""
        with self._lock:
            self.clear_faults()
            self._channels = {}
            self._init_state()
            self._tokens = {}
            self.add_token(self.token)
            self.client_id = self.client_secret = None
            self.token_rotation = False
            self.token_expires_in = 43_200

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def _find(
        self, method: str, predicate: Callable[[Call], bool], count: int
    ) -> list[Call] | None:
        with self._lock:
            found = [c for c in self._calls if c.method == method and predicate(c)]
        return found[:count] if len(found) >= count else None

    def _timeout_error(self, method: str, timeout: float, count: int = 1) -> AssertionError:
        with self._lock:
            seen = [
                f"  {c.method} status={c.status} ok={c.ok} error={c.error} args={c.args!r}"[:400]
                for c in self._calls
            ]
        listing = "\n".join(seen) if seen else "  (none)"
        what = f"{count} matching calls" if count > 1 else "a matching call"
        return AssertionError(f"no {what} to {method} within {timeout}s; calls seen:\n{listing}")

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        timeout: float = 5.0,
    ) -> Call:
        """Block until a call to ``method`` matching ``predicate`` was received (also one
        received earlier); return the first such call."""
        return self.wait_for_calls(method, 1, predicate, timeout=timeout)[0]

    def wait_for_calls(
        self,
        method: str,
        count: int,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        timeout: float = 5.0,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = self._find(method, predicate, count)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise self._timeout_error(method, timeout, count)
            time.sleep(0.01)

    async def await_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        timeout: float = 5.0,
    ) -> Call:
        """Async twin of wait_for (polls with asyncio.sleep, never blocks the loop)."""
        return (await self.await_for_calls(method, 1, predicate, timeout=timeout))[0]

    async def await_for_calls(
        self,
        method: str,
        count: int,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        timeout: float = 5.0,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = self._find(method, predicate, count)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise self._timeout_error(method, timeout, count)
            await asyncio.sleep(0.01)

    @property
    def messages(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._messages)

    def message_history(self, channel: str, ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._history.get((channel, ts), []))

    def messages_in(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Current messages of a channel (of one thread, parent included), oldest first."""
        with self._lock:
            found = [
                copy.deepcopy(m)
                for (ch, ts), m in self._messages.items()
                if ch == channel
                and (thread_ts is None or ts == thread_ts or m.get("thread_ts") == thread_ts)
            ]
        return sorted(found, key=lambda m: float(m["ts"]))

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._views)

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            view_id = self._home_views.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def response_url(self, name: str = "default") -> str:
        return f"{self.base_url}/response/{name}/{uuid.uuid4().hex}"

    @property
    def responses(self) -> list[ResponsePost]:
        with self._lock:
            return list(self._responses)

    def responses_to(self, url_or_name: str) -> list[ResponsePost]:
        with self._lock:
            return [r for r in self._responses if url_or_name in (r.url, r.name)]

    def wait_for_response(
        self,
        predicate: Callable[[ResponsePost], bool] = lambda r: True,
        *,
        timeout: float = 5.0,
    ) -> ResponsePost:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for r in self._responses:
                    if predicate(r):
                        return r
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no matching response_url POST within {timeout}s; seen: {self.responses!r}"
                )
            time.sleep(0.01)

    async def await_for_response(
        self,
        predicate: Callable[[ResponsePost], bool] = lambda r: True,
        *,
        timeout: float = 5.0,
    ) -> ResponsePost:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for r in self._responses:
                    if predicate(r):
                        return r
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no matching response_url POST within {timeout}s; seen: {self.responses!r}"
                )
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ HTTP plumbing

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        try:
            body = read_body(h)
        except (ValueError, OSError):
            self._write(h, _Reply(400, "bad request"))
            return
        parts = urlsplit(h.path)
        path = parts.path
        if path.startswith("/api/"):
            reply = self._handle_api(h, path[len("/api/") :], parts.query, body)
        elif path.startswith("/response/"):
            reply = self._handle_response_url(h, body)
        elif path == "/_fake/calls":
            reply = _Reply(body={"ok": True, "calls": [asdict(c) for c in self.calls]})
        elif path == "/_fake/reset" and h.command == "POST":
            self.reset()
            reply = _Reply(body={"ok": True})
        else:
            reply = _Reply(404, "<html><body>Not Found</body></html>")
        self._write(h, reply)

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, reply: _Reply) -> None:
        if reply.disconnect:
            drop_connection(h)
            return
        if isinstance(reply.body, dict):
            payload = json.dumps(reply.body, default=repr).encode()
            content_type = "application/json; charset=utf-8"
        else:
            payload = (reply.body or "").encode()
            content_type = "text/html; charset=utf-8"
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(payload)))
            h.send_header("X-Slack-Req-Id", secrets.token_hex(16))
            for key, value in reply.headers.items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    @staticmethod
    def _parse_args(h: BaseHTTPRequestHandler, query: str, body: bytes) -> dict[str, Any]:
        args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        ctype = h.headers.get("Content-Type", "")
        if body:
            if "application/json" in ctype:
                decoded = json.loads(body.decode("utf-8"))
                if isinstance(decoded, dict):
                    args.update(decoded)
            elif "multipart/form-data" in ctype:
                head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
                message = BytesParser(policy=HTTP).parsebytes(head + body)
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if not name:
                        continue
                    payload = part.get_payload(decode=True) or b""
                    if part.get_filename():
                        args[str(name)] = payload
                    else:
                        args[str(name)] = payload.decode("utf-8")
            else:
                args.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        for key in JSON_FIELDS & args.keys():
            value = args[key]
            if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(value)
        return args

    def _handle_api(
        self, h: BaseHTTPRequestHandler, method: str, query: str, body: bytes
    ) -> _Reply:
        at = time.time()
        headers = dict(h.headers.items())
        try:
            args = self._parse_args(h, query, body)
        except (ValueError, UnicodeDecodeError):
            reply = _Reply(body={"ok": False, "error": "invalid_form_data"})
            self._record(method, {}, None, at, headers, reply)
            return reply
        token: str | None = None
        auth = h.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[len("bearer ") :].strip() or None
        elif auth.lower().startswith("basic ") and method == "oauth.v2.access":
            # Slack's preferred way to send the app's credentials to oauth.v2.access.
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                pair = base64.b64decode(auth[len("basic ") :].strip()).decode("utf-8")
                client_id, _, client_secret = pair.partition(":")
                args.setdefault("client_id", client_id)
                args.setdefault("client_secret", client_secret)
        form_token = args.pop("token", None)
        if token is None and isinstance(form_token, str) and form_token:
            token = form_token

        delay = 0.0
        fault: _Fault | None = None
        with self._lock:
            down = self._down
            if not down:
                fault = self._take_fault(method)
                while fault is not None and fault.kind == "slow":
                    delay += fault.seconds
                    fault = self._take_fault(method)
        if delay:
            time.sleep(delay)

        held: Held | None = None
        with self._lock:
            if down:
                reply = _Reply(503, "<html><body><h1>503 Service Unavailable</h1></body></html>")
            elif fault is not None:
                reply = self._fault_reply(fault)
            else:
                reply = self._dispatch(method, args, token)
                held = self._held.pop(method, None)
            self._record(method, args, token, at, headers, reply)
        if held is not None:
            held.args = copy.deepcopy(args)
            held.taken.set()
            time.sleep(held.seconds)
        return reply

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    @staticmethod
    def _fault_reply(fault: _Fault) -> _Reply:
        if fault.kind == "ratelimit":
            return _Reply(
                429,
                {"ok": False, "error": "ratelimited"},
                headers={"Retry-After": str(fault.retry_after)},
            )
        if fault.kind == "server_error":
            return _Reply(
                fault.status,
                f"<html><body><h1>{fault.status} Server Error</h1></body></html>",
            )
        if fault.kind == "disconnect":
            return _Reply(disconnect=True)
        return _Reply(body={"ok": False, "error": fault.error, **fault.extra})

    def _record(
        self,
        method: str,
        args: dict[str, Any],
        token: str | None,
        at: float,
        headers: dict[str, str],
        reply: _Reply,
    ) -> None:
        body = reply.body if isinstance(reply.body, dict) else None
        ok = reply.status == 200 and not reply.disconnect and bool(body and body.get("ok"))
        error = None
        if body is not None and not body.get("ok"):
            error = body.get("error")
        elif reply.disconnect:
            error = "disconnected"
        elif reply.status != 200:
            error = f"http_{reply.status}"
        call = Call(
            method=method,
            args=copy.deepcopy(args),
            token=token,
            at=at,
            status=0 if reply.disconnect else reply.status,
            ok=ok,
            error=error,
            response=copy.deepcopy(body),
            headers=headers,
        )
        with self._lock:
            self._calls.append(call)

    # ------------------------------------------------------------------ response URLs

    def _handle_response_url(self, h: BaseHTTPRequestHandler, body: bytes) -> _Reply:
        url = f"{self.base_url}{urlsplit(h.path).path}"
        segments = urlsplit(h.path).path.split("/")
        name = segments[2] if len(segments) > 2 else "default"
        ctype = h.headers.get("Content-Type", "")
        try:
            if "application/json" in ctype or body.strip().startswith(b"{"):
                payload = json.loads(body.decode("utf-8") or "{}")
            else:
                form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                payload = json.loads(form.get("payload", "{}"))
        except (ValueError, UnicodeDecodeError):
            return _Reply(400, {"ok": False, "error": "invalid_payload"})
        if not isinstance(payload, dict):
            return _Reply(400, {"ok": False, "error": "invalid_payload"})
        with self._lock:
            uses = self._response_uses.get(url, 0) + 1
            self._response_uses[url] = uses
            if url in self._expired_urls:
                reply = _Reply(404, {"ok": False, "error": "expired_url"})
            elif uses > RESPONSE_URL_USES:
                reply = _Reply(404, {"ok": False, "error": "used_url"})
            elif not any(k in payload for k in ("text", "blocks", "attachments")) and not (
                payload.get("delete_original")
            ):
                reply = _Reply(400, {"ok": False, "error": "no_text"})
            else:
                reply = _Reply(200, {"ok": True})
            self._responses.append(
                ResponsePost(url=url, json=payload, name=name, at=time.time(), status=reply.status)
            )
        return reply


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Slack Web API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--token", default="xoxb-test-token")
    parser.add_argument("--team-id", default="T0001")
    parser.add_argument("--bot-user-id", default="UBOT")
    parser.add_argument("--strict-channels", action="store_true")
    opts = parser.parse_args(list(argv) if argv is not None else None)
    fake = FakeSlack(
        host=opts.host,
        port=opts.port,
        token=opts.token,
        team_id=opts.team_id,
        bot_user_id=opts.bot_user_id,
        strict_channels=opts.strict_channels,
    ).start()
    print(f"fake Slack API at {fake.api_url} (token {fake.token}); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
