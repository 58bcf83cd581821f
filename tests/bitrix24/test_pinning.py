"""The pinned network backend connects only to the public addresses it checked itself."""

from __future__ import annotations

import typing

import httpcore
import pytest

from bot.bitrix24.pinning import ForbiddenAddress, PublicAddressBackend, pinned_transport


class Recorder(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where connections would go."""

    def __init__(self, *, refuse: set[str] | None = None) -> None:
        self.targets: list[tuple[str, int]] = []
        self._refuse = refuse or set()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.targets.append((host, port))
        if host in self._refuse:
            raise httpcore.ConnectError("refused")
        return typing.cast(httpcore.AsyncNetworkStream, object())

    async def sleep(self, seconds: float) -> None:
        return None


def resolver(*answers: str) -> typing.Callable[[str], typing.Awaitable[list[str]]]:
    async def resolve(_name: str) -> list[str]:
        return list(answers)

    return resolve


async def test_connects_to_the_checked_address_not_the_name() -> None:
    inner = Recorder()
    backend = PublicAddressBackend(resolver=resolver("93.184.216.34"), inner=inner)
    await backend.connect_tcp("portal.example.com", 443)
    assert inner.targets == [("93.184.216.34", 443)]


async def test_tries_the_next_checked_address_when_one_refuses() -> None:
    inner = Recorder(refuse={"93.184.216.34"})
    backend = PublicAddressBackend(resolver=resolver("93.184.216.34", "93.184.216.35"), inner=inner)
    await backend.connect_tcp("portal.example.com", 443)
    assert inner.targets == [("93.184.216.34", 443), ("93.184.216.35", 443)]


@pytest.mark.parametrize(
    "answers", [("10.0.0.5",), ("93.184.216.34", "127.0.0.1"), ("169.254.169.254",)]
)
async def test_refuses_when_any_address_is_not_public(answers: tuple[str, ...]) -> None:
    inner = Recorder()
    backend = PublicAddressBackend(resolver=resolver(*answers), inner=inner)
    with pytest.raises(ForbiddenAddress):
        await backend.connect_tcp("portal.example.com", 443)
    assert inner.targets == []


async def test_unix_sockets_are_never_portals() -> None:
    with pytest.raises(httpcore.ConnectError):
        await PublicAddressBackend(inner=Recorder()).connect_unix_socket("/var/run/docker.sock")


def test_the_transport_really_uses_the_backend() -> None:
    """Guards the one private attribute we set: a new httpcore must not drop it silently."""
    transport = pinned_transport()
    assert isinstance(transport._pool._network_backend, PublicAddressBackend)
