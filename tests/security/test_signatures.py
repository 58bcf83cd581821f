"""Slack request verification: every kind of request without a valid, fresh signature gets 401."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.services import build_services
from bot.slack import ids
from bot.web import KeyedSignatureVerifier
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    block_actions,
    block_suggestion,
    event_callback,
    interactive_body,
    message_action,
    sign,
    slash_command_body,
)
from tests.security.support import compose_payload, connect_payload, count_rows
from tests.support.app import SIGNING_SECRET, make_settings, running_app

Headers = dict[str, Any]


def kinds(slack: FakeSlack, portal: FakePortal) -> dict[str, str]:
    """One body of each kind Slack sends, each of which would act if it were accepted."""
    webhook = portal.add_user(61).webhook_url
    return {
        "command": slash_command_body(text="connect", response_url=slack.response_url("cmd")),
        "block_actions": interactive_body(
            block_actions(action_id=ids.OPEN_CONNECT_ACTION, response_url=slack.response_url("btn"))
        ),
        "view_submission": interactive_body(connect_payload(webhook)),
        "compose": interactive_body(compose_payload()),
        "options": interactive_body(block_suggestion(action_id=ids.FROM_ACTION, value="a")),
        "shortcut": interactive_body(
            message_action(
                callback_id=ids.REPLY_SHORTCUT,
                message={"ts": "1.2", "text": "hi"},
                response_url=slack.response_url("shortcut"),
            )
        ),
        "event": json.dumps(event_callback({"type": "app_uninstalled"})),
    }


def _good(body: str) -> Headers:
    return sign(body, signing_secret=SIGNING_SECRET)


def _missing(body: str) -> Headers:
    return {"Content-Type": _good(body)["Content-Type"]}


def _no_timestamp(body: str) -> Headers:
    headers = _good(body)
    del headers["X-Slack-Request-Timestamp"]
    return headers


def _wrong_secret(body: str) -> Headers:
    return sign(body, signing_secret=SIGNING_SECRET + "x")


def _stale(body: str) -> Headers:
    return sign(body, signing_secret=SIGNING_SECRET, timestamp=int(time.time()) - 5 * 60 - 5)


def _from_the_future(body: str) -> Headers:
    return sign(body, signing_secret=SIGNING_SECRET, timestamp=int(time.time()) + 5 * 60 + 5)


def _garbage(body: str) -> Headers:
    headers = _good(body)
    headers["X-Slack-Request-Timestamp"] = "soon"
    headers["X-Slack-Signature"] = "v0=ünïcode".encode("latin-1")
    return headers


def _other_body(body: str) -> Headers:
    return sign(body + "&x=1", signing_secret=SIGNING_SECRET)


def _other_version(body: str) -> Headers:
    headers = _good(body)
    headers["X-Slack-Signature"] = headers["X-Slack-Signature"].replace("v0=", "v1=")
    return headers


PROBLEMS: dict[str, Callable[[str], Headers]] = {
    "missing": _missing,
    "no_timestamp": _no_timestamp,
    "wrong_secret": _wrong_secret,
    "stale": _stale,
    "future": _from_the_future,
    "garbage": _garbage,
    "other_body": _other_body,
    "other_version": _other_version,
}


async def _post(app: Any, body: str, headers: Headers) -> int:
    response = await app.http.post("/slack/events", content=body.encode(), headers=headers)
    return int(response.status_code)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
async def test_unverified_requests_of_every_kind_get_401_and_do_nothing(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, problem: str
) -> None:
    """Command, button, modal, options, shortcut and event: 401, no Slack, portal or DB effect."""
    async with running_app(engine=engine, slack=slack) as app:
        bodies = kinds(slack, portal)
        statuses = {
            kind: await _post(app, body, PROBLEMS[problem](body)) for kind, body in bodies.items()
        }
        rows = await count_rows(engine)
        calls, responses, portal_calls = slack.calls, slack.responses, portal.requests
        # The same bodies correctly signed are accepted: the refusal was the signature's doing.
        accepted = {kind: await _post(app, body, _good(body)) for kind, body in bodies.items()}
    assert statuses == dict.fromkeys(bodies, 401)
    assert calls == [] and responses == [] and portal_calls == []
    assert set(rows.values()) == {0}
    assert 401 not in accepted.values(), accepted


async def test_the_served_app_computes_each_signature_once(
    engine: AsyncEngine, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bot.web verifies before parsing and takes Bolt's second, identical check out.

    Counts every HMAC slack_sdk's verifier or ours computes: one per request, signed or not.
    Fails if Bolt's middleware list moves (bot.web would then leave Bolt checking: two)."""
    computed: list[str] = []

    def counting(cls: type[SignatureVerifier]) -> None:
        original = cls.generate_signature

        def generate(self: SignatureVerifier, *, timestamp: str, body: str | bytes) -> str | None:
            computed.append(cls.__name__)
            return original(self, timestamp=timestamp, body=body)

        monkeypatch.setattr(cls, "generate_signature", generate)

    counting(SignatureVerifier)
    counting(KeyedSignatureVerifier)
    async with running_app(engine=engine, slack=slack) as app:
        body = slash_command_body(text="help", response_url=slack.response_url("cmd"))
        accepted = await _post(app, body, _good(body))
        refused = await _post(app, body, _wrong_secret(body))
    assert (accepted, refused) == (200, 401)
    assert computed == ["KeyedSignatureVerifier", "KeyedSignatureVerifier"]


async def test_a_bolt_app_not_served_by_create_web_app_still_verifies(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """create_app alone (Socket Mode aside) keeps Bolt's own check: a bad signature is 401."""
    settings = make_settings(
        database_url=engine.url.render_as_string(hide_password=False), slack=slack
    )
    services = build_services(settings, engine=engine)
    try:
        bolt_app = create_app(services)
        body = slash_command_body(text="help", response_url=slack.response_url("cmd"))
        refused = await bolt_app.async_dispatch(
            AsyncBoltRequest(body=body, headers=_wrong_secret(body))
        )
        unsigned = await bolt_app.async_dispatch(
            AsyncBoltRequest(body=body, headers=_missing(body))
        )
    finally:
        await services.aclose()
    assert (refused.status, unsigned.status) == (401, 401)


@settings(max_examples=200)
@given(
    body=st.one_of(st.binary(max_size=64), st.text(max_size=64)),
    skew=st.integers(-400, 400),
    tamper=st.booleans(),
)
def test_the_keyed_verifier_answers_as_slack_sdks(
    body: str | bytes, skew: int, tamper: bool
) -> None:
    """Same secret, same request: the same signature, the same verdict (bad UTF-8 raises alike)."""
    ours, theirs = KeyedSignatureVerifier(SIGNING_SECRET), SignatureVerifier(SIGNING_SECRET)
    timestamp = str(int(time.time()) + skew)

    def outcome(verifier: SignatureVerifier, signature: str | None) -> object:
        try:
            return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except ValueError as exc:
            return type(exc)

    try:
        signature: str | None = theirs.generate_signature(timestamp=timestamp, body=body)
    except ValueError:
        signature = "v0=" + "0" * 64
    if tamper and signature is not None:
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert outcome(ours, signature) == outcome(theirs, signature)
    try:
        expected: object = theirs.generate_signature(timestamp=timestamp, body=body)
    except ValueError as exc:
        expected = type(exc)
    try:
        got: object = ours.generate_signature(timestamp=timestamp, body=body)
    except ValueError as exc:
        got = type(exc)
    assert got == expected
