"""Writing an e-mail: the compose modal, its submission, history, Retry and Edit and resend."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.addresses import parse_address_list
from bot.mail.compose import FieldProblem
from bot.mail.errors import MailError
from bot.slack import ids
from bot.slack.drafting import resend_modal
from bot.slack.errors import explain
from bot.slack.listeners.command_call import CommandCall
from bot.slack.listeners.submission import submit_email
from bot.slack.listeners.writing import new_compose_view
from bot.slack.metadata import ViewOrigin
from bot.slack.render.connect import connect_prompt
from bot.slack.render.reply import field_block_ids
from bot.slack.render.status import history_blocks
from bot.slack.render.writing import draft_offer_blocks, draft_summary
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
    if not call.parsed.argument:
        # An e-mail left unfinished: offer it before starting another one.
        last = await services.writing.last_draft(call.user)
        if last is not None:
            draft, content = last
            await call.ack(
                text=call.t("drafts.offer", summary=draft_summary(call.t, content)),
                blocks=draft_offer_blocks(call.t, draft.id, content),
            )
            return
    view = await new_compose_view(
        services,
        call.t,
        call.user,
        link.senders,
        link.last_sender,
        call.origin.channel_id,
        to=_addresses_argument(call.parsed.argument),
    )
    await call.ack()
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
        # A template fills the subject and body under new block ids (see on_template_chosen).
        blocks=field_block_ids(view),
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
    view = resend_modal(t, email, senders=link.senders)
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


__all__ = [
    "FieldProblem",
    "on_edit",
    "on_retry",
    "on_submit",
    "open_compose",
    "register",
    "show_history",
]
