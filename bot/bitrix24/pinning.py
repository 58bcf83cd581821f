"""Connections only to addresses we checked: closes DNS rebinding at connect time.

Checking a host name and then letting httpx resolve it again leaves a gap: the name can answer
a public address to the check and 127.0.0.1 to the connection. This network backend resolves
the name itself, refuses the connection unless every address is public, and connects to one of
those very addresses. httpcore still uses the host *name* for TLS (SNI and certificate
verification) and the Host header, so HTTPS works as before.
"""

from __future__ import annotations

import typing

import httpcore
import httpx

from .credentials import Resolver, public_addresses
from .errors import PortalUnreachable, WebhookURLError


class ForbiddenAddress(httpcore.ConnectError):
    """The host resolved to a non-public address at connect time."""


class PublicAddressBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self, *, resolver: Resolver | None = None, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await public_addresses(host, resolver=self._resolver)
        except WebhookURLError as exc:
            raise ForbiddenAddress(f"{host} resolves to a non-public address") from exc
        except PortalUnreachable as exc:
            raise httpcore.ConnectError(f"{host} does not resolve") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # public_addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a Bitrix24 portal is never a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(*, resolver: Resolver | None = None) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go only to checked public addresses."""
    transport = httpx.AsyncHTTPTransport()
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore version cannot take a custom network backend")
    pool._network_backend = PublicAddressBackend(resolver=resolver)
    return transport
