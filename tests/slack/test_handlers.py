"""Listeners are plain functions: called here with plain arguments, no HTTP server, no Bolt app;
and RequestScope puts what they take (user, t, services) into Bolt's context."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.errors import EmailNotFound
from bot.services import Services, build_services
from bot.settings import Settings
from bot.slack import ids
from bot.slack.errors import explain
from bot.slack.language import LanguageService
from bot.slack.listeners import commands, compose, events, register_all, reply, views
from bot.slack.middleware import RequestScope
from bot.slack.wording import Texts
from bot.store.preferences import PreferenceRepository
from tests.fakes.slack_requests import (
    app_uninstalled,
    block_actions,
    block_suggestion,
    interactive_body,
    slash_command_body,
    text_input,
    tokens_revoked,
    url_verification,
    view_submission,
)
from tests.slack.test_compose import compose_values

ALICE = SlackUser(team_id="T0001", user_id="U0001")
EN = Texts("en")
# Nothing here may reach Slack: a closed port makes any attempt fail loudly.
CLOSED = "http://127.0.0.1:9/api/"
NO_SLACK = AsyncWebClient(base_url=CLOSED)
SENDERS = [{"email": "alice@corp.example", "name": "Alice", "sender": "Alice <alice@corp.example>"}]


class Recorder:
    """Stands in for Bolt's ack and respond: remembers what it was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, text: str | None = None, **kwargs: Any) -> None:
        self.calls.append({"text": text, **kwargs} if text is not None else kwargs)


@pytest.fixture
async def services(engine: AsyncEngine) -> AsyncIterator[Services]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-unused",
        slack_signing_secret="unused-signing-secret",
        slack_api_url=CLOSED,
        database_url=engine.url.render_as_string(hide_password=False),
        b24mail_secret_keys=Fernet.generate_key().decode(),
    )
    services = build_services(settings, engine=engine)
    yield services
    await services.background.drain(timeout=5)
    await services.bitrix24.aclose()


async def linked(services: Services, user: SlackUser = ALICE) -> None:
    await services.link_repository.save(
        user,
        scheme="https",
        host="corp.bitrix24.com",
        b24_user_id=7,
        secret=SecretStr("code"),
        senders=SENDERS,
    )


# --- the middleware ---------------------------------------------------------------------------


async def through_scope(
    services: Services, body: str | dict[str, Any], content_type: str
) -> tuple[AsyncBoltRequest, bool]:
    request = AsyncBoltRequest(
        body=body if isinstance(body, str) else json.dumps(body),
        headers={"content-type": content_type},
    )
    called = []

    async def next_() -> BoltResponse:
        called.append(True)
        return BoltResponse(status=200)

    await RequestScope(services).async_process(
        req=request, resp=BoltResponse(status=200), next=next_
    )
    return request, bool(called)


async def test_the_scope_puts_the_user_their_texts_and_the_services_into_the_context(
    services: Services,
) -> None:
    await PreferenceRepository(sessions=services.sessions).set_language(ALICE, "ru")
    body = slash_command_body(text="help", response_url="http://127.0.0.1:9/r")
    request, went_on = await through_scope(services, body, "application/x-www-form-urlencoded")
    assert went_on
    assert request.context["user"] == ALICE
    assert request.context["t"].locale == "ru"
    assert request.context["services"] is services


@pytest.mark.parametrize(
    "body",
    [app_uninstalled(), tokens_revoked(bot=["UBOT"]), url_verification()],
    ids=["app_uninstalled", "tokens_revoked", "url_verification"],
)
async def test_a_request_without_a_user_passes_untouched(
    services: Services, body: dict[str, Any]
) -> None:
    request, went_on = await through_scope(services, body, "application/json")
    assert went_on
    assert "user" not in request.context and "t" not in request.context


# --- handlers called directly -----------------------------------------------------------------


async def test_help_is_answered_in_the_users_language(services: Services) -> None:
    ack = Recorder()
    await commands.on_b24mail(
        ack=ack,
        command={"text": "help", "channel_id": "C0001"},
        client=NO_SLACK,
        respond=Recorder(),
        user=ALICE,
        t=Texts("ru"),
        services=services,
    )
    [answer] = ack.calls
    assert answer["text"] == Texts("ru")("help.title")
    assert answer["blocks"]


async def test_a_submission_of_someone_not_linked_is_refused_inline(
    services: Services,
) -> None:
    ack = Recorder()
    view = view_submission(callback_id=ids.COMPOSE_VIEW, values=compose_values())["view"]
    await compose.on_submit(
        ack=ack,
        view=view,
        client=NO_SLACK,
        user=ALICE,
        t=EN,
        services=services,
    )
    assert ack.calls == [
        {"response_action": "errors", "errors": {ids.FROM_BLOCK: EN("error.not_linked")}}
    ]


async def test_a_valid_submission_is_queued_and_the_modal_closed(services: Services) -> None:
    await linked(services)
    ack = Recorder()
    view = view_submission(
        callback_id=ids.COMPOSE_VIEW,
        values=compose_values(),
        private_metadata=json.dumps({"channel_id": "C0001"}),
    )["view"]
    await compose.on_submit(
        ack=ack,
        view=view,
        client=NO_SLACK,
        user=ALICE,
        t=EN,
        services=services,
    )
    assert ack.calls == [{}]
    [queued] = await services.outbox.history(ALICE)
    assert (queued.subject, queued.to_addrs, queued.result_channel) == (
        "Quarterly report",
        ["Bob <bob@client.example>"],
        "C0001",
    )


async def test_a_reply_without_its_email_is_refused_where_the_user_can_fix_it(
    services: Services,
) -> None:
    view = view_submission(callback_id=ids.REPLY_VIEW, values=compose_values())["view"]
    not_linked, no_target = Recorder(), Recorder()
    # Not linked comes first, as in compose; then the missing e-mail to answer.
    await reply.on_submit(
        ack=not_linked,
        view=view,
        client=NO_SLACK,
        user=ALICE,
        t=EN,
        services=services,
    )
    await linked(services)
    await reply.on_submit(
        ack=no_target,
        view=view,
        client=NO_SLACK,
        user=ALICE,
        t=EN,
        services=services,
    )
    assert not_linked.calls == [
        {"response_action": "errors", "errors": {ids.FROM_BLOCK: EN("error.not_linked")}}
    ]
    assert no_target.calls == [
        {"response_action": "errors", "errors": {ids.TO_BLOCK: EN("reply.target_required")}}
    ]
    assert await services.outbox.history(ALICE) == []


async def test_an_empty_webhook_field_is_refused_inline(services: Services) -> None:
    ack = Recorder()
    values = {ids.CONNECT_URL_BLOCK: {ids.CONNECT_URL_ACTION: text_input("")}}
    view = view_submission(callback_id=ids.CONNECT_VIEW, values=values)["view"]
    await views.on_connect_submit(
        ack=ack, view=view, client=NO_SLACK, user=ALICE, t=EN, services=services
    )
    assert ack.calls == [
        {"response_action": "errors", "errors": {ids.CONNECT_URL_BLOCK: EN("validation.required")}}
    ]


async def test_retrying_someone_elses_email_is_refused_in_their_language(
    services: Services,
) -> None:
    ack, respond = Recorder(), Recorder()
    action = {"type": "button", "action_id": ids.RETRY_ACTION, "value": "no-such-email"}
    await compose.on_retry(
        ack=ack, action=action, respond=respond, user=ALICE, t=Texts("ru"), services=services
    )
    await services.background.drain(timeout=5)
    assert ack.calls == [{}]
    [said] = respond.calls
    assert said["response_type"] == "ephemeral"
    assert said["text"] == explain(Texts("ru"), EmailNotFound())


async def test_uninstalling_removes_the_workspaces_links(services: Services) -> None:
    await linked(services)
    await linked(services, SlackUser(team_id="T0002", user_id="U0002"))
    ack = Recorder()
    context = AsyncBoltContext(team_id="T0001", is_enterprise_install=False)
    await events.on_app_uninstalled(ack=ack, context=context, services=services)
    assert ack.calls == [{}]
    assert await services.link_repository.get(ALICE) is None
    assert await services.link_repository.get(SlackUser(team_id="T0002", user_id="U0002"))


async def test_bolt_injects_what_the_scope_put_into_the_context(services: Services) -> None:
    """The listeners' shape rests on Bolt passing context keys as arguments by name."""
    seen: dict[str, Any] = {}

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T0001", bot_token="xoxb-unused")

    async def listener(ack: Any, user: SlackUser, t: Texts, services: Services) -> None:
        seen.update(user=user, t=t, services=services)
        await ack()

    app = AsyncApp(
        signing_secret="unused-signing-secret",
        authorize=authorize,
        request_verification_enabled=False,
        process_before_response=True,
    )
    register_all(app, services)
    app.command("/probe")(listener)
    body = slash_command_body(command="/probe", response_url="http://127.0.0.1:9/r")
    response = await app.async_dispatch(
        AsyncBoltRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"})
    )
    assert response.status == 200
    assert seen["user"] == ALICE
    assert seen["t"].locale == "en"
    assert seen["services"] is services


class HeldSlack:
    """A Slack client whose users.info answers only when released (a first-ever user)."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        self.ended = False  # the call returned, failed or was given up

    async def users_info(self, **_: Any) -> dict[str, Any]:
        self.asked.set()
        try:
            await self.release.wait()
        finally:
            self.ended = True
        return {"ok": True, "user": {"locale": "ru-RU"}}


async def test_only_options_requests_never_wait_for_slack(services: Services) -> None:
    """A first-ever user: options get English at once; other requests wait (up to the time box,
    an hour here, so only the release ends the wait)."""
    scope = RequestScope(
        dataclasses.replace(
            services,
            language=LanguageService(
                preferences=PreferenceRepository(sessions=services.sessions),
                background=services.background,
                time_box=3600,
            ),
        )
    )
    slack = HeldSlack()

    async def through(body: dict[str, Any]) -> AsyncBoltRequest:
        request = AsyncBoltRequest(
            body=interactive_body(body),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        request.context["client"] = slack

        async def next_() -> BoltResponse:
            return BoltResponse(status=200)

        await scope.async_process(req=request, resp=BoltResponse(status=200), next=next_)
        return request

    options = await asyncio.wait_for(
        through(block_suggestion(action_id=ids.REPLY_TARGET_ACTION, value="inv")), 30
    )
    assert options.context["t"].locale == "en"
    await asyncio.wait_for(slack.asked.wait(), 30)
    assert not slack.ended  # answered while the lookup still runs, in the background

    click = asyncio.create_task(through(block_actions(action_id=ids.RETRY_ACTION, value="x")))
    for _ in range(20):  # however long it is given, it waits for Slack
        await asyncio.sleep(0)
    assert not click.done()
    slack.release.set()
    answered = await asyncio.wait_for(click, 30)
    assert answered.context["t"].locale == "ru"
