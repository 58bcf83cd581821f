"""A user cannot make b24mail call arbitrary hosts: private targets are refused before any
connection is made, and redirects are never followed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import (
    Bitrix24Client,
    Bitrix24Error,
    ClientConfig,
    PortalMoved,
    WebhookCredentials,
)
from bot.bitrix24 import credentials as credentials_module
from bot.slack import ids
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.security.support import (
    ALICE,
    Trap,
    compose_payload,
    connect_payload,
    count_rows,
    link,
    message_saying,
)
from tests.support.app import RunningApp, running_app

CODE = "a1b2c3d4e5f6g7h8"
DNS = {
    "internal.example.test": ["127.0.0.1"],
    "metadata.example.test": ["169.254.169.254"],
    "rebind.example.test": ["93.184.216.34", "127.0.0.1"],
    "mapped.example.test": ["::ffff:10.1.2.3"],
    "public.example.test": ["93.184.216.34"],
}


class Outbound:
    """Sees every Bitrix24 request the app makes. Loopback ones go through (to the trap);
    others are answered here with a 401, so nothing leaves the machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.urls: list[str] = []
        self.asked: list[str] = []
        original = httpx.AsyncHTTPTransport.handle_async_request

        async def handle(transport: httpx.AsyncHTTPTransport, request: httpx.Request) -> Any:
            if "/rest/" not in request.url.path:
                return await original(transport, request)
            self.urls.append(request.url.host)
            if request.url.host in ("127.0.0.1", "::1"):
                return await original(transport, request)
            return httpx.Response(401, json={"error": "NO_AUTH_FOUND"}, request=request)

        async def resolve(host: str) -> list[str]:
            self.asked.append(host)
            return DNS.get(host, ["10.9.9.9"])

        monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", handle)
        monkeypatch.setattr(credentials_module, "_system_resolver", resolve)


@pytest.fixture
def traps() -> Iterator[tuple[Trap, Trap | None]]:
    with Trap("127.0.0.1") as v4:
        try:
            v6: Trap | None = Trap("::1")
        except OSError:  # no IPv6 on this machine
            v6 = None
        try:
            yield v4, v6
        finally:
            if v6 is not None:
                v6.close()


def forbidden_urls(port: int, port6: int) -> list[str]:
    path = f"/rest/1/{CODE}/"
    hosts = [
        f"127.0.0.1:{port}",
        f"2130706433:{port}",
        f"0x7f.1:{port}",
        f"0177.0.0.1:{port}",
        f"127.1:{port}",
        f"[::ffff:127.0.0.1]:{port}",
        f"localhost:{port}",
        f"LOCALHOST.:{port}",
        f"[::1]:{port6}",
        "10.0.0.1",
        "10.255.255.254:8443",
        "192.168.1.1",
        "169.254.169.254",
        "[fd00::1]",
        "[fe80::1]",
        f"internal.example.test:{port}",
        "metadata.example.test",
        f"rebind.example.test:{port}",
        "mapped.example.test",
    ]
    urls = [f"https://{host}{path}" for host in hosts]
    urls.append(f"http://public.example.test{path}")  # plain http, even to a public host
    urls.append(f"https://user:pw@public.example.test{path}")
    return urls


async def _connect(app: RunningApp, url: str) -> str:
    answer = app.json(await app.interactive(connect_payload(url)))
    assert answer.get("response_action") == "errors", (url, answer)
    return str(answer["errors"][ids.CONNECT_URL_BLOCK])


async def test_private_targets_are_refused_before_any_connection(
    engine: AsyncEngine,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    traps: tuple[Trap, Trap | None],
) -> None:
    """Loopback in every spelling, private ranges, cloud metadata, private DNS answers, http."""
    outbound = Outbound(monkeypatch)
    v4, v6 = traps
    async with running_app(engine=engine, slack=slack, b24mail_allow_insecure_portals=False) as app:
        refusals = {
            url: await _connect(app, url)
            for url in forbidden_urls(v4.port, v6.port if v6 else v4.port)
        }
        tried_before_control = list(outbound.urls)
        # Control: a public name is called (here answered by the spy), so the probes can see.
        control = await _connect(app, f"https://public.example.test/rest/1/{CODE}/")
        rows = await count_rows(engine)
    for url, message in refusals.items():
        assert (
            "local or private network" in message
            or "must start with https://" in message
            or "Remove the user name" in message
        ), (url, message)
        assert CODE not in message
    assert tried_before_control == []
    assert v4.connections() == 0 and (v6 is None or v6.connections() == 0)
    assert {"internal.example.test", "rebind.example.test", "metadata.example.test"} <= set(
        outbound.asked
    )
    assert "did not accept the webhook" in control and outbound.urls == ["public.example.test"]
    assert rows["links"] == 0
    with socket.create_connection(("127.0.0.1", v4.port)):
        pass
    assert v4.connections() == 1  # the trap does see a real connection


async def test_a_portal_redirect_to_an_internal_address_is_never_followed(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, traps: tuple[Trap, Trap | None]
) -> None:
    """Connect and send against a portal answering 302 to an internal URL: PortalMoved, no contact."""
    v4, _v6 = traps
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        portal.rename(f"127.0.0.1:{v4.port}")
        b24 = portal.add_user(62)
        message = await _connect(app, b24.webhook_url)
        await app.interactive(compose_payload())
        status = await message_saying(slack, "Not sent")
        row = (await app.services.sending.history(ALICE))[0]
    assert f"has moved to *127.0.0.1:{v4.port}*" in message
    assert row.error_code == "portal_moved"
    assert "has moved" in str(status["blocks"])
    assert v4.connections() == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_the_client_reports_every_redirect_instead_of_following_it(status: int) -> None:
    """Any 3xx to an internal address is PortalMoved; the target is never requested."""
    seen: list[str] = []

    def portal(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(
            status, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(portal), follow_redirects=True)
    creds = WebhookCredentials(host="portal.example.test", user_id=1, code=SecretStr(CODE))

    async def public(host: str) -> list[str]:
        return ["93.184.216.34"]

    async with Bitrix24Client(http=http, config=ClientConfig(), resolver=public) as client:
        with pytest.raises(PortalMoved) as error:
            await client.call(creds, "mail.mailbox.senders", {}, idempotency_key="k1")
    await http.aclose()
    assert seen == ["portal.example.test"]
    assert error.value.code == "portal_moved"


async def test_a_name_that_rebinds_after_the_check_is_never_connected_to(
    monkeypatch: pytest.MonkeyPatch, traps: tuple[Trap, Trap | None]
) -> None:
    """DNS answers public for the check, then loopback for the connection: no connection."""
    v4, _v6 = traps
    loop = asyncio.get_running_loop()
    answers = iter(["93.184.216.34"] + ["127.0.0.1"] * 10)

    async def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[Any]:
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    creds = WebhookCredentials(
        host=f"rebind.example.test:{v4.port}", user_id=1, code=SecretStr(CODE)
    )
    config = ClientConfig(connect_timeout=0.5, read_timeout=0.5, transport_retries=0)
    async with Bitrix24Client(config=config) as client:
        with contextlib.suppress(Bitrix24Error):
            await client.senders(creds)
    assert v4.connections() == 0
