"""The async REST 3.0 mail client: the typed mail methods, and when a failed call is tried again.

One exchange with the portal (host check, limiter, POST, the answer read) is ``transport``'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from .config import ClientConfig
from .credentials import Credentials, Resolver, WebhookCredentials
from .errors import (
    PortalUnavailable,
    RateLimited,
    TransportError,
    UnexpectedResponse,
)
from .limiter import RateLimiter, shared_limiters
from .models import (
    Mailbox,
    Message,
    MessageFilter,
    MessagePage,
    OutgoingEmail,
    Sender,
    SendResult,
)
from .redaction import install_log_redaction
from .transport import PortalRequest, PortalTransport

__all__ = ["Bitrix24Client"]

logger = logging.getLogger("bot.bitrix24")

Sleep = Callable[[float], Awaitable[None]]
_Model = TypeVar("_Model", bound=BaseModel)

# Printable ASCII, 1-255 long; no space at either end, which HTTP would strip anyway.
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")

# One lock per idempotency key in the whole process: the portal may run two concurrent
# requests with one key both, so they must never overlap. Weak values drop unused locks.
_KEY_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

_HOST_CACHE_PRUNE_AT = 1024
# mail.message.thread: "Default — 20, maximum — 50".
THREAD_LIMIT_MAX = 50


class Bitrix24Client:
    """Calls the REST 3.0 mail methods of any portal, one set of credentials per call.

    Never follows redirects. Unless the credentials allow insecure hosts, every host is
    checked to resolve only to public addresses before a connection (verdict cached for
    `host_check_ttl`). Without `limiters`, all clients of the process with the same rate and
    burst share one set of per-portal buckets; a RateLimiter shared across processes (the
    store's, on PostgreSQL) may be injected instead. `sleep`, `clock` (monotonic seconds),
    `rng` and `resolver` are injectable for tests.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        config: ClientConfig | None = None,
        limiters: RateLimiter | None = None,
        resolver: Resolver | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config or ClientConfig()
        self._limiters: RateLimiter = limiters or shared_limiters(
            rate=self._config.rate, burst=self._config.burst
        )
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        self._rng = rng or random.SystemRandom()
        self._transport = PortalTransport(
            config=self._config,
            http=http,
            limiters=self._limiters,
            resolver=resolver,
            clock=self._clock,
        )
        install_log_redaction()

    @property
    def config(self) -> ClientConfig:
        return self._config

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients this object created."""
        await self._transport.aclose()

    # --- the mail methods --------------------------------------------------------------

    async def senders(
        self, creds: Credentials, *, limit: int = 100, page: int = 1, timeout: float | None = None
    ) -> list[Sender]:
        """The addresses the user may send from; the only valid `from` values."""
        method = "mail.mailbox.senders"
        result = await self.call(
            creds,
            method,
            {"pagination": _pagination(page, limit, 100)},
            read_only=True,
            timeout=timeout,
        )
        return [_parse(Sender, item, creds, method) for item in _items(result, creds, method)]

    async def mailboxes(
        self,
        creds: Credentials,
        *,
        name: str | None = None,
        email: str | None = None,
        limit: int = 50,
        page: int = 1,
        timeout: float | None = None,
    ) -> list[Mailbox]:
        """The user's mailboxes, optionally filtered by name or address fragment."""
        method = "mail.mailbox.list"
        params: dict[str, Any] = {}
        if name is not None:
            params["name"] = name
        if email is not None:
            params["email"] = email
        params["pagination"] = _pagination(page, limit, 100)
        result = await self.call(creds, method, params, read_only=True, timeout=timeout)
        return [_parse(Mailbox, item, creds, method) for item in _items(result, creds, method)]

    async def list_messages(
        self,
        creds: Credentials,
        filter: MessageFilter | None = None,
        *,
        limit: int = 50,
        page: int = 1,
        timeout: float | None = None,
    ) -> MessagePage:
        """One page of e-mails matching `filter`."""
        method = "mail.message.list"
        params = filter.to_params() if filter is not None else {}
        params["pagination"] = _pagination(page, limit, 200)
        result = await self.call(creds, method, params, read_only=True, timeout=timeout)
        items = [self._message(item, creds, method) for item in _items(result, creds, method)]
        return MessagePage(items=items, page=page, limit=limit, has_more=len(items) >= limit)

    async def get_message(
        self,
        creds: Credentials,
        message_id: int,
        *,
        select: list[str] | None = None,
        timeout: float | None = None,
    ) -> Message:
        """One e-mail by id; `select` narrows the fields returned."""
        method = "mail.message.get"
        params: dict[str, Any] = {"id": _positive(message_id, "message_id")}
        if select is not None:
            params["select"] = list(select)
        result = await self.call(creds, method, params, read_only=True, timeout=timeout)
        item = result.get("item") if isinstance(result, Mapping) else None
        if not isinstance(item, Mapping):
            raise UnexpectedResponse(host=creds.host, method=method)
        # `select` may leave the id out; it is the one we asked for.
        return self._message({"id": message_id, **item}, creds, method)

    async def thread(
        self, creds: Credentials, message_id: int, *, limit: int = 50, timeout: float | None = None
    ) -> list[Message]:
        """The e-mails of the thread that `message_id` belongs to (`limit` at most 50)."""
        method = "mail.message.thread"
        if _positive(limit, "limit") > THREAD_LIMIT_MAX:
            raise ValueError(f"limit must be at most {THREAD_LIMIT_MAX}")
        params = {"id": _positive(message_id, "message_id"), "limit": limit}
        result = await self.call(creds, method, params, read_only=True, timeout=timeout)
        return [self._message(item, creds, method) for item in _items(result, creds, method)]

    async def send(
        self,
        creds: Credentials,
        email: OutgoingEmail,
        *,
        idempotency_key: str | None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send a new e-mail; without an idempotency key it is never retried once sent."""
        return await self._send(
            creds, "mail.message.send", email.to_payload(), idempotency_key, timeout
        )

    async def reply(
        self,
        creds: Credentials,
        email: OutgoingEmail,
        *,
        reply_to_message_id: int,
        idempotency_key: str | None,
        timeout: float | None = None,
    ) -> SendResult:
        """Reply to an e-mail (the portal sets In-Reply-To and quotes the original)."""
        payload = email.to_payload()
        payload["replyToMessageId"] = _positive(reply_to_message_id, "reply_to_message_id")
        return await self._send(creds, "mail.message.reply", payload, idempotency_key, timeout)

    async def forward(
        self,
        creds: Credentials,
        email: OutgoingEmail,
        *,
        forward_message_id: int,
        idempotency_key: str | None,
        timeout: float | None = None,
    ) -> SendResult:
        """Forward an e-mail with all its attachments."""
        payload = email.to_payload()
        payload["forwardMessageId"] = _positive(forward_message_id, "forward_message_id")
        return await self._send(creds, "mail.message.forward", payload, idempotency_key, timeout)

    # --- any method --------------------------------------------------------------------

    async def call(
        self,
        creds: Credentials,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Call a REST 3.0 method and return its `result`.

        `read_only` declares the method free of side effects, so ambiguous failures
        (timeouts, dropped connections, 5xx) are retried as if an idempotency key were set.
        """
        result, _headers = await self._call(
            creds,
            method,
            dict(params or {}),
            idempotency_key=idempotency_key,
            read_only=read_only,
            timeout=timeout,
        )
        return result

    # --- internals ---------------------------------------------------------------------

    async def _send(
        self,
        creds: Credentials,
        method: str,
        payload: dict[str, Any],
        idempotency_key: str | None,
        timeout: float | None,
    ) -> SendResult:
        result, headers = await self._call(
            creds,
            method,
            payload,
            idempotency_key=idempotency_key,
            read_only=False,
            timeout=timeout,
        )
        if not isinstance(result, Mapping) or "success" not in result:
            raise UnexpectedResponse(host=creds.host, method=method)
        replayed = headers.get("Idempotent-Replayed", "").strip().lower() == "true"
        return _parse(SendResult, {**result, "replayed": replayed}, creds, method)

    async def _call(
        self,
        creds: Credentials,
        method: str,
        params: dict[str, Any],
        *,
        idempotency_key: str | None,
        read_only: bool,
        timeout: float | None,
    ) -> tuple[Any, httpx.Headers]:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        # The name becomes part of the URL path: keep it a plain dotted method name.
        if not _METHOD.fullmatch(method):
            raise ValueError(f"not a REST method name: {method!r}")
        headers = {"Accept": "application/json"}
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not _IDEMPOTENCY_KEY.fullmatch(
                idempotency_key
            ):
                raise ValueError("idempotency_key must be 1-255 printable ASCII characters")
            headers["Idempotency-Key"] = idempotency_key
        url, body = _target(creds, method, params)
        request = PortalRequest(creds, method, url, body, headers, timeout)
        retry = _RetryRule(repeatable=read_only or idempotency_key is not None, write=not read_only)
        if idempotency_key is None:
            return await self._with_retries(request, retry)
        async with _key_lock(idempotency_key):
            return await self._with_retries(request, retry)

    async def _with_retries(
        self, request: PortalRequest, retry: _RetryRule
    ) -> tuple[Any, httpx.Headers]:
        config = self._config
        creds, method = request.creds, request.method
        rate_retries = other_retries = 0
        attempt = 0
        while True:
            attempt += 1
            started = self._clock()
            try:
                return await self._transport.post(request, attempt)
            except RateLimited as err:
                # The portal's bucket is full, maybe through other clients: pace from here.
                if config.limiter_enabled:
                    await self._limiters.saturate(creds.host)
                if rate_retries >= config.rate_limit_retries:
                    raise
                rate_retries += 1
                delay = self._backoff(rate_retries)
                reason = err.code
            except (TransportError, PortalUnavailable) as err:
                # A write that may have run must not run twice unless the key dedupes it.
                if err.may_have_reached_portal and not retry.repeatable:
                    raise
                if other_retries >= config.transport_retries:
                    raise
                other_retries += 1
                delay = self._backoff(other_retries)
                if retry.write and err.may_have_reached_portal and isinstance(err, TransportError):
                    # It may still be running on the portal: wait until it cannot be.
                    still_running = started + config.portal_request_limit - self._clock()
                    delay = max(delay, still_running)
                reason = err.code
            logger.info(
                "bitrix24 %s on %s failed (%s, attempt %d); retrying in %.2fs",
                method,
                creds.host,
                reason,
                attempt,
                delay,
            )
            await self._sleep(delay)

    def _backoff(self, retry: int) -> float:
        """Exponential back-off with full jitter."""
        config = self._config
        cap = min(config.backoff_max, config.backoff_base * 2 ** (retry - 1))
        return self._rng.uniform(0, cap)

    def _message(self, item: Any, creds: Credentials, method: str) -> Message:
        message = _parse(Message, item, creds, method)
        url = message.url
        # The portal may answer with a path; a link people can click needs the host.
        if url and url.startswith("/") and not url.startswith("//"):
            return message.model_copy(update={"url": f"{creds.scheme}://{creds.host}{url}"})
        return message


def _key_lock(key: str) -> asyncio.Lock:
    lock = _KEY_LOCKS.get(key)
    if lock is None:
        lock = asyncio.Lock()
        _KEY_LOCKS[key] = lock
    return lock


def _target(creds: Credentials, method: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(creds, WebhookCredentials):
        return creds.api_base + method, params
    return creds.api_base + method, {**params, "auth": creds.access_token.get_secret_value()}


@dataclass(frozen=True, slots=True)
class _RetryRule:
    repeatable: bool  # a read, or a write with an Idempotency-Key
    write: bool


def _items(result: Any, creds: Credentials, method: str) -> list[Any]:
    items = result.get("items") if isinstance(result, Mapping) else result
    if not isinstance(items, list):
        raise UnexpectedResponse(host=creds.host, method=method)
    return items


def _parse(model: type[_Model], data: Any, creds: Credentials, method: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UnexpectedResponse(host=creds.host, method=method) from exc


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _pagination(page: int, limit: int, maximum: int) -> dict[str, int]:
    """Pagination params; a limit over the method's maximum would be capped by the portal and
    make `has_more` lie, so it is refused here."""
    if _positive(limit, "limit") > maximum:
        raise ValueError(f"limit must be at most {maximum}")
    return {"page": _positive(page, "page"), "limit": limit}
