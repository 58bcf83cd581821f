"""A workspace's e-mail policy: which recipient domains, how many recipients, how many e-mails.

Pure rules (parsing domain patterns, matching recipients) and the use case that reads and
changes a workspace's policy. Domains are compared in their IDNA (punycode) form, lower case, so
`пример.рф`, `xn--e1afmkfd.xn--p1ai` and `ПРИМЕР.РФ` are one domain. A pattern is either a
domain (that domain only) or `*.domain` (any subdomain of it, at any depth, not the domain
itself: list both to mean both).

The policy only tightens what the instance's settings allow: its recipient and hourly caps are
at most B24MAIL_MAX_RECIPIENTS and B24MAIL_HOURLY_CAP, and an empty policy changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import idna

from bot.identity import SlackUser
from bot.mail.addresses import parse_address_list
from bot.mail.audit import AuditService
from bot.mail.compose import FieldProblem
from bot.mail.errors import MailError
from bot.store.policy import PolicyRepository, PolicyValues, WorkspacePolicyRow

log = logging.getLogger(__name__)

DOMAINS_MAX = 200
DOMAIN_MAX_CHARS = 253

# Codes of the rules a recipient can break; the Slack layer words them (policy.rule.<code>).
BLOCKED = "blocked_domain"
OUTSIDE = "outside_allowed"
TOO_MANY = "too_many_recipients"

_SEPARATORS = re.compile(r"[\s,;]+")


class NotAnAdmin(MailError):
    """Only the workspace's Slack admins and owners can change its e-mail policy."""

    code = "policy_admins_only"


class PolicyRefused(MailError):
    """The workspace's e-mail policy (changed since it was queued) does not allow this e-mail."""

    code = "policy_refused"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self.refusal = refusal


@dataclass(frozen=True, kw_only=True)
class WorkspacePolicy:
    """What a workspace's admins decided; the defaults restrict nothing."""

    allowed_domains: tuple[str, ...] = ()  # empty: any domain
    blocked_domains: tuple[str, ...] = ()
    max_recipients: int | None = None  # None: the instance's setting
    hourly_cap: int | None = None
    confirm_outside: bool = False  # outside the allowed domains: ask instead of refusing
    audit_channel: str | None = None
    language: str | None = None  # of the audit channel's lines: the last editor's

    @property
    def restricts_domains(self) -> bool:
        return bool(self.allowed_domains or self.blocked_domains)


@dataclass(frozen=True)
class Refusal:
    """One recipient (or the count) that breaks a rule; `pattern` is the matching rule entry."""

    rule: str
    address: str = ""
    pattern: str = ""
    count: int = 0
    cap: int = 0

    def describe(self) -> str:
        """A language-neutral line for logs and the e-mail's stored status detail."""
        if self.rule == TOO_MANY:
            return f"{self.count} > {self.cap}"
        return f"{self.address} ({self.pattern})" if self.pattern else self.address


@dataclass(frozen=True)
class PolicyCheck:
    """The verdict on an e-mail's recipients: refused, or allowed with these outside addresses
    (which need the sender's confirmation when the policy asks for it)."""

    refusal: Refusal | None = None
    outside: tuple[str, ...] = field(default=())


class InvalidDomain(ValueError):
    def __init__(self, value: str) -> None:
        super().__init__(f"not a domain or *.domain pattern: {value!r}")
        self.value = value


def normalize_domain(text: str) -> str:
    """`*.Пример.РФ` → `*.xn--e1afmkfd.xn--p1ai`; raises InvalidDomain."""
    value = text.strip().lower().lstrip("@").rstrip(".")
    wildcard = value.startswith("*.")
    name = value[2:] if wildcard else value
    if not name or "*" in name or "." not in name or len(name) > DOMAIN_MAX_CHARS:
        raise InvalidDomain(text.strip())
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidDomain(text.strip()) from exc
    return f"*.{ascii_name}" if wildcard else ascii_name


def parse_domains(text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Domains separated by commas, semicolons, spaces or new lines → (valid, invalid as typed).

    Duplicates (in any form of the same domain) are dropped, the first kept.
    """
    valid: list[str] = []
    invalid: list[str] = []
    for token in _SEPARATORS.split(text or ""):
        if not token:
            continue
        try:
            domain = normalize_domain(token)
        except InvalidDomain:
            invalid.append(token)
            continue
        if domain not in valid:
            valid.append(domain)
    return tuple(valid), tuple(invalid)


def display_domain(domain: str) -> str:
    """The readable (Unicode) form of a stored pattern, for people."""
    wildcard = domain.startswith("*.")
    name = domain[2:] if wildcard else domain
    try:
        shown = idna.decode(name)
    except (idna.IDNAError, UnicodeError):
        shown = name
    return f"*.{shown}" if wildcard else shown


def address_domain(address: str) -> str | None:
    """The IDNA form of an address's domain (`Name <a@пример.рф>` works too); None if unparsable."""
    parsed = parse_address_list(address)
    email = parsed.addresses[0].email if parsed.addresses else address.strip()
    if "@" not in email:
        return None
    try:
        return normalize_domain(email.rsplit("@", 1)[1])
    except InvalidDomain:
        return None


def matching_pattern(domain: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if pattern.startswith("*."):
            if domain.endswith(pattern[1:]):
                return pattern
        elif domain == pattern:
            return pattern
    return None


def check_recipients(
    policy: WorkspacePolicy, recipients: Sequence[str], *, max_recipients: int
) -> PolicyCheck:
    """Blocked domains first (they win over allowed ones), then the allowed list, then the count.

    `max_recipients` is the instance's cap; the policy's own is taken when lower.
    """
    outside: list[str] = []
    for address in recipients:
        domain = address_domain(address)
        if domain is None:
            return PolicyCheck(Refusal(OUTSIDE, address=address))
        blocked = matching_pattern(domain, policy.blocked_domains)
        if blocked is not None:
            return PolicyCheck(Refusal(BLOCKED, address=address, pattern=display_domain(blocked)))
        if policy.allowed_domains and matching_pattern(domain, policy.allowed_domains) is None:
            if not policy.confirm_outside:
                return PolicyCheck(Refusal(OUTSIDE, address=address))
            outside.append(address)
    cap = effective_cap(policy.max_recipients, max_recipients)
    count = len({a.casefold() for a in recipients})
    if count > cap:
        return PolicyCheck(Refusal(TOO_MANY, count=count, cap=cap))
    return PolicyCheck(outside=tuple(outside))


def effective_cap(policy_cap: int | None, instance_cap: int) -> int:
    return instance_cap if policy_cap is None else min(policy_cap, instance_cap)


# --- the use case ---------------------------------------------------------------------------


AdminCheck = Callable[[SlackUser], Awaitable[bool]]


class PolicyService:
    """Reads a workspace's policy (always from the database: it is small and may change in any
    process) and changes it for admins only, auditing each change."""

    def __init__(
        self,
        *,
        store: PolicyRepository,
        audit: AuditService,
        max_recipients: int,
        hourly_cap: int,
    ) -> None:
        self._store = store
        self._audit = audit
        self.instance_max_recipients = max_recipients
        self.instance_hourly_cap = hourly_cap

    async def of(self, user: SlackUser) -> WorkspacePolicy:
        row = await self._store.get(enterprise_id=user.enterprise_id, team_id=user.team_id)
        return policy_of(row) if row is not None else WorkspacePolicy()

    async def of_team(self, *, enterprise_id: str, team_id: str) -> WorkspacePolicy:
        row = await self._store.get(enterprise_id=enterprise_id, team_id=team_id)
        return policy_of(row) if row is not None else WorkspacePolicy()

    def check(self, policy: WorkspacePolicy, recipients: Sequence[str]) -> PolicyCheck:
        return check_recipients(policy, recipients, max_recipients=self.instance_max_recipients)

    def max_recipients(self, policy: WorkspacePolicy) -> int:
        return effective_cap(policy.max_recipients, self.instance_max_recipients)

    def hourly_cap(self, policy: WorkspacePolicy) -> int:
        return effective_cap(policy.hourly_cap, self.instance_hourly_cap)

    async def change(
        self, actor: SlackUser, new: WorkspacePolicy, *, is_admin: AdminCheck
    ) -> WorkspacePolicy:
        """Save `new` if `actor` is an admin or owner now (asked at this moment, never cached).

        Raises NotAnAdmin otherwise. The change is audited with the policy before and after.
        """
        if not await is_admin(actor):
            log.warning(
                "policy change refused: user=%s team=%s is not an admin",
                actor.user_id,
                actor.team_id,
            )
            raise NotAnAdmin()
        before = await self.of(actor)
        after = replace(
            new,
            max_recipients=_capped(new.max_recipients, self.instance_max_recipients),
            hourly_cap=_capped(new.hourly_cap, self.instance_hourly_cap),
        )
        await self._store.save(
            enterprise_id=actor.enterprise_id,
            team_id=actor.team_id,
            values=PolicyValues(
                allowed_domains=after.allowed_domains,
                blocked_domains=after.blocked_domains,
                max_recipients=after.max_recipients,
                hourly_cap=after.hourly_cap,
                confirm_outside=after.confirm_outside,
                audit_channel=after.audit_channel,
                language=after.language,
            ),
            updated_by=actor.user_id,
        )
        await self._audit.policy_changed(
            actor,
            before=summary(before),
            after=summary(after),
            channel=after.audit_channel or before.audit_channel,
            language=after.language,
        )
        log.info("policy of team=%s changed by user=%s", actor.team_id, actor.user_id)
        return after


def policy_of(row: WorkspacePolicyRow) -> WorkspacePolicy:
    return WorkspacePolicy(
        allowed_domains=tuple(row.allowed_domains or ()),
        blocked_domains=tuple(row.blocked_domains or ()),
        max_recipients=row.max_recipients,
        hourly_cap=row.hourly_cap,
        confirm_outside=bool(row.confirm_outside),
        audit_channel=row.audit_channel,
        language=row.language,
    )


def summary(policy: WorkspacePolicy) -> dict[str, Any]:
    """The policy as plain values, for the audit record of a change."""
    return {
        "allowed_domains": list(policy.allowed_domains),
        "blocked_domains": list(policy.blocked_domains),
        "max_recipients": policy.max_recipients,
        "hourly_cap": policy.hourly_cap,
        "confirm_outside": policy.confirm_outside,
        "audit_channel": policy.audit_channel,
    }


def _capped(value: int | None, instance_cap: int) -> int | None:
    """A policy cap at or above the instance's is no restriction: stored as none."""
    if value is None or value >= instance_cap:
        return None
    return max(1, value)


# --- the admins' form ----------------------------------------------------------------------


def policy_from_form(
    *,
    allowed: str,
    blocked: str,
    max_recipients: object,
    hourly_cap: object,
    confirm_outside: bool,
    audit_channel: object,
    instance_max_recipients: int,
    instance_hourly_cap: int,
    language: str | None = None,
) -> WorkspacePolicy | list[FieldProblem]:
    """The policy an admin typed, or the problems per field (allowed | blocked |
    max_recipients | hourly_cap | confirm), worded by the Slack layer as policy.<code>."""
    problems: list[FieldProblem] = []
    allowed_domains, bad_allowed = parse_domains(allowed)
    blocked_domains, bad_blocked = parse_domains(blocked)
    for name, bad, found in (
        ("allowed", bad_allowed, allowed_domains),
        ("blocked", bad_blocked, blocked_domains),
    ):
        if bad:
            problems.append(FieldProblem(name, "invalid_domains", {"values": ", ".join(bad[:10])}))
        elif len(found) > DOMAINS_MAX:
            problems.append(
                FieldProblem(name, "too_many_domains", {"count": len(found), "cap": DOMAINS_MAX})
            )
    numbers: dict[str, int | None] = {}
    for name, value, cap in (
        ("max_recipients", max_recipients, instance_max_recipients),
        ("hourly_cap", hourly_cap, instance_hourly_cap),
    ):
        text = str(value).strip() if value is not None else ""
        if not text:
            numbers[name] = None
        elif text.isdigit() and 1 <= int(text) <= cap:
            numbers[name] = int(text)
        else:
            problems.append(FieldProblem(name, "invalid_number", {"cap": cap}))
    if confirm_outside and not allowed_domains and not bad_allowed:
        problems.append(FieldProblem("confirm", "confirm_needs_allowed"))
    if problems:
        return problems
    return WorkspacePolicy(
        allowed_domains=allowed_domains,
        blocked_domains=blocked_domains,
        max_recipients=numbers["max_recipients"],
        hourly_cap=numbers["hourly_cap"],
        confirm_outside=confirm_outside,
        audit_channel=str(audit_channel)
        if isinstance(audit_channel, str) and audit_channel
        else None,
        language=language,
    )
