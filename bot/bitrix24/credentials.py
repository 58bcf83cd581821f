"""Webhook and OAuth credentials, parsing of pasted webhook URLs, and the public-host check."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

from pydantic import SecretStr

from .errors import PortalUnreachable, WebhookURLError

__all__ = [
    "Credentials",
    "OAuthCredentials",
    "Resolver",
    "WebhookCredentials",
    "ensure_public_host",
    "is_forbidden_address",
    "parse_webhook_url",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: TypeAlias = Callable[[str], Awaitable[Iterable[str]]]

_CODE = re.compile(r"[A-Za-z0-9]{8,64}")
_USER_ID = re.compile(r"[0-9]{1,18}")
_METHOD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# inet_aton accepts 1-4 dot-separated parts in decimal, octal (leading 0) or hex (0x).
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")
_DEFAULT_PORTS = {"https": 443, "http": 80}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Not globally reachable per IANA's special-purpose registries, yet `is_global` on Python 3.11
# says otherwise (the stdlib's tables change between releases): IETF protocol assignments and
# the IPv6 documentation prefix of RFC 9637.
_NOT_GLOBAL = (ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv6Network("3fff::/20"))


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class WebhookCredentials:
    """An inbound webhook: calls go to ``{scheme}://{host}/rest/api/{user_id}/{code}/{method}``."""

    scheme: str = "https"
    host: str
    user_id: int
    code: SecretStr
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", _check_scheme(self.scheme, self.allow_insecure))
        object.__setattr__(
            self, "host", _normalize_authority(self.host, self.scheme, self.allow_insecure)
        )
        if isinstance(self.user_id, bool) or not isinstance(self.user_id, int) or self.user_id < 1:
            raise WebhookURLError("webhook_malformed", host=self.host)
        if not isinstance(self.code, SecretStr):
            raise TypeError("code must be a pydantic SecretStr")
        if not _CODE.fullmatch(self.code.get_secret_value()):
            raise WebhookURLError("webhook_malformed", host=self.host)

    @property
    def portal(self) -> str:
        """The portal's host (with ``:port`` when not the default one)."""
        return self.host

    @property
    def api_base(self) -> str:
        """The REST 3.0 base URL; contains the secret code, so never log it."""
        code = self.code.get_secret_value()
        return f"{self.scheme}://{self.host}/rest/api/{self.user_id}/{code}/"

    def __repr__(self) -> str:
        return f"WebhookCredentials(host={self.host!r}, user_id={self.user_id}, code='***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OAuthCredentials:
    """A Bitrix24 application's access token, sent as ``"auth"`` in the JSON body."""

    host: str
    access_token: SecretStr
    scheme: str = "https"
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", _check_scheme(self.scheme, self.allow_insecure))
        object.__setattr__(
            self, "host", _normalize_authority(self.host, self.scheme, self.allow_insecure)
        )
        if not isinstance(self.access_token, SecretStr):
            raise TypeError("access_token must be a pydantic SecretStr")

    @property
    def portal(self) -> str:
        """The portal's host (with ``:port`` when not the default one)."""
        return self.host

    @property
    def api_base(self) -> str:
        """The REST 3.0 base URL (the token travels in the body, not here)."""
        return f"{self.scheme}://{self.host}/rest/api/"

    def __repr__(self) -> str:
        return f"OAuthCredentials(host={self.host!r}, access_token='***')"

    __str__ = __repr__


Credentials: TypeAlias = WebhookCredentials | OAuthCredentials


def parse_webhook_url(url: str, *, allow_insecure: bool = False) -> WebhookCredentials:
    """Parse a webhook address as users paste it; pure, no DNS.

    Accepts the classic ``https://host/rest/{id}/{code}/`` and the REST 3.0
    ``https://host/rest/api/{id}/{code}/`` forms, each with or without a trailing slash or
    method name, wrapped in whitespace or angle brackets (Slack's ``<url|label>`` too).
    Raises WebhookURLError with code webhook_malformed, webhook_not_https,
    webhook_forbidden_host, webhook_has_userinfo or webhook_has_query (a `?…` or `#…` part is
    refused, not trimmed: what follows it was meant for something, and the user should see
    that it is not used). `allow_insecure` admits http and
    local/private hosts, for a fake portal on loopback.
    """
    text = _unwrap(url)
    if not text or any(ch.isspace() or not ch.isprintable() for ch in text) or "\\" in text:
        raise WebhookURLError("webhook_malformed")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise WebhookURLError("webhook_malformed") from exc
    scheme = parts.scheme.lower()
    if not parts.netloc:
        raise WebhookURLError("webhook_malformed")
    if "@" in parts.netloc:
        raise WebhookURLError("webhook_has_userinfo")
    user_id, code = _webhook_path(parts.path)
    if "?" in text or "#" in text:
        raise WebhookURLError("webhook_has_query")
    if scheme not in _DEFAULT_PORTS or (scheme == "http" and not allow_insecure):
        raise WebhookURLError("webhook_not_https")
    host = _normalize_authority(parts.netloc, scheme, allow_insecure)
    return WebhookCredentials(
        scheme=scheme,
        host=host,
        user_id=user_id,
        code=SecretStr(code),
        allow_insecure=allow_insecure,
    )


async def ensure_public_host(host: str, *, resolver: Resolver | None = None) -> None:
    """Refuse a host that is, or resolves to, any non-public address.

    Raises WebhookURLError(code="webhook_forbidden_host") when any address is loopback,
    private, link-local, reserved, multicast or unspecified, and PortalUnreachable when the
    name does not resolve. `resolver` maps a host name to address strings (tests inject one).
    """
    await public_addresses(host, resolver=resolver)


async def public_addresses(host: str, *, resolver: Resolver | None = None) -> list[str]:
    """The addresses of `host` (host or host:port), all checked public; raises like above."""
    name, _port = _split_authority(host)
    literal = _ip_literal(name)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        if _is_localhost(name):
            raise WebhookURLError("webhook_forbidden_host", host=host)
        try:
            found = list(await (resolver or _system_resolver)(name))
        except (OSError, UnicodeError) as exc:
            raise PortalUnreachable("The portal's host name does not resolve", host=host) from exc
        if not found:
            raise PortalUnreachable("The portal's host name does not resolve", host=host)
        addresses = []
        for text in found:
            try:
                addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
            except ValueError as exc:
                # An address we cannot read is not one we can vouch for.
                raise WebhookURLError("webhook_forbidden_host", host=host) from exc
    if any(is_forbidden_address(address) for address in addresses):
        raise WebhookURLError("webhook_forbidden_host", host=host)
    return list(dict.fromkeys(str(address) for address in addresses))


def is_forbidden_address(address: IPAddress) -> bool:
    """True for every address a webhook must not reach: anything but public unicast."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_forbidden_address(embedded)
        if address.is_site_local:
            return True
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in network for network in _NOT_GLOBAL)
    )


async def _system_resolver(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _unwrap(url: str) -> str:
    text = url.strip()
    while len(text) >= 2 and text[0] == "<" and text[-1] == ">":
        text = text[1:-1].strip()
        # Slack renders links as <url|label>.
        if "|" in text:
            text = text.split("|", 1)[0].strip()
    return text


def _webhook_path(path: str) -> tuple[int, str]:
    segments = [segment for segment in path.split("/") if segment]
    if not segments or segments[0].lower() != "rest":
        raise WebhookURLError("webhook_malformed")
    rest = segments[1:]
    if rest and rest[0].lower() == "api":
        rest = rest[1:]
    if len(rest) not in (2, 3):
        raise WebhookURLError("webhook_malformed")
    user_id, code = rest[0], rest[1]
    if not _USER_ID.fullmatch(user_id) or int(user_id) < 1:
        raise WebhookURLError("webhook_malformed")
    if not _CODE.fullmatch(code):
        raise WebhookURLError("webhook_malformed")
    if len(rest) == 3 and not _METHOD.fullmatch(rest[2]):
        raise WebhookURLError("webhook_malformed")
    return int(user_id), code


def _check_scheme(scheme: str, allow_insecure: bool) -> str:
    lowered = scheme.lower() if isinstance(scheme, str) else ""
    if lowered not in _DEFAULT_PORTS or (lowered == "http" and not allow_insecure):
        raise WebhookURLError("webhook_not_https")
    return lowered


def _normalize_authority(authority: str, scheme: str, allow_insecure: bool) -> str:
    """Return ``host[:port]`` lowercased, IDNA-encoded, IPs canonical; refuse local hosts."""
    if not isinstance(authority, str) or "@" in authority:
        raise WebhookURLError(
            "webhook_has_userinfo" if isinstance(authority, str) else "webhook_malformed"
        )
    name, port = _split_authority(authority.strip())
    address = _ip_literal(name)
    if address is not None:
        if not allow_insecure and is_forbidden_address(address):
            raise WebhookURLError("webhook_forbidden_host", host=str(address))
        host = f"[{address}]" if address.version == 6 else str(address)
    else:
        host = _dns_name(name)
        if not allow_insecure and _is_localhost(host):
            raise WebhookURLError("webhook_forbidden_host", host=host)
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{host}:{port}"
    return host


def _split_authority(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise WebhookURLError("webhook_malformed")
        name, rest = authority[1:end], authority[end + 1 :]
        if ":" not in name:
            raise WebhookURLError("webhook_malformed")
        if not rest:
            return name, None
        if not rest.startswith(":"):
            raise WebhookURLError("webhook_malformed")
        return name, _port(rest[1:])
    if authority.count(":") > 1:
        raise WebhookURLError("webhook_malformed")
    name, sep, port = authority.partition(":")
    return name, _port(port) if sep else None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise WebhookURLError("webhook_malformed")
    return int(text)


def _ip_literal(name: str) -> IPAddress | None:
    """Read `name` as an IP address the way a resolver would, including 0x7f.1 or 2130706433."""
    if ":" in name:
        if "%" in name:
            raise WebhookURLError("webhook_malformed")
        try:
            return ipaddress.IPv6Address(name)
        except ValueError as exc:
            raise WebhookURLError("webhook_malformed") from exc
    lowered = name.lower().rstrip(".")
    if not _NUMERIC_HOST.fullmatch(lowered):
        return None
    numbers = []
    for part in lowered.split("."):
        try:
            if part.startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            else:
                numbers.append(int(part))
        except ValueError as exc:
            raise WebhookURLError("webhook_malformed") from exc
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        raise WebhookURLError("webhook_malformed")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _dns_name(name: str) -> str:
    lowered = name.lower().rstrip(".")
    if not lowered:
        raise WebhookURLError("webhook_malformed")
    if not lowered.isascii():
        try:
            lowered = lowered.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise WebhookURLError("webhook_malformed") from exc
    labels = lowered.split(".")
    if len(lowered) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise WebhookURLError("webhook_malformed")
    # A numeric top-level label is an IPv4 literal gone wrong (e.g. 1.2.3.4.5), not a name.
    if labels[-1].isdigit():
        raise WebhookURLError("webhook_malformed")
    return lowered


def _is_localhost(name: str) -> bool:
    lowered = name.lower().rstrip(".")
    return lowered == "localhost" or lowered.endswith(".localhost")
