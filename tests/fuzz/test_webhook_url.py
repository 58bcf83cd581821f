"""Fuzzing webhook address parsing and the public-host check: no encoding reaches a private host."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.bitrix24 import PortalUnreachable, WebhookURLError, ensure_public_host, parse_webhook_url

CODE = "a1b2c3d4e5f6g7h8"

# RFC 6890 special-purpose ranges and their neighbours: written out here, not taken from the
# code under test, so the test is an independent judge of what must never be reached.
FORBIDDEN_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
FORBIDDEN_V6 = [
    "::/128",
    "::1/128",
    "100::/64",
    "2001:db8::/32",
    "3fff::/20",
    "64:ff9b:1::/48",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]
PUBLIC_V4 = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "151.101.1.69", "5.255.255.5"]
PUBLIC_V6 = ["2606:4700:4700::1111", "2a00:1450:4001:82b::200e", "2001:4860:4860::8888"]


def _in(networks: list[str]) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    def pick(network: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        net = ipaddress.ip_network(network)
        first = int(net.network_address)
        return st.integers(first, first + net.num_addresses - 1).map(
            lambda n: ipaddress.ip_address(n) if net.version == 4 else ipaddress.IPv6Address(n)
        )

    return st.sampled_from(networks).flatmap(pick)


forbidden_v4 = _in(FORBIDDEN_V4).map(lambda a: ipaddress.IPv4Address(int(a)))
forbidden_v6 = _in(FORBIDDEN_V6).map(lambda a: ipaddress.IPv6Address(int(a)))


# --- how an IPv4 address can be written -------------------------------------------------------


@st.composite
def v4_spellings(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """Any spelling inet_aton accepts: 1-4 parts, each decimal, octal or hex, any case."""
    value = int(address)
    octets = list(address.packed)
    parts = draw(st.integers(1, 4))
    if parts == 4:
        numbers = octets
    elif parts == 3:
        numbers = [octets[0], octets[1], value & 0xFFFF]
    elif parts == 2:
        numbers = [octets[0], value & 0xFFFFFF]
    else:
        numbers = [value]
    rendered = []
    for number in numbers:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX", "pad"]))
        if style == "dec":
            rendered.append(str(number))
        elif style == "oct":
            rendered.append("0" + format(number, "o"))
        elif style == "hex":
            rendered.append("0x" + format(number, "x"))
        elif style == "HEX":
            rendered.append("0X" + format(number, "X"))
        else:
            rendered.append("0x" + "0" * draw(st.integers(1, 3)) + format(number, "x"))
    return ".".join(rendered) + draw(st.sampled_from(["", "."]))


FULLWIDTH = str.maketrans("0123456789abcdefxX.", "０１２３４５６７８９ａｂｃｄｅｆｘＸ．")


@st.composite
def v4_unicode_spellings(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """The same, with full-width digits or ideographic dots that IDNA folds to ASCII."""
    text = draw(v4_spellings(address))
    if draw(st.booleans()):
        text = text.translate(FULLWIDTH)
    return text.replace(".", draw(st.sampled_from([".", "。", "．", "｡"])))


def v6_spellings(address: ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    groups = [int.from_bytes(address.packed[i : i + 2], "big") for i in range(0, 16, 2)]
    forms = {
        address.compressed,
        address.exploded,
        address.compressed.upper(),
        ":".join(format(g, "x") for g in groups),
        ":".join(format(g, "X") for g in groups),
    }
    return st.sampled_from(sorted(forms))


@st.composite
def v4_in_v6(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """An IPv4 address inside IPv6: mapped, compatible, 6to4, NAT64 and Teredo."""
    n = int(address)
    kind = draw(st.sampled_from(["mapped", "mapped-dotted", "compat", "6to4", "nat64", "teredo"]))
    if kind == "mapped-dotted":
        return draw(st.sampled_from(["::ffff:", "0:0:0:0:0:ffff:", "::FFFF:"])) + str(address)
    if kind == "compat":
        return "::" + str(address)
    value = {
        "mapped": (0xFFFF << 32) | n,
        "6to4": (0x2002 << 112) | (n << 80) | draw(st.integers(0, 2**64 - 1)),
        "nat64": (0x0064FF9B << 96) | n,
        "teredo": (0x20010000 << 96) | (draw(st.integers(0, 2**32 - 1)) << 64) | (n ^ 0xFFFFFFFF),
    }[kind]
    return draw(v6_spellings(ipaddress.IPv6Address(value)))


def url(host: str, *, scheme: str = "https", port: str = "", path: str = f"/rest/1/{CODE}/") -> str:
    return f"{scheme}://{host}{port}{path}"


ports = st.sampled_from(["", ":443", ":8443", ":1"])
paths = st.sampled_from([f"/rest/1/{CODE}/", f"/rest/api/7/{CODE}/mail.message.send"])


def refused(text: str) -> bool:
    try:
        parse_webhook_url(text)
    except WebhookURLError:
        return True
    return False


# --- parse_webhook_url ------------------------------------------------------------------------


@settings(max_examples=200)
@given(forbidden_v4.flatmap(lambda a: v4_spellings(a) | v4_unicode_spellings(a)), ports, paths)
def test_private_ipv4_is_refused_in_every_spelling(host: str, port: str, path: str) -> None:
    """Decimal, octal, hex, 1-4 parts, trailing dot, full-width or ideographic: never accepted."""
    assert refused(url(host, port=port, path=path)), host


@settings(max_examples=200)
@given(st.sampled_from(PUBLIC_V4).map(ipaddress.IPv4Address).flatmap(v4_spellings), ports)
def test_public_ipv4_in_any_ascii_spelling_reads_as_itself(host: str, port: str) -> None:
    """The decoder agrees with inet_aton: a public address in any notation becomes its dotted form."""
    creds = parse_webhook_url(url(host, port=port))
    canonical = str(ipaddress.IPv4Address(socket.inet_aton(host.rstrip("."))))
    assert creds.host == canonical + ("" if port in ("", ":443") else port)


@settings(max_examples=200)
@given(
    forbidden_v6.flatmap(v6_spellings) | forbidden_v4.flatmap(v4_in_v6),
    ports,
    st.sampled_from(["", "%25eth0", "%eth0"]),
)
def test_private_ipv6_and_embedded_ipv4_are_refused(host: str, port: str, zone: str) -> None:
    """Loopback, link-local, ULA, mapped/6to4/NAT64/Teredo around a private IPv4: never accepted."""
    assert refused(url(f"[{host}{zone}]", port=port)), host


@settings(max_examples=100)
@given(st.sampled_from(PUBLIC_V6).map(ipaddress.IPv6Address).flatmap(v6_spellings))
def test_public_ipv6_is_accepted_in_canonical_form(host: str) -> None:
    """A public IPv6 literal in any spelling is accepted and stored compressed."""
    creds = parse_webhook_url(url(f"[{host}]"))
    assert creds.host == f"[{ipaddress.IPv6Address(host).compressed}]"


LOCALHOST_LOOKALIKES = {
    "l": "lLｌＬⓛ",
    "o": "oOｏＯⓞ",
    "c": "cCｃＣⓒ",
    "a": "aAａＡⓐ",
    "h": "hHｈＨⓗ",
    "s": "sSｓＳⓢ",
    "t": "tTｔＴⓣ",
}


@st.composite
def localhost_spellings(draw: st.DrawFn) -> str:
    name = "".join(draw(st.sampled_from(LOCALHOST_LOOKALIKES[c])) for c in "localhost")
    prefix = draw(st.sampled_from(["", "portal.", "a.b."]))
    return prefix + name + draw(st.sampled_from(["", ".", ".."]))


@settings(max_examples=200)
@given(localhost_spellings(), ports)
def test_localhost_is_refused_in_any_case_or_lookalike(host: str, port: str) -> None:
    """LOCALHOST., x.localhost and IDN look-alikes that fold to localhost are refused."""
    assert refused(url(host, port=port)), host


userinfo = st.sampled_from(["user@", "user:pw@", ":@", "portal.bitrix24.com@", "a%40b@"])


@settings(max_examples=100)
@given(userinfo, st.sampled_from(["portal.bitrix24.com", "127.0.0.1", "[::1]"]), ports)
def test_userinfo_is_always_refused(info: str, host: str, port: str) -> None:
    """A user name or password in the address is refused whatever the host."""
    with pytest.raises(WebhookURLError) as error:
        parse_webhook_url(url(info + host, port=port))
    assert error.value.code in ("webhook_has_userinfo", "webhook_malformed")


schemes = st.sampled_from(["http", "HTTP", "hTtP", "ftp", "ws", "wss", "file", "javascript", ""])


@settings(max_examples=100)
@given(schemes, st.sampled_from(["portal.bitrix24.com", "8.8.8.8", "[2606:4700:4700::1111]"]))
def test_anything_but_https_is_refused_without_allow_insecure(scheme: str, host: str) -> None:
    """http, other schemes and scheme-less addresses are never accepted by default."""
    assert refused(url(host, scheme=scheme))


url_soup = st.lists(
    st.sampled_from(
        [
            "https://",
            "HTTPS://",
            "http://",
            "portal.bitrix24.com",
            "127.0.0.1",
            "0x7f.1",
            "[::1]",
            "[::ffff:10.0.0.1]",
            "localhost",
            "ｌｏｃａｌｈｏｓｔ",
            "@",
            ":",
            ":443",
            ".",
            "/",
            "/rest/",
            "api/",
            "1/",
            CODE,
            "/profile.json",
            "%2e",
            "\\",
            "#",
            "?",
            "<",
            ">",
            "|",
            " ",
        ]
    )
    | st.text(max_size=5),
    max_size=14,
).map("".join)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text() | url_soup)
def test_anything_accepted_is_https_public_and_canonical(text: str) -> None:
    """Any input either raises WebhookURLError or yields an https, public, canonical address."""
    try:
        creds = parse_webhook_url(text)
    except WebhookURLError:
        return
    assert creds.scheme == "https"
    assert creds.host == creds.host.lower() and creds.host.isascii()
    assert "@" not in creds.host and "localhost" not in creds.host
    name = creds.host.rsplit(":", 1)[0] if not creds.host.endswith("]") else creds.host
    try:
        literal = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        assert not any(literal in ipaddress.ip_network(n) for n in FORBIDDEN_V4 + FORBIDDEN_V6)
    assert parse_webhook_url(creds.api_base) == creds


# --- ensure_public_host with an injected resolver --------------------------------------------

bad_answers = (
    forbidden_v4.map(str)
    | forbidden_v6.map(str)
    | forbidden_v4.map(lambda a: f"::ffff:{a}")
    | forbidden_v6.map(lambda a: f"{a}%eth0")
    | st.sampled_from(["", "not-an-ip", "127.1", "0x7f000001"])
)
good_answers = st.sampled_from(PUBLIC_V4 + PUBLIC_V6 + ["::ffff:8.8.8.8"])
answers = st.lists(
    st.tuples(bad_answers, st.just(True)) | st.tuples(good_answers, st.just(False)), max_size=5
)


def resolver_for(found: Iterable[str]) -> tuple[list[str], Callable[[str], object]]:
    asked: list[str] = []

    async def resolve(host: str) -> list[str]:
        asked.append(host)
        return list(found)

    return asked, resolve


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["portal.example.com", "xn--bcher-kva.example", "a.b.c"]),
    ports,
    answers,
)
def test_a_host_passes_only_if_every_answer_is_public(
    name: str, port: str, found: list[tuple[str, bool]]
) -> None:
    """One private, reserved or unreadable address among the answers refuses the host."""
    asked, resolve = resolver_for(address for address, _bad in found)

    async def check() -> None:
        await ensure_public_host(name + port, resolver=resolve)  # type: ignore[arg-type]

    if not found:
        with pytest.raises(PortalUnreachable):
            asyncio.run(check())
    elif any(bad for _address, bad in found):
        with pytest.raises(WebhookURLError) as error:
            asyncio.run(check())
        assert error.value.code == "webhook_forbidden_host"
    else:
        asyncio.run(check())
    assert asked == [name]


@settings(max_examples=100, deadline=None)
@given(
    forbidden_v4.flatmap(v4_spellings)
    | forbidden_v6.map(lambda a: f"[{a}]")
    | localhost_spellings().filter(str.isascii)
)
def test_private_literals_and_localhost_are_refused_without_asking_dns(host: str) -> None:
    """IP literals and localhost names are judged as written: the resolver is never asked."""
    asked, resolve = resolver_for(["8.8.8.8"])
    with pytest.raises(WebhookURLError):
        asyncio.run(ensure_public_host(host, resolver=resolve))  # type: ignore[arg-type]
    assert asked == []
