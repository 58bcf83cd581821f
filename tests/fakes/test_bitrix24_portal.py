"""The fake Bitrix24 portal, driven over real HTTP with plain httpx.

These tests pin the fake to the documented behaviour (docs/bitrix24-rest-v3-mail.md), so
tests of the b24mail client written against the fake mean something.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.bitrix24_portal import (
    ACCESS_DENIED_V3,
    ENTITY_NOT_FOUND,
    IDEMPOTENCY_KEY_REUSED,
    INSUFFICIENT_SCOPE,
    INVALID_IDEMPOTENCY_KEY,
    INVALID_JSON,
    INVALID_PAGINATION,
    VALIDATION_ERROR,
    Delivered,
    FakePortal,
    FakeUser,
    PortalControl,
)

ROOT = Path(__file__).resolve().parents[2]
SEND = "mail.message.send"
REPLY = "mail.message.reply"
FORWARD = "mail.message.forward"
TIME_KEYS = {
    "start",
    "finish",
    "duration",
    "processing",
    "date_start",
    "date_finish",
    "operating",
    "operating_reset_at",
}


@pytest.fixture
def portal() -> Iterator[FakePortal]:
    # A generous bucket so only the rate-limit tests meet it.
    with FakePortal(rate=1000, burst=1000) as p:
        yield p


@pytest.fixture
def user(portal: FakePortal) -> FakeUser:
    return portal.add_user(
        1, senders=[("Ann Lee", "ann@example.com"), ("Sales", "sales@example.com")]
    )


# Building an SSL context costs ~40 ms per httpx client; the portal is plain http anyway.
TLS = ssl.create_default_context()


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=TLS, timeout=kwargs.pop("timeout", 5.0), **kwargs)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with client() as c:
        yield c


def call(
    http: httpx.Client,
    user: FakeUser,
    method: str,
    body: dict[str, Any] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    return http.post(user.api_url + method, json=body if body is not None else {}, **kwargs)


def mail(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "ann@example.com",
        "to": ["client@example.org"],
        "subject": "Offer",
        "body": "Hello<br>there",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def v3_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def flat_code(response: httpx.Response) -> str:
    return response.json()["error"]


# --------------------------------------------------------------------------- users / shape
def test_user_code_and_urls(portal: FakePortal) -> None:
    user = portal.add_user(7)
    assert re.fullmatch(r"[0-9a-z]{16}", user.code)
    assert user.webhook_url == f"{portal.base_url}/rest/7/{user.code}/"
    assert user.api_url == f"{portal.base_url}/rest/api/7/{user.code}/"
    assert user.senders == [("Test User", "user7@example.com")]
    assert portal.add_user(8, code="fixedcode1234567").code == "fixedcode1234567"


def test_senders_envelope_and_pagination(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    r = call(http, user, "mail.mailbox.senders")
    assert r.status_code == 200
    data = r.json()
    assert set(data["time"]) == TIME_KEYS
    assert data["result"]["items"] == [
        {"email": "ann@example.com", "name": "Ann Lee", "sender": "Ann Lee <ann@example.com>"},
        {"email": "sales@example.com", "name": "Sales", "sender": "Sales <sales@example.com>"},
    ]
    one = call(http, user, "mail.mailbox.senders", {"pagination": {"limit": 1}})
    assert [i["email"] for i in one.json()["result"]["items"]] == ["ann@example.com"]
    page2 = call(http, user, "mail.mailbox.senders", {"pagination": {"page": 2, "limit": 1}})
    assert [i["email"] for i in page2.json()["result"]["items"]] == ["sales@example.com"]
    off = call(http, user, "mail.mailbox.senders", {"pagination": {"offset": 1}})
    assert [i["email"] for i in off.json()["result"]["items"]] == ["sales@example.com"]
    bad = call(http, user, "mail.mailbox.senders", {"pagination": {"limit": 0}})
    assert (bad.status_code, v3_code(bad)) == (400, INVALID_PAGINATION)
    bad = call(http, user, "mail.mailbox.senders", {"pagination": {"limit": "abc"}})
    assert (bad.status_code, v3_code(bad)) == (400, INVALID_PAGINATION)


def test_get_without_body_works(user: FakeUser, http: httpx.Client) -> None:
    # REST 3.0 accepts GET for calls without parameters.
    r = http.get(user.api_url + "mail.mailbox.senders")
    assert r.status_code == 200
    assert len(r.json()["result"]["items"]) == 2


def test_mailbox_list_filters(user: FakeUser, http: httpx.Client) -> None:
    r = call(http, user, "mail.mailbox.list")
    assert r.json()["result"]["items"] == [
        {"id": 1, "name": "ann@example.com", "email": "ann@example.com", "senderName": "Ann Lee"},
        {"id": 2, "name": "sales@example.com", "email": "sales@example.com", "senderName": "Sales"},
    ]
    r = call(http, user, "mail.mailbox.list", {"email": "SALES"})
    assert [m["id"] for m in r.json()["result"]["items"]] == [2]
    r = call(http, user, "mail.mailbox.list", {"name": "nothing"})
    assert r.json()["result"]["items"] == []


# --------------------------------------------------------------------------- reading mail
@pytest.fixture
def inbox(portal: FakePortal, user: FakeUser) -> dict[str, int]:
    base = datetime(2026, 5, 25, 10, 0, tzinfo=UTC)
    ids = {
        "old": portal.add_message(
            1, subject="Contract draft", from_="Bob <bob@client.org>", body="see attached",
            date=base, has_attachments=True, is_seen=True,
        ),
        "mid": portal.add_message(
            1, subject="Re: Contract draft", from_="bob@client.org", to="ann@example.com",
            cc="boss@client.org", body="any news?", date=base + timedelta(days=1),
        ),
        "new": portal.add_message(
            1, subject="Lunch", from_="carol@else.org", body="Pizza?",
            date=base + timedelta(days=2), mailbox_id=2, folder="Archive",
        ),
    }  # fmt: skip
    portal.add_user(2)
    ids["foreign"] = portal.add_message(2, subject="Contract secret", from_="x@y.org")
    return ids


def test_message_list_shape_and_order(
    portal: FakePortal, user: FakeUser, inbox: dict[str, int], http: httpx.Client
) -> None:
    r = call(http, user, "mail.message.list")
    items = r.json()["result"]["items"]
    # mail.message.list documents no order: any order, the same on every call (pages must not
    # overlap), and another seed gives another one.
    assert sorted(i["id"] for i in items) == sorted([inbox["new"], inbox["mid"], inbox["old"]])
    assert [i["id"] for i in call(http, user, "mail.message.list").json()["result"]["items"]] == [
        i["id"] for i in items
    ]
    orders = set()
    for seed in range(8):
        portal.set_list_order_seed(seed)
        listed = call(http, user, "mail.message.list").json()["result"]["items"]
        orders.add(tuple(i["id"] for i in listed))
    assert len(orders) > 1
    by_id = {i["id"]: i for i in items}
    mid = by_id[inbox["mid"]]
    assert mid == {
        "id": inbox["mid"],
        "mailboxId": 1,
        "mailboxEmail": "ann@example.com",
        "subject": "Re: Contract draft",
        "from": "bob@client.org",
        "to": "ann@example.com",
        "cc": "boss@client.org",
        "date": "2026-05-26T10:00:00+00:00",
        "isSeen": False,
        "hasAttachments": False,
        "url": f"/mail/message/{inbox['mid']}",  # relative, as in mail.message.get's example
        "bindings": [],
        "body": "any news?",
    }
    assert by_id[inbox["new"]]["mailboxEmail"] == "sales@example.com"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"searchQuery": "CONTRACT"}, ["mid", "old"]),
        ({"searchQuery": "bob@"}, ["mid", "old"]),
        ({"searchQuery": "pizza"}, ["new"]),
        ({"dateFrom": "2026-05-26T00:00:00+00:00"}, ["new", "mid"]),
        ({"dateTo": "2026-05-26T10:00:00+00:00"}, ["mid", "old"]),
        ({"isSeen": True}, ["old"]),
        ({"hasAttachments": False}, ["new", "mid"]),
        ({"folder": "archive"}, ["new"]),
        ({"mailboxId": 1}, ["mid", "old"]),
        ({"pagination": {"limit": 1, "page": 2}}, ["the second in the portal's order"]),
    ],
)
def test_message_list_filters(
    user: FakeUser,
    inbox: dict[str, int],
    http: httpx.Client,
    filters: dict[str, Any],
    expected: list[str],
) -> None:
    r = call(http, user, "mail.message.list", filters)
    assert r.status_code == 200, r.text
    found = [i["id"] for i in r.json()["result"]["items"]]
    if "pagination" in filters:
        everything = [
            i["id"] for i in call(http, user, "mail.message.list").json()["result"]["items"]
        ]
        assert found == everything[1:2]
    else:
        assert sorted(found) == sorted(inbox[k] for k in expected)


def test_message_list_may_require_a_mailbox_id(
    portal: FakePortal, user: FakeUser, inbox: dict[str, int], http: httpx.Client
) -> None:
    """With the switch on, a list without mailboxId is a required-field error; with it, fine."""
    portal.set_require_mailbox_id(True)
    r = call(http, user, "mail.message.list")
    assert (r.status_code, v3_code(r)) == (400, VALIDATION_ERROR)
    assert r.json()["error"]["validation"] == [
        {"field": "mailboxId", "message": "Required field `mailboxId` is not specified"}
    ]
    r = call(http, user, "mail.message.list", {"mailboxId": 2})
    assert [i["id"] for i in r.json()["result"]["items"]] == [inbox["new"]]
    portal.reset_faults()
    assert call(http, user, "mail.message.list").status_code == 200


def test_message_list_rejects_bad_dates_and_types(
    user: FakeUser, inbox: dict[str, int], http: httpx.Client
) -> None:
    for body, field in [
        ({"dateFrom": "yesterday"}, "dateFrom"),
        ({"dateTo": "2026-05-26T10:00:00"}, "dateTo"),  # DATE_ATOM needs an offset
        ({"isSeen": "yes"}, "isSeen"),
    ]:
        r = call(http, user, "mail.message.list", body)
        assert (r.status_code, v3_code(r)) == (400, VALIDATION_ERROR)
        assert r.json()["error"]["validation"][0]["field"] == field


def test_message_get_select_and_errors(
    user: FakeUser, inbox: dict[str, int], http: httpx.Client
) -> None:
    r = call(http, user, "mail.message.get", {"id": inbox["old"]})
    item = r.json()["result"]["item"]
    assert item["subject"] == "Contract draft"
    assert item["cc"] is None  # the documented example answers null for "no copies"
    r = call(http, user, "mail.message.get", {"id": inbox["mid"], "select": ["id", "subject"]})
    assert r.json()["result"]["item"] == {"id": inbox["mid"], "subject": "Re: Contract draft"}

    r = call(http, user, "mail.message.get", {"id": 99999})
    assert (r.status_code, v3_code(r)) == (400, ENTITY_NOT_FOUND)
    r = call(http, user, "mail.message.get", {"id": inbox["foreign"]})
    assert (r.status_code, v3_code(r)) == (403, ACCESS_DENIED_V3)
    r = call(http, user, "mail.message.get", {})
    assert (r.status_code, v3_code(r)) == (400, VALIDATION_ERROR)
    assert r.json()["error"]["validation"] == [
        {"field": "id", "message": "Required field `id` is not specified"}
    ]


def test_message_thread_is_plain_array(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    first = portal.add_message(
        1, subject="Q", from_="bob@client.org", date=datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    )
    second = portal.add_message(
        1,
        subject="Re: Q",
        from_="ann@example.com",
        thread_id=first,
        date=datetime(2026, 5, 2, 9, 0, tzinfo=UTC),
    )
    portal.add_message(1, subject="unrelated", from_="z@z.org")
    r = call(http, user, "mail.message.thread", {"id": second})
    result = r.json()["result"]
    assert isinstance(result, list)
    assert [m["id"] for m in result] == [first, second]
    assert set(result[0]) == {"id", "subject", "from", "to", "cc", "date", "body"}
    assert result[0]["date"] == "2026-05-01 09:00:00"
    r = call(http, user, "mail.message.thread", {"id": second, "limit": 1})
    assert len(r.json()["result"]) == 1
    assert call(http, user, "mail.message.thread", {"id": second, "limit": 50}).status_code == 200
    for beyond in (51, 0):  # documented: at most 50
        r = call(http, user, "mail.message.thread", {"id": second, "limit": beyond})
        assert (r.status_code, r.json()["error"]["validation"][0]["field"]) == (400, "limit")
    portal.add_user(2)
    foreign = portal.add_message(2, subject="x", from_="x@y.org")
    r = call(http, user, "mail.message.thread", {"id": foreign})
    assert (r.status_code, v3_code(r)) == (403, ACCESS_DENIED_V3)


# --------------------------------------------------------------------------- sending
def test_send_delivers_and_returns_no_id(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    r = call(http, user, SEND, mail(cc=["c@example.org"], bcc=["Boss <boss@example.org>"]))
    assert r.status_code == 200
    assert r.json()["result"] == {"success": True, "to": ["client@example.org"]}
    (d,) = portal.delivered
    assert (d.method, d.user_id, d.from_, d.to, d.cc, d.bcc) == (
        SEND,
        1,
        "ann@example.com",
        ["client@example.org"],
        ["c@example.org"],
        ["Boss <boss@example.org>"],
    )
    assert (d.subject, d.body, d.reply_to_message_id, d.idempotency_key) == (
        "Offer",
        "Hello<br>there",
        None,
        None,
    )


def test_send_accepts_name_and_address_sender(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    r = call(http, user, SEND, mail(**{"from": "Sales <sales@example.com>"}))
    assert r.status_code == 200
    assert portal.delivered[0].from_ == "Sales <sales@example.com>"


@pytest.mark.parametrize(
    ("overrides", "field", "cause"),
    [
        ({"from": ...}, "from", None),
        ({"subject": ...}, "subject", None),
        ({"subject": ""}, "subject", None),
        ({"body": ...}, "body", None),
        ({"to": ...}, "to", None),
        ({"to": []}, "to", "NO_RECIPIENTS"),
        ({"from": "stranger@example.com"}, "from", "MESSAGE_SEND_FAILED"),
        ({"to": ["not an address"]}, "to", "RESOLVE_RECIPIENTS_ERROR"),
        ({"cc": ["a@b"]}, "cc", "RESOLVE_RECIPIENTS_ERROR"),
        ({"bcc": ["x@y.org, z@y.org"]}, "bcc", "RESOLVE_RECIPIENTS_ERROR"),
    ],
)
def test_send_validation(
    portal: FakePortal,
    user: FakeUser,
    http: httpx.Client,
    overrides: dict[str, Any],
    field: str,
    cause: str | None,
) -> None:
    r = call(http, user, SEND, mail(**overrides))
    assert (r.status_code, v3_code(r)) == (400, VALIDATION_ERROR)
    (entry,) = r.json()["error"]["validation"]
    assert entry["field"] == field
    if cause is None:
        assert entry["message"] == f"Required field `{field}` is not specified"
    else:
        # Documented entries are {message, field} only, the cause code as the message.
        assert entry == {"field": field, "message": cause}
    assert portal.delivered == []


def test_reply(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    original = portal.add_message(1, subject="Question", from_="bob@client.org")
    r = call(http, user, REPLY, mail(replyToMessageId=original, subject="Re: Question"))
    assert r.json()["result"] == {"success": True, "to": ["client@example.org"]}
    (d,) = portal.delivered
    assert (d.method, d.reply_to_message_id, d.forward_message_id) == (REPLY, original, None)

    # A missing or someone else's e-mail: the documented MESSAGE_REPLY_FAILED on the id field.
    failed = [{"field": "replyToMessageId", "message": "MESSAGE_REPLY_FAILED"}]
    r = call(http, user, REPLY, mail(replyToMessageId=424242))
    assert (r.status_code, v3_code(r)) == (400, VALIDATION_ERROR)
    assert r.json()["error"]["validation"] == failed
    portal.add_user(2)
    foreign = portal.add_message(2, subject="x", from_="x@y.org")
    r = call(http, user, REPLY, mail(replyToMessageId=foreign))
    assert (r.status_code, v3_code(r), r.json()["error"]["validation"]) == (
        400,
        VALIDATION_ERROR,
        failed,
    )
    r = call(http, user, REPLY, mail(replyToMessageId=original, **{"from": "no@example.com"}))
    assert r.json()["error"]["validation"] == failed
    r = call(http, user, REPLY, mail())
    assert r.json()["error"]["validation"] == [
        {
            "field": "replyToMessageId",
            "message": "Required field `replyToMessageId` is not specified",
        }
    ]
    r = call(http, user, REPLY, mail(replyToMessageId=str(original)))
    assert (r.status_code, r.json()["error"]["validation"][0]["field"]) == (
        400,
        "replyToMessageId",
    )
    assert len(portal.delivered) == 1


def test_forward(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    original = portal.add_message(1, subject="Contract", from_="bob@client.org")
    r = call(http, user, FORWARD, mail(forwardMessageId=original))
    assert r.status_code == 200
    (d,) = portal.delivered
    assert (d.method, d.forward_message_id, d.reply_to_message_id) == (FORWARD, original, None)
    r = call(http, user, FORWARD, mail())
    assert r.json()["error"]["validation"][0]["field"] == "forwardMessageId"
    failed = [{"field": "forwardMessageId", "message": "MESSAGE_FORWARD_FAILED"}]
    r = call(http, user, FORWARD, mail(forwardMessageId=original, **{"from": "no@example.com"}))
    assert r.json()["error"]["validation"] == failed
    r = call(http, user, FORWARD, mail(forwardMessageId=424242))
    assert (r.status_code, r.json()["error"]["validation"]) == (400, failed)
    assert len(portal.delivered) == 1


def test_send_failure_fault(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.set_send_failure("MESSAGE_SEND_FAILED")
    r = call(http, user, SEND, mail())
    assert r.json()["error"]["validation"] == [{"field": "from", "message": "MESSAGE_SEND_FAILED"}]
    original = portal.add_message(1, subject="Q", from_="bob@client.org")
    r = call(http, user, REPLY, mail(replyToMessageId=original))
    assert r.status_code == 400
    assert portal.delivered == []
    portal.set_send_failure(None)
    assert call(http, user, SEND, mail()).status_code == 200


# --------------------------------------------------------------------------- auth and paths
def test_auth_errors(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    wrong = http.post(f"{portal.base_url}/rest/api/1/wrongcode0000000/{SEND}", json=mail())
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"},
    )
    unknown = http.post(f"{portal.base_url}/rest/api/9/{user.code}/{SEND}", json=mail())
    assert (unknown.status_code, flat_code(unknown)) == (401, "NO_AUTH_FOUND")
    noscope = portal.add_user(3, scopes=("crm",))
    r = call(http, noscope, "mail.mailbox.senders")
    assert (r.status_code, v3_code(r)) == (403, INSUFFICIENT_SCOPE)
    assert INSUFFICIENT_SCOPE == "BITRIX_REST_V3_EXCEPTION_INSUFFICIENTSCOPEEXCEPTION"
    assert portal.delivered == []


def test_oauth(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.add_oauth_token("tok-1", user_id=1)
    portal.add_oauth_token("tok-crm", user_id=1, scopes=("crm",))
    url = f"{portal.base_url}/rest/api/{SEND}"
    assert http.post(url, json={**mail(), "auth": "tok-1"}).status_code == 200
    assert portal.delivered[0].user_id == 1
    r = http.post(url, json={**mail(), "auth": "nope"})
    assert (r.status_code, flat_code(r)) == (401, "NO_AUTH_FOUND")
    r = http.post(url, json=mail())
    assert (r.status_code, flat_code(r)) == (401, "NO_AUTH_FOUND")
    r = http.post(url, json={**mail(), "auth": "tok-crm"})
    assert (r.status_code, v3_code(r)) == (403, INSUFFICIENT_SCOPE)
    portal.expire_oauth_token("tok-1")
    r = http.post(url, json={**mail(), "auth": "tok-1"})
    assert (r.status_code, flat_code(r)) == (401, "expired_token")


def test_paths_and_bodies(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    classic = http.post(f"{user.webhook_url}{SEND}.json", json=mail())
    assert (classic.status_code, flat_code(classic)) == (404, "ERROR_METHOD_NOT_FOUND")
    classic = http.post(f"{user.webhook_url}{SEND}", json=mail())
    assert classic.status_code == 404
    unknown = call(http, user, "mail.message.teleport")
    assert (unknown.status_code, flat_code(unknown)) == (404, "ERROR_METHOD_NOT_FOUND")
    suffixed = call(http, user, SEND + ".json", mail())
    assert suffixed.status_code == 404
    form = http.post(user.api_url + SEND, data={"from": "ann@example.com", "to": "x@y.org"})
    assert (form.status_code, v3_code(form)) == (400, INVALID_JSON)
    broken = http.post(
        user.api_url + SEND, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, v3_code(broken)) == (400, INVALID_JSON)
    assert portal.delivered == []


# --------------------------------------------------------------------------- rate limit
def test_leaky_bucket(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.set_rate(5, 3)
    statuses = [call(http, user, SEND, mail()).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 503]
    assert len(portal.delivered) == 3  # the refused request did not run
    assert portal.requests[-1].response == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }
    # The control API is exempt.
    assert http.get(f"{portal.base_url}/_fake/delivered").status_code == 200
    portal.advance(0.25)  # drains ~1.25 requests at 5/s, without waiting for it
    assert call(http, user, "mail.mailbox.senders").status_code == 200


def test_bucket_drains_with_advanced_clock(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    portal.set_rate(1, 1)
    assert call(http, user, "mail.mailbox.senders").status_code == 200
    assert call(http, user, "mail.mailbox.senders").status_code == 503
    portal.advance(1.0)
    assert call(http, user, "mail.mailbox.senders").status_code == 200


# --------------------------------------------------------------------------- idempotency
def test_idempotent_replay(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = call(http, user, SEND, mail(), headers=headers)
    assert first.headers["Idempotency-Key"] == "key-1"
    assert "Idempotent-Replayed" not in first.headers
    again = call(http, user, SEND, mail(), headers=headers)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert len(portal.delivered) == 1
    assert portal.delivered[0].idempotency_key == "key-1"
    assert [r.replayed for r in portal.requests] == [False, True]

    other = call(http, user, SEND, mail(subject="Different"), headers=headers)
    assert (other.status_code, v3_code(other)) == (422, IDEMPOTENCY_KEY_REUSED)
    # Scope is per method and per user: the same key elsewhere is a new call.
    original = portal.add_message(1, subject="Q", from_="bob@client.org")
    assert call(http, user, REPLY, mail(replyToMessageId=original), headers=headers).is_success
    bob = portal.add_user(2, senders=[("Bob", "bob@example.com")])
    assert call(http, bob, SEND, mail(**{"from": "bob@example.com"}), headers=headers).is_success
    assert len(portal.delivered) == 3


def test_idempotency_errors_are_not_stored(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    portal.set_send_failure("MESSAGE_SEND_FAILED")
    assert call(http, user, SEND, mail(), headers=headers).status_code == 400
    portal.set_send_failure(None)
    portal.fail_next(1, methods=[SEND])
    assert call(http, user, SEND, mail(), headers=headers).status_code == 500
    ok = call(http, user, SEND, mail(), headers=headers)
    assert ok.status_code == 200
    assert "Idempotent-Replayed" not in ok.headers
    assert len(portal.delivered) == 1


def test_idempotency_expires_after_24h(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    headers = {"Idempotency-Key": "k"}
    call(http, user, SEND, mail(), headers=headers)
    portal.advance(24 * 3600 - 60)
    assert call(http, user, SEND, mail(), headers=headers).headers["Idempotent-Replayed"] == "true"
    portal.advance(120)
    assert "Idempotent-Replayed" not in call(http, user, SEND, mail(), headers=headers).headers
    assert len(portal.delivered) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, b"caf\xe9", "tab\there"])
def test_invalid_idempotency_key(
    portal: FakePortal, user: FakeUser, http: httpx.Client, key: str | bytes
) -> None:
    r = call(http, user, SEND, mail(), headers={"Idempotency-Key": key})
    assert (r.status_code, v3_code(r)) == (400, INVALID_IDEMPOTENCY_KEY)
    assert portal.delivered == []


def test_longest_valid_key(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    key = "".join(chr(c) for c in range(0x21, 0x7F)) + "k" * (255 - 94)
    assert call(http, user, SEND, mail(), headers={"Idempotency-Key": key}).status_code == 200


def test_same_key_at_the_same_moment_runs_twice(portal: FakePortal, user: FakeUser) -> None:
    # The doc warns that simultaneous requests with one key may both run; the fake must not
    # hide a client that does that.
    portal.set_latency(0.3, phase="before", methods=[SEND])
    statuses: list[int] = []

    def send() -> None:
        with client() as c:
            r = call(c, user, SEND, mail(), headers={"Idempotency-Key": "twice"})
            statuses.append(r.status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200]
    assert len(portal.delivered) == 2


# --------------------------------------------------------------------------- faults
def test_latency_after_delivers_then_times_out(
    portal: FakePortal, user: FakeUser, http: httpx.Client
) -> None:
    portal.set_latency(0.5, phase="after", methods=[SEND])
    headers = {"Idempotency-Key": "slow"}
    with pytest.raises(httpx.ReadTimeout):
        call(http, user, SEND, mail(), headers=headers, timeout=0.15)
    assert len(portal.wait_for_delivered(1, timeout=1)) == 1  # ran before the timeout hit
    portal.set_latency(0, phase="after")
    retry = call(http, user, SEND, mail(), headers=headers)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert len(portal.delivered) == 1


def test_latency_before_runs_late(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.set_latency(3, phase="before", methods=[SEND])
    with pytest.raises(httpx.ReadTimeout):
        call(http, user, SEND, mail(), timeout=0.1)
    # Other methods are not delayed: one answers while the send still waits (no clock read).
    assert call(http, user, "mail.mailbox.senders").status_code == 200
    assert portal.delivered == []  # still waiting, nothing ran yet
    assert portal.arrived(SEND) == 1  # …though it did arrive
    portal.wait_for_delivered(1, timeout=10)  # …and it does run after the wait


def test_fail_next(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.fail_next(2, methods=[SEND])
    assert call(http, user, "mail.mailbox.senders").status_code == 200
    for _ in range(2):
        r = call(http, user, SEND, mail())
        assert r.status_code == 500
        assert r.headers["content-type"].startswith("text/html")
        with pytest.raises(ValueError, match="Expecting value"):
            r.json()
    assert call(http, user, SEND, mail()).status_code == 200
    assert len(portal.delivered) == 1

    portal.fail_next(1, status=500, error="ERROR_UNEXPECTED_ANSWER")
    r = call(http, user, "mail.mailbox.senders")
    assert (r.status_code, flat_code(r)) == (500, "ERROR_UNEXPECTED_ANSWER")
    portal.fail_next(1, status=403, error=ACCESS_DENIED_V3)
    r = call(http, user, "mail.mailbox.senders")
    assert (r.status_code, v3_code(r)) == (403, ACCESS_DENIED_V3)


def test_drop_before_and_after(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.drop_next(1, phase="before", methods=[SEND])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        call(http, user, SEND, mail())
    assert portal.delivered == []
    portal.drop_next(1, phase="after", methods=[SEND])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        call(http, user, SEND, mail())
    assert len(portal.delivered) == 1
    recorded = portal.requests
    assert [(r.dropped, r.status) for r in recorded] == [(True, None), (True, None)]
    assert call(http, user, SEND, mail()).status_code == 200  # the client reconnects


def test_rename(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.rename("new-name.bitrix24.com")
    r = call(http, user, SEND, mail())
    assert r.status_code == 302
    path = f"/rest/api/1/{user.code}/{SEND}"
    assert r.headers["Location"] == f"https://new-name.bitrix24.com{path}"
    assert portal.delivered == []
    portal.rename(None)
    assert call(http, user, SEND, mail()).status_code == 200


def test_expire_webhook(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.expire_webhook(1)
    r = call(http, user, SEND, mail())
    assert (r.status_code, r.json()) == (
        403,
        {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"},
    )
    portal.reset_faults()
    assert call(http, user, SEND, mail()).status_code == 200


def test_operation_time_limit(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.operation_time_limit(30, methods=[SEND])
    r = call(http, user, SEND, mail())
    assert (r.status_code, flat_code(r)) == (429, "OPERATION_TIME_LIMIT")
    senders = call(http, user, "mail.mailbox.senders")
    assert senders.status_code == 200
    portal.advance(31)
    assert call(http, user, SEND, mail()).status_code == 200
    portal.operation_time_limit(30)
    assert call(http, user, "mail.mailbox.senders").status_code == 429
    portal.operation_time_limit(None)
    assert call(http, user, "mail.mailbox.senders").status_code == 200


@pytest.mark.parametrize(
    ("setter", "status", "code"),
    [
        ("set_require_https", 400, "INVALID_REQUEST"),
        ("set_overloaded", 503, "OVERLOAD_LIMIT"),
        ("set_plan_restricted", 403, "ACCESS_DENIED"),
    ],
)
def test_portal_wide_faults(
    portal: FakePortal, user: FakeUser, http: httpx.Client, setter: str, status: int, code: str
) -> None:
    getattr(portal, setter)(True)
    r = call(http, user, SEND, mail())
    assert (r.status_code, flat_code(r)) == (status, code)
    assert "error_description" in r.json()
    getattr(portal, setter)(False)
    assert call(http, user, SEND, mail()).status_code == 200
    assert len(portal.delivered) == 1


def test_reset_faults_and_clear(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    portal.set_rate(1, 1)
    portal.fail_next(5)
    portal.set_overloaded(True)
    portal.reset_faults()
    assert [call(http, user, SEND, mail()).status_code for _ in range(3)] == [200] * 3
    call(http, user, SEND, mail(), headers={"Idempotency-Key": "c"})
    portal.clear()
    assert portal.delivered == []
    assert portal.requests == []
    # Users stay, and the idempotency store is gone: the same key runs again.
    r = call(http, user, SEND, mail(), headers={"Idempotency-Key": "c"})
    assert "Idempotent-Replayed" not in r.headers
    assert len(portal.delivered) == 1


# --------------------------------------------------------------------------- observation
def test_requests_are_recorded(portal: FakePortal, user: FakeUser, http: httpx.Client) -> None:
    call(http, user, SEND, mail(), headers={"Idempotency-Key": "rec", "X-Trace": "t1"})
    (rec,) = portal.requests
    assert rec.method_name == SEND
    assert rec.path == f"/rest/api/1/{user.code}/{SEND}"
    assert rec.headers["x-trace"] == "t1"
    assert rec.headers["idempotency-key"] == "rec"
    assert rec.json == mail()
    assert rec.status == 200
    assert rec.response["result"] == {"success": True, "to": ["client@example.org"]}
    assert rec.replayed is False


def test_wait_for_delivered_times_out(portal: FakePortal) -> None:
    with pytest.raises(TimeoutError):
        portal.wait_for_delivered(1, timeout=0.05)


async def test_works_from_async_code(portal: FakePortal, user: FakeUser) -> None:
    portal.set_latency(0.1, phase="before", methods=[SEND])
    async with httpx.AsyncClient(verify=TLS, timeout=5) as c:
        r = await c.post(user.api_url + SEND, json=mail())
        assert r.status_code == 200
    delivered = await portal.await_delivered(1, timeout=1)
    assert delivered[0].subject == "Offer"


# --------------------------------------------------------------------------- control API / CLI
def test_control_api_over_http(portal: FakePortal, http: httpx.Client) -> None:
    control = f"{portal.base_url}/_fake"
    created = http.post(
        f"{control}/users", json={"user_id": 5, "senders": [["Eve", "eve@example.com"]]}
    ).json()
    assert re.fullmatch(r"[0-9a-z]{16}", created["code"])
    assert created["webhook_url"] == f"{portal.base_url}/rest/5/{created['code']}/"
    api = created["api_url"]
    message_id = http.post(
        f"{control}/messages",
        json={"user_id": 5, "subject": "Hi", "from": "x@y.org", "date": "2026-01-01T00:00:00Z"},
    ).json()["id"]
    got = http.post(api + "mail.message.get", json={"id": message_id}).json()
    assert got["result"]["item"]["date"] == "2026-01-01T00:00:00+00:00"

    assert http.post(f"{control}/faults", json={"fail_next": {"n": 1}}).status_code == 200
    assert http.post(api + "mail.mailbox.senders", json={}).status_code == 500
    http.post(f"{control}/faults", json={"rename": "moved.bitrix24.de", "overloaded": True})
    assert http.post(api + "mail.mailbox.senders", json={}).status_code == 302
    assert http.post(f"{control}/reset").status_code == 200
    body = {"from": "eve@example.com", "to": ["a@b.org"], "subject": "s", "body": "b"}
    assert http.post(api + SEND, json=body).status_code == 200
    delivered = http.get(f"{control}/delivered").json()["delivered"]
    assert [Delivered.from_json(d).from_ for d in delivered] == ["eve@example.com"]
    requests = http.get(f"{control}/requests").json()["requests"]
    assert [r["status"] for r in requests] == [200, 500, 302, 200]
    assert http.post(f"{control}/clear").status_code == 200
    assert http.get(f"{control}/delivered").json() == {"delivered": []}
    bad = http.post(f"{control}/faults", json={"meteor": True})
    assert bad.status_code == 400
    assert http.get(f"{control}/nothing").status_code == 404


def test_control_client(portal: FakePortal, http: httpx.Client) -> None:
    with PortalControl(portal.base_url) as control:
        created = control.add_user(4)
        control.add_oauth_token("t4", user_id=4)
        control.faults(latency={"seconds": 0.05, "phase": "after"})
        body = {"from": "user4@example.com", "to": ["a@b.org"], "subject": "s", "body": "b"}
        assert http.post(created["api_url"] + SEND, json=body).status_code == 200
        r = http.post(f"{portal.base_url}/rest/api/{SEND}", json={**body, "auth": "t4"})
        assert r.status_code == 200
        assert [d.user_id for d in control.wait_for_delivered(2)] == [4, 4]
        control.reset()
        control.clear()
        assert control.delivered() == []


def test_cli_runs_as_a_subprocess() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.fakes.bitrix24_portal"),
            *("--port", "0", "--rate", "5", "--burst", "10", "--user", "1", "--user", "2"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        base = re.search(r"on (http://127\.0\.0\.1:\d+) ", lines[0])
        assert base, lines
        webhooks = [re.search(r"user (\d+) webhook: (\S+)", line) for line in lines[1:]]
        assert [m.group(1) for m in webhooks if m] == ["1", "2"]
        webhook = webhooks[0].group(2) if webhooks[0] else ""
        assert webhook.startswith(f"{base.group(1)}/rest/1/")
        api = webhook.replace("/rest/", "/rest/api/", 1)
        with client() as c:
            r = c.post(api + "mail.mailbox.senders", json={})
            assert r.json()["result"]["items"][0]["email"] == "user1@example.com"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=5) == 0
        finally:
            proc.kill()
            proc.communicate()
