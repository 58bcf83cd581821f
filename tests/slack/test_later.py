"""Undo and Send later through the real endpoint, the fake Slack and the fake portal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack import ids
from bot.store.base import utcnow
from bot.store.outbox import OutboxStatus
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions
from tests.slack.test_compose import ALICE, compose_values, final_status, link, submission
from tests.support.app import running_app


def later(values: dict[str, Any], at: float | None) -> dict[str, Any]:
    """The form with the Send at picker set to Unix time `at` (as Slack sends it)."""
    values[ids.SEND_AT_BLOCK] = {
        ids.SEND_AT_ACTION: {"type": "datetimepicker", "selected_date_time": at}
    }
    return values


def undos(outcome: str) -> float:
    return REGISTRY.get_sample_value("b24mail_undos_total", {"outcome": outcome}) or 0.0


def scheduled_sends() -> float:
    return REGISTRY.get_sample_value("b24mail_scheduled_sends_total", {"kind": "send"}) or 0.0


def click(action_id: str, value: str, slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return block_actions(
        action_id=action_id, value=value, response_url=slack.response_url(), **extra
    )


async def test_undo_at_once_cancels_and_offers_edit(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """ "Sending in 30 s…" with Undo; Undo → never sent, "Cancelled" with Edit, which reopens the
    modal filled in."""
    before = undos("cancelled")
    async with running_app(engine=engine, slack=slack, worker=True, b24mail_undo_seconds=30) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values(subject="Oops")))
        waiting = await final_status(slack, contains="Sending in 30 s")
        row = (await app.services.sending.history(ALICE))[0]
        assert ids.UNDO_ACTION in json.dumps(waiting["blocks"])
        await app.interactive(click(ids.UNDO_ACTION, row.id, slack, message=waiting))
        cancelled = await final_status(slack, contains="Cancelled")
        assert ids.EDIT_RESEND_ACTION in json.dumps(cancelled["blocks"])
        await app.interactive(
            click(ids.EDIT_RESEND_ACTION, row.id, slack, message=cancelled, trigger_id="t-edit")
        )
        opened = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-edit")
        history = json.dumps(app.json(await app.command("history")))
        await asyncio.sleep(0.3)  # a wrongly sent e-mail would reach the portal by now
    blocks = {b.get("block_id"): b for b in opened.args["view"]["blocks"]}
    assert blocks[ids.SUBJECT_BLOCK]["element"]["initial_value"] == "Oops"
    assert portal.delivered == []
    assert (await app.services.outbox.get(row.id)).status == OutboxStatus.CANCELLED  # type: ignore[union-attr]
    assert "cancelled, not sent" in history
    assert undos("cancelled") == before + 1
    assert (cancelled["channel"], cancelled["ts"]) == (waiting["channel"], waiting["ts"])


async def test_undo_after_the_window_is_too_late_and_the_email_is_sent_once(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    before = undos("too_late")
    async with running_app(
        engine=engine, slack=slack, worker=True, b24mail_undo_seconds=0.2
    ) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values()))
        await portal.await_delivered(1)
        row = (await app.services.sending.history(ALICE))[0]
        url = slack.response_url("late")
        await app.interactive(
            block_actions(action_id=ids.UNDO_ACTION, value=row.id, response_url=url)
        )
        refusal = await slack.await_for_response(lambda r: r.url == url)
        await final_status(slack, contains="Sent")
    assert "Too late to undo" in json.dumps(refusal.json)
    assert len(portal.delivered) == 1
    assert undos("too_late") == before + 1


async def test_without_an_undo_window_there_is_no_undo_button(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """B24MAIL_UNDO_SECONDS=0: the e-mail leaves at once; no status ever offers Undo."""
    async with running_app(engine=engine, slack=slack, worker=True, b24mail_undo_seconds=0) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values()))
        message = await final_status(slack, contains="Sent")
        shown = [
            json.dumps(m.get("blocks"))
            for m in slack.message_history(message["channel"], message["ts"])
        ]
    assert shown and not any(ids.UNDO_ACTION in m for m in shown)


async def test_someone_elses_undo_is_refused(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with running_app(engine=engine, slack=slack, b24mail_undo_seconds=30) as app:
        await link(app, portal)
        await app.interactive(submission(compose_values()))
        row = (await app.services.sending.history(ALICE))[0]
        url = slack.response_url("intruder")
        await app.interactive(
            block_actions(
                action_id=ids.UNDO_ACTION, value=row.id, user_id="UMALLORY", response_url=url
            )
        )
        refusal = await slack.await_for_response(lambda r: r.url == url)
    assert "cannot find that e-mail" in json.dumps(refusal.json)
    assert (await app.services.outbox.get(row.id)).status == OutboxStatus.QUEUED  # type: ignore[union-attr]


async def test_a_time_in_the_past_or_over_a_year_ahead_is_an_inline_error(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    now = utcnow().timestamp()
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        past = app.json(
            await app.interactive(submission(later(compose_values(), now - 3600), view_id="V1"))
        )
        far = app.json(
            await app.interactive(
                submission(later(compose_values(), now + 367 * 86400), view_id="V2")
            )
        )
        assert await app.services.sending.history(ALICE) == []
    assert "already passed" in past["errors"][ids.SEND_AT_BLOCK]
    assert "more than a year ahead" in far["errors"][ids.SEND_AT_BLOCK]


async def test_scheduled_email_waits_survives_a_restart_and_goes_out_once(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Queued for 2 s ahead by an app without a worker; a new process with a worker, started
    later, sends it once and never before its time. Listed in `/b24mail scheduled` meanwhile."""
    due = int(utcnow().timestamp()) + 2
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        answer = await app.interactive(submission(later(compose_values(subject="Monday"), due)))
        assert answer.text == ""
        listed = json.dumps(app.json(await app.command("scheduled")))
        history = json.dumps(app.json(await app.command("history")))
        keys = app.settings.b24mail_secret_keys
    assert keys is not None
    assert "Monday" in listed
    assert ids.SEND_NOW_ACTION in listed and ids.CANCEL_SCHEDULED_ACTION in listed
    assert "scheduled" in history
    restarted = running_app(
        engine=engine, slack=slack, worker=True, b24mail_secret_keys=keys.get_secret_value()
    )
    async with restarted:
        delivered = await portal.await_delivered(1, timeout=30)
        await final_status(slack, contains="Sent")
        await asyncio.sleep(0.5)
    assert len(portal.delivered) == 1
    assert delivered[0].at >= due
    assert delivered[0].subject == "Monday"


async def test_scheduled_email_send_now_and_cancel_from_the_list(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    ahead = int(utcnow().timestamp()) + 3600
    scheduled_before = scheduled_sends()
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await app.interactive(
            submission(later(compose_values(subject="Now please"), ahead), view_id="V1")
        )
        await app.interactive(
            submission(later(compose_values(subject="Never mind"), ahead), view_id="V2")
        )
        scheduled = await final_status(slack, contains="Scheduled")
        assert ids.SEND_NOW_ACTION in json.dumps(scheduled["blocks"])
        rows = {r.subject: r for r in await app.services.sending.scheduled(ALICE)}
        await app.interactive(click(ids.SEND_NOW_ACTION, rows["Now please"].id, slack))
        delivered = await portal.await_delivered(1)
        await app.interactive(click(ids.CANCEL_SCHEDULED_ACTION, rows["Never mind"].id, slack))
        await final_status(slack, contains="Cancelled")
        assert await app.services.sending.scheduled(ALICE) == []
        await asyncio.sleep(0.3)
    assert [d.subject for d in delivered] == ["Now please"]
    assert scheduled_sends() == scheduled_before + 2
    assert len(portal.delivered) == 1


async def test_edit_of_a_scheduled_email_cancels_it_and_keeps_its_time(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    ahead = int(utcnow().timestamp()) + 7200
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await app.interactive(submission(later(compose_values(subject="Later"), ahead)))
        row = (await app.services.sending.scheduled(ALICE))[0]
        await app.interactive(click(ids.EDIT_SCHEDULED_ACTION, row.id, slack, trigger_id="t-e"))
        opened = await slack.await_for("views.open", lambda c: c.args.get("trigger_id") == "t-e")
        stored = await app.services.outbox.get(row.id)
    blocks = {b.get("block_id"): b for b in opened.args["view"]["blocks"]}
    assert blocks[ids.SEND_AT_BLOCK]["element"]["initial_date_time"] == ahead
    assert stored is not None and stored.status == OutboxStatus.CANCELLED


async def test_send_at_survives_the_policys_confirm_step(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """An e-mail to an outside domain, held for confirmation, is still scheduled once confirmed."""
    from bot.mail.policy import WorkspacePolicy
    from tests.fakes.slack_requests import view_submission
    from tests.slack.test_policy import set_policy

    ahead = int(utcnow().timestamp()) + 3600
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        await set_policy(
            app, WorkspacePolicy(allowed_domains=("corp.example",), confirm_outside=True)
        )
        answer = app.json(
            await app.interactive(submission(later(compose_values(to="bob@client.example"), ahead)))
        )
        assert answer["response_action"] == "push"
        confirmed = view_submission(
            callback_id=ids.CONFIRM_OUTSIDE_VIEW,
            values={},
            private_metadata=answer["view"]["private_metadata"],
        )
        assert app.json(await app.interactive(confirmed)) == {"response_action": "clear"}
        (row,) = await app.services.sending.scheduled(ALICE)
    assert row.send_at is not None and int(row.send_at.timestamp()) == ahead
