"""The submission of the compose and reply modals: one flow, from the form to the queue.

The workspace's e-mail policy is read once per submission (an admin may have just changed it)
and checked with the form; addresses outside its allowed domains, when it asks, hold the e-mail
for its sender's confirmation (bot/slack/listeners/home.py takes the answer)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.identity import SlackUser
from bot.mail.compose import ComposeInput, ValidEmail, check_send_at, validate_compose
from bot.mail.confirming import QueueTarget
from bot.mail.errors import SendingCapReached
from bot.mail.policy import WorkspacePolicy
from bot.slack import ids
from bot.slack.drafting import selected_datetime
from bot.slack.metadata import ViewOrigin
from bot.slack.render.compose import inline_errors
from bot.slack.render.policy import confirm_outside_view, refusal_text
from bot.slack.richtext import collect_mentions, email_body
from bot.slack.view_state import (
    rich_text_value,
    selected_conversation,
    selected_value,
    text_value,
    with_people,
)
from bot.slack.wording import Texts
from bot.store.base import utcnow

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
    forward_message_id: int | None = None,
    refused: Mapping[str, str] | None = None,
) -> None:
    """Check that the user is linked, validate the form, the workspace's policy and the cap,
    queue the e-mail; every problem goes back inline. `refused`: the caller's own inline errors
    (the reply's target), shown once the user is known to be linked."""
    link = await services.links.get(user)
    if link is None:
        await ack(response_action="errors", errors={blocks["from"]: t("error.not_linked")})
        return
    if refused:
        await ack(response_action="errors", errors=dict(refused))
        return
    policy = await services.policy.of(user)
    result = await _checked_email(
        services=services,
        client=client,
        t=t,
        user=user,
        link=link,
        view=view,
        blocks=blocks,
        policy=policy,
    )
    if isinstance(result, dict):
        await ack(response_action="errors", errors=result)
        return
    email, send_at = result
    await _queue_email(
        services=services,
        ack=ack,
        view=view,
        t=t,
        user=user,
        email=email,
        origin=origin,
        reply_to_message_id=reply_to_message_id,
        policy=policy,
        forward_message_id=forward_message_id,
        send_at=send_at,
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
    policy: WorkspacePolicy,
) -> tuple[ValidEmail, datetime | None] | dict[str, str]:
    """The e-mail ready to queue and its Send at time, or the inline errors
    ({block_id: message}) to ack with."""
    body = rich_text_value(view, blocks["body"], ids.BODY_ACTION)
    mentioned, _channels = collect_mentions(body) if body else (set(), set())
    resolved = await services.user_names.resolve(client, mentioned) if mentioned else {}
    form = ComposeInput(
        sender=selected_value(view, blocks["from"], ids.FROM_ACTION),
        to=with_people(view, blocks["to"], ids.PEOPLE_BLOCKS["to"]),
        cc=with_people(view, blocks["cc"], ids.PEOPLE_BLOCKS["cc"]),
        bcc=with_people(view, blocks["bcc"], ids.PEOPLE_BLOCKS["bcc"]),
        subject=text_value(view, blocks["subject"], ids.SUBJECT_ACTION),
        body=email_body(body, user_name=resolved.get),
    )
    result = validate_compose(
        form,
        senders=link.senders,
        max_recipients=services.settings.b24mail_max_recipients,
    )
    send_at = selected_datetime(view, blocks.get("send_at", ids.SEND_AT_BLOCK), ids.SEND_AT_ACTION)
    late = check_send_at(send_at, now=utcnow())
    problems = (result if isinstance(result, list) else []) + ([late] if late else [])
    if problems or not isinstance(result, ValidEmail):
        return inline_errors(t, problems, blocks)
    verdict = services.policy.check(policy, [*result.to, *result.cc, *result.bcc])
    if verdict.refusal is not None:
        return {
            _block_of(verdict.refusal.address, result, blocks): refusal_text(t, verdict.refusal)
        }
    try:
        await services.sending.check_cap(user, cap=services.policy.hourly_cap(policy))
    except SendingCapReached as exc:
        return {blocks["to"]: t.error(exc.code, cap=exc.cap)}
    return result, send_at


def _block_of(address: str, email: ValidEmail, blocks: Mapping[str, str]) -> str:
    """The field an address was typed in (To for a count, or one not found)."""
    for name, addresses in (("cc", email.cc), ("bcc", email.bcc)):
        if address and address in addresses:
            return blocks[name]
    return blocks["to"]


async def _queue_email(
    *,
    services: Services,
    ack: AsyncAck,
    view: Mapping[str, Any],
    t: Texts,
    user: SlackUser,
    email: ValidEmail,
    origin: ViewOrigin,
    reply_to_message_id: int | None,
    policy: WorkspacePolicy,
    send_at: datetime | None,
    forward_message_id: int | None = None,
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
    target = QueueTarget(
        submission_key=f"{view.get('id')}:{view.get('hash')}",
        result_channel=channel,
        result_thread_ts=origin.thread_ts if channel == origin.channel_id else None,
        reply_to_message_id=reply_to_message_id,
        forward_message_id=forward_message_id,
        send_at=send_at.timestamp() if send_at else None,
        draft_id=origin.draft_id,
    )
    outside = services.policy.check(policy, [*email.to, *email.cc, *email.bcc]).outside
    if outside and policy.confirm_outside:
        # The workspace asks before e-mail leaves its allowed domains: the e-mail waits while
        # the sender confirms on a view pushed over this one.
        key = await services.pending_sends.hold(user, email, target)
        await ack(
            response_action="push",
            view=confirm_outside_view(
                t, outside=outside, allowed=policy.allowed_domains, private_metadata=key
            ),
        )
        return
    await services.sending.submit(
        user,
        email,
        submission_key=target.submission_key,
        result_channel=target.result_channel,
        result_thread_ts=target.result_thread_ts,
        reply_to_message_id=target.reply_to_message_id,
        forward_message_id=target.forward_message_id,
        hourly_cap=services.policy.hourly_cap(policy),
        send_at=send_at,
    )
    await ack()
    services.notify_wakeup.notify()
    # The draft this modal continued has become an e-mail.
    await services.writing.discard(user, origin.draft_id)
