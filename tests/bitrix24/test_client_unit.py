"""Bitrix24Client against httpx.MockTransport: request shapes, retries, locks, logging."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.bitrix24 import (
    BadCredentials,
    Bitrix24Client,
    Bitrix24Error,
    ClientConfig,
    ConnectionDropped,
    MessageFilter,
    NotFound,
    OAuthCredentials,
    OperationTimeLimit,
    OutgoingEmail,
    PortalLimiters,
    PortalMoved,
    PortalTimeout,
    PortalUnavailable,
    PortalUnreachable,
    RateLimited,
    SendFailed,
    UnexpectedResponse,
    WebhookCredentials,
    WebhookURLError,
    install_log_redaction,
)
from bot.bitrix24 import client as client_module
from bot.bitrix24.redaction import RedactingFilter

CODE = "Zq7SECRETcode9x1"
HOST = "portal.bitrix24.com"
BASE = f"https://{HOST}/rest/api/7/{CODE}/"
CREDS = WebhookCredentials(host=HOST, user_id=7, code=SecretStr(CODE))
EMAIL = OutgoingEmail(
    from_="me@corp.example", to=["you@example.com"], subject="Hi", body="<p>Hello</p>"
)

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def ok(
    result: Any, *, headers: dict[str, str] | None = None, time: dict[str, Any] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {
        "result": result,
        "time": time or {"start": 1, "finish": 1.1, "duration": 0.1},
    }
    return httpx.Response(200, json=body, headers=headers)


def flat_error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "error_description": "…"})


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)


class Portal:
    """A scripted MockTransport: answers in order (the last one repeats) and records requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        # A fresh copy, since the last scripted answer may be served many times.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


async def public_resolver(host: str) -> Iterable[str]:
    return ["93.184.216.34"]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Bitrix24Client]]:
    opened: list[httpx.AsyncClient] = []

    def build(
        handler: Handler,
        *,
        config: ClientConfig | None = None,
        follow_redirects: bool = False,
        **kwargs: Any,
    ) -> Bitrix24Client:
        http = httpx.AsyncClient(
            transport=httpx.MockTransport(handler), follow_redirects=follow_redirects
        )
        opened.append(http)
        kwargs.setdefault("resolver", public_resolver)
        kwargs.setdefault("sleep", Sleeps())
        kwargs.setdefault("rng", random.Random(7))
        return Bitrix24Client(
            http=http, config=config or ClientConfig(limiter_enabled=False), **kwargs
        )

    yield build
    for http in opened:
        await http.aclose()


# --- request shapes ---------------------------------------------------------------------


async def test_senders_request_and_result(make: Callable[..., Bitrix24Client]) -> None:
    """senders() posts pagination as JSON to the REST 3.0 webhook path."""
    portal = Portal(
        ok(
            {
                "items": [
                    {"email": "me@corp.example", "name": "Me", "sender": "Me <me@corp.example>"},
                    {"email": "x@corp.example"},
                ]
            }
        )
    )
    client = make(portal)
    senders = await client.senders(CREDS, limit=1)
    request = portal.requests[0]
    assert request.method == "POST"
    assert str(request.url) == BASE + "mail.mailbox.senders"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert "idempotency-key" not in request.headers
    assert portal.body() == {"pagination": {"page": 1, "limit": 1}}
    assert [s.sender for s in senders] == ["Me <me@corp.example>", "x@corp.example"]
    await client.senders(CREDS)
    assert portal.body() == {"pagination": {"page": 1, "limit": 100}}


async def test_mailboxes_request(make: Callable[..., Bitrix24Client]) -> None:
    """mailboxes() sends name/email filters only when given."""
    portal = Portal(
        ok({"items": [{"id": 3, "name": "Work", "email": "w@corp.example", "senderName": "W"}]})
    )
    client = make(portal)
    boxes = await client.mailboxes(CREDS, name="Work", email="corp", limit=10, page=2)
    assert str(portal.requests[0].url).endswith("/mail.mailbox.list")
    assert portal.body() == {
        "name": "Work",
        "email": "corp",
        "pagination": {"page": 2, "limit": 10},
    }
    assert boxes[0].id == 3
    assert boxes[0].sender_name == "W"
    await client.mailboxes(CREDS)
    assert portal.body() == {"pagination": {"page": 1, "limit": 50}}


async def test_list_messages_sends_filters_at_top_level(
    make: Callable[..., Bitrix24Client],
) -> None:
    """Filters are top-level keys, dates ISO 8601 with offset, pagination beside them."""
    item = {
        "id": 15,
        "mailboxId": 1,
        "mailboxEmail": "me@corp.example",
        "subject": "Contract",
        "from": "client@example.com",
        "to": "me@corp.example",
        "cc": "",
        "date": "2026-05-25T10:00:00+03:00",
        "isSeen": True,
        "hasAttachments": False,
        "url": "/mail/message/15/",
        "bindings": [],
        "body": "Letter",
        "somethingNew": 1,
    }
    portal = Portal(ok({"items": [item, {**item, "id": 16, "url": "https://other.example/m/16"}]}))
    client = make(portal)
    filter_ = MessageFilter(
        mailbox_id=1,
        search_query="contract",
        date_from=datetime(2026, 1, 1, 0, 0, 0, 123, tzinfo=UTC),
        date_to=datetime(2026, 1, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=3))),
        is_seen=False,
        has_attachments=True,
        folder="INBOX",
    )
    page = await client.list_messages(CREDS, filter_, limit=2, page=3)
    assert str(portal.requests[0].url).endswith("/mail.message.list")
    assert portal.body() == {
        "mailboxId": 1,
        "searchQuery": "contract",
        "dateFrom": "2026-01-01T00:00:00+00:00",
        "dateTo": "2026-01-31T23:59:59+03:00",
        "isSeen": False,
        "hasAttachments": True,
        "folder": "INBOX",
        "pagination": {"page": 3, "limit": 2},
    }
    assert (page.page, page.limit, page.has_more) == (3, 2, True)
    first = page.items[0]
    assert (first.id, first.mailbox_id, first.from_, first.is_seen) == (
        15,
        1,
        "client@example.com",
        True,
    )
    assert first.date == datetime(2026, 5, 25, 7, 0, tzinfo=UTC)
    assert first.url == f"https://{HOST}/mail/message/15/"
    assert page.items[1].url == "https://other.example/m/16"


async def test_list_messages_without_filter(make: Callable[..., Bitrix24Client]) -> None:
    """No filter means pagination only; a short page has no more."""
    portal = Portal(ok({"items": [{"id": 1}]}))
    page = await make(portal).list_messages(CREDS)
    assert portal.body() == {"pagination": {"page": 1, "limit": 50}}
    assert page.has_more is False
    assert page.items[0].subject == ""


def test_message_filter_needs_aware_dates() -> None:
    """Naive datetimes are refused: the portal needs an offset."""
    with pytest.raises(ValueError, match="timezone-aware"):
        MessageFilter(date_from=datetime(2026, 1, 1))


async def test_get_message_request(make: Callable[..., Bitrix24Client]) -> None:
    """get_message() sends id and select and reads result.item."""
    portal = Portal(ok({"item": {"subject": "S", "cc": None, "date": "2026-05-26 12:17:35"}}))
    message = await make(portal).get_message(CREDS, 15, select=["subject", "cc", "date"])
    assert str(portal.requests[0].url).endswith("/mail.message.get")
    assert portal.body() == {"id": 15, "select": ["subject", "cc", "date"]}
    assert (message.id, message.subject, message.cc) == (15, "S", "")
    assert message.date == datetime(2026, 5, 26, 12, 17, 35)


async def test_thread_request(make: Callable[..., Bitrix24Client]) -> None:
    """thread() sends id and limit; the result is a plain array."""
    portal = Portal(ok([{"id": 15, "subject": "A"}, {"id": 16, "subject": "Re: A"}]))
    messages = await make(portal).thread(CREDS, 15, limit=20)
    assert str(portal.requests[0].url).endswith("/mail.message.thread")
    assert portal.body() == {"id": 15, "limit": 20}
    assert [m.id for m in messages] == [15, 16]


async def test_send_request(make: Callable[..., Bitrix24Client]) -> None:
    """send() posts the e-mail with the idempotency key header; empty cc/bcc are left out."""
    portal = Portal(ok({"success": True, "to": ["you@example.com"]}))
    result = await make(portal).send(CREDS, EMAIL, idempotency_key="outbox-42")
    request = portal.requests[0]
    assert str(request.url) == BASE + "mail.message.send"
    assert request.headers["idempotency-key"] == "outbox-42"
    assert portal.body() == {
        "from": "me@corp.example",
        "to": ["you@example.com"],
        "subject": "Hi",
        "body": "<p>Hello</p>",
    }
    assert (result.success, result.to, result.replayed) == (True, ["you@example.com"], False)


async def test_send_with_cc_bcc_and_replay(make: Callable[..., Bitrix24Client]) -> None:
    """cc/bcc are sent when set; Idempotent-Replayed marks a replay."""
    portal = Portal(
        ok({"success": True, "to": ["a@x.example"]}, headers={"Idempotent-Replayed": "true"})
    )
    email = EMAIL.model_copy(update={"cc": ["c@x.example"], "bcc": ["b@x.example"]})
    result = await make(portal).send(CREDS, email, idempotency_key=None)
    assert portal.body()["cc"] == ["c@x.example"]
    assert portal.body()["bcc"] == ["b@x.example"]
    assert "idempotency-key" not in portal.requests[0].headers
    assert result.replayed is True


async def test_reply_and_forward_requests(make: Callable[..., Bitrix24Client]) -> None:
    """reply() and forward() add the id of the original e-mail."""
    portal = Portal(ok({"success": True, "to": ["you@example.com"]}))
    client = make(portal)
    await client.reply(CREDS, EMAIL, reply_to_message_id=15, idempotency_key="k1")
    assert str(portal.requests[-1].url).endswith("/mail.message.reply")
    assert portal.body()["replyToMessageId"] == 15
    assert "forwardMessageId" not in portal.body()
    await client.forward(CREDS, EMAIL, forward_message_id=16, idempotency_key="k2")
    assert str(portal.requests[-1].url).endswith("/mail.message.forward")
    assert portal.body()["forwardMessageId"] == 16
    assert "replyToMessageId" not in portal.body()


async def test_oauth_credentials_send_the_token_in_the_body(
    make: Callable[..., Bitrix24Client],
) -> None:
    """OAuth calls go to /rest/api/{method} with auth in the JSON body."""
    portal = Portal(ok({"items": []}))
    creds = OAuthCredentials(host=HOST, access_token=SecretStr("tok3nVALUE"))
    await make(portal).senders(creds)
    assert str(portal.requests[0].url) == f"https://{HOST}/rest/api/mail.mailbox.senders"
    assert portal.body() == {"pagination": {"page": 1, "limit": 100}, "auth": "tok3nVALUE"}


async def test_every_request_carries_explicit_timeouts(make: Callable[..., Bitrix24Client]) -> None:
    """Connect/read/write/pool timeouts come from the config; `timeout=` overrides read."""
    portal = Portal(ok({"items": []}))
    config = ClientConfig(
        limiter_enabled=False, connect_timeout=1.5, read_timeout=20, write_timeout=4, pool_timeout=3
    )
    client = make(portal, config=config)
    await client.senders(CREDS)
    assert portal.requests[0].extensions["timeout"] == {
        "connect": 1.5,
        "read": 20,
        "write": 4,
        "pool": 3,
    }
    await client.senders(CREDS, timeout=2.5)
    assert portal.requests[1].extensions["timeout"]["read"] == 2.5


@pytest.mark.parametrize(
    "key", ["", " lead", "trail ", "x" * 256, "ключ", "tab\there", "new\nline"]
)
async def test_bad_idempotency_keys_are_refused_locally(
    make: Callable[..., Bitrix24Client], key: str
) -> None:
    """A key that is not 1-255 printable ASCII never reaches the portal."""
    portal = Portal(ok({"success": True, "to": []}))
    with pytest.raises(ValueError, match="idempotency_key"):
        await make(portal).send(CREDS, EMAIL, idempotency_key=key)
    assert portal.requests == []


async def test_good_idempotency_keys(make: Callable[..., Bitrix24Client]) -> None:
    """UUIDs, inner spaces and 255 characters are fine."""
    portal = Portal(ok({"success": True, "to": []}))
    client = make(portal)
    for key in ("9f1c1a7e-5f1b-4a1e-9a2c-2f5f2b6c7d80", "a b", "~" * 255, "x"):
        await client.send(CREDS, EMAIL, idempotency_key=key)
    assert [r.headers["idempotency-key"] for r in portal.requests][-1] == "x"


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"limit": 0}, "limit"), ({"page": 0}, "page"), ({"limit": True}, "limit")]
)
async def test_bad_pagination_is_refused_locally(
    make: Callable[..., Bitrix24Client], kwargs: dict[str, Any], name: str
) -> None:
    """Non-positive page or limit never reach the portal."""
    portal = Portal(ok({"items": []}))
    with pytest.raises(ValueError, match=name):
        await make(portal).senders(CREDS, **kwargs)
    assert portal.requests == []


async def test_call_reaches_any_method(make: Callable[..., Bitrix24Client]) -> None:
    """call() posts params to any REST 3.0 method and returns `result`."""
    portal = Portal(ok({"scopes": ["mail"]}))
    client = make(portal)
    assert await client.call(CREDS, "rest.scope.list", read_only=True) == {"scopes": ["mail"]}
    assert str(portal.requests[0].url) == BASE + "rest.scope.list"
    assert portal.body() == {}
    for bad in ("../../profile", "mail.message.send?x=1", "", "a/b"):
        with pytest.raises(ValueError, match="method"):
            await client.call(CREDS, bad)
    assert len(portal.requests) == 1


# --- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>maintenance</html>"),
        httpx.Response(200, json={"time": {}}),
        httpx.Response(200, json={"result": {"items": "nope"}}),
        httpx.Response(200, json={"result": {"items": [{"no": "email"}]}}),
        httpx.Response(200, json=[1, 2]),
    ],
)
async def test_malformed_success_is_unexpected(
    make: Callable[..., Bitrix24Client], response: httpx.Response
) -> None:
    """A 200 that is not the documented envelope raises UnexpectedResponse."""
    with pytest.raises(UnexpectedResponse) as info:
        await make(Portal(response)).senders(CREDS)
    assert info.value.may_have_reached_portal is True
    assert CODE not in str(info.value)


async def test_send_without_success_flag_is_unexpected(make: Callable[..., Bitrix24Client]) -> None:
    """A send answer without `success` is not taken as delivered."""
    with pytest.raises(UnexpectedResponse):
        await make(Portal(ok({"to": []}))).send(CREDS, EMAIL, idempotency_key="k")


async def test_send_failure_is_mapped(make: Callable[..., Bitrix24Client]) -> None:
    """A send refused in validation[] raises SendFailed at once."""
    body = {
        "error": {
            "code": "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION",
            "message": "Ошибка",
            "validation": [{"field": "from", "message": "MESSAGE_SEND_FAILED"}],
        }
    }
    portal = Portal(httpx.Response(400, json=body))
    with pytest.raises(SendFailed) as info:
        await make(portal).send(CREDS, EMAIL, idempotency_key="k")
    assert len(portal.requests) == 1
    assert info.value.host == HOST
    assert info.value.method == "mail.message.send"


async def test_not_found_is_mapped(make: Callable[..., Bitrix24Client]) -> None:
    """An unknown message id raises NotFound."""
    body = {
        "error": {"code": "BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION", "message": "nope"}
    }
    with pytest.raises(NotFound):
        await make(Portal(httpx.Response(400, json=body))).get_message(CREDS, 99)


@pytest.mark.parametrize("follow", [False, True])
async def test_redirect_is_never_followed(
    make: Callable[..., Bitrix24Client], follow: bool
) -> None:
    """A 302 raises PortalMoved with the new host; the Location is not requested."""
    location = f"https://new-name.bitrix24.com/rest/api/7/{CODE}/mail.message.send"
    portal = Portal(
        httpx.Response(302, headers={"Location": location}), ok({"success": True, "to": []})
    )
    with pytest.raises(PortalMoved) as info:
        await make(portal, follow_redirects=follow).send(CREDS, EMAIL, idempotency_key="k")
    assert len(portal.requests) == 1
    assert info.value.new_host == "new-name.bitrix24.com"
    assert CODE not in str(info.value)


async def test_own_http_client_never_follows_redirects() -> None:
    """The client it builds itself has redirects off, and is closed with it."""
    async with Bitrix24Client() as client:
        http = client._transport.http
        assert http.follow_redirects is False
    assert http.is_closed


async def test_borrowed_http_client_stays_open() -> None:
    """A passed-in httpx client belongs to the caller."""
    async with httpx.AsyncClient() as http:
        async with Bitrix24Client(http=http):
            pass
        assert not http.is_closed


# --- retries ----------------------------------------------------------------------------


async def test_rate_limit_is_retried_with_backoff(make: Callable[..., Bitrix24Client]) -> None:
    """QUERY_LIMIT_EXCEEDED is retried, even for a send without a key, then succeeds."""
    sleeps = Sleeps()
    portal = Portal(
        flat_error(503, "QUERY_LIMIT_EXCEEDED"),
        flat_error(503, "QUERY_LIMIT_EXCEEDED"),
        ok({"success": True, "to": []}),
    )
    config = ClientConfig(limiter_enabled=False, backoff_base=0.5, backoff_max=10)
    result = await make(portal, config=config, sleep=sleeps).send(
        CREDS, EMAIL, idempotency_key=None
    )
    assert result.success
    assert len(portal.requests) == 3
    assert len(sleeps.calls) == 2
    assert 0 <= sleeps.calls[0] <= 0.5
    assert 0 <= sleeps.calls[1] <= 1.0


async def test_rate_limit_gives_up_after_the_budget(make: Callable[..., Bitrix24Client]) -> None:
    """After rate_limit_retries retries RateLimited is raised."""
    sleeps = Sleeps()
    portal = Portal(flat_error(503, "QUERY_LIMIT_EXCEEDED"))
    config = ClientConfig(
        limiter_enabled=False, rate_limit_retries=3, backoff_base=1, backoff_max=2
    )
    with pytest.raises(RateLimited) as info:
        await make(portal, config=config, sleep=sleeps).senders(CREDS)
    assert len(portal.requests) == 4
    assert all(0 <= s <= 2 for s in sleeps.calls)
    assert info.value.transient is True
    assert info.value.may_have_reached_portal is False


async def test_rate_limit_fills_the_local_bucket(make: Callable[..., Bitrix24Client]) -> None:
    """After QUERY_LIMIT_EXCEEDED the next request waits for the bucket."""
    limiter_sleeps = Sleeps()
    now = [0.0]
    limiters = PortalLimiters(rate=2.0, burst=50, clock=lambda: now[0], sleep=limiter_sleeps)
    portal = Portal(flat_error(503, "QUERY_LIMIT_EXCEEDED"), ok({"items": []}))
    client = make(portal, config=ClientConfig(), limiters=limiters)
    await client.senders(CREDS)
    assert limiters.get(HOST).level == pytest.approx(51)
    assert limiter_sleeps.calls == [pytest.approx(1.0)]  # full bucket plus the headroom slot


async def test_limiter_paces_requests(make: Callable[..., Bitrix24Client]) -> None:
    """Requests beyond the burst wait for the bucket to drain."""
    limiter_sleeps = Sleeps()
    limiters = PortalLimiters(rate=2.0, burst=3, clock=lambda: 0.0, sleep=limiter_sleeps)
    portal = Portal(ok({"items": []}))
    client = make(portal, config=ClientConfig(), limiters=limiters)
    for _ in range(4):
        await client.senders(CREDS)
    assert limiter_sleeps.calls == [pytest.approx(0.5), pytest.approx(1.0)]
    assert len(portal.requests) == 4


async def test_read_timeout_is_retried_for_reads(make: Callable[..., Bitrix24Client]) -> None:
    """Reads have no side effect, so a timed-out read is retried."""
    portal = Portal(httpx.ReadTimeout("slow"), ok({"items": []}))
    assert await make(portal).senders(CREDS) == []
    assert len(portal.requests) == 2


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.ReadTimeout("slow"), PortalTimeout),
        (httpx.WriteTimeout("slow"), PortalTimeout),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            ConnectionDropped,
        ),
        (httpx.ReadError("reset by peer"), ConnectionDropped),
        (httpx.Response(502, content=b"<html>Bad Gateway</html>"), PortalUnavailable),
        (httpx.Response(500, json={"error": "INTERNAL_SERVER_ERROR"}), PortalUnavailable),
    ],
)
async def test_ambiguous_send_without_key_is_never_retried(
    make: Callable[..., Bitrix24Client], failure: Any, error: type[Bitrix24Error]
) -> None:
    """A send that may have run is not repeated unless a key dedupes it: exactly one request."""
    sleeps = Sleeps()
    portal = Portal(failure, ok({"success": True, "to": []}))
    with pytest.raises(error) as info:
        await make(portal, sleep=sleeps).send(CREDS, EMAIL, idempotency_key=None)
    assert len(portal.requests) == 1
    assert sleeps.calls == []
    assert info.value.may_have_reached_portal is True
    assert info.value.transient is True
    assert CODE not in str(info.value)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.Response(502, content=b"<html>Bad Gateway</html>"),
        httpx.Response(503, content=b""),
    ],
)
async def test_ambiguous_send_with_key_is_retried(
    make: Callable[..., Bitrix24Client], failure: Any
) -> None:
    """With an idempotency key the same request is repeated, key and body unchanged."""
    portal = Portal(
        failure,
        ok({"success": True, "to": ["you@example.com"]}, headers={"Idempotent-Replayed": "true"}),
    )
    result = await make(portal).send(CREDS, EMAIL, idempotency_key="outbox-1")
    assert len(portal.requests) == 2
    assert result.replayed is True
    first, second = portal.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "outbox-1"
    assert first.content == second.content


async def test_transport_retries_are_bounded(make: Callable[..., Bitrix24Client]) -> None:
    """After transport_retries retries the last error is raised."""
    portal = Portal(httpx.ReadTimeout("slow"))
    config = ClientConfig(limiter_enabled=False, transport_retries=2)
    with pytest.raises(PortalTimeout):
        await make(portal, config=config).send(CREDS, EMAIL, idempotency_key="k")
    assert len(portal.requests) == 3


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.ConnectError("refused"), PortalUnreachable),
        (httpx.ConnectTimeout("syn lost"), PortalTimeout),
        (httpx.PoolTimeout("busy"), PortalTimeout),
    ],
)
async def test_connect_failures_are_retried_for_any_call(
    make: Callable[..., Bitrix24Client], failure: Exception, error: type[Bitrix24Error]
) -> None:
    """A request that never left may be repeated even for a send without a key."""
    portal = Portal(failure, ok({"success": True, "to": []}))
    assert (await make(portal).send(CREDS, EMAIL, idempotency_key=None)).success
    assert len(portal.requests) == 2
    with pytest.raises(error) as info:
        await make(Portal(failure)).send(CREDS, EMAIL, idempotency_key=None)
    assert info.value.may_have_reached_portal is False


async def test_operation_time_limit_raises_at_once_with_reset(
    make: Callable[..., Bitrix24Client],
) -> None:
    """OPERATION_TIME_LIMIT is not retried; reset_at comes from the last good answer."""
    reset = int((datetime.now(UTC) + timedelta(minutes=8)).timestamp())
    sleeps = Sleeps()
    portal = Portal(
        ok({"success": True, "to": []}, time={"operating_reset_at": reset, "operating": 470.5}),
        flat_error(429, "OPERATION_TIME_LIMIT"),
    )
    client = make(portal, sleep=sleeps)
    await client.send(CREDS, EMAIL, idempotency_key="a")
    with pytest.raises(OperationTimeLimit) as info:
        await client.send(CREDS, EMAIL, idempotency_key="b")
    assert len(portal.requests) == 2
    assert sleeps.calls == []
    assert info.value.reset_at == datetime.fromtimestamp(reset, UTC)
    assert info.value.reset_at_estimated is False


async def test_operation_time_limit_reset_is_not_borrowed_from_another_webhook(
    make: Callable[..., Bitrix24Client],
) -> None:
    """The portal keeps the time budget per webhook: another webhook's reset_at is not reused."""
    reset = int((datetime.now(UTC) + timedelta(minutes=8)).timestamp())
    other_user = WebhookCredentials(host=HOST, user_id=8, code=SecretStr("otherwebhookcode1"))
    portal = Portal(
        ok({"success": True, "to": []}, time={"operating_reset_at": reset}),
        flat_error(429, "OPERATION_TIME_LIMIT"),
    )
    client = make(portal)
    await client.send(CREDS, EMAIL, idempotency_key="a")
    with pytest.raises(OperationTimeLimit) as info:
        await client.send(other_user, EMAIL, idempotency_key="b")
    assert info.value.reset_at_estimated is True


@pytest.mark.parametrize(
    ("method", "maximum"), [("senders", 100), ("mailboxes", 100), ("list_messages", 200)]
)
async def test_limits_over_the_methods_maximum_are_refused(
    make: Callable[..., Bitrix24Client], method: str, maximum: int
) -> None:
    """The portal would cap a larger limit and make has_more lie, so it is refused locally."""
    portal = Portal(ok({"items": []}))
    client = make(portal)
    with pytest.raises(ValueError, match=f"at most {maximum}"):
        await getattr(client, method)(CREDS, limit=maximum + 1)
    assert portal.requests == []


async def test_operation_time_limit_without_history_estimates(
    make: Callable[..., Bitrix24Client],
) -> None:
    """Without a previous answer for that method, reset_at is estimated a minute ahead."""
    other = int((datetime.now(UTC) + timedelta(minutes=8)).timestamp())
    portal = Portal(
        ok({"items": []}, time={"operating_reset_at": other}),
        flat_error(429, "OPERATION_TIME_LIMIT"),
    )
    client = make(portal)
    await client.senders(CREDS)
    before = datetime.now(UTC)
    with pytest.raises(OperationTimeLimit) as info:
        await client.send(CREDS, EMAIL, idempotency_key="b")
    assert info.value.reset_at_estimated is True
    assert (
        before + timedelta(seconds=59)
        <= info.value.reset_at
        <= datetime.now(UTC) + timedelta(seconds=61)
    )


async def test_other_errors_raise_at_once(make: Callable[..., Bitrix24Client]) -> None:
    """Definite refusals are not retried."""
    sleeps = Sleeps()
    portal = Portal(flat_error(401, "NO_AUTH_FOUND"))
    with pytest.raises(BadCredentials) as info:
        await make(portal, sleep=sleeps).senders(CREDS)
    assert len(portal.requests) == 1
    assert sleeps.calls == []
    assert CODE not in str(info.value)


# --- idempotency locks ------------------------------------------------------------------


def overlap_tracker() -> tuple[dict[str, int], Handler]:
    state = {"now": 0, "max": 0, "count": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["count"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.02)
        state["now"] -= 1
        return ok({"success": True, "to": []})

    return state, handler


async def test_one_key_never_in_flight_twice(make: Callable[..., Bitrix24Client]) -> None:
    """Two concurrent sends with one key do not overlap on the wire, even across clients."""
    state, handler = overlap_tracker()
    first, second = make(handler), make(handler)
    await asyncio.gather(
        first.send(CREDS, EMAIL, idempotency_key="same"),
        second.send(CREDS, EMAIL, idempotency_key="same"),
        first.send(CREDS, EMAIL, idempotency_key="same"),
    )
    assert state["count"] == 3
    assert state["max"] == 1


async def test_different_keys_run_concurrently(make: Callable[..., Bitrix24Client]) -> None:
    """The lock is per key, not global."""
    state, handler = overlap_tracker()
    client = make(handler)
    await asyncio.gather(*(client.send(CREDS, EMAIL, idempotency_key=f"k{i}") for i in range(3)))
    assert state["max"] == 3


async def test_key_lock_held_across_retries(make: Callable[..., Bitrix24Client]) -> None:
    """A retry's back-off does not let another attempt with the same key slip in."""
    log: list[str] = []
    answers = iter([httpx.ReadTimeout("slow"), None, None])

    async def handler(request: httpx.Request) -> httpx.Response:
        log.append("start")
        await asyncio.sleep(0.01)
        log.append("end")
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return ok({"success": True, "to": []})

    async def real_pause(delay: float) -> None:
        await asyncio.sleep(0.02)

    client = make(handler, sleep=real_pause)
    await asyncio.gather(
        client.send(CREDS, EMAIL, idempotency_key="same"),
        client.send(CREDS, EMAIL, idempotency_key="same"),
    )
    assert log == ["start", "end"] * 3


async def test_key_locks_do_not_leak(make: Callable[..., Bitrix24Client]) -> None:
    """Locks of finished keys are dropped."""
    client = make(Portal(ok({"success": True, "to": []})))
    await client.send(CREDS, EMAIL, idempotency_key="leak-check")
    gc.collect()
    assert "leak-check" not in client_module._KEY_LOCKS


# --- host check -------------------------------------------------------------------------


async def test_private_resolution_blocks_the_request(make: Callable[..., Bitrix24Client]) -> None:
    """A host resolving to a private address is refused before any connection."""

    async def private(host: str) -> Iterable[str]:
        return ["10.0.0.8"]

    portal = Portal(ok({"items": []}))
    with pytest.raises(WebhookURLError) as info:
        await make(portal, resolver=private).senders(CREDS)
    assert info.value.code == "webhook_forbidden_host"
    assert portal.requests == []


async def test_host_verdict_is_cached_for_the_ttl(make: Callable[..., Bitrix24Client]) -> None:
    """DNS is asked once per host_check_ttl, for good and bad verdicts alike."""
    asked: list[str] = []
    answer = ["93.184.216.34"]
    now = [0.0]

    async def resolve(host: str) -> Iterable[str]:
        asked.append(host)
        return list(answer)

    portal = Portal(ok({"items": []}))
    config = ClientConfig(limiter_enabled=False, host_check_ttl=60)
    client = make(portal, config=config, resolver=resolve, clock=lambda: now[0])
    await client.senders(CREDS)
    await client.senders(CREDS)
    assert asked == [HOST]
    answer[:] = ["127.0.0.1"]
    now[0] = 61
    with pytest.raises(WebhookURLError):
        await client.senders(CREDS)
    with pytest.raises(WebhookURLError):
        await client.senders(CREDS)
    assert asked == [HOST, HOST]
    assert len(portal.requests) == 2


async def test_insecure_credentials_skip_the_host_check(
    make: Callable[..., Bitrix24Client],
) -> None:
    """allow_insecure credentials (a local fake portal) are not resolved."""

    async def never(host: str) -> Iterable[str]:
        raise AssertionError("resolver must not be called")

    creds = WebhookCredentials(
        scheme="http", host="127.0.0.1:8080", user_id=1, code=SecretStr(CODE), allow_insecure=True
    )
    portal = Portal(ok({"items": []}))
    await make(portal, resolver=never).senders(creds)
    assert (
        str(portal.requests[0].url)
        == f"http://127.0.0.1:8080/rest/api/1/{CODE}/mail.mailbox.senders"
    )


async def test_unresolvable_host_is_unreachable(make: Callable[..., Bitrix24Client]) -> None:
    """A DNS failure raises PortalUnreachable after the connect retries."""
    asked: list[str] = []

    async def fail(host: str) -> Iterable[str]:
        asked.append(host)
        raise OSError("no such host")

    portal = Portal(ok({"items": []}))
    with pytest.raises(PortalUnreachable) as info:
        await make(portal, resolver=fail).send(CREDS, EMAIL, idempotency_key=None)
    assert portal.requests == []
    assert len(asked) == 3
    assert info.value.may_have_reached_portal is False


# --- logging ----------------------------------------------------------------------------


async def test_httpx_request_log_is_redacted(
    make: Callable[..., Bitrix24Client], caplog: pytest.LogCaptureFixture
) -> None:
    """httpx's INFO line shows /rest/api/<id>/***/, never the code; our DEBUG lines neither."""
    caplog.set_level(logging.DEBUG)
    client = make(Portal(flat_error(503, "QUERY_LIMIT_EXCEEDED"), ok({"items": []})))
    await client.senders(CREDS)
    assert "/rest/api/7/***/mail.mailbox.senders" in caplog.text
    assert any(r.name == "bot.bitrix24" and r.levelno == logging.DEBUG for r in caplog.records)
    assert CODE not in caplog.text
    assert all(CODE not in r.getMessage() for r in caplog.records)


def test_redaction_filter_rewrites_records() -> None:
    """The filter masks both URL forms inside formatted records."""
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "HTTP Request: %s %s",
        ("POST", f"https://h/rest/3/{CODE}/profile.json"),
        None,
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "HTTP Request: POST https://h/rest/3/***/profile.json"
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "plain %d", (5,), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "plain 5"


def test_install_log_redaction_is_idempotent() -> None:
    """Installing twice leaves one filter on the httpx logger."""
    install_log_redaction()
    install_log_redaction()
    filters = [f for f in logging.getLogger("httpx").filters if isinstance(f, RedactingFilter)]
    assert len(filters) == 1


def test_client_config_validates() -> None:
    """Nonsense settings are refused when the config is built."""
    with pytest.raises(ValueError, match="read_timeout"):
        ClientConfig(read_timeout=0)
    with pytest.raises(ValueError, match="burst"):
        ClientConfig(burst=0)
    with pytest.raises(ValueError, match="transport_retries"):
        ClientConfig(transport_retries=-1)
    config = ClientConfig()
    assert (config.rate, config.burst, config.host_check_ttl, config.rate_limit_retries) == (
        2.0,
        50,
        60.0,
        5,
    )
