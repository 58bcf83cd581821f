"""The Home tab through the real endpoint: drawn for linked, unlinked, admin and non-admin users
in both languages, refreshed after changes, and within Slack's limits in the worst case."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.notify import NotifyStatus
from bot.mail.policy import WorkspacePolicy, normalize_domain
from bot.slack import ids
from bot.slack.render.home import HomeState, home_view
from bot.slack.wording import Texts
from bot.store.base import utcnow
from bot.store.models import Link, MailSubscription, OutboxEmail
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.block_kit import block_errors
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions, event_callback
from tests.slack.test_compose import ALICE, link
from tests.slack.test_connect import connect
from tests.support.app import RunningApp, running_app

LOCALES = {"en": "en-US", "ru": "ru-RU"}
WORDS = {
    "en": {"connect": "Connect Bitrix24", "write": "Write an e-mail", "policy": "Edit policy"},
    "ru": {"connect": "Подключить Битрикс24", "write": "Написать письмо", "policy": "Изменить"},
}


async def open_home(app: RunningApp, slack: FakeSlack, user_id: str = "U0001") -> dict[str, Any]:
    """app_home_opened as Slack sends it; returns the view the app published."""
    before = len(slack.calls_to("views.publish"))
    body = json.dumps(
        event_callback(
            {"type": "app_home_opened", "user": user_id, "channel": "D0001", "tab": "home"}
        )
    )
    response = await app.post_signed(body, content_type="application/json")
    assert response.status_code == 200
    calls = await slack.await_for_calls("views.publish", before + 1)
    call = calls[-1]
    assert call.ok, call.response
    view = slack.home_view(user_id)
    assert view is not None
    return view


def texts_of(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_unlinked_member_sees_connect_and_no_policy(
    engine: AsyncEngine, slack: FakeSlack, language: str
) -> None:
    slack.add_user("U0001", locale=LOCALES[language])
    async with running_app(engine=engine, slack=slack) as app:
        view = await open_home(app, slack)
    shown = texts_of(view)
    assert WORDS[language]["connect"] in shown and ids.OPEN_CONNECT_ACTION in shown
    assert ids.HOME_WRITE_ACTION not in shown and ids.HOME_POLICY_ACTION not in shown
    assert ids.HOME_LANGUAGE_ACTION in shown
    assert block_errors(view["blocks"], limit=100) == []


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_linked_admin_sees_link_emails_and_the_policy(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, language: str
) -> None:
    slack.add_user("U0001", locale=LOCALES[language], is_admin=True)
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await app.services.policy.change(
            ALICE,
            WorkspacePolicy(blocked_domains=(normalize_domain("*.пример.рф"),)),
            is_admin=_yes,
        )
        view = await open_home(app, slack)
    shown = texts_of(view)
    assert "alice@corp.example" in shown and "sales@corp.example" in shown
    assert "127.0.0.1" in shown  # the portal
    assert WORDS[language]["write"] in shown and ids.HOME_DISCONNECT_ACTION in shown
    assert WORDS[language]["policy"] in shown and "*.пример.рф" in shown


async def test_owner_counts_as_admin_and_a_member_gets_no_policy_section(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    slack.add_user("U0001", is_owner=True)
    slack.add_user("U0002")
    async with running_app(engine=engine, slack=slack) as app:
        owner = await open_home(app, slack, "U0001")
        member = await open_home(app, slack, "U0002")
    assert ids.HOME_POLICY_ACTION in texts_of(owner)
    assert ids.HOME_POLICY_ACTION not in texts_of(member)


async def _yes(_user: SlackUser) -> bool:
    return True


async def test_language_change_and_disconnect_refresh_the_home_tab(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_user("U0001", locale="en-US")
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        view = await open_home(app, slack)
        assert "Write an e-mail" in texts_of(view)
        before = len(slack.calls_to("views.publish"))
        await app.interactive(
            block_actions(
                action_id=ids.HOME_LANGUAGE_ACTION,
                selected_option={"text": {"type": "plain_text", "text": "ru"}, "value": "ru"},
                view=view,
            )
        )
        await slack.await_for_calls("views.publish", before + 1)
        assert "Написать письмо" in texts_of(slack.home_view("U0001") or {})
        before = len(slack.calls_to("views.publish"))
        await app.interactive(block_actions(action_id=ids.HOME_DISCONNECT_ACTION, view=view))
        await slack.await_for_calls("views.publish", before + 1)
        refreshed = texts_of(slack.home_view("U0001") or {})
        assert await app.services.links.get(ALICE) is None
    assert "Подключить Битрикс24" in refreshed and ids.HOME_WRITE_ACTION not in refreshed


async def test_write_button_opens_the_compose_modal(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_user("U0001")
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        view = await open_home(app, slack)
        await app.interactive(block_actions(action_id=ids.HOME_WRITE_ACTION, view=view))
        call = await slack.await_for("views.open", lambda c: c.ok)
    assert call.args["view"]["callback_id"] == ids.COMPOSE_VIEW


async def test_lang_command_refreshes_the_home_tab(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_user("U0001")
    async with running_app(engine=engine, slack=slack) as app:
        await open_home(app, slack)
        before = len(slack.calls_to("views.publish"))
        await app.command("lang ru")
        await slack.await_for_calls("views.publish", before + 1)
    assert "Подключить Битрикс24" in texts_of(slack.home_view("U0001") or {})


def _worst_link() -> Link:
    return Link(
        team_id="T1",
        slack_user_id="U1",
        portal_host="a" * 63 + ".bitrix24.example",
        b24_user_id=1,
        secret_encrypted="x",
        senders=[
            {
                "sender": f"{'Имя Фамилия ' * 6} <{'x' * 60}{i}@{'d' * 60}.example>",
                "email": f"x{i}@d.example",
            }
            for i in range(60)
        ],
    )


def _worst_emails() -> list[OutboxEmail]:
    now = utcnow()
    return [
        OutboxEmail(
            id=f"{i:036d}",
            subject="Ж" * 250,
            to_addrs=[f"{'r' * 60}{j}@{'d' * 60}.example" for j in range(50)],
            cc_addrs=[],
            bcc_addrs=[],
            status=("sent", "failed", "queued", "sending")[i % 4],
            created_at=now - timedelta(minutes=i),
            error_code=None,
        )
        for i in range(10)
    ]


def _worst_scheduled() -> list[OutboxEmail]:
    later = utcnow() + timedelta(days=3)
    return [
        OutboxEmail(
            id=f"{i:036d}",
            subject="Ж" * 250,
            to_addrs=[f"{'r' * 60}{j}@{'d' * 60}.example" for j in range(50)],
            cc_addrs=[],
            bcc_addrs=[],
            status="queued",
            attempts=0,
            created_at=later,
            send_at=later,
            not_before=later + timedelta(minutes=i),
            error_code=None,
        )
        for i in range(40)
    ]


def _worst_notify() -> NotifyStatus:
    row = MailSubscription(
        portal_host="a" * 63 + ".bitrix24.example",
        search="Ж" * 200,
        channel_id="C0123456789",
        state="paused",
        pause_reason="portal_moved",
        pause_detail="b" * 255,
    )
    return NotifyStatus(subscription=row, period=timedelta(minutes=37), on_portal=10_000)


@pytest.mark.parametrize("language", ["en", "ru"])
def test_worst_case_home_stays_within_block_kit_limits(language: str) -> None:
    """60 long senders, 10 e-mails with 250-character subjects and 50 recipients, a policy with
    200 long domains each way, paused notifications with long search words, 60 signatures,
    50 templates with the longest names and 40 scheduled e-mails: still at most 100 blocks,
    every text within its limit, and the cut lists say how many more there are."""
    domains = tuple(f"*.{'поддомен' * 6}{i}.{'пример' * 5}.рф" for i in range(200))
    policy = WorkspacePolicy(
        allowed_domains=tuple(normalize_domain(d) for d in domains),
        blocked_domains=tuple(normalize_domain(d) for d in domains),
        max_recipients=5,
        hourly_cap=7,
        confirm_outside=True,
        audit_channel="C0AUDIT",
    )
    view = home_view(
        Texts(language),
        HomeState(
            link=_worst_link(),
            emails=_worst_emails(),
            chosen_language=None,
            slack_language=language,
            policy=policy,
            notify=_worst_notify(),
            signatures=[f"{'x' * 60}{i}@{'d' * 60}.example" for i in range(60)],
            templates=[f"{i:02d}{'Шаблон ' * 10}"[:75] for i in range(50)],
            scheduled=_worst_scheduled(),
        ),
    )
    assert block_errors(view["blocks"], "/view/blocks", limit=100) == []
    assert len(json.dumps(view)) < 250_000
    shown = texts_of(view)
    assert "/b24mail templates" in shown and "/b24mail scheduled" in shown
    assert ids.HOME_POLICY_ACTION in shown  # the last section is still there
    assert shown.count(ids.SEND_NOW_ACTION) == 10


async def test_connecting_through_the_modal_refreshes_the_home_tab(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_user("U0001")
    b24 = portal.add_user(7, senders=[("Anna Petrova", "anna@corp.example")])
    async with running_app(engine=engine, slack=slack) as app:
        before = await open_home(app, slack)
        assert ids.OPEN_CONNECT_ACTION in texts_of(before)
        published = len(slack.calls_to("views.publish"))
        answer = await connect(app, b24.webhook_url)
        assert answer["response_action"] == "update"
        await slack.await_for_calls("views.publish", published + 1)
    after = texts_of(slack.home_view("U0001") or {})
    assert "anna@corp.example" in after and ids.HOME_WRITE_ACTION in after
