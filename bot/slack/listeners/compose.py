"""Writing an e-mail: the compose modal, its submission, history, Retry and Edit and resend."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.addresses import parse_address_list
from bot.mail.compose import FieldProblem
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.errors import explain
from bot.slack.listeners.command_call import CommandCall
from bot.slack.listeners.submission import submit_email
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import BLOCK_OF_FIELD, Prefill, compose_modal
from bot.slack.render.connect import connect_prompt
from bot.slack.render.status import history_blocks
from bot.slack.slack_calls import open_view_or_explain
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services
    from bot.store.models import Link

log = logging.getLogger(__name__)


async def open_compose(call: CommandCall) -> None:
    """`/b24mail` or `/b24mail send [addresses]`: the modal opens right after the ack."""
    services = call.services
    link = await services.links.get(call.user)
    if link is None:
        await call.ack(text=call.t("connect.prompt"), blocks=connect_prompt(call.t))
        return
    await call.ack()
    prefill = Prefill(
        to=_addresses_argument(call.parsed.argument),
        sender_email=_last_sender_email(link),
        post_to=call.origin.channel_id,
    )
    view = compose_modal(
        call.t, senders=link.senders, prefill=prefill, private_metadata=call.origin.encode()
    )
    services.background.spawn(
        _open_then_refresh(
            services, call.client, call.trigger_id, view, call.respond, call.t, call.user, link
        ),
        name="open-compose-modal",
    )


async def show_history(call: CommandCall) -> None:
    emails = await call.services.sending.history(call.user, limit=10)
    await call.ack(text=call.t("history.title"), blocks=history_blocks(call.t, emails))


async def _open_then_refresh(
    services: Services,
    client: AsyncWebClient,
    trigger_id: str,
    view: dict[str, Any],
    respond: AsyncRespond,
    t: Texts,
    user: SlackUser,
    link: Link,
) -> None:
    await open_view_or_explain(
        client=client, trigger_id=trigger_id, view=view, respond=respond, t=t
    )
    if services.links.senders_stale(link):
        try:
            await services.links.refresh_senders(user)
        except Exception as exc:  # noqa: BLE001 - the cached list keeps working; log why
            log.warning(
                "sender refresh failed user=%s: %s",
                user.user_id,
                getattr(exc, "code", type(exc).__name__),
            )


async def on_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    origin = ViewOrigin.decode(view.get("private_metadata"))
    await submit_email(
        services=services,
        ack=ack,
        client=client,
        t=t,
        user=user,
        view=view,
        origin=origin,
        blocks=BLOCK_OF_FIELD,
        reply_to_message_id=origin.reply_to_message_id,
    )


async def on_retry(
    ack: AsyncAck,
    action: dict[str, Any],
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    try:
        await services.sending.retry(str(action.get("value", "")), user)
    except MailError as exc:
        await ack()
        services.background.spawn(
            respond(text=explain(t, exc), response_type="ephemeral", replace_original=False),
            name="retry-refused",
        )
        return
    await ack()
    services.notify_wakeup.notify()


async def on_edit(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    try:
        email = await services.sending.owned(str(action.get("value", "")), user)
        link = await services.links.require(user)
    except MailError as exc:
        services.background.spawn(
            respond(text=explain(t, exc), response_type="ephemeral", replace_original=False),
            name="edit-refused",
        )
        return
    origin = ViewOrigin(
        channel_id=email.result_channel,
        thread_ts=email.result_thread_ts,
        reply_to_message_id=email.reply_to_message_id,
        forward_message_id=email.forward_message_id,
        resend_of=email.id,
    )
    prefill = Prefill(
        sender_email=_email_of(email.sender),
        to=", ".join(email.to_addrs),
        cc=", ".join(email.cc_addrs),
        bcc=", ".join(email.bcc_addrs),
        subject=email.subject,
        body=email.body_source,
        post_to=email.result_channel if email.result_channel[:1] in "CGD" else None,
    )
    view = compose_modal(
        t,
        senders=link.senders,
        prefill=prefill,
        private_metadata=origin.encode(),
        callback_id=_resend_view(email.reply_to_message_id, email.forward_message_id),
    )
    services.background.spawn(
        open_view_or_explain(
            client=client, trigger_id=body["trigger_id"], view=view, respond=respond, t=t
        ),
        name="open-edit-modal",
    )


def register(app: AsyncApp) -> None:
    app.view_submission(ids.COMPOSE_VIEW)(on_submit)
    app.action(ids.RETRY_ACTION)(on_retry)
    app.action(ids.EDIT_RESEND_ACTION)(on_edit)


def _addresses_argument(argument: str) -> str:
    """`/b24mail send <mailto:a@b.c|a@b.c>` arrives with Slack's escaping; keep what parses."""
    if not argument:
        return ""
    parsed = parse_address_list(argument, slack_escaped=True)
    # Invalid tokens stay in the field (new-line separated, since they may hold commas) so the
    # user sees and fixes them instead of losing them.
    kept = [a.formatted() for a in parsed.addresses] + list(parsed.invalid)
    return "\n".join(kept) if parsed.invalid else ", ".join(kept)


def _resend_view(reply_to_message_id: int | None, forward_message_id: int | None) -> str:
    """The modal an e-mail is edited in is the one that sends it as the same kind again."""
    if forward_message_id:
        return ids.FORWARD_VIEW
    return ids.REPLY_VIEW if reply_to_message_id else ids.COMPOSE_VIEW


def _last_sender_email(link: Link) -> str | None:
    return _email_of(link.last_sender) if link.last_sender else None


def _email_of(sender: str) -> str | None:
    parsed = parse_address_list(sender)
    return parsed.addresses[0].email if parsed.addresses else None


__all__ = [
    "FieldProblem",
    "on_edit",
    "on_retry",
    "on_submit",
    "open_compose",
    "register",
    "show_history",
]
