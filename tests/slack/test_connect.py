"""Linking a Slack user to a Bitrix24 webhook, through the real HTTP endpoint."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.slack import ids
from bot.store.base import Base
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import view_submission
from tests.support.app import RunningApp, running_app


def connect_payload(url: str, *, user_id: str = "U0001", team_id: str = "T0001") -> dict[str, Any]:
    return view_submission(
        callback_id=ids.CONNECT_VIEW,
        values={
            ids.CONNECT_URL_BLOCK: {
                ids.CONNECT_URL_ACTION: {"type": "plain_text_input", "value": url}
            }
        },
        private_metadata=json.dumps({"channel_id": "C0001"}),
        user_id=user_id,
        team_id=team_id,
    )


async def connect(app: RunningApp, url: str, **who: str) -> dict[str, Any]:
    return app.json(await app.interactive(connect_payload(url, **who)))


def inline_error(answer: dict[str, Any]) -> str:
    assert answer.get("response_action") == "errors", answer
    return str(answer["errors"][ids.CONNECT_URL_BLOCK])


async def test_connect_command_opens_the_modal(engine: AsyncEngine, slack: FakeSlack) -> None:
    """`/b24mail connect` acks at once and opens the connect modal with instructions."""
    async with running_app(engine=engine, slack=slack) as app:
        response = await app.command("connect", trigger_id="trigger-1")
        assert response.status_code == 200
        call = await slack.await_for("views.open")
    view = call.args["view"]
    assert call.args["trigger_id"] == "trigger-1"
    assert view["callback_id"] == ids.CONNECT_VIEW
    shown = json.dumps(view)
    assert "Inbound webhook" in shown and "Mail (mail)" in shown


async def test_valid_webhook_is_linked_and_senders_shown(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A working webhook is stored and the modal lists the sender addresses found."""
    user = portal.add_user(
        7, senders=[("Anna Petrova", "anna@corp.example"), ("Sales", "sales@corp.example")]
    )
    async with running_app(engine=engine, slack=slack) as app:
        answer = await connect(app, user.webhook_url)
        assert answer["response_action"] == "update"
        shown = json.dumps(answer["view"])
        assert "anna@corp.example" in shown and "sales@corp.example" in shown
        assert user.code not in shown
        link = await app.services.links.get(SlackUser(team_id="T0001", user_id="U0001"))
    assert link is not None
    assert link.b24_user_id == 7
    assert link.portal_host == portal.base_url.split("://")[1]
    assert [s["email"] for s in link.senders] == ["anna@corp.example", "sales@corp.example"]
    probe = [r for r in portal.requests if r.method_name == "mail.mailbox.senders"]
    assert probe and probe[-1].path.startswith("/rest/api/7/")


async def test_pasted_forms_all_link(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The classic address with a method name, and the REST 3.0 form, both work."""
    user = portal.add_user(8)
    forms = [
        f"{portal.base_url}/rest/8/{user.code}/profile.json",
        f"  {portal.base_url}/rest/api/8/{user.code}/  ",
    ]
    async with running_app(engine=engine, slack=slack) as app:
        for form in forms:
            answer = await connect(app, form)
            assert answer["response_action"] == "update", (form, answer)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed", "not a Bitrix24 inbound webhook address"),
        ("wrong_code", "did not accept the webhook"),
        ("no_scope", "no *Mail* permission"),
        ("plan", "commercial plan"),
        ("moved", "has moved to *new-name.bitrix24.com*"),
        ("unreachable", "Could not reach"),
        ("empty", "Please fill this in"),
        ("query", "Remove everything from the ? or # on"),
    ],
)
async def test_connect_failures_are_inline_errors_that_say_what_to_fix(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, case: str, expected: str
) -> None:
    """Each way a webhook can be wrong gets its own explanation under the field."""
    user = portal.add_user(9, scopes=() if case == "no_scope" else ("mail",))
    url = user.webhook_url
    if case == "malformed":
        url = f"{portal.base_url}/company/personal/user/9/"
    elif case == "wrong_code":
        url = f"{portal.base_url}/rest/9/wrongcode0000000/"
    elif case == "plan":
        portal.set_plan_restricted(True)
    elif case == "moved":
        portal.rename("new-name.bitrix24.com")
    elif case == "unreachable":
        url = f"http://127.0.0.1:{_closed_port()}/rest/9/{user.code}/"
    elif case == "empty":
        url = ""
    elif case == "query":
        url = f"{user.webhook_url}?utm_source=mail"
    async with running_app(engine=engine, slack=slack) as app:
        message = inline_error(await connect(app, url))
        assert await app.services.links.get(SlackUser(team_id="T0001", user_id="U0001")) is None
    assert expected in message
    assert user.code not in message


async def test_plain_http_is_refused_without_the_testing_flag(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Outside local testing, an http:// webhook is refused before any call is made."""
    user = portal.add_user(10)
    async with running_app(engine=engine, slack=slack, b24mail_allow_insecure_portals=False) as app:
        message = inline_error(await connect(app, user.webhook_url))
    assert "must start with https://" in message
    assert not [r for r in portal.requests if r.path.startswith("/rest/")]


async def test_disconnect_status_and_help(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """status shows the link without its secret; disconnect forgets it; help lists commands."""
    user = portal.add_user(11, senders=[("Ivan", "ivan@corp.example")])
    async with running_app(engine=engine, slack=slack) as app:
        await connect(app, user.webhook_url)
        status = app.json(await app.command("status"))
        shown = json.dumps(status)
        assert "ivan@corp.example" in shown and "*Bitrix24 user:* 11" in shown
        assert user.code not in shown
        bye = app.json(await app.command("disconnect"))
        assert "forgotten" in bye["text"]
        again = app.json(await app.command("disconnect"))
        assert "nothing to forget" in again["text"]
        status = app.json(await app.command("status"))
        assert "not linked" in status["text"]
        helped = app.json(await app.command("help"))
        assert "/b24mail connect" in json.dumps(helped)
        unknown = app.json(await app.command("frobnicate now"))
        assert "I don't know `frobnicate`" in json.dumps(unknown)


async def test_users_only_ever_see_their_own_link(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Two users in two workspaces (one sharing A's user id): none sees or removes another's link."""
    anna = portal.add_user(21, senders=[("Anna", "anna@corp.example")])
    async with running_app(engine=engine, slack=slack) as app:
        await connect(app, anna.webhook_url, user_id="UANNA", team_id="T0001")
        for team, user in [("T0001", "UBORIS"), ("T0002", "UANNA"), ("T0002", "UBORIS")]:
            status = app.json(await app.command("status", user_id=user, team_id=team))
            assert "not linked" in status["text"], (team, user)
            assert "anna@corp.example" not in json.dumps(status)
            gone = app.json(await app.command("disconnect", user_id=user, team_id=team))
            assert "nothing to forget" in gone["text"]
        status = app.json(await app.command("status", user_id="UANNA", team_id="T0001"))
        assert "anna@corp.example" in json.dumps(status)


@pytest.mark.parametrize("problem", ["missing", "wrong", "stale"])
async def test_bad_signatures_are_refused(
    engine: AsyncEngine, slack: FakeSlack, problem: str
) -> None:
    """Requests without a valid, fresh Slack signature get 401 and do nothing."""
    import time

    from tests.fakes.slack_requests import sign, slash_command_body

    async with running_app(engine=engine, slack=slack) as app:
        body = slash_command_body(text="help", response_url=slack.response_url())
        headers = sign(body, signing_secret="test-signing-secret-0123456789abcdef")
        if problem == "missing":
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        elif problem == "wrong":
            headers = sign(body, signing_secret="not-the-secret")
        else:
            headers = sign(
                body,
                signing_secret="test-signing-secret-0123456789abcdef",
                timestamp=int(time.time()) - 6 * 60,
            )
        response = await app.http.post("/slack/events", content=body.encode(), headers=headers)
    assert response.status_code == 401


async def test_database_holds_no_trace_of_the_webhook_code(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A dump of every table (and the SQLite file itself) never contains the webhook code."""
    user = portal.add_user(31)
    async with running_app(engine=engine, slack=slack) as app:
        answer = await connect(app, user.webhook_url)
        assert answer["response_action"] == "update"
    dump = []
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = (await connection.execute(select(table))).all()
            dump.extend(repr(tuple(row)) for row in rows)
    assert any("31" in row for row in dump)
    assert not any(user.code in row for row in dump)
    if engine.url.get_backend_name() == "sqlite":
        async with engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(FULL)"))
        raw = Path(str(engine.url.database)).read_bytes()
        assert user.code.encode() not in raw


async def test_debug_logs_never_show_the_webhook(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    """Through link, status, a failed link and disconnect, DEBUG logs hold neither URL nor code."""
    user = portal.add_user(41)
    caplog.set_level(logging.DEBUG)
    async with running_app(engine=engine, slack=slack) as app:
        await connect(app, user.webhook_url)
        await app.command("status")
        await connect(app, f"{portal.base_url}/rest/41/{user.code}x/")
        await app.command("disconnect")
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert "linked user=U0001" in logged
    assert user.code not in logged
    assert user.webhook_url not in logged


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
