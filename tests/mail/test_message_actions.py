"""The More actions and recipient suggestions against the fake portal, with each user's webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import AccessDenied, Bitrix24Client, ClientConfig
from bot.identity import SlackUser
from bot.mail.message_actions import (
    ACTION_KINDS,
    EmailGone,
    EventTimesInvalid,
    MessageActionService,
    OutcomeUnknown,
)
from bot.mail.replying import OtherPortal
from bot.store.crypto import SecretBox
from tests.fakes.bitrix24_portal import (
    CREATE_TASK,
    LIST_CONTACTS,
    LIST_EMPLOYEES,
    MOVE_TO_FOLDER,
    FakePortal,
)
from tests.mail.test_delivery import ALICE, Setup

BOB = SlackUser(team_id="T0001", user_id="U0002")
START = datetime(2026, 12, 7, 10, 0)
END = datetime(2026, 12, 7, 11, 0)


@pytest.fixture
async def client() -> AsyncIterator[Bitrix24Client]:
    # A short request limit: a (wrong) retry of an ambiguous write would come at once.
    config = ClientConfig(
        limiter_enabled=False, read_timeout=0.4, backoff_base=0.01, portal_request_limit=0.05
    )
    async with Bitrix24Client(config=config) as c:
        yield c


@pytest.fixture
async def setup(engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client) -> Setup:
    setup = Setup(engine, SecretBox([SecretStr(Fernet.generate_key().decode())]), client)
    await setup.links.connect(
        ALICE, portal.add_user(41, senders=[("Alice", "a@corp.example")]).webhook_url
    )
    await setup.links.connect(
        BOB, portal.add_user(42, senders=[("Bob", "b@corp.example")]).webhook_url
    )
    return setup


@pytest.fixture
def actions(setup: Setup) -> MessageActionService:
    return MessageActionService(links=setup.links, bitrix24=setup.client)


@pytest.mark.parametrize("kind", ACTION_KINDS)
async def test_each_action_succeeds_with_the_users_webhook(
    portal: FakePortal, actions: MessageActionService, kind: str
) -> None:
    message_id = portal.add_message(41, subject="Contract", from_="carol@client.example")
    done = await actions.run(ALICE, kind, message_id, start=START, end=END)  # type: ignore[arg-type]
    assert (done.kind, done.message_id) == (kind, message_id)
    made = [c for c in portal.created if c.message_id == message_id]
    if kind in ("spam", "delete"):
        assert made == []
        (message,) = [m for m in portal.messages if m.id == message_id]
        assert message.folder == {"spam": "Spam", "delete": "Trash"}[kind]
    else:
        (obj,) = made
        assert obj.user_id == 41
        if kind != "crm":
            assert done.object_id == obj.id


@pytest.mark.parametrize("kind", ACTION_KINDS)
async def test_an_email_the_user_cannot_see_is_refused_by_bitrix24(
    portal: FakePortal, actions: MessageActionService, kind: str
) -> None:
    """Bob presses an action on Alice's e-mail: Bitrix24 refuses it, nothing is made or moved."""
    message_id = portal.add_message(41, subject="Alice's", from_="carol@client.example")
    with pytest.raises(EmailGone):
        await actions.run(BOB, kind, message_id, start=START, end=END)  # type: ignore[arg-type]
    assert [c for c in portal.created if c.message_id == message_id] == []
    assert [m.folder for m in portal.messages if m.id == message_id] == ["INBOX"]
    with pytest.raises(EmailGone):
        await actions.run(ALICE, kind, 99_999_999, start=START, end=END)  # type: ignore[arg-type]


async def test_access_denied_is_reported_as_such(
    portal: FakePortal, actions: MessageActionService
) -> None:
    message_id = portal.add_message(41, subject="Contract", from_="carol@client.example")
    portal.deny_access(41, methods=[CREATE_TASK, MOVE_TO_FOLDER])
    with pytest.raises(AccessDenied):
        await actions.run(ALICE, "task", message_id)
    with pytest.raises(AccessDenied):
        await actions.run(ALICE, "delete", message_id)


@pytest.mark.parametrize("kind", ACTION_KINDS)
async def test_a_slow_portal_may_have_done_it_and_is_not_asked_twice(
    portal: FakePortal, actions: MessageActionService, kind: str
) -> None:
    message_id = portal.add_message(41, subject="Contract", from_="carol@client.example")
    portal.set_latency(1.0, phase="after")
    with pytest.raises(OutcomeUnknown) as info:
        await actions.run(ALICE, kind, message_id, start=START, end=END)  # type: ignore[arg-type]
    assert info.value.kind == kind
    portal.set_latency(0, phase="after")
    # Late records of earlier tests may still arrive: count only requests about this e-mail.
    about = [
        r
        for r in portal.requests
        if isinstance(r.json, dict)
        and message_id in (r.json.get("messageId"), *(r.json.get("messageIds") or []))
    ]
    assert len(about) <= 1
    if kind not in ("spam", "delete"):
        # Made once, when the request arrived: a second request would have made a second one.
        assert len([c for c in portal.created if c.message_id == message_id]) == 1


async def test_event_times_and_other_portals(
    portal: FakePortal, actions: MessageActionService
) -> None:
    message_id = portal.add_message(41, subject="Meeting", from_="carol@client.example")
    with pytest.raises(EventTimesInvalid):
        await actions.run(ALICE, "event", message_id, start=END, end=START)
    with pytest.raises(OtherPortal):
        await actions.run(ALICE, "task", message_id, portal="elsewhere.bitrix24.com")


async def test_suggestions_mix_employees_and_contacts(
    portal: FakePortal, actions: MessageActionService
) -> None:
    portal.add_employee(501, name="Dana Employee", email="dana@corp.example")
    portal.add_contact(41, 601, name="Dana Client", email="dana@client.example")
    portal.add_contact(41, 602, name="Dana Twice", email="DANA@corp.example")
    people = await actions.suggest_recipients(ALICE, " dana ", limit=10, time_box=2.0)
    assert [p.email for p in people] == ["dana@corp.example", "dana@client.example"]
    assert await actions.suggest_recipients(ALICE, "   ", limit=10, time_box=2.0) == []


async def test_suggestions_stop_at_the_time_box_on_a_slow_portal(
    portal: FakePortal, actions: MessageActionService
) -> None:
    portal.add_employee(502, name="Evan Employee", email="evan@corp.example")
    portal.add_contact(41, 603, name="Evan Client", email="evan@client.example")
    portal.set_latency(2.0, phase="before", methods=[LIST_CONTACTS])
    people = await actions.suggest_recipients(ALICE, "evan", limit=10, time_box=0.5)
    # The contacts (2 s late) were not waited for: only the employee is suggested.
    assert [p.email for p in people] == ["evan@corp.example"]
    portal.set_latency(2.0, phase="before", methods=[LIST_EMPLOYEES, LIST_CONTACTS])
    assert await actions.suggest_recipients(ALICE, "evan", limit=10, time_box=0.3) == []
