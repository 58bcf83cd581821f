"""bot.bitrix24.message_actions against the fake portal: payloads, typed results, errors."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from bot.bitrix24 import (
    AccessDenied,
    Bitrix24Client,
    ClientConfig,
    PortalTimeout,
    ValidationFailed,
    WebhookCredentials,
    parse_webhook_url,
)
from bot.bitrix24.message_actions import (
    ChatCreated,
    EventCreated,
    MoveResult,
    Person,
    TaskCreated,
    create_calendar_event,
    create_chat,
    create_crm_activity,
    create_task,
    list_contacts,
    list_employees,
    move_to_folder,
)
from tests.fakes.bitrix24_portal import (
    CREATE_TASK,
    LIST_EMPLOYEES,
    MOVE_TO_FOLDER,
    FakePortal,
    FakeUser,
)

_user_ids = itertools.count(7000)


@pytest.fixture
def user(portal: FakePortal) -> FakeUser:
    return portal.add_user(next(_user_ids), senders=[("Ann", "ann{id}@example.com")])


@pytest.fixture
def creds(user: FakeUser) -> WebhookCredentials:
    return parse_webhook_url(user.webhook_url, allow_insecure=True)


@pytest.fixture
async def client() -> AsyncIterator[Bitrix24Client]:
    config = ClientConfig(
        limiter_enabled=False, read_timeout=0.5, backoff_base=0.01, backoff_max=0.02
    )
    async with Bitrix24Client(config=config) as c:
        yield c


def last_body(portal: FakePortal, method: str) -> object:
    return [r.json for r in portal.requests if r.method_name == method][-1]


async def test_create_task(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    message_id = portal.add_message(user.user_id, subject="Contract", from_="bob@client.org")
    made = await create_task(client, creds, message_id, description="From Slack")
    assert made == TaskCreated(success=True, taskId=portal.created[-1].id, messageId=message_id)
    assert last_body(portal, CREATE_TASK) == {"messageId": message_id, "description": "From Slack"}


async def test_calendar_event_sends_wall_clock_dates(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    message_id = portal.add_message(user.user_id, subject="Meeting", from_="bob@client.org")
    made = await create_calendar_event(
        client,
        creds,
        message_id,
        start=datetime(2026, 4, 15, 10, 0),
        end=datetime(2026, 4, 15, 11, 30),
    )
    assert isinstance(made, EventCreated) and made.event_id == portal.created[-1].id
    assert portal.created[-1].fields["dateFrom"] == "2026-04-15 10:00:00"
    assert portal.created[-1].fields["dateTo"] == "2026-04-15 11:30:00"
    with pytest.raises(ValueError):
        await create_calendar_event(
            client, creds, message_id, start=datetime(2026, 4, 15), end=datetime(2026, 4, 15)
        )


async def test_crm_activity_and_chat(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    message_id = portal.add_message(user.user_id, subject="Lead", from_="bob@client.org")
    assert await create_crm_activity(client, creds, message_id) is True
    chat = await create_chat(client, creds, message_id)
    assert isinstance(chat, ChatCreated) and chat.existing is False
    assert (await create_chat(client, creds, message_id)).existing is True


async def test_move_to_spam(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    message_id = portal.add_message(user.user_id, subject="Buy", from_="spam@client.org")
    result = await move_to_folder(client, creds, [message_id], "spam")
    assert result == MoveResult(success=True, movedCount=1, action="spam")
    assert last_body(portal, MOVE_TO_FOLDER) == {"messageIds": [message_id], "action": "spam"}


async def test_missing_email_is_a_validation_failure_on_message_id(
    user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    with pytest.raises(ValidationFailed) as info:
        await create_task(client, creds, 999_999)
    assert [c.field for c in info.value.causes] == ["messageId"]


async def test_access_denied(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    portal.deny_access(user.user_id)
    message_id = portal.add_message(user.user_id, subject="Lead", from_="bob@client.org")
    with pytest.raises(AccessDenied):
        await create_chat(client, creds, message_id)


async def test_a_write_that_timed_out_is_not_repeated(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    """The task may exist: one request, then PortalTimeout saying it may have reached Bitrix24."""
    message_id = portal.add_message(user.user_id, subject="Contract", from_="bob@client.org")
    portal.set_latency(1.0, phase="after", methods=[CREATE_TASK])
    with pytest.raises(PortalTimeout) as info:
        await create_task(client, creds, message_id)
    assert info.value.may_have_reached_portal
    assert len([r for r in portal.requests if r.method_name == CREATE_TASK]) <= 1
    assert [c.kind for c in portal.created if c.message_id == message_id] == ["task"]


async def test_people(
    portal: FakePortal, user: FakeUser, creds: WebhookCredentials, client: Bitrix24Client
) -> None:
    portal.add_employee(70, name="John Smith", email="john.smith@example.com")
    portal.add_contact(user.user_id, 10, name="Client", email="client@example.com")
    assert await list_employees(client, creds, " smith ", limit=5) == [
        Person(id=70, email="john.smith@example.com", name="John Smith")
    ]
    assert last_body(portal, LIST_EMPLOYEES) == {
        "pagination": {"page": 1, "limit": 5},
        "query": "smith",
    }
    assert [p.email for p in await list_contacts(client, creds, "cli")] == ["client@example.com"]
    assert [p.email for p in await list_contacts(client, creds)] == ["client@example.com"]
    with pytest.raises(ValueError):
        await list_employees(client, creds, "  ")
