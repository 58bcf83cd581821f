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
import hmac
import itertools
import json
import secrets
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "Call",
    "FakeSlack",
    "ResponsePost",
]

# Form fields whose values Slack expects as JSON-encoded strings.
JSON_FIELDS = frozenset(
    {"attachments", "blocks", "metadata", "view", "unfurls", "user_auth_blocks", "chunks"}
)

MESSAGE_TEXT_LIMIT = 40_000
MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100
PRIVATE_METADATA_LIMIT = 3000
VIEW_TEXT_LIMIT = 24
RESPONSE_URL_USES = 5

_TS_EPOCH = 1_700_000_000


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


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        text = obj.get("text")
        return text if isinstance(text, str) else ""
    return obj if isinstance(obj, str) else ""


def _too_long(limit: int, pointer: str) -> str:
    return f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _too_many(limit: int, pointer: str) -> str:
    return f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]"


def _element_errors(element: Any, pointer: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"[ERROR] must be an object [json-pointer:{pointer}]"]
    errors: list[str] = []
    etype = element.get("type")
    action_id = element.get("action_id")
    if isinstance(action_id, str) and len(action_id) > 255:
        errors.append(_too_long(255, f"{pointer}/action_id"))
    if etype == "button":
        if len(_text_of(element.get("text"))) > 75:
            errors.append(_too_long(75, f"{pointer}/text/text"))
        value = element.get("value")
        if isinstance(value, str) and len(value) > 2000:
            errors.append(_too_long(2000, f"{pointer}/value"))
    if etype in {"plain_text_input", "email_text_input", "url_text_input"}:
        for key in ("max_length", "min_length"):
            value = element.get(key)
            if isinstance(value, int) and value > 3000:
                errors.append(
                    f"[ERROR] must be less than or equal to 3000 [json-pointer:{pointer}/{key}]"
                )
        initial = element.get("initial_value")
        if isinstance(initial, str) and len(initial) > 3000:
            errors.append(_too_long(3000, f"{pointer}/initial_value"))
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > 100:
            errors.append(_too_many(100, f"{pointer}/options"))
        errors.extend(_options_errors(options, f"{pointer}/options"))
    groups = element.get("option_groups")
    if isinstance(groups, list):
        for gi, group in enumerate(groups):
            if isinstance(group, dict) and isinstance(group.get("options"), list):
                gp = f"{pointer}/option_groups/{gi}/options"
                errors.extend(_options_errors(group["options"], gp))
    return errors


def _options_errors(options: list[Any], pointer: str) -> list[str]:
    errors: list[str] = []
    for oi, option in enumerate(options):
        if not isinstance(option, dict):
            errors.append(f"[ERROR] must be an object [json-pointer:{pointer}/{oi}]")
            continue
        if len(_text_of(option.get("text"))) > 75:
            errors.append(_too_long(75, f"{pointer}/{oi}/text/text"))
        value = option.get("value")
        if isinstance(value, str) and len(value) > 150:
            errors.append(_too_long(150, f"{pointer}/{oi}/value"))
        if len(_text_of(option.get("description"))) > 75:
            errors.append(_too_long(75, f"{pointer}/{oi}/description/text"))
    return errors


def block_errors(
    blocks: Any, pointer: str = "/blocks", *, limit: int = VIEW_BLOCKS_LIMIT
) -> list[str]:
    """Check Block Kit limits that Slack enforces; returns Slack-style error messages."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(_too_many(limit, pointer))
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        bp = f"{pointer}/{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"[ERROR] missing required field: type [json-pointer:{bp}]")
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if len(block_id) > 255:
                errors.append(_too_long(255, f"{bp}/block_id"))
            if block_id in seen:
                errors.append(
                    f"[ERROR] duplicate block_id: {block_id} [json-pointer:{bp}/block_id]"
                )
            seen.add(block_id)
        btype = block["type"]
        if btype == "section":
            fields = block.get("fields")
            if "text" not in block and not fields:
                errors.append(f"[ERROR] must provide either text or fields [json-pointer:{bp}]")
            if len(_text_of(block.get("text"))) > 3000:
                errors.append(_too_long(3000, f"{bp}/text/text"))
            if isinstance(fields, list):
                if len(fields) > 10:
                    errors.append(_too_many(10, f"{bp}/fields"))
                for fi, item in enumerate(fields):
                    if len(_text_of(item)) > 2000:
                        errors.append(_too_long(2000, f"{bp}/fields/{fi}/text"))
            if "accessory" in block:
                errors.extend(_element_errors(block["accessory"], f"{bp}/accessory"))
        elif btype == "header":
            text = _text_of(block.get("text"))
            if not text:
                errors.append(f"[ERROR] missing required field: text [json-pointer:{bp}/text]")
            elif len(text) > 150:
                errors.append(_too_long(150, f"{bp}/text/text"))
        elif btype in {"context", "actions"}:
            elements = block.get("elements")
            cap = 10 if btype == "context" else 25
            if not isinstance(elements, list) or not elements:
                errors.append(f"[ERROR] missing required field: elements [json-pointer:{bp}]")
            else:
                if len(elements) > cap:
                    errors.append(_too_many(cap, f"{bp}/elements"))
                if btype == "actions":
                    for ei, element in enumerate(elements):
                        errors.extend(_element_errors(element, f"{bp}/elements/{ei}"))
        elif btype == "input":
            label = _text_of(block.get("label"))
            if not label:
                errors.append(f"[ERROR] missing required field: label [json-pointer:{bp}]")
            elif len(label) > 2000:
                errors.append(_too_long(2000, f"{bp}/label/text"))
            if len(_text_of(block.get("hint"))) > 2000:
                errors.append(_too_long(2000, f"{bp}/hint/text"))
            if "element" not in block:
                errors.append(f"[ERROR] missing required field: element [json-pointer:{bp}]")
            else:
                errors.extend(_element_errors(block["element"], f"{bp}/element"))
    return errors


def _view_errors(view: dict[str, Any], *, expected_type: str | None) -> list[str]:
    errors: list[str] = []
    vtype = view.get("type")
    if vtype not in {"modal", "home"}:
        errors.append("[ERROR] must be one of modal, home [json-pointer:/view/type]")
    elif expected_type is not None and vtype != expected_type:
        errors.append(f"[ERROR] must be {expected_type} [json-pointer:/view/type]")
    if vtype == "modal":
        title = view.get("title")
        if not _text_of(title):
            errors.append("[ERROR] missing required field: title [json-pointer:/view]")
        for key in ("title", "submit", "close"):
            if len(_text_of(view.get(key))) > VIEW_TEXT_LIMIT:
                errors.append(_too_long(VIEW_TEXT_LIMIT, f"/view/{key}/text"))
        blocks = view.get("blocks") or []
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and not view.get("submit"):
            errors.append(
                "[ERROR] must provide a submit property when using input blocks [json-pointer:/view]"
            )
    if "blocks" not in view:
        errors.append("[ERROR] missing required field: blocks [json-pointer:/view]")
    else:
        errors.extend(block_errors(view["blocks"], "/view/blocks", limit=VIEW_BLOCKS_LIMIT))
    pm = view.get("private_metadata")
    if isinstance(pm, str) and len(pm) > PRIVATE_METADATA_LIMIT:
        errors.append(_too_long(PRIVATE_METADATA_LIMIT, "/view/private_metadata"))
    for key in ("callback_id", "external_id"):
        value = view.get(key)
        if isinstance(value, str) and len(value) > 255:
            errors.append(_too_long(255, f"/view/{key}"))
    return errors


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs under concurrent tests (1 s stalls)

    def __init__(self, address: tuple[str, int], fake: FakeSlack) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class FakeSlack:
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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
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
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeSlack:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

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
            "is_admin": False,
            "is_owner": False,
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
    ) -> None:
        """Make ``user_id`` known to users.info and conversations.open.
        ``name`` defaults to the id in lower case, ``real_name`` to ``"User <id>"``."""
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
            )

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

    def _serve(self, h: _Handler) -> None:
        try:
            body = self._read_body(h)
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
    def _read_body(h: _Handler) -> bytes:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = h.rfile.readline().split(b";")[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(chunks)
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    @staticmethod
    def _write(h: _Handler, reply: _Reply) -> None:
        if reply.disconnect:
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
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
    def _parse_args(h: _Handler, query: str, body: bytes) -> dict[str, Any]:
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

    def _handle_api(self, h: _Handler, method: str, query: str, body: bytes) -> _Reply:
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

        with self._lock:
            if down:
                reply = _Reply(503, "<html><body><h1>503 Service Unavailable</h1></body></html>")
            elif fault is not None:
                reply = self._fault_reply(fault)
            else:
                reply = self._dispatch(method, args, token)
            self._record(method, args, token, at, headers, reply)
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

    # ------------------------------------------------------------------ dispatch

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
        micros = next(self._ts_seq) * 100
        return f"{_TS_EPOCH + micros // 1_000_000}.{micros % 1_000_000:06d}"

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
        errors = _view_errors(view, expected_type=expected_type)
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

    _METHODS: ClassVar[dict[str, Callable[[FakeSlack, dict[str, Any], Any], dict[str, Any]]]] = {
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
        "users.info": _users_info,
        "views.open": _views_open,
        "views.push": _views_push,
        "views.update": _views_update,
        "views.publish": _views_publish,
    }

    # ------------------------------------------------------------------ response URLs

    def _handle_response_url(self, h: _Handler, body: bytes) -> _Reply:
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
