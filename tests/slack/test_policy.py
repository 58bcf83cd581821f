"""The workspace policy and the audit log through the real endpoint, the fake Slack and the fake
portal: who may change the policy, how every submission and delivery obeys it, and what the
audit log and its channel get."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.policy import WorkspacePolicy, normalize_domain
from bot.mail.wakeup import Wakeup
from bot.slack import ids
from bot.slack.audit_channel import AuditChannelPoster
from bot.slack.render.policy import policy_modal
from bot.slack.wording import Texts
from bot.store.audit import AuditPost, AuditRecord, NewAuditRecord, PostTarget
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.models import OutboxEmail
from bot.store.policy import WorkspacePolicyRow
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_uninstalled, block_actions, view_submission
from tests.slack.test_compose import (
    ALICE,
    compose_values,
    final_status,
    link,
    submission,
)
from tests.slack.test_oauth import install, oauth_app
from tests.support.app import RunningApp, running_app

ADMIN = SlackUser(team_id="T0001", user_id="UADMIN")
BODY_TEXT = "Hello Bob,\nthe secret numbers are 42."


def policy_values(
    *,
    allowed: str = "",
    blocked: str = "",
    max_recipients: str | None = None,
    hourly_cap: str | None = None,
    confirm: bool = False,
    audit_channel: str | None = None,
) -> dict[str, Any]:
    def field(block: str, element: dict[str, Any]) -> dict[str, Any]:
        return {block: {ids.POLICY_INPUT_ACTION: element}}

    option = {"text": {"type": "plain_text", "text": "ask"}, "value": ids.POLICY_CONFIRM_VALUE}
    return {
        **field(ids.POLICY_ALLOWED_BLOCK, {"type": "plain_text_input", "value": allowed}),
        **field(ids.POLICY_BLOCKED_BLOCK, {"type": "plain_text_input", "value": blocked}),
        **field(ids.POLICY_MAX_RECIPIENTS_BLOCK, {"type": "number_input", "value": max_recipients}),
        **field(ids.POLICY_HOURLY_CAP_BLOCK, {"type": "number_input", "value": hourly_cap}),
        **field(
            ids.POLICY_CONFIRM_BLOCK,
            {"type": "checkboxes", "selected_options": [option] if confirm else []},
        ),
        **field(
            ids.POLICY_AUDIT_CHANNEL_BLOCK,
            {"type": "conversations_select", "selected_conversation": audit_channel},
        ),
    }


async def submit_policy(app: RunningApp, user_id: str, **values: Any) -> dict[str, Any]:
    payload = view_submission(
        callback_id=ids.POLICY_VIEW, values=policy_values(**values), user_id=user_id
    )
    return app.json(await app.interactive(payload))


async def records(engine: AsyncEngine) -> list[AuditRecord]:
    async with create_session_factory(engine)() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def _yes(_user: SlackUser) -> bool:
    return True


async def set_policy(app: RunningApp, policy: WorkspacePolicy) -> None:
    await app.services.policy.change(ADMIN, policy, is_admin=_yes)


# --- who may change the policy ----------------------------------------------------------------


async def test_a_non_admin_cannot_change_the_policy_even_with_a_forged_payload(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """The Edit button and the modal's submission, forged by a member, change nothing."""
    slack.add_user("U0001")  # a member
    async with running_app(engine=engine, slack=slack) as app:
        await app.interactive(block_actions(action_id=ids.HOME_POLICY_ACTION, view={"id": "VH"}))
        opened = await slack.await_for("views.open", lambda c: c.ok)
        answer = await submit_policy(app, "U0001", blocked="client.example")
        policy = await app.services.policy.of(ALICE)
    assert opened.args["view"]["callback_id"] != ids.POLICY_VIEW
    assert "Only this workspace's Slack admins" in json.dumps(opened.args["view"])
    assert answer["response_action"] == "errors"
    assert "Only this workspace's Slack admins" in answer["errors"][ids.POLICY_ALLOWED_BLOCK]
    assert policy == WorkspacePolicy()
    assert await count(engine, WorkspacePolicyRow) == 0 and await records(engine) == []


async def test_an_admin_changes_the_policy_and_a_demoted_one_no_longer_can(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """Admin rights are asked of Slack at every change: never cached."""
    slack.add_user("UADMIN", is_admin=True)
    async with running_app(engine=engine, slack=slack) as app:
        await app.interactive(
            block_actions(action_id=ids.HOME_POLICY_ACTION, view={"id": "VH"}, user_id="UADMIN")
        )
        opened = await slack.await_for("views.open", lambda c: c.ok)
        assert opened.args["view"]["callback_id"] == ids.POLICY_VIEW
        answer = await submit_policy(
            app,
            "UADMIN",
            allowed="corp.example\n*.Corp.Example",
            blocked="*.пример.рф",
            max_recipients="5",
            hourly_cap="10",
            audit_channel="C0AUDIT",
        )
        assert answer == {}
        saved = await app.services.policy.of(ADMIN)
        slack.add_user("UADMIN")  # demoted in Slack
        refused = await submit_policy(app, "UADMIN", blocked="")
        after = await app.services.policy.of(ADMIN)
    assert saved.allowed_domains == ("corp.example", "*.corp.example")
    assert saved.blocked_domains == ("*.xn--e1afmkfd.xn--p1ai",)
    assert (saved.max_recipients, saved.hourly_cap, saved.audit_channel) == (5, 10, "C0AUDIT")
    assert refused["response_action"] == "errors" and after == saved
    logged = await records(engine)
    assert [(r.kind, r.actor, r.outcome) for r in logged] == [("policy", "UADMIN", "changed")]
    assert logged[0].detail is not None
    assert logged[0].detail["after"]["blocked_domains"] == ["*.xn--e1afmkfd.xn--p1ai"]


@pytest.mark.parametrize(
    ("values", "block", "expected"),
    [
        ({"allowed": "corp.example, not a domain"}, ids.POLICY_ALLOWED_BLOCK, "Not a domain: not"),
        ({"blocked": "*.*.example"}, ids.POLICY_BLOCKED_BLOCK, "*.*.example"),
        ({"max_recipients": "51"}, ids.POLICY_MAX_RECIPIENTS_BLOCK, "from 1 to 50"),
        ({"hourly_cap": "0"}, ids.POLICY_HOURLY_CAP_BLOCK, "from 1 to 200"),
        ({"confirm": True}, ids.POLICY_CONFIRM_BLOCK, "List the allowed domains first"),
    ],
)
async def test_an_invalid_policy_gets_inline_errors(
    engine: AsyncEngine, slack: FakeSlack, values: dict[str, Any], block: str, expected: str
) -> None:
    slack.add_user("UADMIN", is_admin=True)
    async with running_app(engine=engine, slack=slack) as app:
        answer = await submit_policy(app, "UADMIN", **values)
    assert answer["response_action"] == "errors"
    assert expected in answer["errors"][block]
    assert await count(engine, WorkspacePolicyRow) == 0


def test_the_policy_modal_never_offers_a_value_above_the_instances_cap() -> None:
    """A cap saved before the operator lowered B24MAIL_HOURLY_CAP would make Slack refuse the
    modal (initial_value above max_value)."""
    view = policy_modal(
        Texts("en"),
        WorkspacePolicy(hourly_cap=150, max_recipients=40),
        instance_max_recipients=30,
        instance_hourly_cap=100,
    )
    elements = {b.get("block_id"): b.get("element", {}) for b in view["blocks"]}
    assert elements[ids.POLICY_HOURLY_CAP_BLOCK]["initial_value"] == "100"
    assert elements[ids.POLICY_MAX_RECIPIENTS_BLOCK]["initial_value"] == "30"


# --- enforcement on submission -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "values", "block", "expected"),
    [
        (
            WorkspacePolicy(blocked_domains=("*.rival.example",)),
            {"cc": "Eve <eve@mail.rival.example>"},
            ids.CC_BLOCK,
            "eve@mail.rival.example",
        ),
        (
            WorkspacePolicy(blocked_domains=(normalize_domain("пример.рф"),)),
            {"to": "ivan@xn--e1afmkfd.xn--p1ai"},
            ids.TO_BLOCK,
            "(пример.рф)",
        ),
        (
            WorkspacePolicy(allowed_domains=("corp.example", "*.client.example")),
            {"to": "bob@eu.client.example, x@elsewhere.example"},
            ids.TO_BLOCK,
            "x@elsewhere.example is outside them",
        ),
        (
            WorkspacePolicy(max_recipients=2),
            {"to": "a@client.example, b@client.example", "bcc": "c@client.example"},
            ids.TO_BLOCK,
            "at most 2 recipients per e-mail; this one has 3",
        ),
    ],
)
async def test_submissions_that_break_the_policy_get_an_inline_error_naming_address_and_rule(
    engine: AsyncEngine,
    slack: FakeSlack,
    portal: FakePortal,
    policy: WorkspacePolicy,
    values: dict[str, Any],
    block: str,
    expected: str,
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await set_policy(app, policy)
        answer = app.json(await app.interactive(submission(compose_values(**values))))
    assert answer["response_action"] == "errors"
    assert expected in answer["errors"][block], answer
    assert await count(engine, OutboxEmail) == 0


async def test_allowed_subdomain_wildcard_and_idn_pass(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await set_policy(
            app,
            WorkspacePolicy(
                allowed_domains=("*.client.example", normalize_domain("пример.рф")),
                blocked_domains=("spam.client.example",),
            ),
        )
        answer = await app.interactive(
            submission(compose_values(to="bob@eu.client.example, Иван <ivan@ПРИМЕР.РФ>"))
        )
    assert app.json(answer) == {}
    assert await count(engine, OutboxEmail) == 1


async def test_the_policys_hourly_cap_is_enforced(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await set_policy(app, WorkspacePolicy(hourly_cap=1))
        first = await app.interactive(submission(compose_values(), view_id="V1"))
        second = app.json(await app.interactive(submission(compose_values(), view_id="V2")))
    assert app.json(first) == {}
    assert "limit of 1 e-mails per hour" in second["errors"][ids.TO_BLOCK]


async def test_outside_addresses_need_the_senders_confirmation(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """The modal pushes a confirm view listing the outside addresses; Send queues it once."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await set_policy(
            app, WorkspacePolicy(allowed_domains=("corp.example",), confirm_outside=True)
        )
        answer = app.json(
            await app.interactive(
                submission(
                    compose_values(to="colleague@corp.example, Bob <bob@client.example>"),
                    view_id="VOUT",
                )
            )
        )
        assert answer["response_action"] == "push"
        confirm = answer["view"]
        shown = json.dumps(confirm, ensure_ascii=False)
        assert "bob@client.example" in shown and "colleague@corp.example" not in shown
        assert await count(engine, OutboxEmail) == 0
        # A confirmation is its sender's only.
        stolen = view_submission(
            callback_id=ids.CONFIRM_OUTSIDE_VIEW,
            values={},
            private_metadata=confirm["private_metadata"],
            user_id="U0002",
        )
        assert app.json(await app.interactive(stolen))["response_action"] == "update"
        confirmed = view_submission(
            callback_id=ids.CONFIRM_OUTSIDE_VIEW,
            values={},
            private_metadata=confirm["private_metadata"],
        )
        assert app.json(await app.interactive(confirmed)) == {"response_action": "clear"}
        again = app.json(await app.interactive(confirmed))
        delivered = await portal.await_delivered(1)
        await final_status(slack, contains="Sent")
    assert again["response_action"] == "update"  # used up: nothing queued twice
    # Bare addresses, the documented form (names stay in Slack).
    assert delivered[0].to == ["colleague@corp.example", "bob@client.example"]
    assert await count(engine, OutboxEmail) == 1


# --- delivery and the audit log ----------------------------------------------------------------


async def test_a_rule_changed_after_queueing_fails_the_email_at_delivery(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values(to="bob@client.example")))
        await set_policy(app, WorkspacePolicy(blocked_domains=("client.example",)))
    async with running_app(engine=engine, slack=slack, worker=True):
        message = await final_status(slack, contains="no longer allows it")
    assert portal.delivered == []
    assert "bob@client.example (client.example)" in json.dumps(message["blocks"])
    logged = [r for r in await records(engine) if r.kind == "email"]
    assert [(r.outcome, r.to_addrs) for r in logged] == [
        ("failed:policy_refused", ["bob@client.example"])
    ]


async def test_every_send_is_audited_without_its_body_and_posted_in_the_audit_channel(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    slack.add_channel("C0AUDIT")
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await set_policy(app, WorkspacePolicy(audit_channel="C0AUDIT"))
        await app.interactive(submission(compose_values(body=BODY_TEXT, bcc="hidden@corp.example")))
        await portal.await_delivered(1)
        await final_status(slack, contains="Sent")
        posted = await slack.await_for_calls(
            "chat.postMessage", 2, lambda c: c.args.get("channel") == "C0AUDIT"
        )
    lines = [str(c.args.get("text")) for c in posted]
    assert "changed the workspace's e-mail policy" in lines[0]
    assert "sent “Quarterly report” from Alice Smith" in lines[1]
    assert "bob@client.example" in lines[1] and "(+1 Bcc)" in lines[1]
    assert "hidden@corp.example" not in lines[1]
    logged = await records(engine)
    email = logged[-1]
    assert (email.kind, email.actor, email.outcome) == ("email", "U0001", "sent")
    assert email.bcc_addrs == ["hidden@corp.example"]
    everything = json.dumps([str(vars(r)) for r in logged] + lines)
    assert "secret numbers" not in everything
    assert await count(engine, AuditPost) == 0


async def test_audit_channel_failures_are_retried_and_never_block_the_send(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A private audit channel b24mail is not in: the e-mail goes anyway; the line is posted
    once the bot is invited."""
    slack.add_channel("G0AUDIT", member=False, is_private=True)
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await set_policy(app, WorkspacePolicy(audit_channel="G0AUDIT"))
        await app.interactive(submission(compose_values()))
        await portal.await_delivered(1)
        await final_status(slack, contains="Sent")
        assert app.worker is not None
        refused = await slack.await_for_calls(
            "chat.postMessage", 2, lambda c: c.args.get("channel") == "G0AUDIT" and not c.ok
        )
        assert refused[0].response.get("error") == "not_in_channel"  # type: ignore[union-attr]
        assert await count(engine, AuditPost) == 2
    slack.add_channel("G0AUDIT", member=True, is_private=True)  # invited
    poster = AuditChannelPoster(
        repository=app.services.audit.repository,
        clients=app.services.slack_clients,
        wakeup=Wakeup(),
        backoff_base=0.01,
        backoff_max=0.02,
    )
    async with create_session_factory(engine).begin() as session:
        for post in await session.scalars(select(AuditPost)):
            post.due_at = utcnow()
    assert await poster.run_once() == 2
    posted = [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == "G0AUDIT"]
    assert [c.ok for c in posted][-2:] == [True, True]
    assert await count(engine, AuditPost) == 0
    assert len(portal.delivered) == 1


async def test_a_line_that_keeps_failing_is_dropped_but_its_record_stays(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        repository = app.services.audit.repository
        await repository.append(
            NewAuditRecord(
                enterprise_id="", team_id="T0001", kind="policy", actor="UADMIN", outcome="changed"
            ),
            post=PostTarget(channel="C0GONE"),
        )
        slack.fail("chat.postMessage", "channel_not_found", times=None)
        poster = AuditChannelPoster(
            repository=repository,
            clients=app.services.slack_clients,
            wakeup=Wakeup(),
            backoff_base=0.001,
            backoff_max=0.001,
            max_attempts=3,
        )
        for _ in range(3):
            await poster.run_once()
            await asyncio.sleep(0.01)
        slack.clear_faults()
    assert await count(engine, AuditPost) == 0
    assert len(await records(engine)) == 1


async def test_retention_prunes_old_records_only(engine: AsyncEngine, slack: FakeSlack) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        repository = app.services.audit.repository
        for days in (400, 366, 10):
            await repository.append(
                NewAuditRecord(
                    enterprise_id="",
                    team_id="T0001",
                    kind="policy",
                    actor="UADMIN",
                    outcome="changed",
                    occurred_at=utcnow() - timedelta(days=days),
                ),
                post=PostTarget(channel="C0AUDIT"),
            )
        assert await app.services.audit.prune() == 2
    kept = await records(engine)
    assert len(kept) == 1 and await count(engine, AuditPost) == 1


async def test_uninstall_removes_the_policy_and_the_audit_log(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        await set_policy(app, WorkspacePolicy(blocked_domains=("x.example",), audit_channel="C1"))
        other = SlackUser(team_id="T0002", user_id="UADMIN")
        await app.services.policy.change(other, WorkspacePolicy(max_recipients=3), is_admin=_yes)
        body = json.dumps(app_uninstalled(team_id="T0001"))
        assert (await app.post_signed(body, content_type="application/json")).status_code == 200
        assert await app.services.policy.of(ADMIN) == WorkspacePolicy()
        assert (await app.services.policy.of(other)).max_recipients == 3
    assert [r.team_id for r in await records(engine)] == ["T0002"]
    assert await count(engine, AuditPost) == 0


# --- per workspace in OAuth mode ---------------------------------------------------------------


async def test_each_workspace_has_its_own_policy_and_uninstall_removes_only_its_own(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Two installed workspaces: one's admin (asked with that workspace's token) blocks a
    domain for it alone; its uninstall removes its policy and audit log, not the other's."""
    slack.add_user("UA", team_id="T0001", is_admin=True)
    slack.add_user("UB", team_id="T0002", is_admin=True)
    async with oauth_app(engine, slack) as app:
        token_a = await install(app, slack, "T0001")
        await install(app, slack, "T0002")
        for who, team, b24 in (("UA", "T0001", 11), ("UB", "T0002", 12)):
            user = SlackUser(team_id=team, user_id=who)
            await link(app, portal, user=user, b24_id=b24)
        answer = app.json(
            await app.interactive(
                view_submission(
                    callback_id=ids.POLICY_VIEW,
                    values=policy_values(blocked="client.example"),
                    user_id="UA",
                    team_id="T0001",
                )
            )
        )
        assert answer == {}
        checks = [c for c in slack.calls_to("users.info") if c.args.get("user") == "UA"]
        assert checks and checks[-1].token == token_a

        def compose_as(user_id: str, team_id: str, view_id: str) -> dict[str, Any]:
            return view_submission(
                callback_id=ids.COMPOSE_VIEW,
                values=compose_values(),
                private_metadata=json.dumps({"channel_id": "C0001"}),
                view_id=view_id,
                user_id=user_id,
                team_id=team_id,
            )

        refused = app.json(await app.interactive(compose_as("UA", "T0001", "VA")))
        allowed = app.json(await app.interactive(compose_as("UB", "T0002", "VB")))
        assert refused["response_action"] == "errors" and allowed == {}
        await app.services.policy.change(
            SlackUser(team_id="T0002", user_id="UB"), WorkspacePolicy(hourly_cap=9), is_admin=_yes
        )
        body = json.dumps(app_uninstalled(team_id="T0001"))
        assert (await app.post_signed(body, content_type="application/json")).status_code == 200
        gone = await app.services.policy.of(SlackUser(team_id="T0001", user_id="UA"))
        kept = await app.services.policy.of(SlackUser(team_id="T0002", user_id="UB"))
    assert gone == WorkspacePolicy() and kept.hourly_cap == 9
    assert {r.team_id for r in await records(engine)} == {"T0002"}
