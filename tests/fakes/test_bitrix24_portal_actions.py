"""The fake portal's forward, create*, movetofolder and mail.recipient.* methods, over HTTP.

Each test pins the fake to its page in api-reference/mail/ (parameters, result shape, the
documented errors), so the client and use-case tests written against it mean something.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.bitrix24_portal import (
    ACCESS_DENIED_V3,
    INVALID_PAGINATION,
    VALIDATION_ERROR,
    FakePortal,
    FakeUser,
)

FORWARD = "mail.message.forward"
TASK = "mail.message.createtask"
EVENT = "mail.message.createcalendarevent"
CRM = "mail.message.createcrmactivity"
CHAT = "mail.message.createchat"
MOVE = "mail.message.movetofolder"
CONTACTS = "mail.recipient.listcontacts"
EMPLOYEES = "mail.recipient.listemployees"
GONE = "Message was deleted or moved to another folder"


@pytest.fixture
def portal() -> Iterator[FakePortal]:
    with FakePortal(rate=1000, burst=1000) as p:
        yield p


@pytest.fixture
def user(portal: FakePortal) -> FakeUser:
    return portal.add_user(1, senders=[("Ann Lee", "ann@example.com")])


@pytest.fixture
def other(portal: FakePortal) -> FakeUser:
    return portal.add_user(2, senders=[("Bob Roe", "bob@example.com")])


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def call(http: httpx.Client, user: FakeUser, method: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(user.api_url + method, json=body)


def validation(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == VALIDATION_ERROR
    return list(error["validation"])


def forward_body(message_id: Any) -> dict[str, Any]:
    return {
        "forwardMessageId": message_id,
        "from": "ann@example.com",
        "to": ["manager@example.com"],
        "subject": "Fwd: Contract",
        "body": "Forwarding the email.",
    }


def test_forward_of_a_missing_or_foreign_email_is_message_forward_failed(
    portal: FakePortal, user: FakeUser, other: FakeUser, http: httpx.Client
) -> None:
    """The forward page: MESSAGE_FORWARD_FAILED on forwardMessageId, not ENTITYNOTFOUND."""
    foreign = portal.add_message(2, subject="Theirs", from_="x@client.org")
    for message_id in (9999, foreign):
        (entry,) = validation(call(http, user, FORWARD, forward_body(message_id)))
        assert entry["field"] == "forwardMessageId"
        assert "MESSAGE_FORWARD_FAILED" in entry["message"]
    assert portal.delivered == []


def test_create_task_defaults_and_result(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    message_id = portal.add_message(1, subject="Contract", from_="bob@client.org")
    r = call(http, user, TASK, {"messageId": message_id})
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["success"] is True and result["messageId"] == message_id
    (task,) = portal.created
    assert (task.kind, task.id) == ("task", result["taskId"])
    assert task.fields == {"title": "Contract", "responsibleId": 1, "description": ""}
    r = call(http, user, TASK, {"messageId": message_id, "title": "Call Bob", "description": "x"})
    assert portal.created[-1].fields["title"] == "Call Bob"


@pytest.mark.parametrize("method", [TASK, CRM, CHAT])
def test_create_methods_need_a_visible_email(
    portal: FakePortal, user: FakeUser, other: FakeUser, http: httpx.Client, method: str
) -> None:
    foreign = portal.add_message(2, subject="Theirs", from_="x@client.org")
    for bad in (None, 0, "7", True):
        body = {} if bad is None else {"messageId": bad}
        (entry,) = validation(call(http, user, method, body))
        assert entry["field"] == "messageId"
    for message_id in (9999, foreign):
        (entry,) = validation(call(http, user, method, {"messageId": message_id}))
        assert entry == {"field": "messageId", "message": GONE}
    assert portal.created == []


def test_calendar_event_dates(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    message_id = portal.add_message(1, subject="Meeting", from_="bob@client.org")
    entries = validation(call(http, user, EVENT, {"messageId": message_id}))
    assert {e["field"] for e in entries} == {"dateFrom", "dateTo"}
    for bad in ("2026-04-15T10:00:00", "2026-02-30 10:00:00", "15.04.2026 10:00", 5):
        body = {"messageId": message_id, "dateFrom": bad, "dateTo": "2026-04-15 11:00:00"}
        (entry,) = validation(call(http, user, EVENT, body))
        assert entry == {"field": "dateFrom", "message": "Invalid date format"}
    body = {
        "messageId": message_id,
        "dateFrom": "2026-04-15 10:00:00",
        "dateTo": "2026-04-15 11:00:00",
    }
    r = call(http, user, EVENT, body)
    assert r.status_code == 200
    result = r.json()["result"]
    (event,) = portal.created
    assert result == {"success": True, "eventId": event.id, "messageId": message_id}
    assert event.fields["name"] == "Meeting"
    assert event.fields["dateFrom"] == "2026-04-15 10:00:00"


def test_crm_activity_result_is_true(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    message_id = portal.add_message(1, subject="Lead", from_="bob@client.org")
    r = call(http, user, CRM, {"messageId": message_id})
    assert r.status_code == 200 and r.json()["result"] is True
    assert [c.kind for c in portal.created] == ["crm_activity"]


def test_chat_is_created_once_per_email(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    message_id = portal.add_message(1, subject="Lead", from_="bob@client.org")
    first = call(http, user, CHAT, {"messageId": message_id}).json()["result"]
    again = call(http, user, CHAT, {"messageId": message_id}).json()["result"]
    assert first["existing"] is False and again["existing"] is True
    assert first["chatId"] == again["chatId"]


def test_move_to_spam_and_trash(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    message_id = portal.add_message(1, subject="Buy now", from_="spam@client.org")
    r = call(http, user, MOVE, {"messageIds": [message_id], "action": "spam"})
    assert r.json()["result"] == {"success": True, "movedCount": 1, "action": "spam"}
    assert portal.messages[0].folder == "Spam"
    r = call(http, user, MOVE, {"messageIds": [message_id], "action": "delete"})
    assert r.json()["result"]["action"] == "delete"
    assert portal.messages[0].folder == "Trash"
    # A trashed e-mail is gone for the create* methods.
    (entry,) = validation(call(http, user, TASK, {"messageId": message_id}))
    assert entry["message"] == GONE


def test_move_validation(
    portal: FakePortal, user: FakeUser, other: FakeUser, http: httpx.Client
) -> None:
    mine = portal.add_message(1, subject="A", from_="a@client.org")
    foreign = portal.add_message(2, subject="B", from_="b@client.org")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"action": "spam"}, "messageIds"),
        ({"messageIds": [], "action": "spam"}, "messageIds"),
        ({"messageIds": [mine], "action": "archive"}, "action"),
        ({"messageIds": [mine], "action": "move"}, "folder"),
        ({"messageIds": [foreign, 9999], "action": "spam"}, "messageIds"),
    ]
    for body, field in cases:
        (entry,) = validation(call(http, user, MOVE, body))
        assert entry["field"] == field
    (entry,) = validation(call(http, user, MOVE, {"messageIds": [foreign], "action": "spam"}))
    assert entry["message"] == "No accessible messages found"
    other_folder = portal.add_message(1, subject="C", from_="c@client.org", folder="Archive")
    (entry,) = validation(
        call(http, user, MOVE, {"messageIds": [mine, other_folder], "action": "spam"})
    )
    assert entry["message"] == "Select emails from a single folder"


@pytest.mark.parametrize("method", [FORWARD, TASK, EVENT, CRM, CHAT, MOVE, CONTACTS, EMPLOYEES])
def test_access_denied(portal: FakePortal, user: FakeUser, http: httpx.Client, method: str) -> None:
    portal.deny_access(1)
    r = call(http, user, method, {"messageId": 1, "query": "a"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == ACCESS_DENIED_V3
    portal.reset_faults()
    assert call(http, user, method, {"query": "a"}).status_code != 403


def test_employees_need_a_query_and_match_name_or_address(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    portal.add_employee(7, name="John Smith", email="john@example.com")
    portal.add_employee(8, name="Mary Jones", email="mary@example.com")
    for body in ({}, {"query": ""}):
        (entry,) = validation(call(http, user, EMPLOYEES, body))
        assert entry["field"] == "query"
    r = call(http, user, EMPLOYEES, {"query": "SMI"})
    assert r.json()["result"] == {
        "items": [{"id": 7, "email": "john@example.com", "name": "John Smith"}]
    }
    r = call(http, user, EMPLOYEES, {"query": "mary@"})
    assert [i["id"] for i in r.json()["result"]["items"]] == [8]


def test_contacts_are_the_users_own_latest_first(
    portal: FakePortal, user: FakeUser, other: FakeUser, http: httpx.Client
) -> None:
    portal.add_contact(1, 10, name="Client", email="client@example.com")
    portal.add_contact(1, 11, name="Supplier", email="supplier@example.com")
    portal.add_contact(2, 12, name="Not yours", email="secret@example.com")
    r = call(http, user, CONTACTS, {})
    assert [i["id"] for i in r.json()["result"]["items"]] == [11, 10]
    r = call(http, user, CONTACTS, {"query": "client", "pagination": {"limit": 1}})
    assert r.json()["result"]["items"] == [
        {"id": 10, "email": "client@example.com", "name": "Client"}
    ]
    r = call(http, user, CONTACTS, {"pagination": {"limit": "abc"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == INVALID_PAGINATION


@pytest.mark.parametrize(
    ("method", "module", "message"),
    [
        (TASK, "tasks", "Module tasks is not installed."),
        (EVENT, "calendar", "Module calendar is not installed"),
        (CRM, "crm", "CRM module is not installed"),
        (CHAT, "im", "Modules im/intranet are not installed"),
    ],
)
def test_a_missing_module(
    portal: FakePortal, user: FakeUser, http: httpx.Client, method: str, module: str, message: str
) -> None:
    message_id = portal.add_message(1, subject="Lead", from_="bob@client.org")
    portal.remove_module(module)
    body = {
        "messageId": message_id,
        "dateFrom": "2026-04-15 10:00:00",
        "dateTo": "2026-04-15 11:00:00",
    }
    assert validation(call(http, user, method, body)) == [{"message": message}]
    portal.reset_faults()
    assert call(http, user, method, body).status_code == 200
