"""Tests of the fake Slack Web API and the signed request builders, driven by the real
slack_sdk clients (and Bolt, for the payload shapes)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes import slack_requests as sr
from tests.fakes.slack_api import FakeSlack

SECRET = "test-signing-secret"

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "compose",
    "title": {"type": "plain_text", "text": "New e-mail"},
    "submit": {"type": "plain_text", "text": "Send"},
    "private_metadata": '{"channel_id": "C0001"}',
    "blocks": [
        {
            "type": "input",
            "block_id": "to",
            "label": {"type": "plain_text", "text": "To"},
            "element": {"type": "email_text_input", "action_id": "to"},
        }
    ],
}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.api_url)


@pytest.fixture
def sync_client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.token, base_url=fake.api_url)


def _post_raw(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})  # noqa: S310
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())


# ---------------------------------------------------------------------- basics


async def test_auth_test_and_team_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert fake.api_url == f"http://127.0.0.1:{fake.port}/api/"
    auth = await client.auth_test()
    assert auth["team_id"] == "T0001"
    assert auth["user_id"] == "UBOT"
    assert auth["bot_id"] == "B0001"
    assert auth["is_enterprise_install"] is False
    assert auth["url"] == "https://acme.slack.com/"
    team = await client.team_info()
    assert team["team"]["id"] == "T0001"
    assert team["team"]["domain"] == "acme"
    call = fake.wait_for("auth.test")
    assert call.token == fake.token
    assert call.ok


def test_sync_client_and_form_token(fake: FakeSlack, sync_client: WebClient) -> None:
    assert sync_client.auth_test()["user_id"] == "UBOT"
    # token as a form field instead of the Authorization header
    body = f"token={fake.token}".encode()
    answer = _post_raw(fake.api_url + "auth.test", body, "application/x-www-form-urlencoded")
    assert answer["ok"] is True
    assert fake.calls_to("auth.test")[-1].token == fake.token
    assert "token" not in fake.calls_to("auth.test")[-1].args


async def test_token_checks(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as no_token:
        await AsyncWebClient(base_url=fake.api_url).auth_test()
    assert no_token.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as wrong:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"

    fake.add_token("xoxb-other", team_id="T0002", bot_user_id="UBOT2", bot_id="B0002")
    other = await AsyncWebClient(token="xoxb-other", base_url=fake.api_url).auth_test()
    assert (other["team_id"], other["user_id"], other["bot_id"]) == ("T0002", "UBOT2", "B0002")

    fake.revoke_token("xoxb-other")
    with pytest.raises(SlackApiError) as revoked:
        await AsyncWebClient(token="xoxb-other", base_url=fake.api_url).auth_test()
    assert revoked.value.response["error"] == "token_revoked"


async def test_unknown_method(fake: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.nonsense")
    assert err.value.response["error"] == "unknown_method"
    assert fake.calls_to("chat.nonsense")[0].ok is False


# ---------------------------------------------------------------------- chat


async def test_post_message_store_thread_metadata(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*sent*"}}]
    first = await client.chat_postMessage(channel="C0001", text="hello")
    reply = await client.chat_postMessage(
        channel="C0001",
        text="sent",
        blocks=blocks,
        thread_ts=first["ts"],
        metadata={"event_type": "email_sent", "event_payload": {"id": 7}},
    )
    assert abs(float(first["ts"]) - time.time()) < 60  # a ts is the time of posting
    assert float(reply["ts"]) > float(first["ts"])
    assert reply["channel"] == "C0001"
    assert reply["message"]["thread_ts"] == first["ts"]
    stored = fake.messages[("C0001", reply["ts"])]
    assert stored["text"] == "sent"
    assert stored["blocks"] == blocks
    assert stored["thread_ts"] == first["ts"]
    assert stored["metadata"]["event_payload"] == {"id": 7}
    assert stored["user"] == "UBOT"
    assert [m["ts"] for m in fake.messages_in("C0001", thread_ts=first["ts"])] == [
        first["ts"],
        reply["ts"],
    ]


async def test_post_message_form_encoded_blocks_are_decoded(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "x"}}]
    await client.api_call(
        "chat.postMessage", data={"channel": "C0001", "text": "t", "blocks": json.dumps(blocks)}
    )
    call = fake.wait_for("chat.postMessage")
    assert call.args["blocks"] == blocks
    assert call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_post_message_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C0OUT", member=False)
    fake.add_channel("C0OLD", archived=True)
    cases = [
        ({"channel": "C0OUT", "text": "x"}, "not_in_channel"),
        ({"channel": "C0OLD", "text": "x"}, "is_archived"),
        ({"channel": "nonsense", "text": "x"}, "channel_not_found"),
        ({"channel": "C0001"}, "no_text"),
        ({"channel": "C0001", "text": "x" * 40_001}, "msg_too_long"),
        (
            {"channel": "C0001", "text": "x", "metadata": {"event_type": "e"}},
            "invalid_metadata_format",
        ),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(**kwargs)
        assert err.value.response["error"] == error, kwargs
    too_many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0001", text="x", blocks=too_many)
    assert err.value.response["error"] == "invalid_blocks"
    assert err.value.response["response_metadata"]["messages"]
    assert fake.messages == {}


async def test_strict_channels_and_dm(client: AsyncWebClient) -> None:
    with FakeSlack(strict_channels=True) as strict:
        c = AsyncWebClient(token=strict.token, base_url=strict.api_url)
        with pytest.raises(SlackApiError) as err:
            await c.chat_postMessage(channel="C0001", text="x")
        assert err.value.response["error"] == "channel_not_found"
        strict.add_user("U0001")
        dm = await c.conversations_open(users="U0001")
        assert dm["channel"]["id"].startswith("D")
        again = await c.conversations_open(users=["U0001"])
        assert again["channel"]["id"] == dm["channel"]["id"]
        assert again["already_open"] is True
        posted = await c.chat_postMessage(channel=dm["channel"]["id"], text="hi")
        assert (dm["channel"]["id"], posted["ts"]) in strict.messages
        # a user id as channel posts into the app DM
        via_user = await c.chat_postMessage(channel="U0001", text="hi")
        assert via_user["channel"] == dm["channel"]["id"]
        with pytest.raises(SlackApiError) as missing:
            await c.conversations_open(users="U9999")
        assert missing.value.response["error"] == "user_not_found"


async def test_update_history_and_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0001", text="Sending…")
    ts = posted["ts"]
    updated = await client.chat_update(channel="C0001", ts=ts, text="Sent ✅")
    assert (updated["channel"], updated["ts"], updated["text"]) == ("C0001", ts, "Sent ✅")
    history = fake.message_history("C0001", ts)
    assert [m["text"] for m in history] == ["Sending…", "Sent ✅"]
    assert fake.messages[("C0001", ts)]["text"] == "Sent ✅"
    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel="C0001", ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"
    theirs = fake.add_message("C0001", text="from a human", user="U0001")
    with pytest.raises(SlackApiError) as not_ours:
        await client.chat_update(channel="C0001", ts=theirs["ts"], text="x")
    assert not_ours.value.response["error"] == "cant_update_message"
    await client.chat_delete(channel="C0001", ts=ts)
    assert ("C0001", ts) not in fake.messages


async def test_ephemeral_and_permalink(fake: FakeSlack, client: AsyncWebClient) -> None:
    eph = await client.chat_postEphemeral(channel="C0001", user="U0001", text="only you")
    assert eph["message_ts"]
    assert fake.ephemerals[0]["user"] == "U0001"
    parent = await client.chat_postMessage(channel="C0001", text="p")
    child = await client.chat_postMessage(channel="C0001", text="c", thread_ts=parent["ts"])
    link = await client.chat_getPermalink(channel="C0001", message_ts=child["ts"])
    digits = child["ts"].replace(".", "")
    assert link["permalink"] == (
        f"https://acme.slack.com/archives/C0001/p{digits}?thread_ts={parent['ts']}&cid=C0001"
    )


async def test_unique_ts_under_concurrency(fake: FakeSlack, client: AsyncWebClient) -> None:
    results = await asyncio.gather(
        *(client.chat_postMessage(channel="C0001", text=str(i)) for i in range(25))
    )
    assert len({r["ts"] for r in results}) == 25
    assert len(fake.calls_to("chat.postMessage")) == 25


# ---------------------------------------------------------------------- users / conversations


async def test_users_and_conversations_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user(
        "U0001", name="alice", real_name="Alice Doe", email="alice@acme.test", locale="de-DE"
    )
    info = await client.users_info(user="U0001", include_locale=True)
    assert info["user"]["profile"]["email"] == "alice@acme.test"
    assert info["user"]["real_name"] == "Alice Doe"
    assert info["user"]["locale"] == "de-DE"
    assert info["user"]["tz"] == "Europe/Berlin"
    plain = await client.users_info(user="U0001")
    assert "locale" not in plain["user"]
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"
    fake.add_channel("G0PRIV", is_private=True, name="secret")
    conv = await client.conversations_info(channel="G0PRIV")
    assert conv["channel"]["is_private"] is True
    assert conv["channel"]["name"] == "secret"
    assert conv["channel"]["is_member"] is True


# ---------------------------------------------------------------------- views


async def test_views_open_update_push_publish(fake: FakeSlack, client: AsyncWebClient) -> None:
    opened = await client.views_open(trigger_id="111.222.abc", view=MODAL)
    view = opened["view"]
    assert view["id"].startswith("V")
    assert view["callback_id"] == "compose"
    assert view["state"] == {"values": {}}
    assert fake.views[view["id"]]["private_metadata"] == MODAL["private_metadata"]

    loading = {**MODAL, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "…"}}]}
    updated = await client.views_update(view_id=view["id"], hash=view["hash"], view=loading)
    assert updated["view"]["id"] == view["id"]
    assert updated["view"]["hash"] != view["hash"]
    with pytest.raises(SlackApiError) as stale:
        await client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as missing:
        await client.views_update(view_id="VNOPE", view=MODAL)
    assert missing.value.response["error"] == "not_found"

    pushed = await client.views_push(trigger_id="111.222.def", view={**MODAL, "callback_id": "p"})
    assert fake.views[pushed["view"]["id"]]["callback_id"] == "p"

    home = {"type": "home", "blocks": [{"type": "divider"}]}
    published = await client.views_publish(user_id="U0001", view=home)
    assert fake.home_view("U0001")["id"] == published["view"]["id"]


async def test_views_trigger_and_validation_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    async def error_of(**kwargs: Any) -> str:
        with pytest.raises(SlackApiError) as err:
            await client.views_open(**kwargs)
        return str(err.value.response["error"])

    assert await error_of(trigger_id="expired.1", view=MODAL) == "expired_trigger_id"
    await client.views_open(trigger_id="once", view=MODAL)
    assert await error_of(trigger_id="once", view=MODAL) == "exchanged_trigger_id"
    long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    assert await error_of(trigger_id="t2", view=long_title) == "invalid_arguments"
    big_meta = {**MODAL, "private_metadata": "x" * 3001}
    assert await error_of(trigger_id="t3", view=big_meta) == "invalid_arguments"
    no_submit = {k: v for k, v in MODAL.items() if k != "submit"}
    assert await error_of(trigger_id="t4", view=no_submit) == "invalid_arguments"
    call = fake.calls_to("views.open")[-1]
    assert "submit" in call.response["response_metadata"]["messages"][0]
    await client.views_open(trigger_id="t5", view={**MODAL, "external_id": "draft-1"})
    assert await error_of(trigger_id="t6", view={**MODAL, "external_id": "draft-1"}) == (
        "duplicate_external_id"
    )
    by_external = await client.views_update(external_id="draft-1", view=MODAL)
    assert by_external["view"]["external_id"] == "draft-1"


# ---------------------------------------------------------------------- response URLs


async def test_response_url_recording(fake: FakeSlack) -> None:
    url = fake.response_url("cmd")
    assert url.startswith(f"{fake.base_url}/response/cmd/")
    hook = AsyncWebhookClient(url)
    resp = await hook.send(text="Sent!", response_type="ephemeral")
    assert resp.status_code == 200
    posted = fake.wait_for_response(lambda r: r.name == "cmd")
    assert posted.json == {"text": "Sent!", "response_type": "ephemeral"}
    for _ in range(4):
        await hook.send(text="again")
    assert (await hook.send(text="sixth")).status_code == 404
    assert fake.responses_to("cmd")[-1].status == 404
    other = fake.response_url()
    fake.expire_response_url(other)
    assert (await AsyncWebhookClient(other).send(text="late")).status_code == 404


# ---------------------------------------------------------------------- faults


async def test_rate_limit_retried_by_async_handler(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=0)
    plain = AsyncWebClient(token=fake.token, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as err:
        await plain.chat_postMessage(channel="C0001", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "0"
    assert err.value.response["error"] == "ratelimited"

    fake.rate_limit("chat.postMessage", times=1, retry_after=0)
    retrying = AsyncWebClient(
        token=fake.token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    ok = await retrying.chat_postMessage(channel="C0001", text="after retry")
    assert ok["ok"] is True
    statuses = [c.status for c in fake.calls_to("chat.postMessage")]
    assert statuses == [429, 429, 200]
    assert fake.wait_for("chat.postMessage", lambda c: c.ok).args["text"] == "after retry"


def test_rate_limit_retried_by_sync_handler(fake: FakeSlack) -> None:
    fake.rate_limit("*", times=1, retry_after=0)
    client = WebClient(
        token=fake.token,
        base_url=fake.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert client.auth_test()["ok"] is True
    assert [c.status for c in fake.calls_to("auth.test")] == [429, 200]


async def test_server_errors_and_outage(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.server_error("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0001", text="x")
    assert err.value.response.status_code == 500

    fake.server_error("chat.postMessage", status=503)
    retrying = AsyncWebClient(
        token=fake.token,
        base_url=fake.api_url,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )
    assert (await retrying.chat_postMessage(channel="C0001", text="y"))["ok"] is True

    fake.set_down(True)
    with pytest.raises(SlackApiError) as down:
        await client.auth_test()
    assert down.value.response.status_code == 503
    fake.set_down(False)
    assert (await client.auth_test())["ok"] is True


async def test_fail_until_cleared_and_reset(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail("views.open", "missing_scope", times=None, extra={"needed": "commands"})
    for trigger in ("a", "b"):
        with pytest.raises(SlackApiError) as err:
            await client.views_open(trigger_id=trigger, view=MODAL)
        assert err.value.response["error"] == "missing_scope"
        assert err.value.response["needed"] == "commands"
    fake.fail("chat.postMessage", "channel_not_found", times=1)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0001", text="x")
    assert (await client.chat_postMessage(channel="C0001", text="x"))["ok"] is True
    fake.clear_faults()
    assert (await client.views_open(trigger_id="c", view=MODAL))["ok"] is True
    fake.add_user("U0001")
    fake.add_channel("C0001", member=False)
    fake.add_token("xoxb-other")
    fake.reset()
    assert fake.calls == []
    assert fake.messages == {}
    assert fake.views == {}
    assert (await client.chat_postMessage(channel="C0001", text="x"))["ok"] is True
    with pytest.raises(SlackApiError):
        await client.users_info(user="U0001")
    with pytest.raises(SlackApiError):
        await AsyncWebClient(token="xoxb-other", base_url=fake.api_url).auth_test()


async def test_disconnect_retried_and_slow_times_out(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.disconnect("auth.test")
    # slack_sdk's default AsyncConnectionErrorRetryHandler retries a dropped connection once
    assert (await client.auth_test())["ok"] is True
    assert [c.status for c in fake.calls_to("auth.test")] == [0, 200]

    fake.slow("team.info", 1.0)
    impatient = AsyncWebClient(token=fake.token, base_url=fake.api_url, timeout=0.2)  # type: ignore[arg-type]
    # A TimeoutError at all is the proof: the slow answer would have come, after 1 s.
    with pytest.raises(asyncio.TimeoutError):
        await impatient.team_info()


async def test_wait_helpers_time_out_with_calls_listed(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    await client.auth_test()
    with pytest.raises(AssertionError, match=r"calls seen:\n  auth.test"):
        await fake.await_for("chat.postMessage", timeout=0.05)
    with pytest.raises(AssertionError, match=r"chat\.update"):
        fake.wait_for("chat.update", timeout=0.05)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C0001", text="late")

    task = asyncio.create_task(later())
    call = await fake.await_for("chat.postMessage", lambda c: c.args["text"] == "late", timeout=2)
    await task
    assert call.args["channel"] == "C0001"


# ---------------------------------------------------------------------- signed requests


def test_sign_verifies_with_slack_sdk() -> None:
    body = sr.slash_command_body(text="hi", response_url="http://127.0.0.1:1/response/x/y")
    headers = sr.sign(body, signing_secret=SECRET)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(
        body=body,
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert not verifier.is_valid(
        body=body + "&x=1",
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )
    stale = sr.sign(body, signing_secret=SECRET, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid(
        body=body,
        timestamp=stale["X-Slack-Request-Timestamp"],
        signature=stale["X-Slack-Signature"],
    )
    event = json.dumps(sr.app_uninstalled())
    assert sr.sign(event, signing_secret=SECRET)["Content-Type"] == "application/json"


def test_payload_shapes() -> None:
    fields = parse_qs(
        sr.slash_command_body(text="a b", response_url="http://x/r", enterprise_id="E1")
    )
    for name in (
        "token",
        "team_id",
        "team_domain",
        "enterprise_id",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ):
        assert name in fields, name
    assert fields["text"] == ["a b"]
    assert fields["command"] == ["/b24mail"]

    sub = sr.view_submission(callback_id="compose", values={"to": {"to": sr.email_input("a@b.c")}})
    assert sub["type"] == "view_submission"
    assert sub["view"]["state"]["values"]["to"]["to"]["value"] == "a@b.c"
    assert sub["view"]["root_view_id"] == sub["view"]["id"]
    assert "response_url" not in sub
    assert "channel" not in sub
    body = sr.interactive_body(sub)
    assert json.loads(parse_qs(body)["payload"][0]) == sub

    msg = {"ts": "1700000000.000100", "thread_ts": "1690000000.000100", "text": "hi", "user": "U2"}
    shortcut = sr.message_action(callback_id="reply", message=msg, response_url="http://x/r")
    assert shortcut["message_ts"] == msg["ts"]
    assert shortcut["message"]["thread_ts"] == msg["thread_ts"]
    assert shortcut["channel"]["id"] == "C0001"

    in_view = sr.block_actions(action_id="add", view=sub["view"])
    assert in_view["container"] == {"type": "view", "view_id": sub["view"]["id"]}
    assert "channel" not in in_view
    on_msg = sr.block_actions(action_id="send", value="1", message=msg, response_url="http://x/r")
    assert on_msg["container"]["message_ts"] == msg["ts"]
    assert on_msg["actions"][0]["type"] == "button"

    sugg = sr.block_suggestion(action_id="pick", value="ac")
    assert sugg["container"]["type"] == "view"

    revoked = sr.tokens_revoked(bot=["UBOT"])
    assert revoked["event"]["tokens"] == {"bot": ["UBOT"]}
    assert revoked["authorizations"][0]["team_id"] == "T0001"


async def test_bolt_accepts_the_built_requests(fake: FakeSlack) -> None:
    """End to end: Bolt parses each built request and its listeners talk to the fake."""
    app = AsyncApp(
        client=AsyncWebClient(token=fake.token, base_url=fake.api_url), signing_secret=SECRET
    )
    seen: dict[str, Any] = {}

    @app.command("/b24mail")
    async def command(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.view("compose")
    async def submit(ack: Any, view: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        meta = json.loads(view["private_metadata"])
        to = view["state"]["values"]["to"]["to"]["value"]
        await client.chat_postMessage(channel=meta["channel_id"], text=f"Sent to {to}")

    @app.message_shortcut("reply")
    async def reply(ack: Any, shortcut: dict[str, Any], respond: Any) -> None:
        await ack()
        message = shortcut["message"]
        await respond(text=f"thread {message.get('thread_ts') or message['ts']}")

    @app.action("send")
    async def send(ack: Any, respond: Any) -> None:
        await ack()
        await respond(replace_original=True, text="sent")

    @app.options("pick")
    async def pick(ack: Any, payload: dict[str, Any]) -> None:
        await ack(
            options=[{"text": {"type": "plain_text", "text": "x"}, "value": payload["value"]}]
        )

    @app.event("app_uninstalled")
    async def uninstalled(event: dict[str, Any]) -> None:
        seen["uninstalled"] = event["type"]

    async def dispatch(body: str) -> Any:
        return await app.async_dispatch(
            AsyncBoltRequest(body=body, headers=sr.sign(body, signing_secret=SECRET))
        )

    cmd = sr.slash_command_body(text="", response_url=fake.response_url("cmd"))
    assert (await dispatch(cmd)).status == 200
    opened = await fake.await_for("views.open")
    assert opened.args["trigger_id"] == parse_qs(cmd)["trigger_id"][0]
    view_id = next(iter(fake.views))

    submission = sr.view_submission(
        from_view=fake.views[view_id], values={"to": {"to": sr.email_input("bob@example.com")}}
    )
    assert (await dispatch(sr.interactive_body(submission))).status == 200
    posted = await fake.await_for("chat.postMessage")
    assert posted.args["channel"] == "C0001"
    assert posted.args["text"] == "Sent to bob@example.com"

    msg = fake.add_message("C0001", text="original", user="U0002")
    shortcut = sr.message_action(
        callback_id="reply", message=msg, response_url=fake.response_url("shortcut")
    )
    assert (await dispatch(sr.interactive_body(shortcut))).status == 200
    answer = await fake.await_for_response(lambda r: r.name == "shortcut")
    assert answer.json["text"] == f"thread {msg['ts']}"

    bot_msg = fake.messages[(posted.args["channel"], posted.response["ts"])]
    action = sr.block_actions(
        action_id="send", value="1", message=bot_msg, response_url=fake.response_url("act")
    )
    assert (await dispatch(sr.interactive_body(action))).status == 200
    replaced = await fake.await_for_response(lambda r: r.name == "act")
    assert replaced.json["replace_original"] is True

    options = await dispatch(sr.interactive_body(sr.block_suggestion(action_id="pick", value="ab")))
    assert json.loads(options.body)["options"][0]["value"] == "ab"

    assert (await dispatch(json.dumps(sr.app_uninstalled()))).status == 200
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == {"uninstalled": "app_uninstalled"}
    assert len(fake.calls_to("auth.test")) == 1
