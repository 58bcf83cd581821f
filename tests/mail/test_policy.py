"""The workspace policy's rules (domains, wildcards, IDN, counts) and who may change it."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.audit import AuditService
from bot.mail.policy import (
    BLOCKED,
    OUTSIDE,
    TOO_MANY,
    InvalidDomain,
    NotAnAdmin,
    PolicyService,
    WorkspacePolicy,
    check_recipients,
    display_domain,
    normalize_domain,
    parse_domains,
)
from bot.mail.wakeup import Wakeup
from bot.store.audit import AuditRecord, AuditRepository
from bot.store.db import create_session_factory
from bot.store.policy import PolicyRepository

ADMIN = SlackUser(team_id="T0001", user_id="UADMIN")
MEMBER = SlackUser(team_id="T0001", user_id="UMEMBER")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Example.COM", "example.com"),
        ("@example.com.", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("*.ПРИМЕР.РФ", "*.xn--e1afmkfd.xn--p1ai"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
        ("bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_domains_are_stored_in_idna_lower_case(typed: str, stored: str) -> None:
    assert normalize_domain(typed) == stored


@pytest.mark.parametrize(
    "typed", ["", "*", "*.", "localhost", "a.*.com", "ex ample.com", "-a-.com"]
)
def test_invalid_domain_patterns_are_refused(typed: str) -> None:
    with pytest.raises(InvalidDomain):
        normalize_domain(typed)


def test_a_list_keeps_valid_domains_once_and_reports_the_rest_as_typed() -> None:
    valid, invalid = parse_domains(
        "example.com, *.partner.org\nEXAMPLE.com; пример.рф bad_one a.*.b"
    )
    assert valid == ("example.com", "*.partner.org", "xn--e1afmkfd.xn--p1ai")
    assert invalid == ("bad_one", "a.*.b")
    assert display_domain("*.xn--e1afmkfd.xn--p1ai") == "*.пример.рф"


def test_no_policy_restricts_nothing_beyond_the_instance_cap() -> None:
    check = check_recipients(WorkspacePolicy(), ["a@anywhere.example"] * 1, max_recipients=50)
    assert check.refusal is None and check.outside == ()
    many = [f"p{i}@x.example" for i in range(51)]
    refusal = check_recipients(WorkspacePolicy(), many, max_recipients=50).refusal
    assert refusal is not None and (refusal.rule, refusal.count, refusal.cap) == (TOO_MANY, 51, 50)


def test_a_wildcard_matches_subdomains_at_any_depth_but_not_the_domain_itself() -> None:
    policy = WorkspacePolicy(blocked_domains=("*.rival.example",))
    for address in ("a@mail.rival.example", "Bob <b@x.y.rival.example>"):
        refusal = check_recipients(policy, [address], max_recipients=50).refusal
        assert refusal is not None and refusal.rule == BLOCKED
        assert refusal.address == address and refusal.pattern == "*.rival.example"
    assert check_recipients(policy, ["c@rival.example"], max_recipients=50).refusal is None
    assert check_recipients(policy, ["d@notrival.example"], max_recipients=50).refusal is None


def test_idn_addresses_match_their_punycode_patterns_and_back() -> None:
    unicode_rule = WorkspacePolicy(blocked_domains=(normalize_domain("пример.рф"),))
    refusal = check_recipients(unicode_rule, ["иван@пример.рф"], max_recipients=50).refusal
    assert refusal is not None and refusal.pattern == "пример.рф"
    refusal = check_recipients(
        unicode_rule, ["ivan@xn--e1afmkfd.xn--p1ai"], max_recipients=50
    ).refusal
    assert refusal is not None and refusal.rule == BLOCKED
    allowed = WorkspacePolicy(allowed_domains=(normalize_domain("*.bücher.de"),))
    assert check_recipients(allowed, ["a@shop.BÜCHER.de"], max_recipients=50).refusal is None


def test_blocked_wins_over_allowed_and_outside_addresses_are_refused_or_listed() -> None:
    policy = WorkspacePolicy(
        allowed_domains=("corp.example", "*.corp.example"), blocked_domains=("hr.corp.example",)
    )
    refusal = check_recipients(policy, ["a@hr.corp.example"], max_recipients=50).refusal
    assert refusal is not None and refusal.rule == BLOCKED
    refusal = check_recipients(
        policy, ["a@corp.example", "b@client.example"], max_recipients=50
    ).refusal
    assert refusal is not None and (refusal.rule, refusal.address) == (OUTSIDE, "b@client.example")
    asking = WorkspacePolicy(allowed_domains=("corp.example",), confirm_outside=True)
    check = check_recipients(
        asking, ["a@corp.example", "b@client.example", "C <c@other.example>"], max_recipients=50
    )
    assert check.refusal is None
    assert check.outside == ("b@client.example", "C <c@other.example>")


def test_the_policys_recipient_cap_is_the_lower_one() -> None:
    policy = WorkspacePolicy(max_recipients=2)
    refusal = check_recipients(
        policy, ["a@x.example", "b@x.example", "c@x.example"], max_recipients=50
    ).refusal
    assert refusal is not None and (refusal.count, refusal.cap) == (3, 2)


def _service(engine: AsyncEngine) -> tuple[PolicyService, AuditRepository]:
    sessions = create_session_factory(engine)
    policies = PolicyRepository(sessions=sessions)
    audit = AuditRepository(sessions=sessions)
    service = PolicyService(
        store=policies,
        audit=AuditService(
            repository=audit, policies=policies, wakeup=Wakeup(), retention_days=365
        ),
        max_recipients=50,
        hourly_cap=200,
    )
    return service, audit


async def test_only_an_admin_changes_the_policy_and_each_change_is_audited(
    engine: AsyncEngine,
) -> None:
    """The admin check runs at the change; a refused change writes nothing, not even audit."""
    service, _audit = _service(engine)
    asked: list[SlackUser] = []

    async def is_admin(user: SlackUser) -> bool:
        asked.append(user)
        return user == ADMIN

    wanted = WorkspacePolicy(blocked_domains=("rival.example",), max_recipients=500, hourly_cap=10)
    with pytest.raises(NotAnAdmin):
        await service.change(MEMBER, wanted, is_admin=is_admin)
    assert await service.of(MEMBER) == WorkspacePolicy()
    saved = await service.change(ADMIN, wanted, is_admin=is_admin)
    assert asked == [MEMBER, ADMIN]
    # A cap above the instance's is no restriction.
    assert (saved.max_recipients, saved.hourly_cap) == (None, 10)
    assert await service.of(MEMBER) == saved
    assert service.hourly_cap(saved) == 10 and service.max_recipients(saved) == 50
    other_team = SlackUser(team_id="T0002", user_id="UADMIN")
    assert await service.of(other_team) == WorkspacePolicy()
    async with create_session_factory(engine)() as session:
        records = list(await session.scalars(select(AuditRecord)))
    assert len(records) == 1
    record = records[0]
    assert (record.kind, record.actor, record.outcome) == ("policy", "UADMIN", "changed")
    assert record.detail is not None
    assert record.detail["before"]["blocked_domains"] == []
    assert record.detail["after"]["blocked_domains"] == ["rival.example"]
