"""One HTTP exchange with a portal: host check, rate limiter, POST, and the answer read.

No retries here: whether and when to try again is the client's policy (``client``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from .config import ClientConfig
from .credentials import Credentials, Resolver, WebhookCredentials, ensure_public_host
from .errors import (
    Bitrix24Error,
    ConnectionDropped,
    PortalTimeout,
    PortalUnreachable,
    UnexpectedResponse,
    WebhookURLError,
)
from .limiter import RateLimiter
from .pinning import ForbiddenAddress, pinned_transport
from .responses import error_from_response, parse_reset_at

logger = logging.getLogger("bot.bitrix24")

_HOST_CACHE_PRUNE_AT = 1024


@dataclass(frozen=True, slots=True)
class PortalRequest:
    """One call as it goes over the wire: to which URL, what, and how long to wait for it."""

    creds: Credentials
    method: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    timeout: float | None


class PortalTransport:
    """Posts requests to any portal; never follows redirects, and checks hosts before connecting."""

    def __init__(
        self,
        *,
        config: ClientConfig,
        http: httpx.AsyncClient | None,
        limiters: RateLimiter,
        resolver: Resolver | None,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._owns_http = http is None
        # Our own client connects only to addresses checked at connect time (no DNS rebinding);
        # credentials allowed to reach local portals (testing) use a plain one. An injected
        # client (tests) gets the check before each call only.
        self._http = http or self._new_http(pinned_transport(resolver=resolver))
        self._http_insecure: httpx.AsyncClient | None = http
        self._limiters = limiters
        self._resolver = resolver
        self._clock = clock
        # host -> (expires at, forbidden?)
        self._host_verdicts: dict[str, tuple[float, bool]] = {}
        # (caller identity, method) -> the `operating_reset_at` of the last successful answer
        self._reset_at: dict[tuple[str, str], datetime] = {}

    @property
    def http(self) -> httpx.AsyncClient:
        """The HTTP client for portals on public addresses."""
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP clients this object created."""
        if self._owns_http:
            await self._http.aclose()
            if self._http_insecure is not None:
                await self._http_insecure.aclose()

    def _new_http(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=self._timeout(None),
            headers={"User-Agent": self._config.user_agent},
        )

    def _http_for(self, creds: Credentials) -> httpx.AsyncClient:
        if not creds.allow_insecure:
            return self._http
        if self._http_insecure is None:
            self._http_insecure = self._new_http(None)
        return self._http_insecure

    async def post(self, request: PortalRequest, attempt: int) -> tuple[Any, httpx.Headers]:
        """One POST after the host check and the limiter: the `result` and the headers, or an
        error mapped from the answer or the failed exchange."""
        creds, method = request.creds, request.method
        if not creds.allow_insecure:
            await self._check_host(creds.host)
        if self._config.limiter_enabled:
            await self._limiters.acquire(creds.host)
        started = self._clock()
        try:
            response = await self._http_for(creds).post(
                request.url,
                json=request.body,
                headers=request.headers,
                timeout=self._timeout(request.timeout),
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            logger.debug(
                "bitrix24 POST %s %s failed after %.3fs: %s (attempt %d)",
                creds.host,
                method,
                self._clock() - started,
                type(exc).__name__,
                attempt,
            )
            raise _transport_error(exc, creds.host, method) from exc
        logger.debug(
            "bitrix24 POST %s %s -> %d in %.3fs (attempt %d)",
            creds.host,
            method,
            response.status_code,
            self._clock() - started,
            attempt,
        )
        return self._result(creds, method, response), response.headers

    def _result(self, creds: Credentials, method: str, response: httpx.Response) -> Any:
        status = response.status_code
        data: Any = None
        if not 300 <= status < 400:
            try:
                data = response.json()
            except ValueError:
                data = None
        has_error = isinstance(data, Mapping) and "error" in data
        if 200 <= status < 300 and not has_error:
            if isinstance(data, Mapping) and "result" in data:
                self._remember_reset(_identity(creds), method, data.get("time"))
                return data["result"]
            raise UnexpectedResponse(host=creds.host, method=method, http_status=status)
        raise error_from_response(
            status,
            response.headers,
            data if data is not None else response.content,
            host=creds.host,
            method=method,
            reset_at=self._reset_at.get((_identity(creds), method)),
        )

    def _remember_reset(self, identity: str, method: str, timing: Any) -> None:
        if isinstance(timing, Mapping):
            reset_at = parse_reset_at(timing.get("operating_reset_at"))
            if reset_at is not None:
                self._reset_at[(identity, method)] = reset_at

    async def _check_host(self, host: str) -> None:
        now = self._clock()
        cached = self._host_verdicts.get(host)
        if cached is not None and cached[0] > now:
            if cached[1]:
                raise WebhookURLError("webhook_forbidden_host", host=host)
            return
        if len(self._host_verdicts) >= _HOST_CACHE_PRUNE_AT:
            self._host_verdicts = {h: v for h, v in self._host_verdicts.items() if v[0] > now}
        expires = now + self._config.host_check_ttl
        try:
            async with asyncio.timeout(self._config.connect_timeout):
                await ensure_public_host(host, resolver=self._resolver)
        except TimeoutError as exc:
            raise PortalUnreachable(
                "The portal's host name did not resolve in time", host=host
            ) from exc
        except WebhookURLError:
            self._host_verdicts[host] = (expires, True)
            raise
        self._host_verdicts[host] = (expires, False)

    def _timeout(self, read: float | None) -> httpx.Timeout:
        config = self._config
        return httpx.Timeout(
            connect=config.connect_timeout,
            read=read if read is not None else config.read_timeout,
            write=config.write_timeout,
            pool=config.pool_timeout,
        )


def _transport_error(exc: httpx.HTTPError, host: str, method: str) -> Bitrix24Error:
    context: dict[str, Any] = {"host": host, "method": method}
    if isinstance(exc.__cause__, ForbiddenAddress):
        return WebhookURLError("webhook_forbidden_host", host=host)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return PortalTimeout(
            "The Bitrix24 portal did not accept the connection in time",
            may_have_reached_portal=False,
            **context,
        )
    if isinstance(exc, httpx.TimeoutException):
        return PortalTimeout(**context)
    if isinstance(exc, httpx.ConnectError | httpx.ProxyError | httpx.UnsupportedProtocol):
        return PortalUnreachable(**context)
    if isinstance(exc, httpx.DecodingError):
        return UnexpectedResponse(**context)
    if isinstance(exc, httpx.LocalProtocolError):
        return UnexpectedResponse(
            "The request to Bitrix24 could not be sent", may_have_reached_portal=False, **context
        )
    if isinstance(exc, httpx.TransportError):
        return ConnectionDropped(**context)
    return UnexpectedResponse(**context)


def _identity(creds: Credentials) -> str:
    """Who calls, without the secret: the portal's time budget is kept per webhook/app."""
    secret = creds.code if isinstance(creds, WebhookCredentials) else creds.access_token
    digest = hashlib.sha256(secret.get_secret_value().encode()).hexdigest()[:16]
    return f"{creds.host}|{getattr(creds, 'user_id', '')}|{digest}"
