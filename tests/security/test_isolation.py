"""One user can never use, see or remove another user's link or e-mails.

Users are keyed by (enterprise, team, user): the same user id in another workspace, in another
workspace of the same Enterprise Grid org, or in another org, is someone else.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.mail.compose import ValidEmail
from bot.slack import ids
from bot.store.models import OutboxEmail
from bot.store.outbox import OutboxStatus
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions
from tests.security.support import compose_payload, count_rows, link
from tests.support.app import RunningApp, running_app

OWNER = SlackUser(enterprise_id="E0001", team_id="T0001", user_id="U0001")
INTRUDERS = [
    SlackUser(enterprise_id="E0001", team_id="T0001", user_id="U0002"),  # same workspace
    SlackUser(enterprise_id="E0001", team_id="T0002", user_id="U0001"),  # same org, other team
    SlackUser(enterprise_id="E0002", team_id="T0001", user_id="U0001"),  # other org
    SlackUser(enterprise_id="", team_id="T0001", user_id="U0001"),  # no org
    SlackUser(enterprise_id="", team_id="T0002", user_id="U0002"),  # another workspace
]
OWNER_MARKS = ("alice@corp.example", "Secret plans", "bob@client.example")


def who(user: SlackUser) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "team_id": user.team_id,
        "enterprise_id": user.enterprise_id or None,
    }


async def failed_email(app: RunningApp, user: SlackUser) -> OutboxEmail:
    """An e-mail of `user` that failed for good, as the worker leaves it (no worker needed)."""
    email = ValidEmail(
        sender="Alice <alice@corp.example>",
        to=["bob@client.example"],
        cc=[],
        bcc=["carol@client.example"],
        subject="Secret plans",
        body_html="<p>x</p>",
        body_source=None,
    )
    row, _created = await app.services.sending.submit(
        user, email, submission_key=f"V{uuid.uuid4().hex}:h", result_channel="C0001"
    )
    claimed = await app.services.outbox.claim_due(owner="t", lease=timedelta(minutes=1), limit=5)
    assert [c.id for c in claimed] == [row.id]
    assert await app.services.outbox.mark_failed(row.id, owner="t", code="send_failed", detail=None)
    return row


async def test_other_identities_never_see_use_or_remove_a_link(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """status, history, compose, send and disconnect by anyone else find no link and touch none."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal, OWNER)
        await failed_email(app, OWNER)
        for intruder in INTRUDERS:
            answers = [
                app.json(await app.command(sub, **who(intruder)))
                for sub in ("status", "history", "send bob@client.example", "disconnect")
            ]
            submitted = app.json(await app.interactive(compose_payload(**who(intruder))))
            shown = json.dumps([*answers, submitted])
            assert "not linked to Bitrix24 yet" in shown, intruder
            assert "have not sent any e-mail" in shown, intruder
            assert "Link your Bitrix24 mailbox first" in shown, intruder
            assert "nothing to forget" in shown, intruder
            assert (
                "You have not linked your Bitrix24 mailbox" in submitted["errors"][ids.FROM_BLOCK]
            )
            assert not any(mark in shown for mark in OWNER_MARKS), intruder
        rows = await count_rows(engine)
        owner_status = json.dumps(app.json(await app.command("status", **who(OWNER))))
        owner_history = json.dumps(app.json(await app.command("history", **who(OWNER))))
    assert slack.calls_to("views.open") == []
    assert rows["links"] == 1 and rows["outbox"] == 1
    assert "alice@corp.example" in owner_status
    assert "Secret plans" in owner_history


@pytest.mark.parametrize("action", [ids.RETRY_ACTION, ids.EDIT_RESEND_ACTION])
async def test_buttons_on_someone_elses_email_are_refused_and_reveal_nothing(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, action: str
) -> None:
    """Retry / Edit and resend by anyone but the sender: the same refusal as for no e-mail at all."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal, OWNER)
        row = await failed_email(app, OWNER)
        before = await app.services.outbox.get(row.id)

        async def press(user: SlackUser, value: str, name: str) -> None:
            payload = block_actions(
                action_id=action,
                value=value,
                trigger_id=f"trigger-{name}",
                response_url=slack.response_url(name),
                **who(user),
            )
            assert (await app.interactive(payload)).text == ""

        async def refusal(name: str) -> dict[str, Any]:
            return (await slack.await_for_response(lambda r: f"/{name}/" in r.url)).json

        await press(INTRUDERS[0], str(uuid.uuid4()), "nowhere")
        nowhere = await refusal("nowhere")
        refusals = []
        for i, intruder in enumerate(INTRUDERS):
            await press(intruder, row.id, f"intruder{i}")
            refusals.append(await refusal(f"intruder{i}"))
        after = await app.services.outbox.get(row.id)
        # The sender's own click works: the refusals were about who clicked.
        await press(OWNER, row.id, "owner")
        if action == ids.EDIT_RESEND_ACTION:
            await slack.await_for(
                "views.open", lambda c: c.args.get("trigger_id") == "trigger-owner"
            )
        owned = await app.services.outbox.get(row.id)
    assert "cannot find that e-mail" in json.dumps(nowhere)
    assert all(r == nowhere for r in refusals)
    assert not any(mark in json.dumps(refusals) for mark in (*OWNER_MARKS, "carol"))
    opened = [c.args.get("trigger_id") for c in slack.calls_to("views.open")]
    assert opened == (["trigger-owner"] if action == ids.EDIT_RESEND_ACTION else [])
    assert slack.responses_to("owner") == []
    assert before is not None and after is not None and owned is not None
    assert (after.status, after.attempts, after.state_version) == (
        before.status,
        before.attempts,
        before.state_version,
    )
    assert owned.status == (
        OutboxStatus.QUEUED if action == ids.RETRY_ACTION else OutboxStatus.FAILED
    )


async def test_org_wide_install_without_a_team_goes_by_the_users_home_workspace(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Org-wide installs send `team: null`: the user's own team_id decides, not the org."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal, OWNER)
        row = await failed_email(app, OWNER)

        def org_click(home_team: str, name: str) -> dict[str, Any]:
            payload = block_actions(
                action_id=ids.RETRY_ACTION,
                value=row.id,
                user_id=OWNER.user_id,
                team_id=home_team,
                enterprise_id=OWNER.enterprise_id,
                response_url=slack.response_url(name),
            )
            payload["team"] = None
            payload["is_enterprise_install"] = True
            return payload

        await app.interactive(org_click("T0002", "other-team"))
        refusal = await slack.await_for_response(lambda r: "/other-team/" in r.url)
        after_intruder = await app.services.outbox.get(row.id)
        await app.interactive(org_click("T0001", "home-team"))
        after_owner = await app.services.outbox.get(row.id)
    assert "cannot find that e-mail" in json.dumps(refusal.json)
    assert after_intruder is not None and after_intruder.status == OutboxStatus.FAILED
    assert after_owner is not None and after_owner.status == OutboxStatus.QUEUED
    assert slack.responses_to("home-team") == []
