"""A fake Bitrix24 cloud portal: a real HTTP server on loopback speaking the REST 3.0 mail API.

It behaves as /work/shared/docs/bitrix24-rest-v3-mail.md describes (condensed from
Bitrix24's `bitrix24/b24restdocs`), so the b24mail client can be tested over real sockets,
with real timeouts, dropped connections and redirects, from sync tests, async tests and
other processes alike.

The server runs in its own daemon thread (``ThreadingHTTPServer``), never on a test's event
loop: an async test that awaits the client while the portal answers must not deadlock.

Three ways to drive it:

* in-process: :class:`FakePortal` methods (``add_user``, ``fail_next``, ``delivered`` …);
* from other processes: the HTTP control API under ``/_fake/`` (see :meth:`FakePortal._control`)
  or the small :class:`PortalControl` client that wraps it;
* standalone: ``python -m tests.fakes.bitrix24_portal --port 8099 --user 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import re
import secrets
import signal
import string
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.fakes.http_server import LoopbackServer
from tests.fakes.http_server import drop_connection as _drop
from tests.fakes.http_server import read_body as _read_body

# ---------------------------------------------------------------------------------------------
# Error codes. REST 3.0 codes are spelled as in b24restdocs `api-reference/rest-v3.md`
# ("Errors" tables, idempotency section) and the mail method pages; the flat "system" codes as
# in `_includes/system-errors.md`. HTTP statuses follow the b24mail facts document, which is
# the contract for this fake (the current system-errors page lists 401 for some of them).
# ---------------------------------------------------------------------------------------------
V3_PREFIX = "BITRIX_REST_V3_EXCEPTION_"
VALIDATION_ERROR = "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION"
ENTITY_NOT_FOUND = "BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION"
ACCESS_DENIED_V3 = "BITRIX_REST_V3_EXCEPTION_ACCESSDENIEDEXCEPTION"
INSUFFICIENT_SCOPE = "BITRIX_REST_V3_EXCEPTION_INSUFFICIENTSCOPEEXCEPTION"
INVALID_JSON = "BITRIX_REST_V3_EXCEPTION_INVALIDJSONEXCEPTION"
INVALID_PAGINATION = "BITRIX_REST_V3_EXCEPTION_INVALIDPAGINATIONEXCEPTION"
IDEMPOTENCY_KEY_REUSED = "BITRIX_REST_V3_EXCEPTION_IDEMPOTENCYKEYREUSEDEXCEPTION"
INVALID_IDEMPOTENCY_KEY = "BITRIX_REST_V3_EXCEPTION_INVALIDIDEMPOTENCYKEYEXCEPTION"

QUERY_LIMIT_EXCEEDED = "QUERY_LIMIT_EXCEEDED"
OVERLOAD_LIMIT = "OVERLOAD_LIMIT"
OPERATION_TIME_LIMIT = "OPERATION_TIME_LIMIT"
NO_AUTH_FOUND = "NO_AUTH_FOUND"
EXPIRED_TOKEN = "expired_token"
INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
ACCESS_DENIED = "ACCESS_DENIED"
INVALID_REQUEST = "INVALID_REQUEST"
ERROR_METHOD_NOT_FOUND = "ERROR_METHOD_NOT_FOUND"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

# Causes reported inside `validation[]` by send/reply/forward (mail method pages).
MESSAGE_SEND_FAILED = "MESSAGE_SEND_FAILED"
MESSAGE_REPLY_FAILED = "MESSAGE_REPLY_FAILED"
MESSAGE_FORWARD_FAILED = "MESSAGE_FORWARD_FAILED"
NO_RECIPIENTS = "NO_RECIPIENTS"
RESOLVE_RECIPIENTS_ERROR = "RESOLVE_RECIPIENTS_ERROR"

SEND = "mail.message.send"
REPLY = "mail.message.reply"
FORWARD = "mail.message.forward"
CREATE_TASK = "mail.message.createtask"
CREATE_EVENT = "mail.message.createcalendarevent"
CREATE_CRM_ACTIVITY = "mail.message.createcrmactivity"
CREATE_CHAT = "mail.message.createchat"
MOVE_TO_FOLDER = "mail.message.movetofolder"
LIST_CONTACTS = "mail.recipient.listcontacts"
LIST_EMPLOYEES = "mail.recipient.listemployees"
# The doc says the Idempotency-Key is honoured by methods that change data; reads ignore it.
WRITE_METHODS = frozenset(
    {SEND, REPLY, FORWARD, CREATE_TASK, CREATE_EVENT, CREATE_CRM_ACTIVITY, CREATE_CHAT}
    | {MOVE_TO_FOLDER}
)
MAIL_SCOPE = "mail"

IDEMPOTENCY_TTL = 24 * 3600.0
# Per-method time budget window (limits.md: sliding 10 minutes).
OPERATING_WINDOW = 600.0

# Folders `mail.message.movetofolder` files e-mails in for action=spam and action=delete.
SPAM = "Spam"
TRASH = "Trash"
_PHP_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")

_CODE_ALPHABET = string.digits + string.ascii_lowercase
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NAMED = re.compile(r'\s*(?:"?([^"<>]*?)"?\s*)?<([^<>]*)>\s*')
_HTML_500 = (
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>500 Internal Server Error</h1><hr><center>nginx</center></body></html>"
)


# ---------------------------------------------------------------------------------------------
# Public records
# ---------------------------------------------------------------------------------------------
@dataclass
class FakeMailbox:
    id: int
    name: str
    email: str
    sender_name: str


@dataclass
class FakeUser:
    """A portal user with one inbound webhook (`code`) and the senders they may send as."""

    user_id: int
    code: str
    scopes: tuple[str, ...]
    senders: list[tuple[str, str]]
    mailboxes: list[FakeMailbox] = field(default_factory=list)
    # The portal is needed for the URL because the port is only known once it is serving.
    _portal: FakePortal | None = field(default=None, repr=False, compare=False)

    @property
    def webhook_url(self) -> str:
        """The classic address users copy from Bitrix24's UI."""
        return f"{self._base_url()}/rest/{self.user_id}/{self.code}/"

    @property
    def api_url(self) -> str:
        """The REST 3.0 base: append a method name to call it."""
        return f"{self._base_url()}/rest/api/{self.user_id}/{self.code}/"

    def _base_url(self) -> str:
        if self._portal is None:
            raise RuntimeError("user is not attached to a portal")
        return self._portal.base_url


@dataclass
class FakeMessage:
    id: int
    user_id: int
    mailbox_id: int
    mailbox_email: str
    subject: str
    from_: str
    to: str
    cc: str
    body: str
    date: datetime
    is_seen: bool
    has_attachments: bool
    thread_id: int
    folder: str


@dataclass
class Delivered:
    """One e-mail the portal actually sent (the thing "exactly once" tests count)."""

    method: str
    user_id: int
    from_: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    body: str
    reply_to_message_id: int | None
    forward_message_id: int | None
    idempotency_key: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivered:
        return cls(**data)


@dataclass
class FakePerson:
    """An employee or an address-book contact, as `mail.recipient.*` list them."""

    id: int
    name: str
    email: str


@dataclass
class CreatedObject:
    """A task, calendar event, CRM activity or chat made from an e-mail."""

    kind: str  # task | event | crm_activity | chat
    id: int
    user_id: int
    message_id: int
    fields: dict[str, Any]


@dataclass
class RecordedRequest:
    """Every portal request (control API calls excluded), recorded before the reply is sent."""

    method_name: str | None
    path: str
    headers: dict[str, str]
    json: Any
    status: int | None  # None: the connection was dropped, no response was written
    response: Any  # the JSON body sent (None for HTML/empty bodies and drops)
    replayed: bool
    dropped: bool = False
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------
@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    obj: Any = None
    replayed: bool = False


class _ApiError(Exception):
    """Raised by method implementations to answer with an error reply."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@dataclass
class _CountRule:
    remaining: int
    methods: frozenset[str] | None
    status: int = 500
    error: str | None = None
    phase: str = "before"


@dataclass
class _Latency:
    seconds: float
    methods: frozenset[str] | None


@dataclass
class _TimeLimit:
    until: float  # portal clock
    methods: frozenset[str] | None


@dataclass
class _Stored:
    fingerprint: str
    body: bytes
    obj: Any
    expires_at: float


@dataclass
class _Caller:
    user: FakeUser
    scopes: tuple[str, ...]
    # Idempotency keys and time budgets are kept per webhook/app and user (rest-v3.md).
    identity: tuple[Any, ...]


@dataclass
class _Route:
    kind: str  # "webhook" | "oauth" | "classic"
    method: str
    user_id: str = ""
    code: str = ""


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, _dumps(obj), headers=dict(headers or {}), obj=obj)


def _flat(status: int, code: str, description: str) -> _Reply:
    """Platform ("system") errors keep the classic flat shape."""
    return _json_reply(status, {"error": code, "error_description": description})


def _v3(
    status: int, code: str, message: str, validation: list[dict[str, str]] | None = None
) -> _Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if validation is not None:
        error["validation"] = validation
    return _json_reply(status, {"error": error})


def _invalid(entries: list[dict[str, str]]) -> _ApiError:
    return _ApiError(_v3(400, VALIDATION_ERROR, "Error validating request object", entries))


def _required(name: str) -> dict[str, str]:
    return {"field": name, "message": f"Required field `{name}` is not specified"}


def _cause(field_name: str, cause: str) -> dict[str, str]:
    # The mail pages document `validation[]` entries as {message, field} and list the cause
    # code itself as the "error description": no separate code key.
    return {"field": field_name, "message": cause}


def _extract_email(value: str) -> str | None:
    """The bare address of "x@y.z" or "Name <x@y.z>", or None when it is not one address."""
    named = _NAMED.fullmatch(value)
    address = (named.group(2) if named else value).strip()
    return address if _EMAIL.fullmatch(address) else None


def _is_php_datetime(value: str) -> bool:
    """PHP's `Y-m-d H:i:s`, a real date and time."""
    if not _PHP_DATETIME.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _valid_idempotency_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all(0x20 <= ord(ch) <= 0x7E for ch in key)


def _fingerprint(params: Mapping[str, Any]) -> str:
    # Compared as parsed JSON so key order and spacing do not matter. "auth" is left out: an
    # OAuth token refreshed between a call and its retry is still the same app and user
    # (inferred; the docs only say "the same request body").
    canonical = {k: v for k, v in params.items() if k != "auth"}
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _methods_set(methods: Iterable[str] | str | None) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        return frozenset({methods})
    return frozenset(methods)


def _matches(methods: frozenset[str] | None, method_name: str | None) -> bool:
    return methods is None or (method_name is not None and method_name in methods)


def _parse_route(path: str) -> _Route | None:
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "rest":
        return None
    if parts[1] == "api":
        if len(parts) == 5:
            return _Route("webhook", parts[4], user_id=parts[2], code=parts[3])
        if len(parts) == 3:
            return _Route("oauth", parts[2])
        return None
    if len(parts) == 4:
        return _Route("classic", parts[3], user_id=parts[1], code=parts[2])
    return None


def _method_name(path: str) -> str | None:
    route = _parse_route(path)
    if route is None or not route.method:
        return None
    if route.kind == "classic":
        # The classic path accepts "method.json"; normalise so fault filters match either form.
        return route.method.removesuffix(".json")
    return route.method


def _write(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
    handler.send_response(reply.status)
    if reply.content_type and reply.body:
        handler.send_header("Content-Type", reply.content_type)
    handler.send_header("Content-Length", str(len(reply.body)))
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(reply.body)


# ---------------------------------------------------------------------------------------------
# The portal
# ---------------------------------------------------------------------------------------------
class FakePortal:
    """A fake Bitrix24 cloud portal on loopback. See the module docstring."""

    def __init__(
        self,
        *,
        rate: float = 2.0,
        burst: int = 50,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        # Monotonic portal clock for the bucket, idempotency TTL and time budgets; `advance()`
        # moves it forward so a test can jump 24 h without waiting.
        self._clock = clock or time.monotonic
        self._offset = 0.0
        self._initial_rate = (float(rate), int(burst))
        self._server: LoopbackServer | None = None
        self._stopping = threading.Event()

        self._lock = threading.Lock()
        self._delivered_cond = threading.Condition(self._lock)
        self._users: dict[int, FakeUser] = {}
        self._tokens: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._messages: dict[int, FakeMessage] = {}
        self._next_message_id = 1
        self._delivered: list[Delivered] = []
        self._requests: list[RecordedRequest] = []
        # Requests by method name as they arrive, before any latency (requests() has them
        # only once answered): lets a test wait until a call is in flight.
        self._arrived: dict[str | None, int] = {}
        self._idempotency: dict[tuple[Any, ...], _Stored] = {}
        self._operating: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
        self._rate, self._burst = self._initial_rate
        self._level = 0.0
        self._level_at = self._now()
        self._reset_faults_locked()
        self._init_actions()

        self._handlers: dict[str, Callable[[_Caller, dict[str, Any], str | None], Any]] = {
            "mail.mailbox.senders": self._m_senders,
            "mail.mailbox.list": self._m_mailbox_list,
            "mail.message.list": self._m_message_list,
            "mail.message.get": self._m_message_get,
            "mail.message.thread": self._m_message_thread,
            SEND: self._m_send,
            REPLY: self._m_reply,
            FORWARD: self._m_forward,
            **self._action_handlers(),
        }

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakePortal:
        if self._server is not None:
            return self
        self._stopping.clear()
        # stop() waits up to one poll interval; keep it short so fixtures stay fast.
        self._server = LoopbackServer(
            (self._host, self._port),
            self._dispatch,
            name="fake-bitrix24",
            software="b24mail-fake-portal",
            poll_interval=0.01,
        ).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wake handlers sleeping in injected latency
        server.stop()

    def __enter__(self) -> FakePortal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakePortal is not started; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakePortal is not started; call start() first")
        return int(self._server.server_address[1])

    # -- clock ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock() + self._offset

    def _wall(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the portal clock forward (bucket drain, idempotency TTL, time-limit reset)."""
        with self._lock:
            self._offset += seconds

    # -- users, tokens, messages ---------------------------------------------------------------
    def add_user(
        self,
        user_id: int,
        *,
        code: str | None = None,
        scopes: Iterable[str] = ("mail",),
        senders: Iterable[tuple[str, str]] = (("Test User", "user{id}@example.com"),),
    ) -> FakeUser:
        uid = str(user_id)
        sender_list = [
            (name.replace("{id}", uid), address.replace("{id}", uid)) for name, address in senders
        ]
        mailboxes: list[FakeMailbox] = []
        for name, address in sender_list:
            if all(mb.email.lower() != address.lower() for mb in mailboxes):
                mailboxes.append(FakeMailbox(len(mailboxes) + 1, address, address, name))
        user = FakeUser(
            user_id=user_id,
            code=code or "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16)),
            scopes=tuple(scopes),
            senders=sender_list,
            mailboxes=mailboxes,
            _portal=self,
        )
        with self._lock:
            self._users[user_id] = user
            self._expired.discard(user_id)
        return user

    def user(self, user_id: int) -> FakeUser:
        with self._lock:
            return self._users[user_id]

    def add_oauth_token(
        self, token: str, *, user_id: int, scopes: Iterable[str] = ("mail",)
    ) -> None:
        with self._lock:
            if user_id not in self._users:
                raise ValueError(f"unknown user {user_id}: add_user() first")
            self._tokens[token] = (user_id, tuple(scopes))

    def expire_oauth_token(self, token: str) -> None:
        """Later calls with this token get 401 `expired_token`."""
        with self._lock:
            self._expired_tokens.add(token)

    def add_message(
        self,
        user_id: int,
        *,
        subject: str,
        from_: str,
        to: str = "",
        cc: str = "",
        body: str = "",
        date: datetime | None = None,
        mailbox_email: str | None = None,
        mailbox_id: int = 1,
        has_attachments: bool = False,
        is_seen: bool = False,
        thread_id: int | None = None,
        folder: str = "INBOX",
    ) -> int:
        """Put an e-mail in `user_id`'s inbox; returns its id. Naive dates are taken as UTC."""
        when = date or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                raise ValueError(f"unknown user {user_id}: add_user() first")
            mailbox = next((mb for mb in user.mailboxes if mb.id == mailbox_id), None)
            if mailbox is None:
                email = mailbox_email or (user.senders[0][1] if user.senders else "")
                name = user.senders[0][0] if user.senders else ""
                mailbox = FakeMailbox(mailbox_id, email, email, name)
                user.mailboxes.append(mailbox)
            message_id = self._next_message_id
            self._next_message_id += 1
            self._messages[message_id] = FakeMessage(
                id=message_id,
                user_id=user_id,
                mailbox_id=mailbox_id,
                mailbox_email=mailbox_email or mailbox.email,
                subject=subject,
                from_=from_,
                to=to,
                cc=cc,
                body=body,
                date=when,
                is_seen=is_seen,
                has_attachments=has_attachments,
                thread_id=thread_id if thread_id is not None else message_id,
                folder=folder,
            )
        return message_id

    # -- observations --------------------------------------------------------------------------
    @property
    def delivered(self) -> list[Delivered]:
        with self._lock:
            return list(self._delivered)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[FakeMessage]:
        with self._lock:
            return list(self._messages.values())

    def wait_for_delivered(self, n: int, timeout: float = 5.0) -> list[Delivered]:
        """Block until at least `n` e-mails were delivered; all of them are returned.

        Blocks the calling thread: in async tests use :meth:`await_delivered` instead, or the
        client under test (on the same loop) never gets to send.
        """
        with self._delivered_cond:
            if not self._delivered_cond.wait_for(lambda: len(self._delivered) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} delivered e-mail(s) within {timeout}s, "
                    f"got {len(self._delivered)}: {self._delivered!r}"
                )
            return list(self._delivered)

    def arrived(self, method: str) -> int:
        """How many calls of `method` reached the portal, answered or still waiting."""
        with self._lock:
            return self._arrived.get(method, 0)

    async def await_arrived(self, method: str, n: int = 1, timeout: float = 10.0) -> None:
        """Wait until `n` calls of `method` reached the portal (they may still be waiting)."""
        deadline = time.monotonic() + timeout
        while self.arrived(method) < n:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"expected {n} {method} call(s) within {timeout}s")
            await asyncio.sleep(0.01)

    async def await_delivered(self, n: int, timeout: float = 5.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.delivered
            if len(current) >= n:
                return current
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"expected {n} delivered e-mail(s) within {timeout}s, got {len(current)}"
                )
            await asyncio.sleep(0.01)

    # -- faults --------------------------------------------------------------------------------
    def set_latency(
        self, seconds: float, *, phase: str = "after", methods: Iterable[str] | None = None
    ) -> None:
        """Delay matching requests; `seconds <= 0` clears that phase.

        "before": a slow method: the request is admitted (bucket, auth, Idempotency-Key lookup)
        and then waits before the method runs, with nothing stored yet, so a second request with
        the same key arriving meanwhile runs too, as the doc warns. Requests that fail before
        running get their error after the same wait. "after": the method runs (the e-mail is
        delivered, an idempotent result stored) and only the response is late.
        """
        if phase not in ("before", "after"):
            raise ValueError("phase must be 'before' or 'after'")
        with self._lock:
            if seconds <= 0:
                self._latency.pop(phase, None)
            else:
                self._latency[phase] = _Latency(float(seconds), _methods_set(methods))

    def fail_next(
        self,
        n: int,
        *,
        status: int = 500,
        error: str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """The next `n` matching requests fail without running.

        `error=None` answers an HTML page with no code (an ambiguous 5xx); a `BITRIX_REST_V3_…`
        code answers the REST 3.0 shape, anything else the flat shape.
        """
        with self._lock:
            self._fail_rules.append(_CountRule(n, _methods_set(methods), status, error))

    def drop_next(
        self, n: int, *, phase: str = "before", methods: Iterable[str] | None = None
    ) -> None:
        """Close the socket of the next `n` matching requests with no response.

        "before": nothing runs. "after": the method runs (e-mail delivered), then the drop.
        """
        if phase not in ("before", "after"):
            raise ValueError("phase must be 'before' or 'after'")
        with self._lock:
            self._drop_rules.append(_CountRule(n, _methods_set(methods), phase=phase))

    def rename(self, new_host: str | None) -> None:
        """Every portal call answers 302 to https://{new_host}{same path}; None undoes it."""
        with self._lock:
            self._renamed_to = new_host

    def expire_webhook(self, user_id: int) -> None:
        with self._lock:
            self._expired.add(user_id)

    def operation_time_limit(
        self, reset_in: float | None, *, methods: Iterable[str] | None = None
    ) -> None:
        """Matching calls get 429 OPERATION_TIME_LIMIT for `reset_in` seconds; None clears."""
        with self._lock:
            if reset_in is None:
                self._time_limit = None
            else:
                self._time_limit = _TimeLimit(self._now() + reset_in, _methods_set(methods))

    def set_rate(self, rate: float, burst: int) -> None:
        with self._lock:
            self._rate, self._burst = float(rate), int(burst)
            self._level, self._level_at = 0.0, self._now()

    def set_plan_restricted(self, on: bool) -> None:
        with self._lock:
            self._plan_restricted = on

    def set_overloaded(self, on: bool) -> None:
        with self._lock:
            self._overloaded = on

    def set_require_https(self, on: bool) -> None:
        with self._lock:
            self._require_https = on

    def set_send_failure(self, cause: str | None) -> None:
        """Until cleared, send/reply/forward fail validation with this cause (e.g. a daily limit)."""
        with self._lock:
            self._send_failure = cause

    def reset_faults(self) -> None:
        """Undo every fault, including expired webhooks/tokens and `set_rate` (back to the
        constructor's rate and burst, with an empty bucket)."""
        with self._lock:
            self._reset_faults_locked()
            self._rate, self._burst = self._initial_rate
            self._level, self._level_at = 0.0, self._now()

    def _reset_faults_locked(self) -> None:
        self._latency: dict[str, _Latency] = {}
        self._fail_rules: list[_CountRule] = []
        self._drop_rules: list[_CountRule] = []
        self._renamed_to: str | None = None
        self._expired: set[int] = set()
        self._expired_tokens: set[str] = set()
        self._time_limit: _TimeLimit | None = None
        self._plan_restricted = False
        self._overloaded = False
        self._require_https = False
        self._send_failure: str | None = None
        self._denied: dict[int, frozenset[str] | None] = {}
        self._missing_modules: set[str] = set()
        self._require_mailbox_id = False
        self._list_seed = 0

    def set_require_mailbox_id(self, on: bool) -> None:
        """Until reset, mail.message.list refuses a call without `mailboxId` (as b24pysdk
        expects the real portal may)."""
        with self._lock:
            self._require_mailbox_id = on

    def set_list_order_seed(self, seed: int) -> None:
        """Choose another arbitrary order for mail.message.list."""
        with self._lock:
            self._list_seed = seed

    def clear(self) -> None:
        """Forget delivered e-mails, recorded requests, stored idempotent responses, time
        budgets and the bucket level. Users, tokens, messages and faults stay."""
        with self._lock:
            self._delivered.clear()
            self._requests.clear()
            self._arrived.clear()
            self._idempotency.clear()
            self._operating.clear()
            self._level, self._level_at = 0.0, self._now()

    def apply_faults(self, spec: Mapping[str, Any]) -> None:
        """Apply faults described as JSON (the body of `POST /_fake/faults`).

        Keys: latency {seconds, phase?, methods?}; fail_next {n, status?, error?, methods?};
        drop_next {n, phase?, methods?}; rename host|null; expire_webhook user_id;
        operation_time_limit {reset_in, methods?}|null; rate {rate, burst};
        plan_restricted, overloaded, require_https, require_mailbox_id: bool; send_failure
        cause|null; expire_oauth_token token; list_order_seed int.
        """
        appliers: dict[str, Callable[[Any], None]] = {
            "latency": lambda v: self.set_latency(**v),
            "fail_next": lambda v: self.fail_next(**v),
            "drop_next": lambda v: self.drop_next(**v),
            "rename": lambda v: self.rename(v["new_host"] if isinstance(v, dict) else v),
            "expire_webhook": lambda v: self.expire_webhook(
                int(v["user_id"] if isinstance(v, dict) else v)
            ),
            "expire_oauth_token": lambda v: self.expire_oauth_token(
                v["token"] if isinstance(v, dict) else v
            ),
            "operation_time_limit": lambda v: self.operation_time_limit(
                **(v if isinstance(v, dict) else {"reset_in": v})
            ),
            "rate": lambda v: self.set_rate(**v),
            "plan_restricted": lambda v: self.set_plan_restricted(bool(v)),
            "overloaded": lambda v: self.set_overloaded(bool(v)),
            "require_https": lambda v: self.set_require_https(bool(v)),
            "send_failure": self.set_send_failure,
            "require_mailbox_id": lambda v: self.set_require_mailbox_id(bool(v)),
            "list_order_seed": lambda v: self.set_list_order_seed(int(v)),
        }
        unknown = set(spec) - set(appliers)
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}")
        for name, value in spec.items():
            appliers[name](value)

    # -- request pipeline ----------------------------------------------------------------------
    def _take_rule(
        self, rules: list[_CountRule], method_name: str | None, phase: str | None
    ) -> _CountRule | None:
        with self._lock:
            for rule in rules:
                if rule.remaining > 0 and _matches(rule.methods, method_name):
                    if phase is not None and rule.phase != phase:
                        continue
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        rules.remove(rule)
                    return rule
        return None

    def _sleep_for(self, phase: str, method_name: str | None) -> None:
        with self._lock:
            latency = self._latency.get(phase)
        if latency is not None and _matches(latency.methods, method_name):
            self._stopping.wait(latency.seconds)

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    def _dispatch(self, handler: BaseHTTPRequestHandler, verb: str) -> None:
        try:
            raw = _read_body(handler)
        except (ValueError, OSError):
            handler.close_connection = True
            return
        path = handler.path.partition("?")[0]
        if path == "/_fake" or path.startswith("/_fake/"):
            _write(handler, self._control(verb, path, raw))
            return

        started_wall = self._wall()
        method_name = _method_name(path)
        with self._lock:
            self._arrived[method_name] = self._arrived.get(method_name, 0) + 1
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body_json = json.loads(raw) if raw.strip() else None
        except ValueError:
            body_json = None
        rec = RecordedRequest(
            method_name, path, headers, body_json, None, None, False, at=started_wall
        )

        if self._take_rule(self._drop_rules, method_name, "before"):
            rec.dropped = True
            self._record(rec)
            _drop(handler)
            return
        waited = False

        def wait_before() -> None:
            # Called by _run between the idempotency lookup and the method, or below for
            # requests that never got that far; either way exactly once.
            nonlocal waited
            if not waited:
                waited = True
                self._sleep_for("before", method_name)

        rule = self._take_rule(self._fail_rules, method_name, None)
        if rule is not None:
            reply = self._injected_failure(rule)
        else:
            try:
                reply = self._process(handler.path, path, headers, raw, started_wall, wait_before)
            except Exception:
                # A bug in the fake must be loud, not a silent hang of the test.
                traceback.print_exc()
                reply = _flat(500, INTERNAL_SERVER_ERROR, "Internal server error")
        wait_before()
        self._sleep_for("after", method_name)
        rec.replayed = reply.replayed
        if self._take_rule(self._drop_rules, method_name, "after"):
            rec.dropped = True
            self._record(rec)
            _drop(handler)
            return
        rec.status, rec.response = reply.status, reply.obj
        # Recorded before the reply leaves, so a test that got its response sees the record.
        self._record(rec)
        _write(handler, reply)

    @staticmethod
    def _injected_failure(rule: _CountRule) -> _Reply:
        if rule.error is None:
            return _Reply(rule.status, _HTML_500, content_type="text/html; charset=utf-8")
        if rule.error.startswith(V3_PREFIX):
            return _v3(rule.status, rule.error, "Injected failure")
        return _flat(rule.status, rule.error, "Injected failure")

    def _admit(self) -> bool:
        """Leaky bucket: +1 per request, drains at `rate`/s, holds `burst`."""
        with self._lock:
            now = self._now()
            self._level = max(0.0, self._level - (now - self._level_at) * self._rate)
            self._level_at = now
            if self._level + 1 > self._burst:
                return False  # refused before running; a refusal does not fill the bucket
            self._level += 1
            return True

    def _process(
        self,
        full_path: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        started_wall: float,
        wait_before: Callable[[], None],
    ) -> _Reply:
        with self._lock:
            renamed_to = self._renamed_to
            require_https = self._require_https
        if renamed_to:
            return _Reply(302, headers={"Location": f"https://{renamed_to}{full_path}"})
        if require_https:
            return _flat(400, INVALID_REQUEST, "Https required")
        if not self._admit():
            return _flat(503, QUERY_LIMIT_EXCEEDED, "Too many requests")
        with self._lock:
            overloaded, restricted = self._overloaded, self._plan_restricted
        if overloaded:
            return _flat(503, OVERLOAD_LIMIT, "REST API is blocked due to overload")

        route = _parse_route(path)
        if restricted:
            message = "REST is available only on commercial plans"
            if route is not None and route.kind != "oauth":
                message = "REST is available only by subscription"
            return _flat(403, ACCESS_DENIED, message)
        if route is None or route.kind == "classic":
            # Mail methods exist only under /rest/api/ (rest-v3.md).
            return _flat(404, ERROR_METHOD_NOT_FOUND, "Method not found!")

        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        params: Any = {}
        if raw.strip():
            if content_type != "application/json":
                return _v3(400, INVALID_JSON, "Request body must be JSON (application/json)")
            try:
                params = json.loads(raw)
            except ValueError:
                return _v3(400, INVALID_JSON, "Request body is not valid JSON")
            if not isinstance(params, dict):
                return _v3(400, INVALID_JSON, "Request body must be a JSON object")

        try:
            caller = self._authenticate(route, params)
        except _ApiError as exc:
            return exc.reply
        params.pop("auth", None)
        handler = self._handlers.get(route.method)
        if handler is None:
            return _flat(404, ERROR_METHOD_NOT_FOUND, "Method not found!")
        if MAIL_SCOPE not in caller.scopes:
            return _v3(
                403,
                INSUFFICIENT_SCOPE,
                "The request requires higher privileges than provided by the webhook token",
            )
        with self._lock:
            limit = self._time_limit
            if limit is not None and self._now() >= limit.until:
                self._time_limit = limit = None
        if limit is not None and _matches(limit.methods, route.method):
            return _flat(429, OPERATION_TIME_LIMIT, "Method is blocked due to operation time limit")

        return self._run(caller, route.method, handler, params, headers, started_wall, wait_before)

    def _authenticate(self, route: _Route, params: dict[str, Any]) -> _Caller:
        no_auth = _ApiError(_flat(401, NO_AUTH_FOUND, "Wrong authorization data"))
        if route.kind == "webhook":
            if not route.user_id.isdigit():
                raise no_auth
            with self._lock:
                user = self._users.get(int(route.user_id))
                expired = user is not None and user.user_id in self._expired
            if user is None or not secrets.compare_digest(route.code, user.code):
                raise no_auth
            if expired:
                raise _ApiError(_flat(403, INVALID_CREDENTIALS, "Invalid request credentials"))
            return _Caller(user, user.scopes, ("webhook", user.user_id, user.code))
        token = params.get("auth")
        if not isinstance(token, str):
            raise no_auth
        with self._lock:
            entry = self._tokens.get(token)
            expired = token in self._expired_tokens
            user = self._users.get(entry[0]) if entry else None
        if entry is None or user is None:
            raise no_auth
        if expired:
            raise _ApiError(_flat(401, EXPIRED_TOKEN, "The access token provided has expired"))
        return _Caller(user, entry[1], ("app", user.user_id))

    def _run(
        self,
        caller: _Caller,
        method: str,
        handler: Callable[[_Caller, dict[str, Any], str | None], Any],
        params: dict[str, Any],
        headers: dict[str, str],
        started_wall: float,
        wait_before: Callable[[], None],
    ) -> _Reply:
        key = headers.get("idempotency-key")
        if key is not None and not _valid_idempotency_key(key):
            return _v3(
                400,
                INVALID_IDEMPOTENCY_KEY,
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        echo = {"Idempotency-Key": key} if key is not None else {}
        slot = (
            (caller.identity, method, key) if key is not None and method in WRITE_METHODS else None
        )
        fingerprint = _fingerprint(params)
        if slot is not None:
            with self._lock:
                stored = self._idempotency.get(slot)
                if stored is not None and stored.expires_at <= self._now():
                    del self._idempotency[slot]
                    stored = None
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    reply = _v3(
                        422,
                        IDEMPOTENCY_KEY_REUSED,
                        "The Idempotency-Key was already used with a different request body",
                    )
                    reply.headers.update(echo)
                    return reply
                return _Reply(
                    200,
                    stored.body,
                    headers={**echo, "Idempotent-Replayed": "true"},
                    obj=stored.obj,
                    replayed=True,
                )
        # Deliberately no lock from the lookup above to the store below: the real portal does
        # not serialise one key either, so two simultaneous requests with it both run.
        wait_before()
        try:
            result = handler(caller, params, key)
        except _ApiError as exc:
            exc.reply.headers.update(echo)
            return exc.reply  # errors are never stored: a retry runs again
        obj = {"result": result, "time": self._time_block(caller, method, started_wall)}
        body = _dumps(obj)
        if slot is not None:
            with self._lock:
                self._idempotency[slot] = _Stored(
                    fingerprint, body, obj, self._now() + IDEMPOTENCY_TTL
                )
        return _Reply(200, body, headers=echo, obj=obj)

    def _time_block(self, caller: _Caller, method: str, started_wall: float) -> dict[str, Any]:
        finish = self._wall()
        duration = max(finish - started_wall, 0.0)
        with self._lock:
            now = self._now()
            spent = self._operating.setdefault((caller.identity, method), [])
            spent[:] = [(t, d) for t, d in spent if now - t < OPERATING_WINDOW]
            spent.append((now, duration))
            operating = sum(d for _, d in spent)
            reset_at = started_wall + OPERATING_WINDOW
            limit = self._time_limit
            if limit is not None and _matches(limit.methods, method):
                reset_at = started_wall + max(limit.until - now, 0.0)
        return {
            "start": started_wall,
            "finish": finish,
            "duration": duration,
            "processing": duration,
            "date_start": _iso(started_wall),
            "date_finish": _iso(finish),
            "operating": operating,
            "operating_reset_at": int(reset_at),
        }

    # -- parameter helpers ---------------------------------------------------------------------
    @staticmethod
    def _int_param(params: Mapping[str, Any], name: str, *, required: bool) -> int | None:
        value = params.get(name)
        if value is None:
            if required:
                raise _invalid([_required(name)])
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid([{"field": name, "message": f"Field `{name}` must be an integer"}])
        return value

    @staticmethod
    def _bool_param(params: Mapping[str, Any], name: str) -> bool | None:
        value = params.get(name)
        if value is not None and not isinstance(value, bool):
            raise _invalid([{"field": name, "message": f"Field `{name}` must be a boolean"}])
        return value

    @staticmethod
    def _str_param(params: Mapping[str, Any], name: str) -> str | None:
        value = params.get(name)
        if value is not None and not isinstance(value, str):
            raise _invalid([{"field": name, "message": f"Field `{name}` must be a string"}])
        return value

    @staticmethod
    def _date_param(params: Mapping[str, Any], name: str) -> datetime | None:
        value = params.get(name)
        if value is None:
            return None
        problem = {
            "field": name,
            "message": f"Parameter `{name}` must be in ISO 8601 format (DATE_ATOM), "
            "for example `2026-01-01T00:00:00+00:00`",
        }
        if not isinstance(value, str):
            raise _invalid([problem])
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid([problem]) from None
        if parsed.tzinfo is None:
            raise _invalid([problem])  # DATE_ATOM carries an offset
        return parsed

    @staticmethod
    def _pagination(params: Mapping[str, Any], default: int, maximum: int) -> tuple[int, int]:
        raw = params.get("pagination")
        if raw is None:
            return 0, default

        def bad() -> _ApiError:
            return _ApiError(
                _v3(
                    400,
                    INVALID_PAGINATION,
                    f"Unable to recognize pagination parameter `{json.dumps(raw)}`",
                )
            )

        if not isinstance(raw, dict):
            raise bad()

        def number(name: str) -> int | None:
            value = raw.get(name)
            if value is None:
                return None
            if isinstance(value, str) and value.isdigit():
                return int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad()
            return value

        limit, page, offset = number("limit"), number("page"), number("offset")
        if limit is not None and limit <= 0:
            raise bad()
        # Above the maximum the limit is capped (undocumented; capping is the lenient reading).
        limit = min(limit or default, maximum)
        if page is not None:
            if page < 1:
                raise bad()
            return (page - 1) * limit, limit
        if offset is not None and offset < 0:
            raise bad()
        return offset or 0, limit

    def _visible_message(self, caller: _Caller, message_id: int) -> FakeMessage:
        with self._lock:
            message = self._messages.get(message_id)
        if message is None:
            raise _ApiError(
                _v3(400, ENTITY_NOT_FOUND, f"Record with ID = `{message_id}` not found")
            )
        if message.user_id != caller.user.user_id:
            raise _ApiError(_v3(403, ACCESS_DENIED_V3, "Access denied"))
        return message

    def _message_item(self, message: FakeMessage) -> dict[str, Any]:
        return {
            "id": message.id,
            "mailboxId": message.mailbox_id,
            "mailboxEmail": message.mailbox_email,
            "subject": message.subject,
            "from": message.from_,
            "to": message.to,
            "cc": message.cc,
            "date": message.date.isoformat(timespec="seconds"),
            "isSeen": message.is_seen,
            "hasAttachments": message.has_attachments,
            # Relative, as in the mail.message.get example (`/mail/message/15`).
            "url": f"/mail/message/{message.id}",
            "bindings": [],
            "body": message.body,
        }

    # -- mail methods --------------------------------------------------------------------------
    def _m_senders(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        offset, limit = self._pagination(params, 25, 100)
        items = [
            {"email": email, "name": name, "sender": f"{name} <{email}>" if name else email}
            for name, email in caller.user.senders
        ]
        return {"items": items[offset : offset + limit]}

    def _m_mailbox_list(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        name = self._str_param(params, "name")
        email = self._str_param(params, "email")
        offset, limit = self._pagination(params, 25, 100)
        with self._lock:
            mailboxes = list(caller.user.mailboxes)
        items = [
            {"id": mb.id, "name": mb.name, "email": mb.email, "senderName": mb.sender_name}
            for mb in mailboxes
            if (not name or name.lower() in mb.name.lower())
            and (not email or email.lower() in mb.email.lower())
        ]
        return {"items": items[offset : offset + limit]}

    def _m_message_list(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        with self._lock:
            require_mailbox, seed = self._require_mailbox_id, self._list_seed
        mailbox_id = self._int_param(params, "mailboxId", required=require_mailbox)
        query = self._str_param(params, "searchQuery")
        date_from = self._date_param(params, "dateFrom")
        date_to = self._date_param(params, "dateTo")
        is_seen = self._bool_param(params, "isSeen")
        has_attachments = self._bool_param(params, "hasAttachments")
        folder = self._str_param(params, "folder")
        offset, limit = self._pagination(params, 25, 200)
        needle = query.lower() if query else None
        with self._lock:
            own = [m for m in self._messages.values() if m.user_id == caller.user.user_id]
        found = [
            m
            for m in own
            if (mailbox_id is None or m.mailbox_id == mailbox_id)
            and (
                needle is None
                or needle in m.subject.lower()
                or needle in m.from_.lower()
                or needle in m.body.lower()
            )
            and (date_from is None or m.date >= date_from)
            and (date_to is None or m.date <= date_to)
            and (is_seen is None or m.is_seen == is_seen)
            and (has_attachments is None or m.has_attachments == has_attachments)
            and (folder is None or m.folder.lower() == folder.lower())
        ]
        # The page does not document an order: an arbitrary one, stable from call to call so
        # pages do not overlap, and unrelated to the date so a client must sort for itself.
        found.sort(key=lambda m: hashlib.sha256(f"{seed}:{m.id}".encode()).digest())
        return {"items": [self._message_item(m) for m in found[offset : offset + limit]]}

    def _m_message_get(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        message_id = self._int_param(params, "id", required=True)
        assert message_id is not None
        select = params.get("select")
        if select is not None and (
            not isinstance(select, list) or not all(isinstance(s, str) for s in select)
        ):
            raise _invalid([{"field": "select", "message": "Field `select` must be an array"}])
        item = self._message_item(self._visible_message(caller, message_id))
        # The get example answers `cc: null` for an e-mail without copies (list answers "").
        item["cc"] = item["cc"] or None
        if select:
            # Unknown own fields are silently left out (rest-v3.md, "select").
            item = {k: v for k, v in item.items() if k in select}
        return {"item": item}

    def _m_message_thread(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        message_id = self._int_param(params, "id", required=True)
        limit = self._int_param(params, "limit", required=False)
        assert message_id is not None
        anchor = self._visible_message(caller, message_id)
        if limit is not None and not 1 <= limit <= 50:
            # Documented maximum 50; what the portal does above it is not, so refuse it.
            raise _invalid([{"field": "limit", "message": "Field `limit` must be from 1 to 50"}])
        limit = 20 if limit is None else limit
        with self._lock:
            thread = [
                m
                for m in self._messages.values()
                if m.thread_id == anchor.thread_id and m.user_id == caller.user.user_id
            ]
        thread.sort(key=lambda m: (m.date, m.id))  # oldest first, as in the docs' example
        # A plain array, not {"items": …}; dates as in the docs' example ("Y-m-d H:i:s").
        return [
            {
                "id": m.id,
                "subject": m.subject,
                "from": m.from_,
                "to": m.to,
                "cc": m.cc,
                "date": m.date.strftime("%Y-%m-%d %H:%M:%S"),
                "body": m.body,
            }
            for m in thread[:limit]
        ]

    def _m_send(self, caller: _Caller, params: dict[str, Any], key: str | None) -> Any:
        return self._send_common(caller, params, key, SEND, None, MESSAGE_SEND_FAILED)

    def _m_reply(self, caller: _Caller, params: dict[str, Any], key: str | None) -> Any:
        return self._send_common(
            caller, params, key, REPLY, "replyToMessageId", MESSAGE_REPLY_FAILED
        )

    def _m_forward(self, caller: _Caller, params: dict[str, Any], key: str | None) -> Any:
        self._check_denied(caller, FORWARD)
        try:
            return self._send_common(
                caller, params, key, FORWARD, "forwardMessageId", MESSAGE_FORWARD_FAILED
            )
        except _ApiError as exc:
            # The forward page documents a missing or inaccessible e-mail as this cause, not as
            # ENTITYNOTFOUND or an access error.
            code = exc.reply.obj.get("error", {}).get("code") if exc.reply.obj else None
            if code in (ENTITY_NOT_FOUND, ACCESS_DENIED_V3):
                raise _invalid(
                    [_cause("forwardMessageId", MESSAGE_FORWARD_FAILED, "Message not found")]
                ) from None
            raise

    def _send_common(
        self,
        caller: _Caller,
        params: dict[str, Any],
        key: str | None,
        method: str,
        ref_field: str | None,
        fail_cause: str,
    ) -> Any:
        problems: list[dict[str, str]] = []
        ref_id: int | None = None
        if ref_field is not None:
            value = params.get(ref_field)
            if value is None:
                problems.append(_required(ref_field))
            elif isinstance(value, bool) or not isinstance(value, int):
                problems.append(
                    {"field": ref_field, "message": f"Field `{ref_field}` must be an integer"}
                )
            else:
                ref_id = value
        for name in ("from", "subject", "body"):
            value = params.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                problems.append(_required(name))
            elif not isinstance(value, str):
                problems.append({"field": name, "message": f"Field `{name}` must be a string"})
        lists: dict[str, list[str]] = {}
        for name in ("to", "cc", "bcc"):
            value = params.get(name)
            if value is None and name == "to":
                problems.append(_required(name))
            elif value is None:
                lists[name] = []
            elif isinstance(value, list) and all(isinstance(a, str) for a in value):
                lists[name] = value
            else:
                problems.append(
                    {"field": name, "message": f"Field `{name}` must be an array of strings"}
                )
        if "to" in lists and not any(a.strip() for a in lists["to"]):
            problems.append(_cause("to", NO_RECIPIENTS))
        if problems:
            raise _invalid(problems)

        # Where the docs' tables put the send/reply/forward failure codes.
        fail_field = ref_field or "from"
        if ref_id is not None:
            with self._lock:
                original = self._messages.get(ref_id)
            if original is None or original.user_id != caller.user.user_id:
                # Documented as the validation cause on the id field, not ENTITYNOTFOUND.
                raise _invalid([_cause(fail_field, fail_cause)])
        from_ = params["from"]
        sender = _extract_email(from_)
        if sender is None or all(sender.lower() != e.lower() for _, e in caller.user.senders):
            raise _invalid([_cause(fail_field, fail_cause)])
        bad = [
            _cause(name, RESOLVE_RECIPIENTS_ERROR)
            for name in ("to", "cc", "bcc")
            for address in lists[name]
            if _extract_email(address) is None
        ]
        if bad:
            raise _invalid(bad)
        with self._lock:
            injected = self._send_failure
        if injected:
            where = "to" if injected in (NO_RECIPIENTS, RESOLVE_RECIPIENTS_ERROR) else fail_field
            raise _invalid([_cause(where, injected)])

        delivered = Delivered(
            method=method,
            user_id=caller.user.user_id,
            from_=from_,
            to=list(lists["to"]),
            cc=list(lists["cc"]),
            bcc=list(lists["bcc"]),
            subject=params["subject"],
            body=params["body"],
            reply_to_message_id=ref_id if method == REPLY else None,
            forward_message_id=ref_id if method == FORWARD else None,
            idempotency_key=key,
            at=self._wall(),
        )
        with self._delivered_cond:
            self._delivered.append(delivered)
            self._delivered_cond.notify_all()
        # No message id: the real method does not return one.
        return {"success": True, "to": list(lists["to"])}

    # -- acting on an e-mail and finding recipients (mail.message.create*, movetofolder,
    # mail.recipient.*), each as its page in api-reference/mail/ describes --------------------
    def _init_actions(self) -> None:
        self._employees: list[FakePerson] = []
        self._contacts: dict[int, list[FakePerson]] = {}
        self._created: list[CreatedObject] = []
        self._next_object_id = 100

    def _action_handlers(self) -> dict[str, Callable[[_Caller, dict[str, Any], str | None], Any]]:
        return {
            CREATE_TASK: self._m_create_task,
            CREATE_EVENT: self._m_create_event,
            CREATE_CRM_ACTIVITY: self._m_create_crm_activity,
            CREATE_CHAT: self._m_create_chat,
            MOVE_TO_FOLDER: self._m_move_to_folder,
            LIST_CONTACTS: self._m_list_contacts,
            LIST_EMPLOYEES: self._m_list_employees,
        }

    def add_employee(self, person_id: int, *, name: str, email: str) -> None:
        """A portal user `mail.recipient.listemployees` finds (by name or address)."""
        with self._lock:
            self._employees.append(FakePerson(person_id, name, email))

    def add_contact(self, user_id: int, person_id: int, *, name: str, email: str) -> None:
        """A contact in `user_id`'s address book (`mail.recipient.listcontacts`); newest last."""
        with self._lock:
            self._contacts.setdefault(user_id, []).append(FakePerson(person_id, name, email))

    @property
    def created(self) -> list[CreatedObject]:
        """Tasks, events, CRM activities and chats made from e-mails, oldest first."""
        with self._lock:
            return list(self._created)

    def deny_access(self, user_id: int, *, methods: Iterable[str] | None = None) -> None:
        """`user_id` lacks the rights for `methods` (all of this block's when None): 403
        ACCESSDENIEDEXCEPTION, as the pages' "Access errors" tables say. Undone by reset_faults."""
        with self._lock:
            self._denied[user_id] = _methods_set(methods)

    def remove_module(self, module: str) -> None:
        """Act as if a portal module (tasks, calendar, crm, im) were not installed; the create*
        methods needing it fail as their pages say. Undone by reset_faults."""
        with self._lock:
            self._missing_modules.add(module)

    def _check_module(self, module: str, message: str) -> None:
        with self._lock:
            missing = module in self._missing_modules
        if missing:
            # The pages list this cause with field "-": the entry carries no field.
            raise _invalid([{"message": message}])

    def _check_denied(self, caller: _Caller, method: str) -> None:
        with self._lock:
            user_id = caller.user.user_id
            denied = user_id in self._denied and _matches(self._denied[user_id], method)
        if denied:
            raise _ApiError(_v3(403, ACCESS_DENIED_V3, "Access denied"))

    def _message_param(self, caller: _Caller, params: Mapping[str, Any]) -> FakeMessage:
        """`messageId` of the create* methods: a positive integer naming an e-mail of the caller."""
        value = params.get("messageId")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _invalid(
                [
                    {
                        "field": "messageId",
                        "message": "Required field `messageId` is not specified "
                        "or an incorrect value was passed",
                    }
                ]
            )
        with self._lock:
            message = self._messages.get(value)
        # A missing, foreign or trashed e-mail: the pages report all of them alike.
        if message is None or message.user_id != caller.user.user_id or message.folder == TRASH:
            raise _invalid(
                [
                    {
                        "field": "messageId",
                        "message": "Message was deleted or moved to another folder",
                    }
                ]
            )
        return message

    def _created_object(
        self, kind: str, caller: _Caller, message: FakeMessage, fields: dict[str, Any]
    ) -> CreatedObject:
        with self._lock:
            self._next_object_id += 1
            made = CreatedObject(
                kind, self._next_object_id, caller.user.user_id, message.id, fields
            )
            self._created.append(made)
        return made

    def _m_create_task(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        self._check_denied(caller, CREATE_TASK)
        self._check_module("tasks", "Module tasks is not installed.")
        title = self._str_param(params, "title")
        responsible = self._int_param(params, "responsibleId", required=False)
        description = self._str_param(params, "description")
        message = self._message_param(caller, params)
        task = self._created_object(
            "task",
            caller,
            message,
            {
                "title": title or message.subject,
                "responsibleId": responsible or caller.user.user_id,
                "description": description or "",
            },
        )
        return {"success": True, "taskId": task.id, "messageId": message.id}

    def _m_create_event(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        self._check_denied(caller, CREATE_EVENT)
        self._check_module("calendar", "Module calendar is not installed")
        problems: list[dict[str, str]] = []
        dates: dict[str, str] = {}
        for name in ("dateFrom", "dateTo"):
            value = params.get(name)
            if value is None:
                problems.append(
                    {"field": name, "message": f"Mandatory field `{name}` is not specified"}
                )
            elif not isinstance(value, str) or not _is_php_datetime(value):
                problems.append({"field": name, "message": "Invalid date format"})
            else:
                dates[name] = value
        name_ = self._str_param(params, "name")
        description = self._str_param(params, "description")
        message = self._message_param(caller, params)
        if problems:
            raise _invalid(problems)
        event = self._created_object(
            "event",
            caller,
            message,
            {**dates, "name": name_ or message.subject, "description": description or ""},
        )
        return {"success": True, "eventId": event.id, "messageId": message.id}

    def _m_create_crm_activity(
        self, caller: _Caller, params: dict[str, Any], _key: str | None
    ) -> Any:
        self._check_denied(caller, CREATE_CRM_ACTIVITY)
        self._check_module("crm", "CRM module is not installed")
        message = self._message_param(caller, params)
        self._created_object("crm_activity", caller, message, {})
        return True

    def _m_create_chat(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        self._check_denied(caller, CREATE_CHAT)
        self._check_module("im", "Modules im/intranet are not installed")
        message = self._message_param(caller, params)
        with self._lock:
            earlier = next(
                (c for c in self._created if c.kind == "chat" and c.message_id == message.id), None
            )
        if earlier is not None:
            return {
                "success": True,
                "chatId": earlier.id,
                "messageId": message.id,
                "existing": True,
            }
        chat = self._created_object("chat", caller, message, {})
        return {"success": True, "chatId": chat.id, "messageId": message.id, "existing": False}

    def _m_move_to_folder(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        self._check_denied(caller, MOVE_TO_FOLDER)
        ids = params.get("messageIds")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            raise _invalid([{"field": "messageIds", "message": "Required field is not specified"}])
        action = params.get("action")
        if action not in ("move", "spam", "delete"):
            raise _invalid(
                [
                    {
                        "field": "action",
                        "message": "The `action` parameter must be `move`, `spam`, or `delete`",
                    }
                ]
            )
        folder = self._str_param(params, "folder")
        if action == "move" and not folder:
            raise _invalid(
                [
                    {
                        "field": "folder",
                        "message": "The `folder` parameter is required when `action=move`",
                    }
                ]
            )
        with self._lock:
            found = [self._messages.get(i) for i in ids]
        own = [m for m in found if m is not None and m.user_id == caller.user.user_id]
        if not own:
            raise _invalid([{"field": "messageIds", "message": "No accessible messages found"}])
        if len({m.mailbox_id for m in own}) > 1:
            raise _invalid(
                [
                    {
                        "field": "messageIds",
                        "message": "All messages must belong to the same mailbox",
                    }
                ]
            )
        if len({m.folder for m in own}) > 1:
            raise _invalid(
                [{"field": "messageIds", "message": "Select emails from a single folder"}]
            )
        target = {"spam": SPAM, "delete": TRASH}.get(action, folder or "")
        with self._lock:
            for m in own:
                m.folder = target
        return {"success": True, "movedCount": len(own), "action": action}

    def _people(
        self, people: list[FakePerson], query: str | None, params: Mapping[str, Any]
    ) -> Any:
        offset, limit = self._pagination(params, 50, 200)
        needle = query.lower() if query else None
        found = [
            p
            for p in people
            if needle is None or needle in p.name.lower() or needle in p.email.lower()
        ]
        return {
            "items": [
                {"id": p.id, "email": p.email, "name": p.name}
                for p in found[offset : offset + limit]
            ]
        }

    def _m_list_contacts(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        self._check_denied(caller, LIST_CONTACTS)
        query = self._str_param(params, "query")
        with self._lock:
            # Without a query the page says "the latest contacts": newest first.
            contacts = list(reversed(self._contacts.get(caller.user.user_id, [])))
        return self._people(contacts, query, params)

    def _m_list_employees(self, caller: _Caller, params: dict[str, Any], _key: str | None) -> Any:
        self._check_denied(caller, LIST_EMPLOYEES)
        query = self._str_param(params, "query")
        if not query:
            raise _invalid(
                [{"field": "query", "message": "Required field `query` is not specified"}]
            )
        with self._lock:
            employees = list(self._employees)
        return self._people(employees, query, params)

    # -- control API ---------------------------------------------------------------------------
    def _user_json(self, user: FakeUser) -> dict[str, Any]:
        return {
            "user_id": user.user_id,
            "code": user.code,
            "scopes": list(user.scopes),
            "senders": [list(s) for s in user.senders],
            "webhook_url": user.webhook_url,
            "api_url": user.api_url,
        }

    def _control(self, verb: str, path: str, raw: bytes) -> _Reply:
        """The HTTP control API, for worker processes and chaos runs.

        GET  /_fake/health | delivered | requests | users
        POST /_fake/users     {user_id, code?, scopes?, senders?: [[name, email], …]}
        POST /_fake/oauth_tokens {token, user_id, scopes?}
        POST /_fake/messages  {user_id, subject, from, to?, cc?, body?, date? (ISO 8601),
                               mailbox_email?, mailbox_id?, has_attachments?, is_seen?,
                               thread_id?, folder?}
        POST /_fake/faults    see apply_faults()
        POST /_fake/reset | clear
        POST /_fake/advance   {seconds}
        Exempt from the rate limit and not recorded in `requests`.
        """
        name = path.removeprefix("/_fake").strip("/")
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _json_reply(400, {"error": "body is not JSON"})
        try:
            if verb == "GET":
                if name == "health":
                    return _json_reply(200, {"ok": True, "base_url": self.base_url})
                if name == "delivered":
                    return _json_reply(200, {"delivered": [d.to_json() for d in self.delivered]})
                if name == "requests":
                    return _json_reply(200, {"requests": [r.to_json() for r in self.requests]})
                if name == "users":
                    with self._lock:
                        users = list(self._users.values())
                    return _json_reply(200, {"users": [self._user_json(u) for u in users]})
            elif verb == "POST":
                return self._control_post(name, data)
        except (KeyError, TypeError, ValueError) as exc:
            return _json_reply(400, {"error": f"{type(exc).__name__}: {exc}"})
        return _json_reply(404, {"error": f"no control endpoint {verb} {path}"})

    def _control_post(self, name: str, data: Any) -> _Reply:
        if not isinstance(data, dict):
            raise TypeError("body must be a JSON object")
        if name == "users":
            kwargs: dict[str, Any] = {}
            if data.get("code") is not None:
                kwargs["code"] = str(data["code"])
            if data.get("scopes") is not None:
                kwargs["scopes"] = [str(s) for s in data["scopes"]]
            if data.get("senders") is not None:
                kwargs["senders"] = [(str(n), str(e)) for n, e in data["senders"]]
            user = self.add_user(int(data["user_id"]), **kwargs)
            return _json_reply(200, self._user_json(user))
        if name == "oauth_tokens":
            self.add_oauth_token(
                str(data["token"]),
                user_id=int(data["user_id"]),
                scopes=[str(s) for s in data.get("scopes") or ("mail",)],
            )
            return _json_reply(200, {"ok": True})
        if name == "messages":
            date = data.get("date")
            message_id = self.add_message(
                int(data["user_id"]),
                subject=str(data["subject"]),
                from_=str(data.get("from", data.get("from_"))),
                to=str(data.get("to", "")),
                cc=str(data.get("cc", "")),
                body=str(data.get("body", "")),
                date=datetime.fromisoformat(date) if date else None,
                mailbox_email=data.get("mailbox_email"),
                mailbox_id=int(data.get("mailbox_id", 1)),
                has_attachments=bool(data.get("has_attachments", False)),
                is_seen=bool(data.get("is_seen", False)),
                thread_id=int(data["thread_id"]) if data.get("thread_id") is not None else None,
                folder=str(data.get("folder", "INBOX")),
            )
            return _json_reply(200, {"id": message_id})
        if name == "faults":
            self.apply_faults(data)
            return _json_reply(200, {"ok": True})
        if name == "reset":
            self.reset_faults()
            return _json_reply(200, {"ok": True})
        if name == "clear":
            self.clear()
            return _json_reply(200, {"ok": True})
        if name == "advance":
            self.advance(float(data["seconds"]))
            return _json_reply(200, {"ok": True})
        return _json_reply(404, {"error": f"no control endpoint POST /_fake/{name}"})


# ---------------------------------------------------------------------------------------------
# A client for the control API (for tests that drive a portal in another process)
# ---------------------------------------------------------------------------------------------
class PortalControl:
    """Drive a FakePortal running elsewhere (e.g. the CLI) through `/_fake/`."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/_fake/", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PortalControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, name: str, body: Any) -> dict[str, Any]:
        response = self._http.post(name, json=body)
        response.raise_for_status()
        return response.json()

    def add_user(
        self,
        user_id: int,
        *,
        code: str | None = None,
        scopes: Iterable[str] | None = None,
        senders: Iterable[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "code": code}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if senders is not None:
            body["senders"] = [list(s) for s in senders]
        return self._post("users", body)

    def add_oauth_token(
        self, token: str, *, user_id: int, scopes: Iterable[str] = ("mail",)
    ) -> None:
        self._post("oauth_tokens", {"token": token, "user_id": user_id, "scopes": list(scopes)})

    def add_message(self, user_id: int, **fields: Any) -> int:
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        if isinstance(fields.get("date"), datetime):
            fields["date"] = fields["date"].isoformat()
        return int(self._post("messages", {"user_id": user_id, **fields})["id"])

    def faults(self, **spec: Any) -> None:
        self._post("faults", spec)

    def reset(self) -> None:
        self._post("reset", {})

    def clear(self) -> None:
        self._post("clear", {})

    def advance(self, seconds: float) -> None:
        self._post("advance", {"seconds": seconds})

    def delivered(self) -> list[Delivered]:
        response = self._http.get("delivered")
        response.raise_for_status()
        return [Delivered.from_json(d) for d in response.json()["delivered"]]

    def requests(self) -> list[dict[str, Any]]:
        response = self._http.get("requests")
        response.raise_for_status()
        return list(response.json()["requests"])

    def wait_for_delivered(self, n: int, timeout: float = 5.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.delivered()
            if len(current) >= n:
                return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"expected {n} delivered e-mail(s), got {len(current)}")
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.bitrix24_portal",
        description="Run a fake Bitrix24 portal (REST 3.0 mail) until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    parser.add_argument("--rate", type=float, default=2.0, help="bucket drain, requests/s")
    parser.add_argument("--burst", type=int, default=50, help="bucket capacity")
    parser.add_argument(
        "--user", type=int, action="append", default=[], help="add a user (repeatable)"
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    portal = FakePortal(rate=args.rate, burst=args.burst, host=args.host, port=args.port).start()
    try:
        print(
            f"fake Bitrix24 portal on {portal.base_url} "
            f"(rate {args.rate}/s, burst {args.burst}); control API at {portal.base_url}/_fake/",
            flush=True,
        )
        for user_id in args.user:
            user = portal.add_user(user_id)
            print(f"user {user.user_id} webhook: {user.webhook_url}", flush=True)
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.2):
            pass
    finally:
        portal.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
