"""The Home tab and the workspace policy: app_home_opened, the Home tab's buttons, the policy
modal, and the confirm step for e-mails to addresses outside the allowed domains.

Admin rights are asked of Slack (users.info) each time they matter: when the Home tab is drawn
(to show the policy section or not) and again when a change is submitted, whatever the payload
says. A non-admin's forged action or submission changes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.compose import FieldProblem
from bot.mail.errors import MailError, SendingCapReached
from bot.mail.policy import NotAnAdmin, policy_from_form
from bot.slack import ids
from bot.slack.admins import is_workspace_admin
from bot.slack.blocks import modal, section
from bot.slack.errors import explain
from bot.slack.home_tab import refresh_home
from bot.slack.listeners.writing import new_compose_view
from bot.slack.middleware import USER_IN_CONTEXT
from bot.slack.render.home import language_choice
from bot.slack.render.policy import (
    confirm_gone_view,
    policy_form,
    policy_modal,
    refusal_text,
)
from bot.slack.slack_calls import open_view_or_explain, tell
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)

# The events these listeners take; manifest.yml subscribes to them (tests/test_manifest.py).
EVENTS = ("app_home_opened",)


POLICY_FIELD_BLOCKS = {
    "allowed": ids.POLICY_ALLOWED_BLOCK,
    "blocked": ids.POLICY_BLOCKED_BLOCK,
    "max_recipients": ids.POLICY_MAX_RECIPIENTS_BLOCK,
    "hourly_cap": ids.POLICY_HOURLY_CAP_BLOCK,
    "confirm": ids.POLICY_CONFIRM_BLOCK,
}


async def on_app_home_opened(
    ack: AsyncAck,
    event: dict[str, Any],
    context: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    await ack()
    user = context.get(USER_IN_CONTEXT)
    if event.get("tab", "home") != "home" or not isinstance(user, SlackUser):
        return  # the Messages tab (or no user): nothing of ours to draw
    # Slack waits 3 s for the response, and users.info + views.publish may take longer.
    refresh_home(services, client, user)


async def on_write(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """ "Write an e-mail": the compose modal; the result goes to the user's DM with b24mail."""
    await ack()
    link = await services.links.get(user)
    if link is None:
        refresh_home(services, client, user)
        return
    # With the sender's signature and the user's templates, as from /b24mail.
    view = await new_compose_view(services, t, user, link.senders, link.last_sender, None)
    services.background.spawn(
        open_view_or_explain(
            client=client, trigger_id=body["trigger_id"], view=view, respond=None, t=t
        ),
        name="open-compose-from-home",
    )


async def on_disconnect(
    ack: AsyncAck, client: AsyncWebClient, user: SlackUser, services: Services
) -> None:
    await ack()
    await services.links.disconnect(user)
    log.info("user=%s disconnected from the Home tab", user.user_id)
    refresh_home(services, client, user)


async def on_language(
    ack: AsyncAck,
    action: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    services: Services,
) -> None:
    await ack()
    selected = action.get("selected_option") or {}
    await services.language.choose(user, language_choice(selected.get("value")))
    refresh_home(services, client, user)


async def on_notify_on(
    ack: AsyncAck, client: AsyncWebClient, user: SlackUser, t: Texts, services: Services
) -> None:
    """Notifications on, to the user's DM, with the search words they had (a paused
    subscription starts again); the same use case as `/b24mail notify on`."""
    await ack()
    current = await services.notify.status(user)
    words = current.subscription.search if current is not None else None
    try:
        await services.notify.turn_on(user, words=words, channel_id=None)
    except MailError as exc:
        services.background.spawn(
            tell(client, user.user_id, None, explain(t, exc)), name="home-notify-refused"
        )
    else:
        services.poll_wakeup.notify()
    refresh_home(services, client, user)


async def on_notify_off(
    ack: AsyncAck, client: AsyncWebClient, user: SlackUser, services: Services
) -> None:
    await ack()
    await services.notify.turn_off(user)
    refresh_home(services, client, user)


async def on_edit_policy(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    """Open the policy modal for an admin; anyone else is told, and nothing opens for editing."""
    await ack()
    services.background.spawn(
        _open_policy_modal(services, client, user, t, body["trigger_id"]),
        name="open-policy-modal",
    )


async def _open_policy_modal(
    services: Services, client: AsyncWebClient, user: SlackUser, t: Texts, trigger_id: str
) -> None:
    if not await is_workspace_admin(client, user):
        log.warning("policy modal refused: user=%s team=%s is not an admin", *_who(user))
        view = _message_modal(t, t.error(NotAnAdmin.code))
    else:
        view = policy_modal(
            t,
            await services.policy.of(user),
            instance_max_recipients=services.settings.b24mail_max_recipients,
            instance_hourly_cap=services.settings.b24mail_hourly_cap,
        )
    await open_view_or_explain(client=client, trigger_id=trigger_id, view=view, respond=None, t=t)


async def on_policy_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    form = policy_form(view)
    result = policy_from_form(
        **form,
        instance_max_recipients=services.settings.b24mail_max_recipients,
        instance_hourly_cap=services.settings.b24mail_hourly_cap,
        language=t.locale,
    )
    if isinstance(result, list):
        await ack(response_action="errors", errors=_policy_errors(t, result))
        return

    async def admin_now(actor: SlackUser) -> bool:
        return await is_workspace_admin(client, actor)

    try:
        await services.policy.change(user, result, is_admin=admin_now)
    except NotAnAdmin as exc:
        await ack(response_action="errors", errors={ids.POLICY_ALLOWED_BLOCK: t.error(exc.code)})
        return
    await ack()
    refresh_home(services, client, user)


async def on_confirm_submit(
    ack: AsyncAck, view: dict[str, Any], user: SlackUser, t: Texts, services: Services
) -> None:
    """ "Send" on the confirm view: queue the held e-mail, if the rules still allow it."""
    held = await services.pending_sends.take(str(view.get("private_metadata") or ""), user)
    if held is None:
        await ack(response_action="update", view=confirm_gone_view(t))
        return
    email, target = held
    policy = await services.policy.of(user)
    verdict = services.policy.check(policy, [*email.to, *email.cc, *email.bcc])
    if verdict.refusal is not None:
        await ack(
            response_action="update", view=_message_modal(t, refusal_text(t, verdict.refusal))
        )
        return
    try:
        await services.sending.submit(
            user,
            email,
            submission_key=target.submission_key,
            result_channel=target.result_channel,
            result_thread_ts=target.result_thread_ts,
            reply_to_message_id=target.reply_to_message_id,
            forward_message_id=target.forward_message_id,
            hourly_cap=services.policy.hourly_cap(policy),
            send_at=target.send_time,
        )
    except SendingCapReached as exc:
        await ack(response_action="update", view=_message_modal(t, t.error(exc.code, cap=exc.cap)))
        return
    await ack(response_action="clear")
    services.notify_wakeup.notify()
    await services.writing.discard(user, target.draft_id)


def _message_modal(t: Texts, text: str) -> dict[str, Any]:
    return modal(
        callback_id=ids.CONFIRM_OUTSIDE_VIEW,
        title=t("modal.error_title"),
        close=t("modal.close"),
        blocks=[section(text)],
    )


def _policy_errors(t: Texts, problems: list[FieldProblem]) -> dict[str, str]:
    return {
        POLICY_FIELD_BLOCKS[p.field]: t(f"policy.{p.code}", **p.params)[:2000] for p in problems
    }


def _who(user: SlackUser) -> tuple[str, str]:
    return user.user_id, user.team_id


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(on_app_home_opened)
    app.action(ids.HOME_WRITE_ACTION)(on_write)
    app.action(ids.HOME_DISCONNECT_ACTION)(on_disconnect)
    app.action(ids.HOME_LANGUAGE_ACTION)(on_language)
    app.action(ids.HOME_POLICY_ACTION)(on_edit_policy)
    app.action(ids.HOME_NOTIFY_ON_ACTION)(on_notify_on)
    app.action(ids.HOME_NOTIFY_OFF_ACTION)(on_notify_off)
    app.view_submission(ids.POLICY_VIEW)(on_policy_submit)
    app.view_submission(ids.CONFIRM_OUTSIDE_VIEW)(on_confirm_submit)
