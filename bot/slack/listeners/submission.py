"""The submission of the compose and reply modals: one flow, from the form to the queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.compose import ComposeInput, ValidEmail, validate_compose
from bot.mail.errors import SendingCapReached
from bot.slack import ids
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import inline_errors
from bot.slack.richtext import collect_mentions, email_body
from bot.slack.view_state import (
    rich_text_value,
    selected_conversation,
    selected_value,
    text_value,
)
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services
    from bot.store.models import Link


async def submit_email(
    *,
    services: Services,
    ack: AsyncAck,
    client: AsyncWebClient,
    t: Texts,
    user: SlackUser,
    view: Mapping[str, Any],
    origin: ViewOrigin,
    blocks: Mapping[str, str],
    reply_to_message_id: int | None,
    refused: Mapping[str, str] | None = None,
) -> None:
    """Check that the user is linked, validate the form and the cap, queue the e-mail; every
    problem goes back inline. `refused`: the caller's own inline errors (the reply's target),
    shown once the user is known to be linked."""
    link = await services.links.get(user)
    if link is None:
        await ack(response_action="errors", errors={blocks["from"]: t("error.not_linked")})
        return
    if refused:
        await ack(response_action="errors", errors=dict(refused))
        return
    result = await _checked_email(
        services=services, client=client, t=t, user=user, link=link, view=view, blocks=blocks
    )
    if not isinstance(result, ValidEmail):
        await ack(response_action="errors", errors=result)
        return
    await _queue_email(
        services=services,
        ack=ack,
        view=view,
        user=user,
        email=result,
        origin=origin,
        reply_to_message_id=reply_to_message_id,
    )


async def _checked_email(
    *,
    services: Services,
    client: AsyncWebClient,
    t: Texts,
    user: SlackUser,
    link: Link,
    view: Mapping[str, Any],
    blocks: Mapping[str, str],
) -> ValidEmail | dict[str, str]:
    """The e-mail ready to queue, or the inline errors ({block_id: message}) to ack with."""
    body = rich_text_value(view, blocks["body"], ids.BODY_ACTION)
    mentioned, _channels = collect_mentions(body) if body else (set(), set())
    resolved = await services.user_names.resolve(client, mentioned) if mentioned else {}
    form = ComposeInput(
        sender=selected_value(view, blocks["from"], ids.FROM_ACTION),
        to=text_value(view, blocks["to"], ids.ADDRESSES_ACTION),
        cc=text_value(view, blocks["cc"], ids.ADDRESSES_ACTION),
        bcc=text_value(view, blocks["bcc"], ids.ADDRESSES_ACTION),
        subject=text_value(view, blocks["subject"], ids.SUBJECT_ACTION),
        body=email_body(body, user_name=resolved.get),
    )
    result = validate_compose(
        form,
        senders=link.senders,
        max_recipients=services.settings.b24mail_max_recipients,
    )
    if isinstance(result, list):
        return inline_errors(t, result, blocks)
    try:
        await services.sending.check_cap(user)
    except SendingCapReached as exc:
        return {blocks["to"]: t.error(exc.code, cap=services.sending.hourly_cap)}
    return result


async def _queue_email(
    *,
    services: Services,
    ack: AsyncAck,
    view: Mapping[str, Any],
    user: SlackUser,
    email: ValidEmail,
    origin: ViewOrigin,
    reply_to_message_id: int | None,
) -> None:
    """Queue a checked e-mail, close the modal, and let the status message be posted.

    The result goes where the user chose ("Post result to"), else where they acted, else to
    their DM; in the thread they acted in when it goes back there.
    """
    channel = (
        selected_conversation(view, ids.POST_TO_BLOCK, ids.POST_TO_ACTION)
        or origin.channel_id
        or user.user_id
    )
    await services.sending.submit(
        user,
        email,
        submission_key=f"{view.get('id')}:{view.get('hash')}",
        result_channel=channel,
        result_thread_ts=origin.thread_ts if channel == origin.channel_id else None,
        reply_to_message_id=reply_to_message_id,
    )
    await ack()
    services.notify_wakeup.notify()
