"""Webhook URL parsing, credential objects and the public-host check."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.bitrix24 import (
    OAuthCredentials,
    PortalUnreachable,
    Resolver,
    WebhookCredentials,
    WebhookURLError,
    ensure_public_host,
    is_forbidden_address,
    parse_webhook_url,
)

CODE = "Zq7SECRETcode9x1"
HOST = "portal.bitrix24.com"


@pytest.mark.parametrize(
    ("url", "scheme", "host", "user_id"),
    [
        (f"https://{HOST}/rest/1/{CODE}/", "https", HOST, 1),
        (f"https://{HOST}/rest/1/{CODE}", "https", HOST, 1),
        (f"https://{HOST}/rest/1/{CODE}/profile.json", "https", HOST, 1),
        (f"https://{HOST}/rest/1/{CODE}/user.current", "https", HOST, 1),
        (f"https://{HOST}/rest/1/{CODE}/mail.message.send", "https", HOST, 1),
        (f"https://{HOST}/rest/1/{CODE}/profile.json/", "https", HOST, 1),
        (f"https://{HOST}/rest/api/25/{CODE}/", "https", HOST, 25),
        (f"https://{HOST}/rest/api/25/{CODE}", "https", HOST, 25),
        (f"https://{HOST}/rest/api/25/{CODE}/mail.mailbox.senders", "https", HOST, 25),
        (f"  \t https://{HOST}/rest/1/{CODE}/ \n", "https", HOST, 1),
        (f"<https://{HOST}/rest/1/{CODE}/>", "https", HOST, 1),
        (f" < https://{HOST}/rest/1/{CODE}/ > ", "https", HOST, 1),
        (f"<https://{HOST}/rest/1/{CODE}/|https://{HOST}/rest/1/{CODE}/>", "https", HOST, 1),
        (f"HTTPS://Portal.BITRIX24.Com/rest/1/{CODE}/", "https", HOST, 1),
        (f"https://{HOST}/REST/API/3/{CODE}/", "https", HOST, 3),
        (f"https://{HOST}:8443/rest/1/{CODE}/", "https", f"{HOST}:8443", 1),
        (f"https://{HOST}:443/rest/1/{CODE}/", "https", HOST, 1),
        (f"https://{HOST}./rest/1/{CODE}/", "https", HOST, 1),
        (f"https://{HOST}//rest//1//{CODE}//", "https", HOST, 1),
        (f"https://b24.corp.example/rest/4294967296/{CODE}/", "https", "b24.corp.example", 2**32),
        (f"https://портал.рф/rest/1/{CODE}/", "https", "xn--80awhdgm.xn--p1ai", 1),
        (f"https://8.8.8.8/rest/1/{CODE}/", "https", "8.8.8.8", 1),
        (
            f"https://[2606:4700:4700::1111]:8443/rest/1/{CODE}/",
            "https",
            "[2606:4700:4700::1111]:8443",
            1,
        ),
    ],
)
def test_accepts_what_users_paste(url: str, scheme: str, host: str, user_id: int) -> None:
    """Every pasted form yields the same REST 3.0 credentials."""
    creds = parse_webhook_url(url)
    assert (creds.scheme, creds.host, creds.user_id) == (scheme, host, user_id)
    assert creds.code.get_secret_value() == CODE
    assert creds.allow_insecure is False
    assert creds.api_base == f"{scheme}://{host}/rest/api/{user_id}/{CODE}/"


def test_code_case_is_kept() -> None:
    """The host is lowercased but the secret code is not."""
    creds = parse_webhook_url(f"https://{HOST.upper()}/rest/1/AbCdEfGh12/")
    assert creds.host == HOST
    assert creds.code.get_secret_value() == "AbCdEfGh12"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "<>",
        "not a url",
        "portal.bitrix24.com/rest/1/Zq7SECRETcode9x1/",
        "mailto:someone@example.com",
        f"https://{HOST}/",
        f"https://{HOST}",
        f"https://{HOST}/rest/",
        f"https://{HOST}/rest/1/",
        f"https://{HOST}/rest/api/1/",
        f"https://{HOST}/rest/0/{CODE}/",
        f"https://{HOST}/rest/-1/{CODE}/",
        f"https://{HOST}/rest/+1/{CODE}/",
        f"https://{HOST}/rest/abc/{CODE}/",
        f"https://{HOST}/rest/1/short/",
        f"https://{HOST}/rest/1/{'a' * 65}/",
        f"https://{HOST}/rest/1/abc-def-ghi/",
        f"https://{HOST}/rest/1/abc_def_ghi/",
        f"https://{HOST}/rest/1/%41bcdefghij/",
        f"https://{HOST}/rest/1/{CODE}/mail.message.send/extra",
        f"https://{HOST}/rest/1/{CODE}/bad..method",
        f"https://{HOST}/bitrix/rest/1/{CODE}/",
        f"https://{HOST}/rest/api/api/1/{CODE}/",
        f"https:///rest/1/{CODE}/",
        f"https://{HOST}:0/rest/1/{CODE}/",
        f"https://{HOST}:99999/rest/1/{CODE}/",
        f"https://{HOST}:port/rest/1/{CODE}/",
        f"https://por tal.bitrix24.com/rest/1/{CODE}/",
        f"https://{HOST}/rest/1/{CODE}/\nhttps://evil.example/",
        f"https://{HOST}\\@evil.example/rest/1/{CODE}/",
        f"https://exa_mple.com/rest/1/{CODE}/",
        f"https://-bad.example.com/rest/1/{CODE}/",
        f"https://1.2.3.4.5/rest/1/{CODE}/",
        f"https://256.1.1.1/rest/1/{CODE}/",
        f"https://09.1.1.1/rest/1/{CODE}/",
        f"https://[::1/rest/1/{CODE}/",
        f"https://[fe80::1%25eth0]/rest/1/{CODE}/",
        f"https://::1/rest/1/{CODE}/",
    ],
)
def test_refuses_malformed(url: str) -> None:
    """Anything that is not a webhook address is refused as malformed."""
    with pytest.raises(WebhookURLError) as info:
        parse_webhook_url(url)
    assert info.value.code == "webhook_malformed"
    assert CODE not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"http://{HOST}/rest/1/{CODE}/",
        f"HTTP://{HOST}/rest/1/{CODE}/",
        f"ftp://{HOST}/rest/1/{CODE}/",
        f"ws://{HOST}/rest/api/1/{CODE}/",
        f"http://127.0.0.1/rest/1/{CODE}/",
    ],
)
def test_refuses_plain_http_and_other_schemes(url: str) -> None:
    """Only https is accepted by default."""
    with pytest.raises(WebhookURLError) as info:
        parse_webhook_url(url)
    assert info.value.code == "webhook_not_https"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.8.9.10",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "portal.localhost",
        "10.0.0.5",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "0",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.2.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "2130706433",
        "0x7f000001",
        "0x7F.1",
        "0177.0.0.1",
        "017700000001",
        "127.1",
        "127.0.1",
        "0xa.0.0.1",
        "3232235777",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::ffff:10.0.0.1]",
        "[::127.0.0.1]",
        "[fe80::1]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "[fec0::1]",
        "[ff02::1]",
        "[2001:db8::1]",
        "[2002:7f00:1::]",
        "[2002:c0a8:101::1]",
        "[64:ff9b::a00:1]",
        "[::1]:8443",
        "127.0.0.1:8080",
    ],
)
def test_refuses_local_and_private_hosts(host: str) -> None:
    """IP literals in non-public ranges (in any notation) and localhost names are refused."""
    with pytest.raises(WebhookURLError) as info:
        parse_webhook_url(f"https://{host}/rest/1/{CODE}/")
    assert info.value.code == "webhook_forbidden_host"
    assert CODE not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"https://{HOST}/rest/1/{CODE}/?utm=1#top",
        f"https://{HOST}/rest/1/{CODE}/user.current?auth=x",
        f"https://{HOST}/rest/api/1/{CODE}/#",
        f"https://{HOST}/rest/1/{CODE}/?",
        f"<https://{HOST}/rest/1/{CODE}/#section|label>",
    ],
)
def test_refuses_a_query_or_fragment_instead_of_trimming_it(url: str) -> None:
    """A `?…` or `#…` part is refused with its own code (not silently dropped), secret-free."""
    with pytest.raises(WebhookURLError) as info:
        parse_webhook_url(url)
    assert info.value.code == "webhook_has_query"
    assert CODE not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"https://user:pass@{HOST}/rest/1/{CODE}/",
        f"https://user@{HOST}/rest/1/{CODE}/",
        f"https://:@{HOST}/rest/1/{CODE}/",
        f"https://{HOST}@evil.example/rest/1/{CODE}/",
        f"https://{HOST}:443@127.0.0.1/rest/1/{CODE}/",
    ],
)
def test_refuses_userinfo(url: str) -> None:
    """A user name or password in the URL is refused (it can disguise the real host)."""
    with pytest.raises(WebhookURLError) as info:
        parse_webhook_url(url)
    assert info.value.code == "webhook_has_userinfo"
    assert CODE not in str(info.value)


@pytest.mark.parametrize(
    ("url", "scheme", "host"),
    [
        (f"http://127.0.0.1:8080/rest/1/{CODE}/", "http", "127.0.0.1:8080"),
        (f"http://localhost:9000/rest/api/1/{CODE}/mail.message.send", "http", "localhost:9000"),
        (f"https://[::1]:8443/rest/1/{CODE}/", "https", "[::1]:8443"),
        (f"http://10.1.2.3/rest/1/{CODE}/", "http", "10.1.2.3"),
        (f"http://{HOST}:80/rest/1/{CODE}/", "http", HOST),
    ],
)
def test_allow_insecure_admits_http_and_local_hosts(url: str, scheme: str, host: str) -> None:
    """The development switch lets a fake portal on loopback be linked."""
    creds = parse_webhook_url(url, allow_insecure=True)
    assert (creds.scheme, creds.host, creds.allow_insecure) == (scheme, host, True)
    assert creds.api_base == f"{scheme}://{host}/rest/api/1/{CODE}/"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        (f"http://user:pw@127.0.0.1:8080/rest/1/{CODE}/", "webhook_has_userinfo"),
        ("http://127.0.0.1:8080/", "webhook_malformed"),
        (f"ftp://127.0.0.1/rest/1/{CODE}/", "webhook_not_https"),
    ],
)
def test_allow_insecure_still_refuses_the_rest(url: str, code: str) -> None:
    """Userinfo, malformed addresses and foreign schemes stay refused in development."""
    with pytest.raises(WebhookURLError) as info:
        parse_webhook_url(url, allow_insecure=True)
    assert info.value.code == code


def test_webhook_repr_and_str_hide_the_code() -> None:
    """repr() and str() name host and user id, never the code."""
    creds = parse_webhook_url(f"https://{HOST}/rest/1/{CODE}/")
    assert repr(creds) == f"WebhookCredentials(host='{HOST}', user_id=1, code='***')"
    assert str(creds) == repr(creds)
    assert CODE not in f"{creds} {creds!r} {[creds]} {creds.code}"
    assert creds.portal == HOST


def test_webhook_credentials_validate_when_built_directly() -> None:
    """Building credentials from stored fields applies the same rules as parsing."""
    creds = WebhookCredentials(
        scheme="HTTPS", host="Portal.Bitrix24.com", user_id=3, code=SecretStr(CODE)
    )
    assert (creds.scheme, creds.host) == ("https", HOST)
    with pytest.raises(WebhookURLError, match="https://") as info:
        WebhookCredentials(scheme="http", host=HOST, user_id=3, code=SecretStr(CODE))
    assert info.value.code == "webhook_not_https"
    for host in ("127.0.0.1", "localhost:8080", "[::1]"):
        with pytest.raises(WebhookURLError) as info:
            WebhookCredentials(host=host, user_id=3, code=SecretStr(CODE))
        assert info.value.code == "webhook_forbidden_host"
    with pytest.raises(WebhookURLError):
        WebhookCredentials(host=HOST, user_id=0, code=SecretStr(CODE))
    with pytest.raises(WebhookURLError):
        WebhookCredentials(host=HOST, user_id=1, code=SecretStr("no/slashes"))
    with pytest.raises(WebhookURLError) as info:
        WebhookCredentials(host=f"u@{HOST}", user_id=1, code=SecretStr(CODE))
    assert info.value.code == "webhook_has_userinfo"
    local = WebhookCredentials(
        scheme="http", host="127.0.0.1:8080", user_id=3, code=SecretStr(CODE), allow_insecure=True
    )
    assert local.api_base == f"http://127.0.0.1:8080/rest/api/3/{CODE}/"


def test_credentials_are_frozen_and_comparable() -> None:
    """Credentials are immutable values."""
    a = parse_webhook_url(f"https://{HOST}/rest/1/{CODE}/")
    b = parse_webhook_url(f"https://{HOST}/rest/api/1/{CODE}/profile.json")
    assert a == b
    with pytest.raises(AttributeError):
        a.host = "evil.example"  # type: ignore[misc]


def test_oauth_credentials() -> None:
    """OAuth credentials call /rest/api/ and keep the token out of repr()."""
    token = "tok3nVALUEsecret"
    creds = OAuthCredentials(host="Portal.Bitrix24.com", access_token=SecretStr(token))
    assert creds.api_base == f"https://{HOST}/rest/api/"
    assert creds.portal == HOST
    assert token not in f"{creds} {creds!r}"
    assert repr(creds) == f"OAuthCredentials(host='{HOST}', access_token='***')"
    with pytest.raises(WebhookURLError):
        OAuthCredentials(host="192.168.0.1", access_token=SecretStr(token))


def resolver_for(*addresses: str) -> tuple[list[str], Resolver]:
    asked: list[str] = []

    async def resolve(host: str) -> Iterable[str]:
        asked.append(host)
        return list(addresses)

    return asked, resolve


async def test_public_host_passes() -> None:
    """A name resolving only to public addresses is fine."""
    asked, resolve = resolver_for("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    await ensure_public_host(f"{HOST}:8443", resolver=resolve)
    assert asked == [HOST]


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.0.0.7",),
        ("::1",),
        ("fe80::1%eth0",),
        ("::ffff:192.168.0.1",),
        ("93.184.216.34", "192.168.0.10"),
        ("2606:2800:220:1::1", "fd00::1"),
        ("not-an-address",),
    ],
)
async def test_private_or_mixed_resolution_is_forbidden(addresses: tuple[str, ...]) -> None:
    """One non-public address among the answers is enough to refuse (DNS-rebinding guard)."""
    _asked, resolve = resolver_for(*addresses)
    with pytest.raises(WebhookURLError) as info:
        await ensure_public_host(HOST, resolver=resolve)
    assert info.value.code == "webhook_forbidden_host"


async def test_unresolvable_host_is_unreachable() -> None:
    """A name that does not resolve means the portal cannot be reached."""

    async def fail(host: str) -> Iterable[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(PortalUnreachable) as info:
        await ensure_public_host(HOST, resolver=fail)
    assert info.value.code == "portal_unreachable"
    assert info.value.may_have_reached_portal is False
    _asked, empty = resolver_for()
    with pytest.raises(PortalUnreachable):
        await ensure_public_host(HOST, resolver=empty)


@pytest.mark.parametrize(
    ("host", "forbidden"),
    [
        ("8.8.8.8", False),
        ("127.0.0.1", True),
        ("[::1]:80", True),
        ("localhost", True),
        ("x.localhost", True),
    ],
)
async def test_literals_and_localhost_skip_dns(host: str, forbidden: bool) -> None:
    """IP literals and localhost names are judged without asking DNS."""
    asked, resolve = resolver_for("93.184.216.34")
    if forbidden:
        with pytest.raises(WebhookURLError):
            await ensure_public_host(host, resolver=resolve)
    else:
        await ensure_public_host(host, resolver=resolve)
    assert asked == []


async def test_system_resolver_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an injected resolver the event loop's getaddrinfo is asked."""
    loop = asyncio.get_running_loop()
    asked: list[str] = []

    async def getaddrinfo(host: str, port: object, **kwargs: object) -> list[tuple[Any, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", 0))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    with pytest.raises(WebhookURLError):
        await ensure_public_host(f"{HOST}:8443")
    assert asked == [HOST]


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("93.184.216.34", False),
        ("1.1.1.1", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
        ("2002:808:808::1", False),
        ("64:ff9b::808:808", False),
        ("127.0.0.1", True),
        ("::ffff:127.0.0.1", True),
        ("2002:a00:1::1", True),
        ("64:ff9b::c0a8:1", True),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),
        ("100.100.100.100", True),
        ("224.0.0.251", True),
        ("ff05::2", True),
        ("fec0::1", True),
    ],
)
def test_is_forbidden_address(address: str, forbidden: bool) -> None:
    """Only public unicast addresses are allowed, also when embedded in IPv6."""
    assert is_forbidden_address(ipaddress.ip_address(address)) is forbidden
