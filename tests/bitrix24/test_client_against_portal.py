"""Bitrix24Client against the fake portal over real HTTP: results, errors and retries end to end."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import socket
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from bot.bitrix24 import (
    AccessDenied,
    BadCredentials,
    Bitrix24Client,
    Bitrix24Error,
    ClientConfig,
    ConnectionDropped,
    ForwardFailed,
    HttpsRequired,
    IdempotencyConflict,
    Mailbox,
    Message,
    MessageFilter,
    MethodNotFound,
    MissingScope,
    NoRecipients,
    OperationTimeLimit,
    OutgoingEmail,
    PlanRestricted,
    PortalLimiters,
    PortalMoved,
    PortalOverloaded,
    PortalTimeout,
    PortalUnavailable,
    PortalUnreachable,
    RecipientsUnresolved,
    ReplyFailed,
    Sender,
    SendFailed,
    SendResult,
    WebhookCredentials,
    parse_webhook_url,
)
from tests.fakes.bitrix24_portal import (
    FORWARD,
    MESSAGE_SEND_FAILED,
    QUERY_LIMIT_EXCEEDED,
    REPLY,
    SEND,
    FakePortal,
    FakeUser,
    RecordedRequest,
)

E = TypeVar("E", bound=Bitrix24Error)
MakeClient = Callable[..., Bitrix24Client]

# Each test gets a user of its own: the session portal keeps users and messages across tests.
_user_ids = itertools.count(5000)
# Every webhook code handed out in this module; no error may ever show one.
_CODES: set[str] = set()


def _assert_no_secret(err: BaseException) -> None:
    texts = []
    # The chained httpx error too: a logged traceback shows it.
    link: BaseException | None = err
    while link is not None:
        texts += [str(link), repr(link), *traceback.format_exception_only(link)]
        if isinstance(link, Bitrix24Error):
            texts.append(link.portal_message or "")
            texts.extend(cause.message for cause in getattr(link, "causes", []))
        link = link.__cause__
    for code in _CODES:
        for text in texts:
            assert code not in text, f"{type(err).__name__} shows a webhook code: {text!r}"


async def expect(exc_type: type[E], awaitable: Awaitable[Any]) -> E:
    """Await, demand `exc_type`, and check that the error names no webhook code."""
    with pytest.raises(exc_type) as info:
        await awaitable
    _assert_no_secret(info.value)
    return info.value


class UpperRng(random.Random):
    """Back-off without jitter: always the cap, so waits are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


def email(user: FakeUser, **overrides: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "from_": user.senders[0][1],
        "to": ["bob@example.com"],
        "subject": "Quarterly report",
        "body": "<p>Hello Bob</p>",
    }
    fields.update(overrides)
    return OutgoingEmail(**fields)


def creds_of(user: FakeUser) -> WebhookCredentials:
    return parse_webhook_url(user.webhook_url, allow_insecure=True)


def rejected(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [
        r
        for r in requests
        if r.status == 503
        and isinstance(r.response, dict)
        and r.response.get("error") == QUERY_LIMIT_EXCEEDED
    ]


async def settle(portal: FakePortal, n: int, timeout: float = 3.0) -> list[RecordedRequest]:
    """Wait until the portal recorded `n` requests (slow handlers record late), then a bit more."""
    deadline = time.monotonic() + timeout
    while len(portal.requests) < n:
        assert time.monotonic() < deadline, f"portal saw {len(portal.requests)} of {n} requests"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # room for a stray extra request to show up
    return portal.requests


@pytest.fixture
def user(portal: FakePortal) -> FakeUser:
    created = portal.add_user(
        next(_user_ids),
        senders=[("Ann Smith", "ann{id}@example.com"), ("Support", "support{id}@example.com")],
    )
    _CODES.add(created.code)
    return created


@pytest.fixture
def creds(user: FakeUser) -> WebhookCredentials:
    return creds_of(user)


@pytest.fixture
async def make() -> AsyncIterator[MakeClient]:
    """Clients with short timeouts and back-off; the limiter is off unless asked for."""
    made: list[Bitrix24Client] = []

    def build(
        *,
        limiters: PortalLimiters | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        **config: Any,
    ) -> Bitrix24Client:
        settings: dict[str, Any] = {
            "limiter_enabled": False,
            "connect_timeout": 1.0,
            "read_timeout": 2.0,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            # Longer than any latency these tests inject, like Bitrix24's 60 s per request.
            "portal_request_limit": 1.0,
        }
        settings.update(config)
        client = Bitrix24Client(
            config=ClientConfig(**settings), limiters=limiters, sleep=sleep, rng=rng
        )
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make: MakeClient) -> Bitrix24Client:
    return make()


# --- happy paths and typed results ------------------------------------------------------


async def test_senders_are_typed(client: Bitrix24Client, creds: WebhookCredentials) -> None:
    """senders() returns Sender models with the display form."""
    senders = await client.senders(creds)
    uid = creds.user_id
    assert senders == [
        Sender(
            email=f"ann{uid}@example.com",
            name="Ann Smith",
            sender=f"Ann Smith <ann{uid}@example.com>",
        ),
        Sender(
            email=f"support{uid}@example.com",
            name="Support",
            sender=f"Support <support{uid}@example.com>",
        ),
    ]


async def test_senders_pagination(client: Bitrix24Client, creds: WebhookCredentials) -> None:
    """senders(limit, page) returns the requested page."""
    second = await client.senders(creds, limit=1, page=2)
    assert [s.email for s in second] == [f"support{creds.user_id}@example.com"]


async def test_mailboxes_are_typed_and_filtered(
    client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """mailboxes() returns Mailbox models and passes the name and email filters."""
    uid = creds.user_id
    everything = await client.mailboxes(creds)
    assert everything == [
        Mailbox(
            id=1,
            name=f"ann{uid}@example.com",
            email=f"ann{uid}@example.com",
            senderName="Ann Smith",
        ),
        Mailbox(
            id=2,
            name=f"support{uid}@example.com",
            email=f"support{uid}@example.com",
            senderName="Support",
        ),
    ]
    assert [m.id for m in await client.mailboxes(creds, name="SUPPORT")] == [2]
    assert [m.id for m in await client.mailboxes(creds, email="ann")] == [1]
    assert [m.id for m in await client.mailboxes(creds, limit=1, page=2)] == [2]


@pytest.fixture
def inbox(portal: FakePortal, user: FakeUser) -> dict[str, int]:
    """Four e-mails of `user` that each filter tells apart."""
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    add = portal.add_message
    uid = user.user_id
    return {
        "old": add(uid, subject="Invoice March", from_="a@x.example", date=base, is_seen=True),
        "attached": add(
            uid,
            subject="Photos",
            from_="b@x.example",
            date=base + timedelta(days=1),
            has_attachments=True,
        ),
        "support": add(
            uid,
            subject="Ticket 42",
            from_="c@x.example",
            date=base + timedelta(days=2),
            mailbox_id=2,
        ),
        "sent": add(
            uid,
            subject="Re: hello",
            from_="me@x.example",
            date=base + timedelta(days=3),
            folder="SENT",
        ),
    }


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        pytest.param(MessageFilter(mailbox_id=2), ["support"], id="mailbox_id"),
        pytest.param(MessageFilter(search_query="invoice"), ["old"], id="search_query"),
        pytest.param(
            MessageFilter(date_from=datetime(2026, 3, 3, tzinfo=UTC)),
            ["sent", "support"],
            id="date_from",
        ),
        pytest.param(
            MessageFilter(date_to=datetime(2026, 3, 2, 13, tzinfo=UTC)),
            ["attached", "old"],
            id="date_to",
        ),
        pytest.param(MessageFilter(is_seen=True), ["old"], id="is_seen"),
        pytest.param(MessageFilter(has_attachments=True), ["attached"], id="has_attachments"),
        pytest.param(MessageFilter(folder="SENT"), ["sent"], id="folder"),
        pytest.param(None, ["sent", "support", "attached", "old"], id="no_filter"),
    ],
)
async def test_list_messages_filter(
    client: Bitrix24Client,
    creds: WebhookCredentials,
    inbox: dict[str, int],
    filter_: MessageFilter | None,
    expected: list[str],
) -> None:
    """list_messages() applies each filter on the portal (in the portal's own order)."""
    page = await client.list_messages(creds, filter_)
    assert sorted(m.id for m in page.items) == sorted(inbox[name] for name in expected)
    assert page.has_more is False


async def test_list_messages_pagination(
    client: Bitrix24Client, creds: WebhookCredentials, inbox: dict[str, int]
) -> None:
    """A full page says has_more; the last, short page does not."""
    first = await client.list_messages(creds, limit=3)
    second = await client.list_messages(creds, limit=3, page=2)
    assert (len(first.items), first.has_more, first.page, first.limit) == (3, True, 1, 3)
    assert len(second.items) == 1
    assert {m.id for m in first.items + second.items} == set(inbox.values())
    assert second.has_more is False


async def test_list_messages_items_are_typed(
    client: Bitrix24Client, creds: WebhookCredentials, inbox: dict[str, int]
) -> None:
    """Listed e-mails are Message models with aware dates and absolute links."""
    page = await client.list_messages(creds, MessageFilter(mailbox_id=2))
    (message,) = page.items
    assert isinstance(message, Message)
    assert message.subject == "Ticket 42"
    assert message.from_ == "c@x.example"
    assert message.mailbox_id == 2
    assert message.date == datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    assert message.url is not None
    assert message.url.startswith(f"http://{creds.host}/mail/message/")


async def test_get_message(
    client: Bitrix24Client, creds: WebhookCredentials, inbox: dict[str, int]
) -> None:
    """get_message() returns one typed e-mail; `select` narrows it and keeps the id."""
    full = await client.get_message(creds, inbox["attached"])
    assert (full.id, full.subject, full.has_attachments, full.cc) == (
        inbox["attached"],
        "Photos",
        True,
        "",
    )
    narrow = await client.get_message(creds, inbox["attached"], select=["subject"])
    assert (narrow.id, narrow.subject, narrow.from_, narrow.url) == (
        inbox["attached"],
        "Photos",
        "",
        None,
    )


async def test_thread(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """thread() reads the plain array, oldest first, with the portal's naive dates."""
    base = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    first = portal.add_message(user.user_id, subject="Hello", from_="x@y.example", date=base)
    second = portal.add_message(
        user.user_id,
        subject="Re: Hello",
        from_="me@y.example",
        date=base + timedelta(hours=1),
        thread_id=first,
    )
    thread = await client.thread(creds, second)
    assert [m.id for m in thread] == [first, second]
    assert thread[0].date == datetime(2026, 4, 1, 9, 0)
    assert (await client.thread(creds, second, limit=1))[0].id == first


async def test_send(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """send() delivers once and returns a SendResult."""
    result = await client.send(
        creds, email(user, cc=["carol@example.com"], bcc=["dan@example.com"]), idempotency_key="s-1"
    )
    assert result == SendResult(success=True, to=["bob@example.com"], replayed=False)
    (sent,) = portal.delivered
    assert (sent.method, sent.from_, sent.to, sent.cc, sent.bcc, sent.idempotency_key) == (
        SEND,
        user.senders[0][1],
        ["bob@example.com"],
        ["carol@example.com"],
        ["dan@example.com"],
        "s-1",
    )
    assert (sent.subject, sent.body) == ("Quarterly report", "<p>Hello Bob</p>")


async def test_send_again_with_the_key_is_replayed(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A repeat with the same key and body is answered from the store, flagged replayed."""
    await client.send(creds, email(user), idempotency_key="s-2")
    again = await client.send(creds, email(user), idempotency_key="s-2")
    assert again.replayed is True
    assert len(portal.delivered) == 1


async def test_reply(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """reply() sends replyToMessageId and returns a SendResult."""
    original = portal.add_message(user.user_id, subject="Question", from_="bob@example.com")
    result = await client.reply(
        creds, email(user), reply_to_message_id=original, idempotency_key="r-1"
    )
    assert result == SendResult(success=True, to=["bob@example.com"])
    (sent,) = portal.delivered
    assert (sent.method, sent.reply_to_message_id) == (REPLY, original)
    assert portal.requests[-1].json["replyToMessageId"] == original


async def test_forward(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """forward() sends forwardMessageId and returns a SendResult."""
    original = portal.add_message(user.user_id, subject="FYI", from_="bob@example.com")
    result = await client.forward(
        creds,
        email(user, to=["eve@example.com"]),
        forward_message_id=original,
        idempotency_key=None,
    )
    assert result == SendResult(success=True, to=["eve@example.com"])
    (sent,) = portal.delivered
    assert (sent.method, sent.forward_message_id, sent.idempotency_key) == (FORWARD, original, None)


# --- every error the portal can produce -------------------------------------------------


async def test_wrong_code_is_bad_credentials(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser
) -> None:
    """A webhook with a wrong code fails as BadCredentials (401 NO_AUTH_FOUND)."""
    wrong = "wrongcode1234567"
    _CODES.add(wrong)
    url = user.webhook_url.replace(user.code, wrong)
    err = await expect(BadCredentials, client.senders(parse_webhook_url(url, allow_insecure=True)))
    assert (err.http_status, err.portal_code) == (401, "NO_AUTH_FOUND")
    assert len(portal.requests) == 1


async def test_missing_scope(portal: FakePortal, client: Bitrix24Client) -> None:
    """A webhook without the mail scope fails as MissingScope."""
    crm_only = portal.add_user(next(_user_ids), scopes=("crm",))
    _CODES.add(crm_only.code)
    err = await expect(MissingScope, client.senders(creds_of(crm_only)))
    assert err.http_status == 403


async def test_expired_webhook(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """An expired (regenerated) webhook fails as BadCredentials (403 INVALID_CREDENTIALS)."""
    portal.expire_webhook(user.user_id)
    err = await expect(BadCredentials, client.send(creds, email(user), idempotency_key="x"))
    assert (err.http_status, err.portal_code) == (403, "INVALID_CREDENTIALS")
    assert portal.delivered == []


async def test_plan_restricted(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """REST on a free plan fails as PlanRestricted."""
    portal.set_plan_restricted(True)
    err = await expect(PlanRestricted, client.senders(creds))
    assert err.portal_code == "ACCESS_DENIED"


async def test_reply_to_unknown_message_is_reply_failed(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A reply to an id that does not exist fails as ReplyFailed on replyToMessageId."""
    err = await expect(
        ReplyFailed,
        client.reply(creds, email(user), reply_to_message_id=99_999_999, idempotency_key="nf"),
    )
    assert err.http_status == 400
    assert [(c.field, c.code) for c in err.causes] == [("replyToMessageId", "MESSAGE_REPLY_FAILED")]
    assert portal.delivered == []


async def test_forward_of_someone_elses_message_is_forward_failed(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """Forwarding an e-mail the user cannot see fails as ForwardFailed on forwardMessageId."""
    other = portal.add_user(next(_user_ids))
    _CODES.add(other.code)
    theirs = portal.add_message(other.user_id, subject="Private", from_="z@x.example")
    err = await expect(
        ForwardFailed,
        client.forward(creds, email(user), forward_message_id=theirs, idempotency_key="ff"),
    )
    assert [(c.field, c.code) for c in err.causes] == [
        ("forwardMessageId", "MESSAGE_FORWARD_FAILED")
    ]
    assert portal.delivered == []


async def test_other_users_message_is_access_denied(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """Reading another user's e-mail fails as AccessDenied."""
    other = portal.add_user(next(_user_ids))
    _CODES.add(other.code)
    theirs = portal.add_message(other.user_id, subject="Private", from_="z@x.example")
    err = await expect(AccessDenied, client.get_message(creds, theirs))
    assert err.http_status == 403


async def test_no_recipients(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """An e-mail without recipients fails as NoRecipients with the cause attached."""
    err = await expect(NoRecipients, client.send(creds, email(user, to=[]), idempotency_key="nr"))
    assert [c.code for c in err.causes] == ["NO_RECIPIENTS"]
    assert portal.delivered == []


async def test_unresolvable_recipient(
    client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A malformed address fails as RecipientsUnresolved naming the field."""
    err = await expect(
        RecipientsUnresolved,
        client.send(creds, email(user, cc=["not an address"]), idempotency_key="ru"),
    )
    assert [(c.field, c.code) for c in err.causes] == [("cc", "RESOLVE_RECIPIENTS_ERROR")]


async def test_send_failure(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A sending limit on the portal fails as SendFailed."""
    portal.set_send_failure(MESSAGE_SEND_FAILED)
    err = await expect(SendFailed, client.send(creds, email(user), idempotency_key="sf"))
    assert err.causes[0].code == MESSAGE_SEND_FAILED
    assert err.transient is False
    assert len(portal.requests) == 1


async def test_reply_from_unavailable_sender(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A reply from an address the user may not use fails as ReplyFailed."""
    original = portal.add_message(user.user_id, subject="Q", from_="bob@example.com")
    await expect(
        ReplyFailed,
        client.reply(
            creds,
            email(user, from_="ceo@elsewhere.example"),
            reply_to_message_id=original,
            idempotency_key="rf",
        ),
    )


async def test_renamed_portal_is_not_followed(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """A 302 after a rename raises PortalMoved with the new host; the redirect is not followed."""
    portal.rename("renamed.bitrix24.com")
    err = await expect(PortalMoved, client.senders(creds))
    assert err.new_host == "renamed.bitrix24.com"
    assert err.http_status == 302
    assert "renamed.bitrix24.com" in str(err)
    assert len(portal.requests) == 1


async def test_https_required(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """A portal that refuses plain http fails as HttpsRequired, without retries."""
    portal.set_require_https(True)
    await expect(HttpsRequired, client.senders(creds))
    assert len(portal.requests) == 1


async def test_overloaded_portal_is_not_hammered(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """OVERLOAD_LIMIT raises PortalOverloaded after a single request."""
    portal.set_overloaded(True)
    err = await expect(PortalOverloaded, client.send(creds, email(user), idempotency_key="ov"))
    assert err.retry_after >= 60
    assert len(portal.requests) == 1


async def test_operation_time_limit_carries_reset_at(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """429 OPERATION_TIME_LIMIT raises at once with the reset time of the last good answer."""
    await client.send(creds, email(user), idempotency_key="otl-1")
    seen = portal.requests[-1].response["time"]["operating_reset_at"]
    portal.operation_time_limit(120, methods=[SEND])
    err = await expect(OperationTimeLimit, client.send(creds, email(user), idempotency_key="otl-2"))
    assert err.reset_at == datetime.fromtimestamp(seen, UTC)
    assert err.reset_at_estimated is False
    assert err.reset_at > datetime.now(UTC)
    assert len(portal.requests) == 2


async def test_operation_time_limit_without_history_is_estimated(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """Without an earlier answer to go by, reset_at is an estimate in the future."""
    portal.operation_time_limit(120)
    err = await expect(OperationTimeLimit, client.senders(creds))
    assert err.reset_at_estimated is True
    assert err.retry_after > 0


async def test_codeless_500_on_a_read_is_portal_unavailable(
    portal: FakePortal, make: MakeClient, creds: WebhookCredentials
) -> None:
    """An HTML 500 raises PortalUnavailable once the read's retries are spent."""
    client = make(transport_retries=2)
    portal.fail_next(5)
    err = await expect(PortalUnavailable, client.senders(creds))
    assert (err.http_status, err.portal_code) == (500, None)
    assert len(portal.requests) == 3


async def test_idempotency_conflict(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """The same key with a different body fails as IdempotencyConflict (422)."""
    await client.send(creds, email(user), idempotency_key="conflict")
    err = await expect(
        IdempotencyConflict,
        client.send(creds, email(user, subject="Other"), idempotency_key="conflict"),
    )
    assert err.http_status == 422
    assert err.may_have_reached_portal is True
    assert len(portal.delivered) == 1


# --- retries end to end -----------------------------------------------------------------


def healing_sleep(heal: Callable[[], None]) -> Callable[[float], Awaitable[None]]:
    """A back-off sleep that first lifts a portal fault, so only the first attempt meets it."""

    async def sleep(delay: float) -> None:
        heal()
        await asyncio.sleep(delay)

    return sleep


async def test_timed_out_send_with_key_is_retried_and_delivered_once(
    portal: FakePortal, make: MakeClient, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A keyed send whose answer is late is retried; the portal replays instead of resending."""
    portal.set_latency(0.6, phase="after", methods=[SEND])
    client = make(
        read_timeout=0.3, sleep=healing_sleep(lambda: portal.set_latency(0, phase="after"))
    )
    result = await client.send(creds, email(user), idempotency_key="slow-1")
    assert result.replayed is True
    requests = await settle(portal, 2)
    assert [r.replayed for r in sorted(requests, key=lambda r: r.at)] == [False, True]
    assert requests[0].headers["idempotency-key"] == "slow-1"
    assert len(portal.delivered) == 1


@pytest.mark.parametrize(("limit", "deliveries"), [(0.9, 1), (0.0, 2)])
async def test_a_send_that_may_still_run_is_retried_only_after_it_must_have_finished(
    portal: FakePortal,
    make: MakeClient,
    user: FakeUser,
    creds: WebhookCredentials,
    limit: float,
    deliveries: int,
) -> None:
    """The portal starts a keyed send only after our time-out; retrying at once runs it twice
    (the second row shows it), waiting out the portal's request limit sends it once."""
    portal.set_latency(0.6, phase="before", methods=[SEND])
    client = make(
        read_timeout=0.2,
        portal_request_limit=limit,
        sleep=healing_sleep(lambda: portal.set_latency(0, phase="before")),
    )
    await client.send(creds, email(user), idempotency_key=f"slow-start-{limit}")
    # Without the limit the first request, still waiting at the portal, runs late: wait for
    # that delivery itself rather than for a time it should have happened within.
    await portal.await_delivered(deliveries, timeout=10)
    assert len(portal.delivered) == deliveries


async def test_dropped_send_with_key_is_retried_and_delivered_once(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A keyed send whose connection drops after delivery is retried and replayed."""
    portal.drop_next(1, phase="after", methods=[SEND])
    result = await client.send(creds, email(user), idempotency_key="drop-1")
    assert result.replayed is True
    assert [r.dropped for r in portal.requests] == [True, False]
    assert len(portal.delivered) == 1


async def test_dropped_send_without_key_is_not_retried(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A send without a key whose connection drops raises ConnectionDropped after one try."""
    portal.drop_next(1, phase="after", methods=[SEND])
    err = await expect(ConnectionDropped, client.send(creds, email(user), idempotency_key=None))
    assert err.may_have_reached_portal is True
    assert len(portal.requests) == 1
    assert len(portal.delivered) == 1


async def test_timed_out_send_without_key_is_not_retried(
    portal: FakePortal, make: MakeClient, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A send without a key that times out raises PortalTimeout after one request."""
    portal.set_latency(0.6, phase="after", methods=[SEND])
    client = make(read_timeout=0.3)
    err = await expect(PortalTimeout, client.send(creds, email(user), idempotency_key=None))
    assert err.may_have_reached_portal is True
    assert err.transient is True
    assert len(await settle(portal, 1)) == 1
    assert len(portal.delivered) == 1


async def test_codeless_500_with_key_is_retried(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A keyed send that meets an HTML 500 is retried and delivered once."""
    portal.fail_next(1, methods=[SEND])
    result = await client.send(creds, email(user), idempotency_key="five-1")
    assert result.replayed is False
    assert [r.status for r in portal.requests] == [500, 200]
    assert len(portal.delivered) == 1


async def test_codeless_500_without_key_is_not_retried(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """A send without a key that meets an HTML 500 raises PortalUnavailable after one request."""
    portal.fail_next(1, methods=[SEND])
    err = await expect(PortalUnavailable, client.send(creds, email(user), idempotency_key=None))
    assert err.may_have_reached_portal is True
    assert len(portal.requests) == 1
    assert portal.delivered == []


async def test_rate_limit_is_retried_with_backoff(
    portal: FakePortal, make: MakeClient, user: FakeUser, creds: WebhookCredentials
) -> None:
    """QUERY_LIMIT_EXCEEDED from a tiny bucket is retried after back-off until all succeed."""
    portal.set_rate(10, 2)
    client = make(backoff_base=0.2, backoff_max=2.0, rng=UpperRng())
    results = await asyncio.gather(
        *(client.send(creds, email(user), idempotency_key=f"rl-{i}") for i in range(5))
    )
    assert all(r.success and not r.replayed for r in results)
    assert len(rejected(portal.requests)) >= 3
    assert len(portal.delivered) == 5


async def _limited_burst(client: Bitrix24Client, user: FakeUser) -> float:
    """15 concurrent keyed sends; returns the wall time."""
    creds = creds_of(user)
    started = time.monotonic()
    results = await asyncio.gather(
        *(client.send(creds, email(user), idempotency_key=f"lim-{i}") for i in range(15))
    )
    assert all(r.success for r in results)
    return time.monotonic() - started


async def test_limiter_keeps_a_burst_under_the_portal_limit(
    portal: FakePortal, make: MakeClient, user: FakeUser
) -> None:
    """With the limiter at the portal's rate and burst, a concurrent burst meets no 503."""
    # The limiter's one slot of headroom absorbs 1/rate of arrival jitter: 500 ms at Bitrix24's
    # 2 requests/s, 200 ms here — enough for a loaded CI machine, unlike 50 ms at 20/s.
    portal.set_rate(5, 5)
    client = make(limiter_enabled=True, limiters=PortalLimiters(rate=5, burst=5))
    elapsed = await _limited_burst(client, user)
    assert rejected(portal.requests) == []
    assert len(portal.requests) == 15
    assert elapsed >= (15 - 4) / 5 - 0.01


async def test_one_key_never_overlaps_on_the_wire(
    portal: FakePortal, client: Bitrix24Client, user: FakeUser, creds: WebhookCredentials
) -> None:
    """Two concurrent sends with one key run one after the other: one delivery, one replay."""
    # A slow method: two overlapping requests with one key would both run on the portal.
    portal.set_latency(0.3, phase="before", methods=[SEND])
    results = await asyncio.gather(
        client.send(creds, email(user), idempotency_key="same"),
        client.send(creds, email(user), idempotency_key="same"),
    )
    assert sorted(r.replayed for r in results) == [False, True]
    first, second = sorted(portal.requests, key=lambda r: r.at)
    assert second.at - first.at >= 0.29  # the second left only after the first was answered
    assert len(portal.delivered) == 1


async def test_closed_port_is_unreachable(make: MakeClient, user: FakeUser) -> None:
    """A refused connection raises PortalUnreachable, which cannot have reached the portal."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", user.webhook_url)
    client = make(transport_retries=1)
    err = await expect(
        PortalUnreachable,
        client.send(parse_webhook_url(url, allow_insecure=True), email(user), idempotency_key=None),
    )
    assert err.may_have_reached_portal is False
    assert err.transient is True


async def test_thread_limit_over_the_documented_50_is_refused_before_calling(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials, inbox: dict[str, int]
) -> None:
    """mail.message.thread takes at most 50: 50 is asked for as is, 51 never leaves."""
    before = len(portal.requests)
    await client.thread(creds, inbox["old"], limit=50)
    with pytest.raises(ValueError, match="at most 50"):
        await client.thread(creds, inbox["old"], limit=51)
    assert len(portal.requests) == before + 1


@pytest.mark.parametrize("status", [401, 403])
async def test_invalid_credentials_is_bad_credentials_whatever_the_status(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials, status: int
) -> None:
    """INVALID_CREDENTIALS is 403 in the docs, 401 in b24pysdk's live test: mapped by code."""
    portal.fail_next(1, status=status, error="INVALID_CREDENTIALS")
    err = await expect(BadCredentials, client.senders(creds))
    assert err.http_status == status


async def test_a_portal_without_the_rest3_method_says_so(
    portal: FakePortal, client: Bitrix24Client, creds: WebhookCredentials
) -> None:
    """METHODNOTFOUNDEXCEPTION is MethodNotFound, not a validation failure."""
    portal.fail_next(1, status=400, error="BITRIX_REST_V3_EXCEPTION_METHODNOTFOUNDEXCEPTION")
    await expect(MethodNotFound, client.senders(creds))
