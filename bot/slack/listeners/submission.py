"""What the compose and reply submissions share: read the form, validate it, check the cap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.mail.compose import ComposeInput, ValidEmail, validate_compose
from bot.mail.errors import SendingCapReached
from bot.mail.richtext import collect_mentions
from bot.slack import ids
from bot.slack.render.compose import inline_errors
from bot.slack.view_state import rich_text_value, selected_value, text_value
from bot.slack.wording import Texts
from bot.store.links import SlackUser

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services
    from bot.store.models import Link


async def checked_email(
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
    form = ComposeInput(
        sender=selected_value(view, blocks["from"], ids.FROM_ACTION),
        to=text_value(view, blocks["to"], ids.ADDRESSES_ACTION),
        cc=text_value(view, blocks["cc"], ids.ADDRESSES_ACTION),
        bcc=text_value(view, blocks["bcc"], ids.ADDRESSES_ACTION),
        subject=text_value(view, blocks["subject"], ids.SUBJECT_ACTION),
        body=rich_text_value(view, blocks["body"], ids.BODY_ACTION),
    )
    mentioned, _channels = collect_mentions(form.body) if form.body else (set(), set())
    resolved = await services.user_names.resolve(client, mentioned) if mentioned else {}
    result = validate_compose(
        form,
        senders=link.senders,
        max_recipients=services.settings.b24mail_max_recipients,
        user_name=resolved.get,
    )
    if isinstance(result, list):
        return inline_errors(t, result, blocks)
    try:
        await services.sending.check_cap(user)
    except SendingCapReached as exc:
        return {blocks["to"]: t.error(exc.code, cap=services.sending.hourly_cap)}
    return result
